"""The methods an evaluation compares: retouchers (callables) and the adapters that build them.

A *retoucher* is any callable ``(image (1, 3, H, W) float in [0, 1], instruction: str) -> (1, 3, H, W)``.
Besides models and shell commands, two kinds of method need the whole triplet and are not timed:
:class:`PrecomputedOutputs` (files already rendered) and :class:`GridFitOracle` (sees the target).

Named methods (``--model NAME``) are listed in :data:`NAMED_METHODS`; add a baseline there.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from retouch_core.engine.resize import resize

from ..data.images import read_rgb
from .baselines import BASELINES
from .records import IMAGE_SUFFIXES, EvaluationError, Triplet, save_image

Retoucher = Callable[[torch.Tensor, str], torch.Tensor]


def identity(image: torch.Tensor, instruction: str = "") -> torch.Tensor:
    """The do-nothing baseline: (1, 3, H, W) -> the same tensor."""
    return image


_PLACEHOLDER = re.compile(r"\{(input|output|instruction)\}")


def fill_template(template: str, **values: str) -> str:
    """Replace {input} {output} {instruction} by shell-quoted values; other braces are left alone
    (so a template may contain Python or JSON literals)."""
    return _PLACEHOLDER.sub(lambda m: shlex.quote(str(values[m.group(1)])), template)


def command_retoucher(template: str, timeout: float | None = None) -> Retoucher:
    """A retoucher that runs a shell command per image through temporary PNG files.

    ``template`` must contain ``{input}`` and ``{output}``; ``{instruction}`` is optional. A
    non-zero exit status or a missing output file raises EvaluationError with the command's stderr.
    Timing such a retoucher includes process start-up and PNG encoding, as a user would see it.
    """
    missing = [p for p in ("{input}", "{output}") if p not in template]
    if missing:
        raise EvaluationError(f"--command template lacks {' and '.join(missing)}: {template!r}")

    def run(image: torch.Tensor, instruction: str) -> torch.Tensor:
        with tempfile.TemporaryDirectory(prefix="retouch-eval-") as tmp:
            src, dst = Path(tmp) / "input.png", Path(tmp) / "output.png"
            save_image(image, src)
            cmd = fill_template(template, input=src, output=dst, instruction=instruction)
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                raise EvaluationError(f"command failed (exit {proc.returncode}): {cmd}\n{proc.stderr[-2000:]}")
            if not dst.is_file():
                raise EvaluationError(f"command wrote no output file {dst}: {cmd}\n{proc.stderr[-2000:]}")
            return read_rgb(dst)

    return run


class GridFitOracle:
    """Upper bound for any grid model: the grid fitted from each input to its own target.

    It sees the target, so it is not a retoucher; :func:`evaluate` feeds it both images and does
    not time it. The fit runs on a copy of at most ``low_res`` px, like the models' prediction.
    """

    def __init__(self, low_res: int = 256):
        self.low_res = low_res

    def __call__(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from retouch_core.engine.fit import fit_grid
        from retouch_core.models import low_res_copy
        from retouch_core.engine.slicing import slice_and_apply

        target = resize(target, image.shape[-2:], mode="area")
        grid = fit_grid(low_res_copy(image, self.low_res), low_res_copy(target, self.low_res))
        return slice_and_apply(image, grid).clamp(0, 1)


class LowResEditor:
    """Image-space baselines of the distillation: an editor that works on a low-resolution copy
    and is upsampled to the input's size, as a generator without the bilateral grid must be.

    ``teacher:DIR`` runs the InstructPix2Pix teacher (a diffusers folder) with DDIM; ``xhat:FILE``
    decodes the one-step student's latent x̂ (a student file). The copy's long side is ``low_res``,
    rounded to the model's size multiple; the output is bilinearly upsampled and clamped.
    """

    KINDS = ("teacher", "xhat")

    def __init__(self, spec: str, low_res: int = 256, steps: int = 20, seed: int = 0,
                 device: str | torch.device = "cpu"):
        kind, _, path = spec.partition(":")
        if kind not in self.KINDS or not path:
            raise EvaluationError(f"expected teacher:DIR or xhat:STUDENT_FILE, got {spec!r}")
        self.kind, self.low_res, self.steps, self.seed = kind, low_res, steps, seed
        if kind == "teacher":
            from retouch_core.models.diffusion.teacher import InstructPix2PixTeacher

            self.model = InstructPix2PixTeacher.from_pretrained(path).eval()
        else:
            from retouch_core.models.diffusion.bilateral_student import BilateralStudentNet

            self.model = BilateralStudentNet.load(path).eval()
        self.device = torch.device(device)
        self.model.to(self.device)

    def edit_low_res(self, low: torch.Tensor, instruction: str) -> torch.Tensor:
        """(1, 3, h, w), sides multiples of the model's size multiple -> (1, 3, h, w) edit."""
        if self.kind == "teacher":
            return self.model.sample(low, [instruction], steps=self.steps,
                                     generator=torch.Generator().manual_seed(self.seed))
        return self.model.codec.decode(self.model.predict(low, [instruction], with_grid=False).x0)

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor, instruction: str = "") -> torch.Tensor:
        from retouch_core.models import low_res_copy
        from retouch_core.models.diffusion.bilateral_student import resize_to_multiple

        low = resize_to_multiple(low_res_copy(image.float(), self.low_res), self.model.size_multiple).clamp(0, 1)
        edit = self.edit_low_res(low.to(self.device), instruction).clamp(0, 1)
        return resize(edit, image.shape[-2:]).clamp(0, 1).cpu()


@dataclass(frozen=True)
class NamedMethod:
    """A method the command line knows by name: ``build(low_res)`` makes its retoucher; ``help``
    is its one-line description in ``--help``."""

    build: Callable[[int], Retoucher]
    help: str


# ``--model NAME``: add a baseline by adding an entry (a retoucher, or a class like GridFitOracle
# that needs the target, which the protocol recognises by type).
NAMED_METHODS: Mapping[str, NamedMethod] = {
    "identity": NamedMethod(lambda low_res: identity, "output = input (the do-nothing baseline)"),
    "oracle": NamedMethod(lambda low_res: GridFitOracle(), "grid fitted to the target (upper bound of grid models)"),
    **{name: NamedMethod(lambda low_res, b=b: b, b.description) for name, b in BASELINES.items()},
}


def model_retoucher(name_or_path: str, low_res: int = 256, device: str | torch.device = "cpu") -> Retoucher:
    """A name of :data:`NAMED_METHODS`, ``teacher:DIR`` / ``xhat:FILE`` (:class:`LowResEditor` at
    ``low_res``) or a model from ``retouch_core.models.load_retouch_model(name_or_path)``.

    A loaded grid model must have ``predict(image, instruction) -> (RetouchGrid, Plan)`` (every
    :class:`~retouch_core.models.base.RetouchModel` has). On ``device`` run its networks (every
    ``nn.Module`` it holds is moved there), its prediction and the full-resolution slicing; the
    output comes back to the CPU. Runs under ``torch.inference_mode``. Raises EvaluationError
    for an unknown name.
    """
    from retouch_core.models import load_retouch_model

    if name_or_path in NAMED_METHODS:
        return NAMED_METHODS[name_or_path].build(low_res)
    if name_or_path.partition(":")[0] in LowResEditor.KINDS:
        return LowResEditor(name_or_path, low_res, device=device)
    try:
        model = load_retouch_model(name_or_path)
    except FileNotFoundError as err:
        raise EvaluationError(f"{err}; evaluation methods: {sorted(NAMED_METHODS)}") from None
    device = torch.device(device)
    move_model(model, device)

    def run(image: torch.Tensor, instruction: str) -> torch.Tensor:
        with torch.inference_mode():
            image = image.to(device)
            grid, _ = model.predict(image, instruction)
            return grid_on(grid, device).apply(image).cpu()

    return run


def move_model(model, device: torch.device) -> None:
    """Move every ``nn.Module`` a retouch model holds to ``device`` (and its ``device`` attribute)."""
    for name, value in vars(model).items():
        if isinstance(value, torch.nn.Module):
            value.to(device)
    if hasattr(model, "device"):
        model.device = device


def grid_on(grid, device: torch.device):
    """A :class:`~retouch_core.engine.retouch_grid.RetouchGrid` with its tensors on ``device``."""
    import dataclasses

    guide = None if grid.guide is None else grid.guide.to(device=device)
    return dataclasses.replace(grid, grid=grid.grid.to(device), guide=guide)


@dataclass(frozen=True)
class PrecomputedOutputs:
    """Outputs already on disk: ``folder/<id>.png``, or the input's file name, or ``<id|stem>.<ext>``."""

    folder: Path

    def candidates(self, triplet: Triplet) -> list[Path]:
        names = [f"{triplet.id}.png", triplet.input.name]
        names += [f"{stem}{ext}" for stem in (triplet.id, triplet.input.stem) for ext in IMAGE_SUFFIXES]
        return [Path(self.folder) / n for n in dict.fromkeys(names)]

    def path_for(self, triplet: Triplet) -> Path | None:
        return next((p for p in self.candidates(triplet) if p.is_file()), None)

    def check(self, triplets: Sequence[Triplet]) -> None:
        """Fail before any metric is computed if some outputs are absent (a partial mean would mislead)."""
        absent = [t for t in triplets if self.path_for(t) is None]
        if absent:
            examples = ", ".join(t.id for t in absent[:5])
            raise EvaluationError(
                f"{len(absent)} of {len(triplets)} outputs missing in {self.folder} (e.g. {examples}; "
                f"expected <id>.png or the input's file name)"
            )



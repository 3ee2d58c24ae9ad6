"""``retouch-train evaluate``: the InstantRetouch evaluation protocol for any retouching method.

What is evaluated (one or more methods per run, so baselines share one table):

* ``--model NAME_OR_PATH``: a model loaded by ``retouch_core.models.load_retouch_model`` (imported
  lazily), or the built-in ``identity`` (output = input);
* ``--command "TEMPLATE"``: any program, run once per triplet with ``{input}``, ``{output}`` and
  ``{instruction}`` replaced by shell-quoted values (do not quote the placeholders yourself);
* ``--outputs DIR``: images already rendered, named ``<record id>.png`` or like the input file.

In Python the core is :func:`evaluate`, where a *retoucher* is any callable
``(image (1, 3, H, W) float in [0, 1], instruction: str) -> (1, 3, H, W)``.

On which triplets (input, target, instruction): ``--dataset DIR`` (``DIR/manifest.jsonl``, records
``{id, input, target, instruction, subset, split}`` with paths relative to ``DIR``) or
``--pairs INPUT_DIR TARGET_DIR`` (same file names; empty instruction = automatic enhancement).

Per triplet, then averaged per method:

* fidelity to the *input* (paper protocol): both images to grey, the output's grey histogram
  matched to the input's, then SSIM, CW-SSIM, GMSD and, when their weights are on disk, DISTS and
  LPIPS (on the grey pair repeated to 3 channels). Without weights they are reported as
  ``"missing"``, never dropped;
* editing quality against the *target*: L1, L2 (MSE), PSNR, CIEDE2000;
* CLIP direction (``--clip PATH``): fraction of the instruction's attributes whose CLIP margin
  s+ - s- moved the instructed way (:func:`retouch_core.language.clip_score.edit_direction`);
* direction accuracy without CLIP: for attributes with a measurable CIELAB proxy (brightness ->
  mean L*, contrast -> std L*, warmth -> mean b*, tint -> mean a*, saturation / vibrance -> mean
  chroma), did the output move the proxy the instructed way relative to the input;
* ``--timing``: median milliseconds of the retoucher on the first input resized to 720p, 1K,
  2K and 4K frames.

``--report DIR`` writes ``metrics.csv`` (per triplet), ``summary.md``, ``summary.json``,
``grid.png`` (input / outputs / target for up to 8 triplets) and ``metrics.png`` (bars).

Cell values in the tables: a number; ``missing`` (metric weights absent locally); ``n/a`` (not
applicable, e.g. CLIP on instructions with no attribute, SSIM on an image smaller than its
window); ``—`` (not requested, e.g. no ``--clip`` or no ``--timing``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics as M

__all__ = [
    "Retoucher",
    "Triplet",
    "PrecomputedOutputs",
    "MethodResult",
    "EvaluationError",
    "TIMING_SIZES",
    "PROXIES",
    "load_image",
    "save_image",
    "read_manifest",
    "pair_triplets",
    "identity",
    "command_retoucher",
    "model_retoucher",
    "lab_stats",
    "instructed_axes",
    "direction_hits",
    "load_learned_metrics",
    "triplet_metrics",
    "evaluate",
    "time_retoucher",
    "summarize",
    "format_markdown",
    "write_report",
    "register",
    "main",
]

Retoucher = Callable[[torch.Tensor, str], torch.Tensor]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")

# (height, width) of landscape frames; a portrait first input is timed on the transposed frame so
# the pixel count is the same for every method. Same pixel counts as retouch_core.apps.bench's
# 720p / 1080p / 1440p / 4K.
TIMING_SIZES: Mapping[str, tuple[int, int]] = {
    "720p": (720, 1280),
    "1K": (1080, 1920),
    "2K": (1440, 2560),
    "4K": (2160, 3840),
}

MISSING = "missing"
FIDELITY = ("ssim", "cw_ssim", "gmsd")
LEARNED = ("dists", "lpips")
EDITING = ("l1", "l2", "psnr", "delta_e")
# The paper's column order.
TABLE_METRICS = (*FIDELITY, *LEARNED, *EDITING, "clip_dir")
LABELS = {
    "ssim": "SSIM↑", "cw_ssim": "CW-SSIM↑", "gmsd": "GMSD↓", "dists": "DISTS↓", "lpips": "LPIPS↓",
    "l1": "L1↓", "l2": "L2↓", "psnr": "PSNR↑", "delta_e": "ΔE↓", "clip_dir": "CLIP↑",
}
DECIMALS = {"psnr": 2, "delta_e": 2, "clip_dir": 3, "l2": 5}

# Axis attribute -> the CIELAB statistic (see lab_stats) that the attribute must move.
PROXIES: Mapping[str, str] = {
    "brightness": "L_mean",
    "contrast": "L_std",
    "warmth": "b_mean",
    "tint_magenta": "a_mean",
    "saturation": "chroma",
    "vibrance": "chroma",
}
# Explicit numbers in an instruction ("exposure +0.7 EV") name parameters, not attributes; these
# parameters push the same proxies, with the sign of the number.
PARAM_AXES: Mapping[str, str] = {
    "exposure": "brightness",
    "contrast": "contrast",
    "temperature": "warmth",
    "tint": "tint_magenta",
    "saturation": "saturation",
    "vibrance": "vibrance",
}
# A proxy must change by more than this (Lab units) to count as moved: an identity edit that
# round-trips through 8-bit files must not score by float noise.
PROXY_TOLERANCE = 1e-4

ROW_COLUMNS = (
    "method", "id", "subset", "instruction",
    *FIDELITY, *LEARNED, *EDITING,
    "clip_dir", "clip_n",
    *(f"dir_{axis}" for axis in PROXIES), "dir_acc",
    "notes",
)


class EvaluationError(RuntimeError):
    """A user-facing problem (missing files, failing command, unusable model); the CLI prints it."""


# --------------------------------------------------------------------------------------------
# images


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as sRGB. -> (1, 3, H, W) float32 in [0, 1] (alpha dropped, 16 bit kept)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float32) / 65535.0
            arr = np.repeat(arr[..., None], 3, axis=2)
        else:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0).clamp(0.0, 1.0)


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write (1, 3, H, W) or (3, H, W) in [0, 1] as an 8-bit file (format from the suffix)."""
    from PIL import Image

    x = image.detach().float().cpu()
    x = x[0] if x.ndim == 4 else x
    arr = (x.clamp(0.0, 1.0).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, 3, H, W) -> (1, 3, *size), antialiased bilinear, clamped (no overshoot)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0.0, 1.0)


def _thumbnail(image: torch.Tensor, long_side: int = 256) -> torch.Tensor:
    """Small copy for the preview grid: (1, 3, H, W) -> (1, 3, h, w) with max(h, w) <= long_side."""
    h, w = image.shape[-2:]
    scale = min(1.0, long_side / max(h, w))
    return _resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))


# --------------------------------------------------------------------------------------------
# triplets


@dataclass(frozen=True)
class Triplet:
    """One evaluation sample: input and target image files plus the instruction ("" = auto)."""

    id: str
    input: Path
    target: Path
    instruction: str = ""
    subset: str = "auto"


def _selected(value: Any, wanted: str | None) -> bool:
    """Manifest filter: None or "all" keeps everything."""
    return wanted in (None, "all") or value == wanted


def read_manifest(
    root: str | Path, split: str | None = "heldout", subset: str | None = None, limit: int | None = None
) -> list[Triplet]:
    """Triplets of ``root/manifest.jsonl`` (paths relative to ``root``).

    ``split``/``subset`` None (or "all") keep every record; ``limit`` keeps the first N after
    filtering, in file order. Raises EvaluationError when nothing is left, naming what exists.
    """
    root = Path(root)
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise EvaluationError(f"no manifest.jsonl in {root}")
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = [r for r in records if _selected(r.get("split"), split) and _selected(r.get("subset"), subset)]
    if not keep:
        splits = sorted({str(r.get("split")) for r in records})
        subsets = sorted({str(r.get("subset")) for r in records})
        raise EvaluationError(
            f"{manifest}: no record with split={split!r} subset={subset!r} (splits: {splits}, subsets: {subsets})"
        )
    triplets = [
        Triplet(
            id=str(r["id"]),
            input=root / r["input"],
            target=root / r["target"],
            instruction=r.get("instruction") or "",
            subset=r.get("subset") or "auto",
        )
        for r in keep
    ]
    return triplets[:limit] if limit else triplets


def _image_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


def pair_triplets(
    input_dir: str | Path, target_dir: str | Path, instruction: str = "", limit: int | None = None
) -> list[Triplet]:
    """Triplets from two folders holding the same file names (id = file stem), sorted by name.

    Files present on one side only are reported with a warning and left out.
    """
    input_dir, target_dir = Path(input_dir), Path(target_dir)
    for folder in (input_dir, target_dir):
        if not folder.is_dir():
            raise EvaluationError(f"not a folder: {folder}")
    inputs, targets = _image_files(input_dir), _image_files(target_dir)
    common = sorted(set(inputs) & set(targets))
    unmatched = sorted(set(inputs) ^ set(targets))
    if unmatched:
        warnings.warn(f"{len(unmatched)} image(s) without a partner left out: {unmatched[:5]}", stacklevel=2)
    if not common:
        raise EvaluationError(f"no file name is in both {input_dir} and {target_dir}")
    subset = "style" if instruction.strip() else "auto"
    triplets = [Triplet(Path(n).stem, inputs[n], targets[n], instruction, subset) for n in common]
    return triplets[:limit] if limit else triplets


# --------------------------------------------------------------------------------------------
# retouchers


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
            return load_image(dst)

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

        target = F.interpolate(target, size=image.shape[-2:], mode="area") if target.shape != image.shape else target
        grid = fit_grid(low_res_copy(image, self.low_res), low_res_copy(target, self.low_res))
        return slice_and_apply(image, grid).clamp(0, 1)


class LowResEditor:
    """Image-space baselines of the distillation: an editor that works on a low-resolution copy
    and is upsampled to the input's size, as a generator without the bilateral grid must be.

    ``teacher:DIR`` runs the InstructPix2Pix teacher (a diffusers folder) with DDIM; ``xhat:FILE``
    decodes the one-step student's latent x̂ (a student file). The copy's long side is ``low_res``,
    rounded to the model's size multiple; the output is bilinearly upsampled and clamped.
    """

    def __init__(self, spec: str, low_res: int = 256, steps: int = 20, seed: int = 0):
        kind, _, path = spec.partition(":")
        if kind not in ("teacher", "xhat") or not path:
            raise EvaluationError(f"expected teacher:DIR or xhat:STUDENT_FILE, got {spec!r}")
        self.kind, self.low_res, self.steps, self.seed = kind, low_res, steps, seed
        if kind == "teacher":
            from retouch_core.models.diffusion.teacher import InstructPix2PixTeacher

            self.model = InstructPix2PixTeacher.from_pretrained(path).eval()
        else:
            from retouch_core.models.diffusion.bilateral_student import BilateralStudentNet

            self.model = BilateralStudentNet.load(path).eval()

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
        edit = self.edit_low_res(low, instruction).clamp(0, 1)
        return F.interpolate(edit, size=image.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)


def model_retoucher(name_or_path: str, low_res: int = 256) -> Retoucher:
    """``identity``, ``oracle`` (:class:`GridFitOracle`), ``teacher:DIR`` / ``xhat:FILE``
    (:class:`LowResEditor` at ``low_res``) or a model from
    ``retouch_core.models.load_retouch_model(name_or_path)``.

    The loaded object must be callable as ``(image (1, 3, H, W), instruction) -> (1, 3, H, W)``;
    it runs under ``torch.inference_mode``.
    """
    if name_or_path == "identity":
        return identity
    from .baselines import BASELINES

    if name_or_path in BASELINES:
        return BASELINES[name_or_path]
    if name_or_path == "oracle":
        return GridFitOracle()
    if name_or_path.startswith(("teacher:", "xhat:")):
        return LowResEditor(name_or_path, low_res)
    try:
        from retouch_core.models import load_retouch_model
    except ImportError as err:
        raise EvaluationError(
            f"--model {name_or_path!r} needs retouch_core.models.load_retouch_model, which this "
            f"installation does not provide ({err}). Use --model identity, --command or --outputs."
        ) from err
    model = load_retouch_model(name_or_path)

    def run(image: torch.Tensor, instruction: str) -> torch.Tensor:
        with torch.inference_mode():
            return model(image, instruction)

    return run


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


# --------------------------------------------------------------------------------------------
# direction proxies and CLIP


def lab_stats(image: torch.Tensor) -> dict[str, float]:
    """CIELAB summary statistics of one image. (1, 3, H, W) in [0, 1] ->
    {L_mean, L_std, a_mean, b_mean, chroma} (chroma = mean sqrt(a*^2 + b*^2))."""
    import kornia

    lab = kornia.color.rgb_to_lab(image.clamp(0.0, 1.0).double())[0]
    L, a, b = lab[0], lab[1], lab[2]
    return {
        "L_mean": float(L.mean()),
        "L_std": float(L.std(unbiased=False)),
        "a_mean": float(a.mean()),
        "b_mean": float(b.mean()),
        "chroma": float(torch.sqrt(a * a + b * b).mean()),
    }


def instructed_axes(plan) -> dict[str, float]:
    """Proxied axes an instruction asks to move -> instructed sign (+1 / -1).

    plan: a :class:`retouch_core.language.matcher.Plan`. Explicit numbers win over words for the same axis
    ("brighter, exposure -0.3" asks for a darker picture in numbers the user chose).
    """
    axes = {name: math.copysign(1.0, w) for name, w in plan.attributes.items() if name in PROXIES and w != 0}
    for param, value in plan.params.items():
        if param in PARAM_AXES and value != 0:
            axes[PARAM_AXES[param]] = math.copysign(1.0, value)
    return axes


def direction_hits(
    before: Mapping[str, float], after: Mapping[str, float], axes: Mapping[str, float]
) -> dict[str, bool]:
    """Per axis: did the proxy statistic move in the instructed direction by more than the tolerance?

    before, after: :func:`lab_stats` of input and output; axes: :func:`instructed_axes`.
    """
    return {
        axis: sign * (after[PROXIES[axis]] - before[PROXIES[axis]]) > PROXY_TOLERANCE
        for axis, sign in axes.items()
    }


def clip_direction(scorer, before: torch.Tensor, after: torch.Tensor, plan, bank) -> tuple[int, int]:
    """(moved, instructed) counts of the plan's attributes by CLIP margin. before, after: (1, 3, H, W)."""
    from retouch_core.language.clip_score import edit_direction

    names = [n for n, w in plan.attributes.items() if w != 0]
    if not names:
        return 0, 0
    pairs = [(bank[n].positive, bank[n].negative) for n in names]
    with torch.no_grad():
        result = edit_direction(scorer, before, after, pairs, [plan.attributes[n] for n in names])
    return int(result.moved.sum()), len(names)


# --------------------------------------------------------------------------------------------
# per-triplet metrics


def load_learned_metrics(weights_dirs: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """{"dists": module or reason, "lpips": module or reason}; a str value says why it is missing.

    Loaded once per run and shared by every method (VGG16 is large).
    """
    learned: dict[str, Any] = {}
    for name, loader in (("dists", M.load_dists), ("lpips", M.load_lpips)):
        try:
            learned[name] = loader(weights_dirs=weights_dirs)
        except M.MissingWeightsError as err:
            learned[name] = f"weights not found locally ({', '.join(p.name for p in err.searched[:3])}, ...)"
        except ImportError as err:
            learned[name] = f"package not installed ({err.name})"
    return learned


def _guarded(name: str, fn: Callable[[], torch.Tensor], notes: list[str]) -> float:
    """fn() as a float; NaN plus a note when the metric cannot be computed (e.g. image too small)."""
    try:
        return float(fn().reshape(-1)[0])
    except (ValueError, RuntimeError) as err:
        notes.append(f"{name}: {str(err).splitlines()[0]}")
        return math.nan


def triplet_metrics(
    output: torch.Tensor, input: torch.Tensor, target: torch.Tensor, learned: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Fidelity (to input) and editing (to target) metrics of one triplet.

    output, input, target: (1, 3, H, W) in [0, 1], same size. learned: :func:`load_learned_metrics`
    (None: both reported missing). Returns ({metric: float or "missing"}, notes).
    """
    notes: list[str] = []
    # Paper protocol: compare structure only, after removing the tone change the edit intended.
    matched = M.grayscale_histogram_match(output, input)
    ref = M.to_gray(input)
    row: dict[str, Any] = {
        "ssim": _guarded("ssim", lambda: M.ssim(matched, ref), notes),
        "cw_ssim": _guarded("cw_ssim", lambda: M.cw_ssim(matched, ref), notes),
        "gmsd": _guarded("gmsd", lambda: M.gmsd(matched, ref), notes),
    }
    matched3, ref3 = matched.expand(-1, 3, -1, -1), ref.expand(-1, 3, -1, -1)
    learned = learned or {}
    with torch.no_grad():
        for name, fn in (("dists", M.dists), ("lpips", M.lpips)):
            model = learned.get(name, MISSING)
            row[name] = MISSING if isinstance(model, str) else _guarded(
                name, lambda fn=fn, model=model: fn(matched3, ref3, model=model), notes
            )
    row.update(
        l1=float(M.l1(output, target)),
        l2=float(M.l2(output, target)),
        psnr=float(M.psnr(output, target)),
        delta_e=float(M.ciede2000(output, target)),
    )
    return row, notes


def _as_output(raw: Any, like: torch.Tensor, notes: list[str]) -> torch.Tensor:
    """Normalise what a retoucher returned to (1, 3, H, W) float32 in [0, 1] on CPU, sized like ``like``."""
    if not isinstance(raw, torch.Tensor):
        raise EvaluationError(f"retoucher returned {type(raw).__name__}, expected a tensor")
    out = raw.detach().float().cpu()
    out = out.unsqueeze(0) if out.ndim == 3 else out
    if out.ndim != 4 or out.shape[:2] != (1, 3):
        raise EvaluationError(f"retoucher returned shape {tuple(raw.shape)}, expected (1, 3, H, W)")
    if not torch.isfinite(out).all():
        raise EvaluationError("retoucher returned NaN or infinite values")
    if out.shape[-2:] != like.shape[-2:]:
        # Fidelity needs pixel correspondence; record the resize instead of failing the whole run.
        notes.append(f"output {tuple(out.shape[-2:])} resized to {tuple(like.shape[-2:])}")
        out = _resize(out.clamp(0.0, 1.0), tuple(like.shape[-2:]))
    # Files are 8-bit anyway; the metrics (piq) reject values outside [0, 1].
    return out.clamp(0.0, 1.0)


def _evaluate_one(
    produce: Callable[[Triplet, torch.Tensor], torch.Tensor],
    triplet: Triplet,
    learned: Mapping[str, Any],
    scorer,
    bank,
) -> tuple[dict[str, Any], torch.Tensor]:
    """All metrics of one triplet. -> (CSV row without the method column, output (1, 3, H, W))."""
    from retouch_core.language.matcher import parse_instruction

    notes: list[str] = []
    image = load_image(triplet.input)
    target = load_image(triplet.target)
    if target.shape != image.shape:
        notes.append(f"target {tuple(target.shape[-2:])} resized to {tuple(image.shape[-2:])}")
        target = _resize(target, tuple(image.shape[-2:]))
    output = _as_output(produce(triplet, image), image, notes)

    row, metric_notes = triplet_metrics(output, image, target, learned)
    notes += metric_notes
    plan = parse_instruction(triplet.instruction, bank)

    moved, n = clip_direction(scorer, image, output, plan, bank) if scorer is not None else (0, 0)
    row["clip_dir"] = moved / n if n else math.nan
    row["clip_n"] = n

    axes = instructed_axes(plan)
    hits = direction_hits(lab_stats(image), lab_stats(output), axes) if axes else {}
    for axis in PROXIES:
        row[f"dir_{axis}"] = float(hits[axis]) if axis in hits else math.nan
    row["dir_acc"] = sum(hits.values()) / len(hits) if hits else math.nan

    row.update(id=triplet.id, subset=triplet.subset, instruction=triplet.instruction, notes="; ".join(notes))
    return row, output


# --------------------------------------------------------------------------------------------
# evaluation of one method


@dataclass
class MethodResult:
    """Everything measured for one method.

    rows: per-triplet dicts with :data:`ROW_COLUMNS` keys (floats, NaN = not applicable,
    "missing" = weights absent); timing_ms: {size: median ms} or None when not measured;
    missing: metric -> reason; clip: whether CLIP was requested; previews: (triplet, output
    thumbnail (1, 3, h, w)) of the first triplets, for the grid; scale_psnr: dB agreement of the
    smallest and largest timed frames (:func:`scale_agreement`), None when not measured.
    """

    name: str
    rows: list[dict[str, Any]]
    timing_ms: dict[str, float] | None = None
    scale_psnr: float | None = None
    missing: dict[str, str] = field(default_factory=dict)
    clip: bool = False
    previews: list[tuple[Triplet, torch.Tensor]] = field(default_factory=list)


def evaluate(
    retoucher: Retoucher | PrecomputedOutputs,
    triplets: Sequence[Triplet],
    *,
    name: str = "method",
    clip=None,
    learned: Mapping[str, Any] | None = None,
    timing_sizes: Mapping[str, tuple[int, int]] | None = None,
    timing_repeats: int = 3,
    preview_count: int = 8,
    progress: bool = True,
) -> MethodResult:
    """Run one method over ``triplets`` and measure everything.

    retoucher: callable ``(image (1, 3, H, W), instruction) -> (1, 3, H, W)`` or
    :class:`PrecomputedOutputs`. clip: a :class:`~retouch_core.language.clip_score.ClipScorer` or None.
    learned: :func:`load_learned_metrics` result (None: loaded here from the default folders).
    timing_sizes: e.g. :data:`TIMING_SIZES` to time the retoucher on the first input (not
    possible for precomputed outputs: reported as not measured).
    """
    from tqdm.auto import tqdm

    from retouch_core.language.attributes import default_bank

    if not triplets:
        raise EvaluationError("no triplets to evaluate")
    if learned is None:
        learned = load_learned_metrics()
    if isinstance(retoucher, PrecomputedOutputs):
        retoucher.check(triplets)
        produce = lambda t, image: load_image(retoucher.path_for(t))  # noqa: E731
    elif isinstance(retoucher, GridFitOracle):
        produce = lambda t, image: retoucher(image, load_image(t.target))  # noqa: E731
    else:
        # A copy: a retoucher that edits its argument in place must not change the reference input.
        produce = lambda t, image: retoucher(image.clone(), t.instruction)  # noqa: E731

    bank = default_bank()
    missing = {k: v for k, v in learned.items() if isinstance(v, str)}
    result = MethodResult(name, [], missing=missing, clip=clip is not None)
    for triplet in tqdm(triplets, desc=name, unit="img", disable=not progress, leave=False):
        row, output = _evaluate_one(produce, triplet, learned, clip, bank)
        result.rows.append({"method": name, **row})
        if len(result.previews) < preview_count:
            result.previews.append((triplet, _thumbnail(output)))

    if timing_sizes and not isinstance(retoucher, (PrecomputedOutputs, GridFitOracle)):
        first = triplets[0]
        image = load_image(first.input)
        result.timing_ms = time_retoucher(retoucher, image, first.instruction, timing_sizes, timing_repeats)
        frames = sorted(timing_sizes.values(), key=lambda hw: hw[0] * hw[1])
        result.scale_psnr = scale_agreement(retoucher, image, first.instruction, frames[0], frames[-1])
    return result


def time_retoucher(
    retoucher: Retoucher,
    image: torch.Tensor,
    instruction: str = "",
    sizes: Mapping[str, tuple[int, int]] = TIMING_SIZES,
    repeats: int = 3,
) -> dict[str, float]:
    """Median wall-clock ms of ``retoucher`` on ``image`` (1, 3, H, W) resized to each frame of ``sizes``.

    Frames are (height, width) landscape; a portrait image gets the transposed frame so the pixel
    count is that of the named resolution. One untimed warm-up call per size (lazy init, caches).
    """
    portrait = image.shape[-2] > image.shape[-1]
    timings = {}
    for label, (h, w) in sizes.items():
        frame = _resize(image, (w, h) if portrait else (h, w))
        with torch.inference_mode():
            retoucher(frame, instruction)
            times = []
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                retoucher(frame, instruction)
                times.append(time.perf_counter() - start)
        timings[label] = 1000.0 * statistics.median(times)
    return timings


def scale_agreement(
    retoucher: Retoucher, image: torch.Tensor, instruction: str, small: tuple[int, int], large: tuple[int, int]
) -> float:
    """PSNR (dB) between the retoucher's output on ``image`` resized to ``small`` and its output
    on ``image`` resized to ``large``, area-downscaled to ``small``: does the edit depend on the
    resolution it is run at? Frames are (height, width), transposed for a portrait image."""
    portrait = image.shape[-2] > image.shape[-1]
    small, large = ((w, h) if portrait else (h, w) for h, w in (small, large))
    with torch.inference_mode():
        reference = retoucher(_resize(image, small), instruction).clamp(0, 1)
        big = retoucher(_resize(image, large), instruction).clamp(0, 1)
    mse = float((F.interpolate(big, size=small, mode="area") - reference).square().mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


# --------------------------------------------------------------------------------------------
# summaries


def _mean(values: Sequence[Any]) -> float:
    """Mean over numeric non-NaN values (inf kept: identical images have infinite PSNR); NaN if none."""
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return float(np.mean(nums)) if nums else math.nan


def summarize(result: MethodResult) -> dict[str, Any]:
    """Means and counts of one method.

    -> {"name", "n", "metrics": {metric: float | "missing" | None (not requested)},
        "direction": {axis | "all": {"n", "hits", "accuracy"}}, "timing_ms", "missing"}.
    CLIP and direction accuracies are pooled over attributes (micro average), so a triplet with
    three instructed attributes weighs three times one with a single attribute.
    """
    rows = result.rows
    means: dict[str, Any] = {}
    for metric in TABLE_METRICS:
        if metric in result.missing:
            means[metric] = MISSING
        elif metric == "clip_dir":
            n = sum(r["clip_n"] for r in rows)
            moved = sum(r["clip_dir"] * r["clip_n"] for r in rows if r["clip_n"])
            means[metric] = (moved / n if n else math.nan) if result.clip else None
        else:
            means[metric] = _mean([r[metric] for r in rows])

    direction: dict[str, dict[str, Any]] = {}
    total_n = total_hits = 0
    for axis in PROXIES:
        values = [r[f"dir_{axis}"] for r in rows if not math.isnan(r[f"dir_{axis}"])]
        if values:
            hits = int(sum(values))
            direction[axis] = {"n": len(values), "hits": hits, "accuracy": hits / len(values)}
            total_n, total_hits = total_n + len(values), total_hits + hits
    direction["all"] = {"n": total_n, "hits": total_hits, "accuracy": total_hits / total_n if total_n else None}
    return {
        "name": result.name,
        "n": len(rows),
        "metrics": means,
        "direction": direction,
        "timing_ms": result.timing_ms,
        "scale_psnr": result.scale_psnr,
        "missing": dict(result.missing),
    }


def _cell(value: Any, decimals: int = 4) -> str:
    """Table cell: number, "missing", "n/a" (NaN: not applicable) or "—" (None: not requested)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{decimals}f}"


def _timing_labels(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Default resolutions first (paper columns even when not measured), then any custom ones."""
    labels = list(TIMING_SIZES)
    for s in summaries:
        labels += [k for k in (s["timing_ms"] or {}) if k not in labels]
    return labels


def format_markdown(summaries: Sequence[Mapping[str, Any]], title: str = "Evaluation") -> str:
    """summary.md: the paper's table, the per-attribute direction accuracy, and what was missing."""
    labels = _timing_labels(summaries)
    scaled = any(s.get("scale_psnr") is not None for s in summaries)
    header = ["method", *(LABELS[m] for m in TABLE_METRICS), *(f"ms@{k}" for k in labels)]
    header += [f"{labels[0]}≈{labels[-1]} dB↑"] if scaled else []
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s["name"], *(_cell(s["metrics"][m], DECIMALS.get(m, 4)) for m in TABLE_METRICS)]
        timing = s["timing_ms"]
        cells += [_cell(None if timing is None else timing.get(k, math.nan), 1) for k in labels]
        cells += [_cell(s.get("scale_psnr"), 2)] if scaled else []
        lines.append("| " + " | ".join(cells) + " |")

    axes = [a for a in PROXIES if any(a in s["direction"] for s in summaries)]
    lines += ["", "## Instruction direction accuracy (CIELAB proxies, no CLIP)", ""]
    if axes:
        lines += ["| method | " + " | ".join([*axes, "all"]) + " |", "|" + "---|" * (len(axes) + 2)]
        for s in summaries:
            d = s["direction"]
            cells = [
                f"{d[a]['accuracy']:.3f} ({d[a]['hits']}/{d[a]['n']})" if d.get(a, {}).get("n") else "n/a"
                for a in [*axes, "all"]
            ]
            lines.append(f"| {s['name']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Proxies: " + ", ".join(f"{a} → {PROXIES[a]}" for a in axes) + " (output vs input).")
    else:
        lines.append("No instruction names an attribute with a proxy (brightness, contrast, warmth, tint, "
                     "saturation, vibrance): n/a.")

    notes = sorted({f"{m}: {why}" for s in summaries for m, why in s["missing"].items()})
    lines += ["", "## Notes", "", f"- triplets per method: {', '.join(str(s['n']) for s in summaries)}"]
    lines += [f"- missing {n}" for n in notes]
    lines += [
        "- fidelity (SSIM, CW-SSIM, GMSD, DISTS, LPIPS) compares the grey, histogram-matched output with the grey "
        "input; L1, L2, PSNR, ΔE (CIEDE2000) compare the output with the target.",
        "- CLIP↑ = fraction of instructed attributes whose CLIP margin moved the instructed way.",
        "- cells: n/a = not applicable, — = not requested, missing = weights not on this machine.",
    ]
    return "\n".join(lines) + "\n"


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return "inf" if math.isinf(value) and value > 0 else f"{value:.6g}"
    return value


def _json_safe(value: Any) -> Any:
    """Strict JSON with the tables' vocabulary: NaN -> "n/a", inf -> "inf" (json.dump would write the
    non-standard NaN / Infinity); None stays null = not requested."""
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_csv(results: Sequence[MethodResult], path: Path) -> Path:
    """metrics.csv: one line per (method, triplet) with :data:`ROW_COLUMNS`; empty cell = n/a."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_COLUMNS)
        writer.writeheader()
        for result in results:
            for row in result.rows:
                writer.writerow({k: _csv_value(row.get(k, "")) for k in ROW_COLUMNS})
    return path


def write_report(
    results: Sequence[MethodResult], folder: str | Path, source: str = "", plots: bool = True
) -> dict[str, Path]:
    """Write metrics.csv, summary.md, summary.json and (with matplotlib) grid.png, metrics.png.

    Returns {name: path} of the files written. Without matplotlib the plots are skipped with a
    warning and summary.json says so.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(r) for r in results]
    written = {"metrics.csv": write_csv(results, folder / "metrics.csv")}
    title = f"Evaluation{f' — {source}' if source else ''}"
    (folder / "summary.md").write_text(format_markdown(summaries, title), encoding="utf-8")
    written["summary.md"] = folder / "summary.md"

    plot_status = "not requested"
    if plots:
        try:
            written["grid.png"] = plot_grid(results, folder / "grid.png")
            written["metrics.png"] = plot_metrics(summaries, folder / "metrics.png")
            plot_status = "written"
        except ImportError as err:
            plot_status = f"skipped: matplotlib not importable ({err})"
            warnings.warn(f"plots {plot_status}; pip install matplotlib", stacklevel=2)

    payload = {
        "source": source,
        "columns": {m: LABELS[m] for m in TABLE_METRICS},
        "timing_sizes": {k: list(v) for k, v in TIMING_SIZES.items()},
        "proxies": dict(PROXIES),
        "plots": plot_status,
        "legend": {"missing": "weights not on this machine", "n/a": "not applicable", "null": "not requested"},
        "methods": summaries,
    }
    text = json.dumps(_json_safe(payload), indent=2, ensure_ascii=False)
    (folder / "summary.json").write_text(text, encoding="utf-8")
    written["summary.json"] = folder / "summary.json"
    return written


# --------------------------------------------------------------------------------------------
# plots (matplotlib's object API: no pyplot, so no global backend or figure state)


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()


def plot_grid(results: Sequence[MethodResult], path: Path, long_side: int = 256) -> Path:
    """grid.png: one row per previewed triplet: input | each method's output | target, captioned
    with the record id and instruction."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    previews = results[0].previews
    n_rows, n_cols = len(previews), len(results) + 2
    fig = Figure(figsize=(2.6 * n_cols, 2.75 * n_rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    rows = fig.subfigures(n_rows, 1, squeeze=False)[:, 0]
    for r, (triplet, _) in enumerate(previews):
        panels = [("input", _thumbnail(load_image(triplet.input), long_side))]
        panels += [(res.name, res.previews[r][1]) for res in results]
        panels += [("target", _thumbnail(load_image(triplet.target), long_side))]
        said = f"“{triplet.instruction}”" if triplet.instruction.strip() else "(auto, no instruction)"
        caption = f"{triplet.id}: {said}"
        rows[r].suptitle(textwrap.shorten(caption, 40 * n_cols), fontsize=10, ha="left", x=0.01)
        axes = rows[r].subplots(1, n_cols, squeeze=False)[0]
        for ax, (label, image) in zip(axes, panels):
            ax.imshow(_to_hwc(image))
            ax.set_title(label, fontsize=9)
            ax.set_axis_off()
    fig.savefig(path)
    return path


def _bar_panel(ax, title: str, names: Sequence[str], values: Sequence[Any], colors, decimals: int) -> None:
    """One metric as bars per method; non-numeric cells (missing, n/a, inf) are written where the bar would be.

    values: floats, "missing", NaN (not applicable) or None (not requested).
    """
    finite = [isinstance(v, (int, float)) and v is not None and math.isfinite(v) for v in values]
    ax.set_title(title, fontsize=10)
    if not any(finite):
        # Nothing to draw: say why in the panel instead of showing an empty, auto-scaled axis.
        reasons = {_cell(v) for v in values}
        text = {"missing": "missing\n(no local weights)", "—": "not requested", "n/a": "n/a"}.get(
            reasons.pop() if len(reasons) == 1 else "", ", ".join(sorted(reasons)))
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="0.4", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    numeric = [float(v) if ok else 0.0 for v, ok in zip(values, finite)]
    bars = ax.bar(range(len(names)), numeric, color=colors)
    top = max(abs(v) for v in numeric) or 1.0  # all zeros (e.g. GMSD of identical images): unit axis
    for bar, value in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0.0) + 0.02 * top, _cell(value, decimals),
                ha="center", va="bottom", fontsize=8)
    ax.set_ylim(min(0.0, min(numeric)) * 1.2, top * 1.25)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)


def _timing_panel(ax, summaries: Sequence[Mapping[str, Any]], colors) -> None:
    """Median ms per resolution, grouped bars per timed method, each labelled with its value."""
    labels = _timing_labels(summaries)
    timed = [(s, c) for s, c in zip(summaries, colors) if s["timing_ms"]]
    ax.set_title("runtime, median ms", fontsize=10)
    if not timed:
        ax.text(0.5, 0.5, "not requested\n(--timing)", ha="center", va="center", fontsize=12, color="0.4",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    width = 0.8 / len(timed)
    for i, (s, color) in enumerate(timed):
        # Not-yet-measured sizes stay empty rather than drawn as 0 ms.
        ms = [s["timing_ms"].get(k, math.nan) for k in labels]
        bars = ax.bar(np.arange(len(labels)) + i * width, ms, width, color=color, label=s["name"])
        # Values on the bars: methods can differ by orders of magnitude (a shell command vs a tensor op).
        ax.bar_label(bars, labels=[_cell(v, 1) for v in ms], fontsize=7)
    ax.set_xticks(np.arange(len(labels)) + width * (len(timed) - 1) / 2, labels, fontsize=8)
    ax.margins(y=0.15)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)


def plot_metrics(summaries: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """metrics.png: one bar panel per table metric, direction accuracy, and runtime per resolution."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [s["name"] for s in summaries]
    colors = [f"C{i % 10}" for i in range(len(names))]
    panels = [(LABELS[m], [s["metrics"][m] for s in summaries], DECIMALS.get(m, 3)) for m in TABLE_METRICS]
    # None here means no instruction had a proxied attribute: not applicable, unlike CLIP's None.
    accuracy = [s["direction"]["all"]["accuracy"] for s in summaries]
    panels.append(("direction acc.↑ (no CLIP)", [math.nan if a is None else a for a in accuracy], 3))
    n_cols = 4
    n_rows = math.ceil((len(panels) + 1) / n_cols)
    fig = Figure(figsize=(4.0 * n_cols, 3.0 * n_rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, (title, values, decimals) in zip(axes, panels):
        _bar_panel(ax, title, names, values, colors, decimals)

    _timing_panel(axes[len(panels)], summaries, colors)
    for extra in axes[len(panels) + 1:]:
        extra.set_axis_off()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------------------------
# command line


class _AddMethod(argparse.Action):
    """--model/--command/--outputs append (kind, value, label) to one list, keeping their order."""

    def __call__(self, parser, namespace, values, option_string=None):
        methods = list(getattr(namespace, "methods", None) or [])
        methods.append([self.dest, values, None])
        namespace.methods = methods


class _AddBaselines(argparse.Action):
    """--baselines appends every classical baseline that can run here (see baselines.py)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .baselines import available_baselines

        methods = list(getattr(namespace, "methods", None) or [])
        methods += [["model", name, None] for name in available_baselines()[0]]
        namespace.methods = methods


class _LabelLast(argparse.Action):
    """--label NAME names the method given just before it."""

    def __call__(self, parser, namespace, values, option_string=None):
        methods = getattr(namespace, "methods", None)
        if not methods:
            parser.error("--label must follow --model, --command or --outputs")
        methods[-1][2] = values


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    what = parser.add_argument_group("what to evaluate (repeat and mix; one table)")
    what.add_argument("--model", action=_AddMethod, metavar="NAME_OR_PATH",
                      help="'identity', 'oracle', 'teacher:DIR', 'xhat:STUDENT_FILE' or a model for "
                           "retouch_core.models.load_retouch_model")
    what.add_argument("--command", action=_AddMethod, metavar="TEMPLATE",
                      help="shell command with {input} {output} [{instruction}] (unquoted; values are quoted)")
    what.add_argument("--outputs", action=_AddMethod, metavar="DIR",
                      help="folder of outputs named <record id>.png or like the input file")
    what.add_argument("--label", action=_LabelLast, metavar="NAME", help="table name of the method given just before")
    what.add_argument("--baselines", action=_AddBaselines, nargs=0,
                      help="the classical baselines (autocontrast, levels-grayworld, autolevels when installed); "
                           "--fivek and --paraphrases add them and identity by themselves")
    what.add_argument("--no-baselines", action="store_true",
                      help="--fivek / --paraphrases: do not add identity and the classical baselines")

    data = parser.add_argument_group("triplets")
    src = data.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="DIR", help="dataset folder with manifest.jsonl")
    src.add_argument("--pairs", nargs=2, metavar=("INPUT_DIR", "TARGET_DIR"), help="two folders of same-named images")
    src.add_argument("--fivek", metavar="DIR",
                     help="real-photo protocol: DIR/input -> method -> DIR/target (the FiveK Expert C validation "
                          "pairs, e.g. ../shared/data/fivek_expertc); no method sees the target")
    src.add_argument("--paraphrases", metavar="FILE",
                     help="paraphrase protocol (e.g. training/eval/paraphrases.yaml) on the --photos")
    data.add_argument("--photos", nargs="+", metavar="PATH",
                      help="--paraphrases: real photos (files, or folders of images)")
    data.add_argument("--photo-size", type=int, default=512, metavar="PX",
                      help="--paraphrases: photos are downscaled to this long side (default: 512)")
    data.add_argument("--split", default="heldout", help="manifest split ('all' for every record; default: heldout)")
    data.add_argument("--subset", choices=("auto", "style", "param"), help="manifest subset (default: all)")
    data.add_argument("--limit", type=int, help="first N triplets only")
    data.add_argument("--instruction", default="", help="instruction for every --pairs triplet (default: empty = auto)")

    opts = parser.add_argument_group("metrics and report")
    opts.add_argument("--clip", metavar="PATH",
                      help="local open_clip model (folder or weights) for the CLIP direction score")
    opts.add_argument("--clip-arch", metavar="NAME",
                      help="open_clip architecture when PATH has no open_clip_config.json")
    opts.add_argument("--weights-dir", action="append", metavar="DIR",
                      help="folder holding LPIPS/DISTS backbone weights (default: torch hub checkpoints)")
    opts.add_argument("--timing", action="store_true", help="median ms at 720p, 1K, 2K, 4K on the first input")
    opts.add_argument("--timing-repeats", type=int, default=3, metavar="N")
    opts.add_argument("--low-res", type=int, default=256, metavar="PX",
                      help="long side of the copy that teacher: and xhat: methods edit (default: 256)")
    opts.add_argument("--command-timeout", type=float, metavar="SECONDS", help="per-image limit for --command")
    opts.add_argument("--report", metavar="DIR", help="write metrics.csv, summary.md/json and PNG plots here")
    opts.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(methods=None)
    return parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand (see training/cli.py)."""
    parser = subparsers.add_parser(
        "evaluate",
        help="InstantRetouch evaluation protocol (fidelity, editing, CLIP, direction, runtime)",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _method_name(kind: str, value: str, label: str | None) -> str:
    if label:
        return label
    if kind == "command":
        return "command"
    if kind == "model" and value.startswith(("teacher:", "xhat:")):
        prefix, _, value = value.partition(":")
        return f"{prefix}:{Path(value).stem or Path(value).name}"
    path = Path(value)
    return (path.stem if kind == "model" and path.suffix else path.name) or value


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _build_method(kind: str, value: str, timeout: float | None, low_res: int = 256) -> Retoucher | PrecomputedOutputs:
    if kind == "model":
        return model_retoucher(value, low_res)
    if kind == "command":
        return command_retoucher(value, timeout)
    if not Path(value).is_dir():
        raise EvaluationError(f"--outputs: not a folder: {value}")
    return PrecomputedOutputs(Path(value))


def _with_reference_methods(methods: list[list[Any]]) -> list[list[Any]]:
    """identity first, then the classical baselines that can run here, then the given methods
    (each once: a method already named is not added again)."""
    from .baselines import available_baselines

    named = {value for kind, value, _ in methods if kind == "model"}
    reference = [["model", name, None] for name in ["identity", *available_baselines()[0]] if name not in named]
    return reference + methods


def _load_triplets(args) -> tuple[list[Triplet], str]:
    if args.fivek:
        root = Path(args.fivek)
        return pair_triplets(root / "input", root / "target", "", args.limit), f"FiveK Expert C, {args.fivek}"
    if args.dataset:
        return read_manifest(args.dataset, args.split, args.subset, args.limit), f"{args.dataset} ({args.split})"
    input_dir, target_dir = args.pairs
    return pair_triplets(input_dir, target_dir, args.instruction, args.limit), f"{input_dir} → {target_dir}"


def run(args: argparse.Namespace) -> int:
    """Entry point of ``retouch-train evaluate``; prints the summary table, writes --report."""
    real_photos = bool(args.fivek or args.paraphrases)
    if real_photos and not args.no_baselines:
        args.methods = _with_reference_methods(args.methods or [])
    if not args.methods:
        print("error: give at least one of --model, --command, --outputs (e.g. --model identity)", file=sys.stderr)
        return 2
    if args.fivek and any(kind == "model" and value == "oracle" for kind, value, _ in args.methods):
        print("error: --fivek: the oracle fits the target, and no method may see the validation targets",
              file=sys.stderr)
        return 2
    if args.paraphrases:
        from .paraphrases import run_cli

        return run_cli(args, _unique([_method_name(*m) for m in args.methods]))
    try:
        triplets, source = _load_triplets(args)
        names = _unique([_method_name(*m) for m in args.methods])
        methods = [
            (name, _build_method(kind, value, args.command_timeout, args.low_res))
            for name, (kind, value, _) in zip(names, args.methods)
        ]
        scorer = None
        if args.clip:
            from retouch_core.language.clip_score import load_clip

            scorer = load_clip(args.clip, args.clip_arch)
        learned = load_learned_metrics(args.weights_dir)
        results = [
            evaluate(
                method, triplets, name=name, clip=scorer, learned=learned,
                timing_sizes=TIMING_SIZES if args.timing else None, timing_repeats=args.timing_repeats,
                progress=not args.no_progress,
            )
            for name, method in methods
        ]
    except (EvaluationError, FileNotFoundError, subprocess.TimeoutExpired) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summaries = [summarize(r) for r in results]
    print(format_markdown(summaries, f"Evaluation — {source}"))
    if args.report:
        written = write_report(results, args.report, source)
        print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m retouch_training.eval.evaluate ...`` (same options as ``retouch-train evaluate``)."""
    parser = add_arguments(argparse.ArgumentParser(prog="retouch-train evaluate", description=__doc__.split("\n\n")[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""Classical automatic-enhancement baselines that every real-photo report shows beside our models.

They ignore the instruction (they only know "make it look better"), so on the paraphrase protocol
they show what an instruction-blind auto fix scores by chance. All take and return
``(1, 3, H, W)`` float tensors in ``[0, 1]`` (sRGB), like every retoucher of :mod:`.methods`.

* :func:`auto_contrast` - Pillow's ``ImageOps.autocontrast(cutoff=0.5, preserve_tone=True)``: one
  tone curve from the luminance histogram, applied to all channels (hue kept);
* :func:`auto_levels` then :func:`gray_world` (:func:`levels_gray_world`) - each channel's
  ``cutoff`` and ``100 - cutoff`` percentiles stretched to 0 and 1, then channel gains that make
  the three channel means equal (the "grey world" white balance);
* :func:`autolevels_package` - the ``autolevels`` program from PyPI in its non-model mode (black /
  white point correction with its default targets; no ONNX curve model, nothing downloaded). It is
  GPL-3.0 software, so it is run as a separate program, never imported.

Example::

    >>> x = torch.rand(1, 3, 32, 48) * 0.5 + 0.2
    >>> y = levels_gray_world(x)
    >>> y.shape
    torch.Size([1, 3, 32, 48])
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = [
    "AUTOCONTRAST_CUTOFF",
    "LEVELS_CUTOFF",
    "Baseline",
    "BASELINES",
    "auto_contrast",
    "auto_levels",
    "gray_world",
    "levels_gray_world",
    "autolevels_package",
    "autolevels_program",
    "available_baselines",
]

AUTOCONTRAST_CUTOFF = 0.5  # percent of pixels clipped at each end (the one-liner)
LEVELS_CUTOFF = 0.5
_EPS = 1e-6


def _check_image(image: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1, 3, H, W) image, got {tuple(image.shape)}")


def _to_pil(image: torch.Tensor) -> Image.Image:
    arr = (image[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _from_pil(image: Image.Image) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]


def auto_contrast(image: torch.Tensor, cutoff: float = AUTOCONTRAST_CUTOFF) -> torch.Tensor:
    """Pillow's auto-contrast on the 8-bit image, tone preserved. (1, 3, H, W) -> (1, 3, H, W).

    Example:
        >>> auto_contrast(torch.full((1, 3, 8, 8), 0.5)).shape
        torch.Size([1, 3, 8, 8])
    """
    _check_image(image)
    return _from_pil(ImageOps.autocontrast(_to_pil(image), cutoff=cutoff, preserve_tone=True)).to(image)


def auto_levels(image: torch.Tensor, cutoff: float = LEVELS_CUTOFF) -> torch.Tensor:
    """Per-channel levels: the ``cutoff`` % and ``100 - cutoff`` % quantiles of each channel go to 0
    and 1 (linear in between, clipped outside). A flat channel is left unchanged.

    image: (1, 3, H, W) in [0, 1] -> (1, 3, H, W) in [0, 1].

    Example:
        >>> ramp = torch.linspace(0.2, 0.6, 101).expand(1, 3, 4, 101)
        >>> out = auto_levels(ramp, cutoff=0.0)
        >>> float(out.min()), float(out.max())
        (0.0, 1.0)
    """
    _check_image(image)
    if not 0.0 <= cutoff < 50.0:
        raise ValueError(f"cutoff must be a percentage in [0, 50), got {cutoff}")
    flat = image[0].flatten(1).double()  # (3, H*W)
    q = torch.tensor([cutoff / 100.0, 1.0 - cutoff / 100.0], dtype=flat.dtype)
    low, high = torch.quantile(flat, q, dim=1)  # each (3,)
    span = high - low
    stretched = (flat - low[:, None]) / span.clamp_min(_EPS)[:, None]
    out = torch.where((span > _EPS)[:, None], stretched, flat).clamp(0.0, 1.0)
    return out.view_as(image[0])[None].to(image.dtype)


def gray_world(image: torch.Tensor) -> torch.Tensor:
    """Grey-world white balance: channel c is multiplied by ``mean(means) / mean_c`` so the three
    channel means become equal (exactly, unless a gain pushes values past 1 and they clip).

    image: (1, 3, H, W) in [0, 1] -> (1, 3, H, W) in [0, 1]. A black image is returned unchanged.

    Example:
        >>> x = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
        >>> gray_world(x)[0, :, 0, 0]
        tensor([0.4000, 0.4000, 0.4000])
    """
    _check_image(image)
    means = image.double().mean(dim=(0, 2, 3))  # (3,)
    if float(means.min()) <= _EPS:
        return image
    gains = (means.mean() / means).to(image.dtype)
    return (image * gains.view(1, 3, 1, 1)).clamp(0.0, 1.0)


def levels_gray_world(image: torch.Tensor, cutoff: float = LEVELS_CUTOFF) -> torch.Tensor:
    """:func:`auto_levels` then :func:`gray_world`. (1, 3, H, W) -> (1, 3, H, W)."""
    return gray_world(auto_levels(image, cutoff))


def autolevels_program() -> Path | None:
    """The ``autolevels`` executable: next to this Python first (a venv's bin), then on PATH."""
    beside = Path(sys.executable).with_name("autolevels")
    if beside.is_file():
        return beside
    found = shutil.which("autolevels")
    return Path(found) if found else None


def autolevels_package(image: torch.Tensor, timeout: float = 120.0) -> torch.Tensor:
    """The PyPI ``autolevels`` program with its default black/white-point targets (no ``--model``).

    image: (1, 3, H, W) -> (1, 3, H, W), through a temporary 8-bit PNG. Raises FileNotFoundError
    when the program is not installed (``pip install autolevels``) or writes no output, and
    RuntimeError with its stderr when it fails.
    """
    _check_image(image)
    program = autolevels_program()
    if program is None:
        raise FileNotFoundError("the 'autolevels' baseline needs the autolevels program: pip install autolevels")
    with tempfile.TemporaryDirectory(prefix="retouch-autolevels-") as tmp:
        src, out_dir = Path(tmp) / "input.png", Path(tmp) / "out"
        _to_pil(image).save(src)
        cmd = [str(program), "--outdir", str(out_dir), "--", str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"autolevels failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        outputs = sorted(out_dir.glob("*")) if out_dir.is_dir() else []
        if not outputs:
            raise FileNotFoundError(f"autolevels wrote no output: {proc.stdout[-500:]} {proc.stderr[-500:]}")
        with Image.open(outputs[0]) as result:
            return _from_pil(result).to(image)


@dataclass(frozen=True)
class Baseline:
    """A named instruction-blind method: ``fn(image) -> image``; ``available()`` says whether it can
    run on this machine (a program that is not installed is reported, not silently dropped)."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    description: str
    available: Callable[[], bool] = lambda: True
    install_hint: str = ""

    def __call__(self, image: torch.Tensor, instruction: str = "") -> torch.Tensor:
        return self.fn(image)


BASELINES: Mapping[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("autocontrast", auto_contrast,
                 f"PIL.ImageOps.autocontrast(cutoff={AUTOCONTRAST_CUTOFF}, preserve_tone=True)"),
        Baseline("levels-grayworld", levels_gray_world,
                 f"per-channel auto-levels ({LEVELS_CUTOFF} percent cutoffs) then gray-world white balance"),
        Baseline("autolevels", autolevels_package,
                 "PyPI autolevels program, default black/white points, no curve model",
                 available=lambda: autolevels_program() is not None,
                 install_hint="pip install autolevels"),
    )
}


def available_baselines() -> tuple[list[str], dict[str, str]]:
    """(names that can run here, {name: why not} for the others), in :data:`BASELINES` order."""
    ok = [name for name, b in BASELINES.items() if b.available()]
    missing = {name: f"not installed ({b.install_hint})" for name, b in BASELINES.items() if name not in ok}
    return ok, missing

"""The records an evaluation runs on: (input, target, instruction) triplets and their image files.

Triplets come from a dataset folder (:func:`read_manifest`: ``DIR/manifest.jsonl``, records
``{id, input, target, instruction, subset, split}`` with paths relative to ``DIR``) or from two
folders of same-named images (:func:`pair_triplets`; empty instruction = automatic enhancement).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


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


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, 3, H, W) -> (1, 3, *size), antialiased bilinear, clamped (no overshoot)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0.0, 1.0)


def thumbnail(image: torch.Tensor, long_side: int = 256) -> torch.Tensor:
    """Small copy for the preview grid: (1, 3, H, W) -> (1, 3, h, w) with max(h, w) <= long_side."""
    h, w = image.shape[-2:]
    scale = min(1.0, long_side / max(h, w))
    return resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))


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



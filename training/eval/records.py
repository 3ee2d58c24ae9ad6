"""The records an evaluation runs on: (input, target, instruction) triplets and their image files.

Triplets come from a dataset folder (:func:`read_manifest`: ``DIR/manifest.jsonl``, records
``{id, input, target, instruction, subset, split}`` with paths relative to ``DIR``) or from two
folders of same-named images (:func:`pair_triplets`; empty instruction = automatic enhancement).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from retouch_core.engine.resize import resize_long_side
from retouch_core.formats.image_files import write_image

from ..data.manifest import MANIFEST, read_manifest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


class EvaluationError(RuntimeError):
    """A user-facing problem (missing files, failing command, unusable model); the CLI prints it."""


# --------------------------------------------------------------------------------------------
# images


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write (1, 3, H, W) or (3, H, W) in [0, 1] as an 8-bit file (format from the suffix), folders created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image.detach().float().cpu(), bit_depth=8)
    return path


def thumbnail(image: torch.Tensor, long_side: int = 256) -> torch.Tensor:
    """Small copy for the preview grid: (1, 3, H, W) -> (1, 3, h, w) with max(h, w) <= long_side."""
    return resize_long_side(image, long_side).clamp(0.0, 1.0)


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


def dataset_triplets(
    root: str | Path, split: str | None = "heldout", subset: str | None = None, limit: int | None = None
) -> list[Triplet]:
    """Triplets of a dataset folder's manifest (:func:`~retouch_training.data.manifest.read_manifest`).

    ``split``/``subset`` None (or "all") keep every record; ``limit`` keeps the first N after
    filtering, in file order. Raises EvaluationError when nothing is left, naming what exists.
    """
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise EvaluationError(f"no {MANIFEST} in {root}")
    keep = read_manifest(root, split or "all", None if subset in (None, "all") else [subset])
    if not keep:
        records = read_manifest(root)
        splits = sorted({str(r.get("split")) for r in records})
        subsets = sorted({str(r.get("subset")) for r in records})
        raise EvaluationError(
            f"{root / MANIFEST}: no record with split={split!r} subset={subset!r} (splits: {splits}, subsets: {subsets})"
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



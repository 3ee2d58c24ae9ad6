"""``TripletDataset``: the (input, instruction, target) triplets of ``make-dataset`` as a torch Dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retouch_core.engine.resize import resize

from .images import read_rgb
from .manifest import read_manifest

__all__ = ["TripletDataset", "resize_crop"]

SPLITS = ("train", "heldout", "all")


class TripletDataset(torch.utils.data.Dataset):
    """Triplets of one split.

    Args:
        root: dataset folder (holds ``manifest.jsonl``).
        split: ``"train"``, ``"heldout"`` or ``"all"``.
        size: ``None`` keeps the stored size (variable; use batch size 1), else the short side is
            resized to ``size`` and a ``size`` x ``size`` crop is taken (the same for input and target).
        subsets: keep only these subsets (default: all).
        crop: ``"center"`` or ``"random"`` (random crops are drawn from ``(seed, epoch, index)``).
        zoom: random crops only: the short side is resized to ``size`` times U(1, ``zoom``), so
            crops also vary in scale.
        auto_instruction: probability that an auto record returns its ``restore_instruction``
            instead of the empty string (instructed restoration), drawn per ``(seed, epoch, index)``.
        seed: for the random choices above; call :meth:`set_epoch` to vary them per epoch.

    Items are dicts: ``input``, ``target``: (3, H, W) float32 in [0, 1]; ``instruction``: str;
    ``subset``: str; ``id``: str.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int | None = None,
        subsets: Sequence[str] | None = None,
        crop: str = "center",
        auto_instruction: float = 0.0,
        seed: int = 0,
        zoom: float = 1.0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if crop not in ("center", "random"):
            raise ValueError(f"crop must be 'center' or 'random', got {crop!r}")
        self.root = Path(root)
        self.records = read_manifest(root, split, subsets)
        if zoom < 1:
            raise ValueError(f"zoom must be >= 1, got {zoom}")
        self.size, self.crop, self.auto_instruction, self.seed, self.zoom = size, crop, auto_instruction, seed, zoom
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops / instruction choices (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def _resize_crop(self, images: list[torch.Tensor], rng: np.random.Generator) -> list[torch.Tensor]:
        """(1, 3, H, W) images -> (3, size, size): short side resized to ``size``, the same crop of each."""
        if self.size is None:
            return [im[0] for im in images]
        return resize_crop(images, self.size, rng, random=self.crop == "random", zoom=self.zoom)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        source, target = self._resize_crop([read_rgb(self.root / record[key]) for key in ("input", "target")], rng)
        instruction = record["instruction"]
        if record["subset"] == "auto" and record.get("restore_instruction") and rng.random() < self.auto_instruction:
            instruction = record["restore_instruction"]
        return {"input": source, "target": target, "instruction": instruction,
                "subset": record["subset"], "id": record["id"]}


def resize_crop(images: list[torch.Tensor], size: int, rng: np.random.Generator, random: bool = True,
                zoom: float = 1.0) -> list[torch.Tensor]:
    """The same ``size`` x ``size`` crop of same-size (1, 3, H, W) images -> (3, size, size) each:
    short side resized to ``size`` (times U(1, ``zoom``) for random crops), then a random (or
    centre) window."""
    height, width = images[0].shape[-2:]
    scale = size / min(width, height)
    if random and zoom > 1:
        scale *= float(rng.uniform(1.0, zoom))
    new = (max(size, round(height * scale)), max(size, round(width * scale)))
    images = [resize(im, new).clamp(0.0, 1.0) for im in images]
    if random:
        top, left = int(rng.integers(new[0] - size + 1)), int(rng.integers(new[1] - size + 1))
    else:
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return [im[0, :, top : top + size, left : left + size].contiguous() for im in images]

"""``TripletDataset``: the (input, instruction, target) triplets of ``make-dataset`` as a torch Dataset."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["TripletDataset", "read_manifest", "resize_crop"]

SPLITS = ("train", "heldout", "all")


def read_manifest(root: str | Path) -> list[dict[str, Any]]:
    """Records of ``root/manifest.jsonl`` in file (canonical) order."""
    path = Path(root) / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `retouch-train make-dataset --out {root}` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
        self.records = [r for r in read_manifest(root)
                        if (split == "all" or r["split"] == split) and (subsets is None or r["subset"] in subsets)]
        if zoom < 1:
            raise ValueError(f"zoom must be >= 1, got {zoom}")
        self.size, self.crop, self.auto_instruction, self.seed, self.zoom = size, crop, auto_instruction, seed, zoom
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops / instruction choices (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, relative: str) -> Image.Image:
        with Image.open(self.root / relative) as image:
            return image.convert("RGB")

    def _resize_crop(self, images: list[Image.Image], rng: np.random.Generator) -> list[Image.Image]:
        if self.size is None:
            return images
        return resize_crop(images, self.size, rng, random=self.crop == "random", zoom=self.zoom)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        source, target = self._resize_crop([self._load(record["input"]), self._load(record["target"])], rng)
        instruction = record["instruction"]
        if record["subset"] == "auto" and record.get("restore_instruction") and rng.random() < self.auto_instruction:
            instruction = record["restore_instruction"]
        return {"input": _to_tensor(source), "target": _to_tensor(target), "instruction": instruction,
                "subset": record["subset"], "id": record["id"]}


def resize_crop(images: list[Image.Image], size: int, rng: np.random.Generator, random: bool = True,
                zoom: float = 1.0) -> list[Image.Image]:
    """The same ``size`` x ``size`` crop of same-size images: short side resized to ``size`` (times
    U(1, ``zoom``) for random crops), then a random (or centre) window."""
    width, height = images[0].size
    scale = size / min(width, height)
    if random and zoom > 1:
        scale *= float(rng.uniform(1.0, zoom))
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    images = [im.resize(new, Image.Resampling.BICUBIC) for im in images]
    if random:
        left, top = int(rng.integers(new[0] - size + 1)), int(rng.integers(new[1] - size + 1))
    else:
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return [im.crop((left, top, left + size, top + size)) for im in images]


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)

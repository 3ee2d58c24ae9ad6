"""Auto-mode pairs degraded on the fly: (degraded crop, good crop) of good photos, new every epoch.

``make-dataset`` writes each triplet once (with a fitted inverse and a caption, about a second of
CPU per record). Auto-mode pairs need neither: the target is the good photo itself. This dataset
draws a fresh crop, scale and degradation (the catalogue and, with ``as_shot``, the calibrated
"as shot" renders of :mod:`.calibration`) for every (photo, pair, epoch), so a short training run
sees many more auto pairs than a stored dataset holds. Items match :class:`~.dataset.TripletDataset`
(``instruction`` is ``""``), and every draw is a function of ``(seed, epoch, index)``: a resumed
run sees the batches an uninterrupted one would have.

Photos are split by content hash exactly as ``make-dataset`` splits them
(:func:`~.sources.split_of`), so the held-out photos of a dataset made with the same
``holdout_fraction`` are never trained on here either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .dataset import resize_crop
from .degradations import DegradationConfig, apply_steps, render_masks, sample_degradation
from .masks import load_mask_provider
from .sources import find_photos, load_photo, split_of

__all__ = ["DegradedPhotos", "EpochConcat"]


class DegradedPhotos(torch.utils.data.Dataset):
    """Good photos of ``folders`` (one split), ``pairs`` auto pairs per photo and epoch.

    Args:
        folders: photo folders (the rules of :func:`~.sources.find_photos`: low-light folders and
            the source side of before/after folders are left out).
        size: side of the square crops; long_side: photos are decoded once at this long side.
        degradation: how inputs are degraded; pairs: items per photo per epoch.
        split, holdout_fraction: which photos (by content hash, as ``make-dataset``).
        zoom: crops are taken at a random scale up to this factor.
    """

    def __init__(self, folders: Sequence[str], size: int = 256, degradation: DegradationConfig | None = None,
                 pairs: int = 4, split: str = "train", holdout_fraction: float = 0.1, seed: int = 0,
                 zoom: float = 1.0, long_side: int = 384) -> None:
        self.paths, seen = [], set()
        for path in find_photos(list(folders))[0]:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            if digest not in seen and split_of(digest, holdout_fraction) == split:  # duplicates: first copy
                self.paths.append(path)
            seen.add(digest)
        if not self.paths:
            raise ValueError(f"no {split} photos under {list(folders)}")
        self.photos = [torch.from_numpy(load_photo(p, long_side)).permute(2, 0, 1)[None].float() / 255.0 for p in self.paths]
        self.size, self.degradation, self.pairs, self.seed, self.zoom = size, degradation or DegradationConfig(), pairs, seed, zoom
        self.masks = load_mask_provider(None)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.photos) * self.pairs

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index, 7])
        crop = resize_crop([self.photos[index // self.pairs]], self.size, rng, random=True, zoom=self.zoom)[0]
        clean = torch.floor(crop[None] * 255.0 + 0.5) / 255.0  # 8-bit, like a stored target
        steps = sample_degradation(clean[0], rng, self.degradation, self.masks)
        degraded = apply_steps(clean, steps, render_masks(steps, clean[0], self.masks))
        degraded = torch.floor(degraded.clamp(0, 1) * 255.0 + 0.5) / 255.0  # what a stored PNG would hold
        return {"input": degraded[0], "target": clean[0], "instruction": "", "subset": "auto",
                "id": f"online_{index}_{self.epoch}"}


class EpochConcat(torch.utils.data.ConcatDataset):
    """Concatenated datasets that all follow :meth:`set_epoch`."""

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(epoch)


def write_pairs(dataset: DegradedPhotos, out: Path) -> Path:
    """Write every item as ``out/input/<i>.png`` and ``out/target/<i>.png`` (for ``evaluate --pairs``)."""
    for side in ("input", "target"):
        (out / side).mkdir(parents=True, exist_ok=True)
    for i in range(len(dataset)):
        item = dataset[i]
        for side in ("input", "target"):
            array = (item[side].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            Image.fromarray(array).save(out / side / f"{i:04d}.png")
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("degraded-pairs", help="write held-out auto pairs degraded as train-lite --online-photos does",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", action="append", required=True, metavar="DIR")
    p.add_argument("--out", type=Path, required=True, help="folder for input/ and target/")
    p.add_argument("--as-shot", default=None, metavar="FILE")
    p.add_argument("--p-as-shot", type=float, default=0.5)
    p.add_argument("--pairs", type=int, default=2, help="pairs per photo")
    p.add_argument("--split", default="heldout")
    p.add_argument("--holdout-fraction", type=float, default=0.1)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_run)


def _run(args) -> int:
    dataset = DegradedPhotos(args.photos, args.size, DegradationConfig(as_shot=args.as_shot, p_as_shot=args.p_as_shot),
                             args.pairs, args.split, args.holdout_fraction, args.seed)
    print(f"wrote {len(dataset)} pairs of {len(dataset.paths)} {args.split} photos to {write_pairs(dataset, args.out)}")
    return 0

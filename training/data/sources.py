"""Finding, checking, de-duplicating and splitting the real photos a dataset is made from.

Rules (all decisions are listed, never silent):

* image files: ``.jpg .jpeg .png .tif .tiff .bmp .webp`` found recursively, in sorted order;
* a folder that has a ``target`` (or ``targets``, ``gt``, ``expert_c`` ...) sub-folder is a paired
  before/after set: only the target side is a *good* photo, the rest is skipped;
* validation-only folders (``fivek_expertc``: the FiveK input / Expert C pairs that the real-photo
  evaluation scores against) are never training photos, on either side, wherever they sit in the tree;
* low-light folders without targets (named ``dicm`` or ``lime``, or whose ``SOURCE.md`` says
  "low-light") are skipped unless ``include_low_light``: their photos are the problem, not the goal;
* unreadable or undecodable files are skipped; exact duplicates (same SHA-256 of the file bytes)
  keep the first copy in scan order;
* the held-out split is a function of the content hash only (not of the seed or the scan order),
  so every dataset built from the same photos agrees on which photos evaluation may see.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_EXTENSIONS",
    "VALIDATION_DIR_NAMES",
    "PhotoCheck",
    "check_photo",
    "find_photos",
    "holdout_value",
    "load_photo",
    "split_of",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
TARGET_DIR_NAMES = frozenset({"target", "targets", "gt", "groundtruth", "ground_truth", "expert_c", "expertc",
                              "label", "labels", "high"})
LOW_LIGHT_DIR_NAMES = frozenset({"dicm", "lime"})
# Folders kept for validation only (see `retouch-train evaluate --fivek`): training on their targets
# would leak the answers of the real-photo protocol.
VALIDATION_DIR_NAMES = frozenset({"fivek_expertc"})
_LOW_LIGHT_RE = re.compile(r"low[- _]?light", re.IGNORECASE)
_MIN_SIDE = 32
_HOLDOUT_SALT = b"instantretouch-holdout-v1:"


@dataclass(frozen=True)
class PhotoCheck:
    """Result of opening one candidate file: its hash and size, or why it is unusable.

    ``kind`` classifies the error: ``unreadable``, ``undecodable`` or ``too-small``.
    """

    path: str
    sha256: str = ""
    width: int = 0
    height: int = 0
    error: str = ""
    kind: str = ""


def _is_low_light(folder: Path, cache: dict[Path, bool]) -> bool:
    if folder not in cache:
        source = folder / "SOURCE.md"
        text = ""
        if source.is_file():
            try:
                text = source.read_text(errors="replace")[:4000]
            except OSError:
                text = ""
        cache[folder] = folder.name.lower() in LOW_LIGHT_DIR_NAMES or bool(_LOW_LIGHT_RE.search(text))
    return cache[folder]


def _is_validation(folder: Path, names: frozenset[str]) -> bool:
    """True when ``folder`` or any folder above it (absolute path) is a validation-only folder."""
    return any(part.lower() in names for part in Path(os.path.abspath(folder)).parts)


def find_photos(
    roots: list[str], include_low_light: bool = False, validation_dirs: frozenset[str] = VALIDATION_DIR_NAMES
) -> tuple[list[str], list[dict[str, Any]]]:
    """Candidate photo files under ``roots`` (in order) and the files skipped by folder rules.

    ``validation_dirs``: folder names whose photos are never returned (default
    :data:`VALIDATION_DIR_NAMES`), also when a root points inside one.

    Returns:
        ``(paths, skipped)``: paths in canonical order (roots in the given order, then sorted
        walk); ``skipped`` has one ``{"path", "kind", "reason"}`` dict per image file left out.
    """
    paths: list[str] = []
    skipped: list[dict[str, Any]] = []
    cache: dict[Path, bool] = {}
    for root in roots:
        if not os.path.isdir(root):
            skipped.append({"path": root, "kind": "missing", "reason": "not a directory"})
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            files.sort()
            here = Path(folder)
            images = [f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
            if _is_validation(here, validation_dirs):
                skipped += [{"path": str(here / f), "kind": "validation", "reason": "validation-only folder "
                             "(real-photo evaluation pairs are never training photos)"} for f in images]
                continue
            targets = [d for d in dirs if d.lower() in TARGET_DIR_NAMES]
            if targets:
                # Paired before/after folder: descend only into the target side.
                reason = f"paired folder: only {targets[0]}/ is used"
                for d in [d for d in dirs if d not in targets]:
                    for sub, sub_dirs, sub_files in os.walk(here / d):
                        sub_dirs.sort()
                        skipped += [{"path": str(Path(sub) / f), "kind": "paired", "reason": reason}
                                    for f in sorted(sub_files) if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
                dirs[:] = targets
                skipped += [{"path": str(here / f), "kind": "paired", "reason": reason} for f in images]
                continue
            parts = here.relative_to(root).parts
            in_target = any(part.lower() in TARGET_DIR_NAMES for part in parts)
            chain = [Path(root, *parts[:i]) for i in range(len(parts) + 1)]  # root ... here
            low = not include_low_light and not in_target and any(_is_low_light(p, cache) for p in chain)
            if low:
                skipped += [{"path": str(here / f), "kind": "low-light", "reason": "low-light folder without targets "
                             "(use --include-low-light to keep it)"} for f in images]
                continue
            paths += [str(here / f) for f in images]
    return paths, skipped


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (16-bit and float greys are rescaled, alpha is dropped)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def check_photo(path: str) -> PhotoCheck:
    """Hash and fully decode ``path``; never raises (errors are returned in ``error``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return PhotoCheck(path, error=f"unreadable: {exc.strerror or exc}", kind="unreadable")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(path) as image:
            image.load()
            width, height = ImageOps.exif_transpose(image).size
    except Exception as exc:  # PIL raises many types for corrupt files; all mean "skip it"
        return PhotoCheck(path, digest, error=f"cannot decode: {type(exc).__name__}: {exc}", kind="undecodable")
    if min(width, height) < _MIN_SIDE:
        return PhotoCheck(path, digest, width, height, error=f"too small ({width}x{height})", kind="too-small")
    return PhotoCheck(path, digest, width, height)


def load_photo(path: str, long_side: int) -> np.ndarray:
    """Decode, orient (EXIF), convert to RGB and resize so the long side is ``long_side``.

    Returns:
        (H, W, 3) uint8. Lanczos resampling (deterministic in Pillow).
    """
    with Image.open(path) as image:
        image = _to_rgb(ImageOps.exif_transpose(image))
        width, height = image.size
        scale = long_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        return np.array(image, dtype=np.uint8)


def holdout_value(sha256: str) -> float:
    """Uniform number in [0, 1) derived from a photo's content hash (salted, so it is independent
    of anything else keyed on the raw hash)."""
    return int(hashlib.sha256(_HOLDOUT_SALT + sha256.encode()).hexdigest()[:12], 16) / float(1 << 48)


def split_of(sha256: str, holdout_fraction: float) -> str:
    """``"heldout"`` for a deterministic ``holdout_fraction`` of photos (by content hash), else ``"train"``."""
    return "heldout" if holdout_value(sha256) < holdout_fraction else "train"

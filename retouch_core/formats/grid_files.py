"""A grid with what it needs to be applied later: guide, provenance, and safetensors files.

:class:`RetouchGrid` is what flows between nodes and what ``.safetensors`` grid files hold:
the affine grid, the guide it was made with (``None`` = luminance), the size of the image it
was made for (a grid is resolution-independent but belongs to an aspect ratio when it edits
content-dependently) and a human-readable label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..engine.grid import check_grid, scale_grid
from ..engine.guide import GuideParams
from ..engine.slicing import slice_and_apply

FORMAT = "instantretouch-grid"
FORMAT_VERSION = "1"
GUIDE_KEYS = ("ccm", "ccm_bias", "slopes", "mix", "mix_bias")
ASPECT_TOLERANCE = 0.02
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors dtype names a grid file may hold
MAX_GRID_SIDE = 1024  # cells along D, H_g or W_g: far above any real grid (16-64)
MAX_IMAGE_SIDE = 1 << 20  # pixels along a side of the image a grid was made for


@dataclass(frozen=True)
class RetouchGrid:
    """An edit in bilateral space. Treat as immutable: nodes share it.

    Attributes:
        grid: (N, 12, D, H_g, W_g) float32 affine grid; N = 1 serves any batch.
        guide: guide parameters (batch 1 or N), or None for the luminance guide.
        source_size: (H, W) of the image the grid was made for, or None when the edit does
            not depend on image content or layout (a global or parametric edit).
        label: what made the grid, for plans and file metadata.
    """

    grid: torch.Tensor
    guide: GuideParams | None = None
    source_size: tuple[int, int] | None = None
    label: str = ""

    def __post_init__(self):
        check_grid(self.grid)
        if self.guide is not None:
            self.guide.check(batch=self.grid.shape[0])

    @property
    def batch(self) -> int:
        return self.grid.shape[0]

    def scaled(self, strength: float) -> "RetouchGrid":
        """Strength: identity at 0, this edit at 1, exaggerated above 1."""
        label = f"{self.label} x{strength:g}" if self.label else f"x{strength:g}"
        return replace(self, grid=scale_grid(self.grid, strength), label=label)

    def check_image(self, batch: int, height: int, width: int) -> None:
        """Raise ValueError when this grid cannot serve images of this batch and shape."""
        if self.batch not in (1, batch):
            raise ValueError(
                f"the grid holds {self.batch} edits but the image batch has {batch} images; "
                "use one grid for all images or one per image"
            )
        if self.source_size is not None:
            src_h, src_w = self.source_size
            if abs((width / height) / (src_w / src_h) - 1) > ASPECT_TOLERANCE:
                raise ValueError(
                    f"this grid was made for a {src_w}x{src_h} image but is applied to a {width}x{height} "
                    "image with another aspect ratio; grids follow the image layout, so predict a grid "
                    "for this image (any resolution of the same framing works)"
                )

    def apply(self, image: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """(B, C, H, W) image -> (B, C', H, W) retouched (see slice_and_apply)."""
        self.check_image(image.shape[0], image.shape[-2], image.shape[-1])
        return slice_and_apply(image, self.grid, self.guide, backend=backend)

    def save(self, path: str | Path) -> None:
        """Write a ``.safetensors`` grid file (tensors plus JSON metadata)."""
        tensors = {"grid": self.grid.detach().float().contiguous().cpu()}
        if self.guide is not None:
            for key, value in zip(GUIDE_KEYS, self.guide.tensors()):
                tensors[f"guide.{key}"] = value.detach().float().contiguous().cpu()
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "source_size": json.dumps(self.source_size),
            "label": self.label,
        }
        save_file(tensors, str(path), metadata=metadata)

    @staticmethod
    def load(path: str | Path) -> "RetouchGrid":
        """Read a file written by :meth:`save` (safetensors only: no pickle is ever run).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a grid file, or a damaged one; the message names the file and the problem.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no grid file at {path}")
        tensors, metadata = _read_grid_file(path)
        try:
            guide = None
            if any(key.startswith("guide.") for key in tensors):
                missing = [key for key in GUIDE_KEYS if f"guide.{key}" not in tensors]
                if missing:
                    raise ValueError(f"its guide lacks {', '.join(missing)}")
                guide = GuideParams(*(tensors[f"guide.{key}"] for key in GUIDE_KEYS))
            return RetouchGrid(tensors["grid"], guide, _source_size(metadata.get("source_size", "null")),
                               metadata.get("label", ""))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path} is not a valid grid file: {err}") from None


def _read_grid_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a grid file; dtypes and sizes are checked from the header first."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT or "grid" not in f.keys():
                raise ValueError(f"{path} is not an InstantRetouch grid file (format {metadata.get('format')!r})")
            for key in f.keys():
                _check_header_entry(path, key, f.get_slice(key))
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except ValueError:
        raise
    except Exception as err:  # safetensors raises several types for corrupt headers
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    return tensors, metadata


def _check_header_entry(path: Path, key: str, entry) -> None:
    if entry.get_dtype() not in FLOAT_DTYPES:
        raise ValueError(f"{path} is not a valid grid file: {key} holds {entry.get_dtype()} values, not floats")
    if key == "grid" and any(size > MAX_GRID_SIDE for size in entry.get_shape()[2:]):
        raise ValueError(f"{path} is not a valid grid file: grid size {entry.get_shape()} exceeds {MAX_GRID_SIDE} cells a side")


def _source_size(text: str) -> tuple[int, int] | None:
    """The ``source_size`` metadata: JSON null or [height, width] of positive integers."""
    try:
        size = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(f"source_size is not JSON: {text[:40]!r}") from None
    if size is None:
        return None
    valid = isinstance(size, list) and len(size) == 2 and all(type(v) is int and 0 < v <= MAX_IMAGE_SIDE for v in size)
    if not valid:
        raise ValueError(f"source_size must be [height, width] in pixels (1 to {MAX_IMAGE_SIDE}), got {text[:40]!r}")
    return tuple(size)

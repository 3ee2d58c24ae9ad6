"""Grid files: a :class:`~retouch_core.engine.retouch_grid.RetouchGrid` as ``.safetensors``.

A grid file holds the tensor ``grid`` and, for a learned guide, ``guide.<key>`` for every key of
:data:`GUIDE_KEYS`; its metadata holds ``format``, ``format_version``, ``source_size`` (JSON)
and ``label``. Reading never runs pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..engine.guide import GuideParams
from ..engine.retouch_grid import RetouchGrid

FORMAT = "instantretouch-grid"
FORMAT_VERSION = "1"
GUIDE_KEYS = ("ccm", "ccm_bias", "slopes", "mix", "mix_bias")
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors dtype names a grid file may hold
MAX_GRID_SIDE = 1024  # cells along D, H_g or W_g: far above any real grid (16-64)
MAX_IMAGE_SIDE = 1 << 20  # pixels along a side of the image a grid was made for


def save_grid(grid: RetouchGrid, path: str | Path) -> None:
    """Write ``grid`` as a ``.safetensors`` grid file (tensors plus JSON metadata).

    Example:
        >>> import tempfile
        >>> from retouch_core.engine.grid import identity_grid
        >>> path = Path(tempfile.mkdtemp()) / "edit.safetensors"
        >>> save_grid(RetouchGrid(identity_grid(), label="identity"), path)
        >>> load_grid(path).label
        'identity'
    """
    tensors = {"grid": grid.grid.detach().float().contiguous().cpu()}
    if grid.guide is not None:
        for key, value in zip(GUIDE_KEYS, grid.guide.tensors()):
            tensors[f"guide.{key}"] = value.detach().float().contiguous().cpu()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source_size": json.dumps(grid.source_size),
        "label": grid.label,
    }
    save_file(tensors, str(path), metadata=metadata)


def load_grid(path: str | Path) -> RetouchGrid:
    """Read a file written by :func:`save_grid` (safetensors only: no pickle is ever run).

    Returns:
        The :class:`RetouchGrid`: grid (N, 12, D, H_g, W_g) float32, its guide (batch 1 or N) or
        None, source size and label as saved.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a grid file, or a damaged one; the message names the file and the problem.

    Example:
        >>> import tempfile
        >>> from retouch_core.engine.grid import identity_grid
        >>> path = Path(tempfile.mkdtemp()) / "two.safetensors"
        >>> RetouchGrid(identity_grid(2), source_size=(480, 640)).save(path)
        >>> back = load_grid(path)
        >>> back.grid.shape, back.guide, back.source_size
        (torch.Size([2, 12, 8, 16, 16]), None, (480, 640))
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

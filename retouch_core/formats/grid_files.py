"""Grid files: a :class:`~retouch_core.engine.retouch_grid.RetouchGrid` as ``.safetensors``.

A grid file holds the tensor ``grid`` and, for a learned guide, ``guide.<key>`` for every key of
:data:`GUIDE_KEYS`; its metadata holds ``format``, ``format_version``, ``source_size`` (JSON)
and ``label``. Reading never runs pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from ..engine.guide import GuideParams
from ..engine.retouch_grid import RetouchGrid

FORMAT = "instantretouch-grid"
FORMAT_VERSION = "1"
GUIDE_KEYS = ("ccm", "ccm_bias", "slopes", "mix", "mix_bias")


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
        FileNotFoundError: no such file. ValueError: not a safetensors grid file.

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
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors raises several types for corrupt headers
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    if metadata.get("format") != FORMAT or "grid" not in tensors:
        raise ValueError(f"{path} is not an InstantRetouch grid file (format {metadata.get('format')!r})")
    guide = None
    if "guide.ccm" in tensors:
        guide = GuideParams(*(tensors[f"guide.{key}"] for key in GUIDE_KEYS))
    size = json.loads(metadata.get("source_size", "null"))
    return RetouchGrid(tensors["grid"], guide, tuple(size) if size else None, metadata.get("label", ""))

"""LUT files for the nodes, without ComfyUI: export, import as a grid, exact application, listing.

A LUT can only hold the global part of an edit: export averages the grid over the image
(:func:`~retouch_core.engine.lut.spatial_mean_grid`); import gives a spatially constant grid
(fitted, so lossy); :func:`apply_lut_file` applies the file itself, exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..retouch_core.engine.blend import prepare_mask
from ..retouch_core.engine.lut import lut_to_grid, write_cube
from ..retouch_core.engine.lut_interp import apply_cube, bake_cube
from ..retouch_core.engine.retouch_grid import RetouchGrid
from ..retouch_core.formats.lut_files import LUT_SUFFIXES, read_lut_file
from .layout import bchw_to_comfy, check_comfy_image, check_comfy_mask, comfy_to_bchw
from .output_files import new_output_file

# LUTs that ship with the pack (made by retouch_core/apps/style_lut.py), listed with the user's
# `luts` folders so a fresh install has one and the example workflow runs as shipped.
SHIPPED_LUT_FOLDER = Path(__file__).resolve().parents[1] / "luts"
SHIPPED_LUT = "instantretouch_cinematic.cube"


def export_cube(grid: RetouchGrid, folder: Path, prefix: str, size: int = 33, index: int = 0) -> Path:
    """Write the global part of edit ``index`` of ``grid`` as ``folder/prefix_NNNNN.cube``.

    ``prefix`` may name subfolders of ``folder`` but never leads out of it (ValueError); the file
    is numbered as ComfyUI's SaveImage numbers images and never replaces an existing one.
    """
    if not 0 <= index < grid.batch:
        raise ValueError(f"the grid holds {grid.batch} edit(s); index {index} does not exist")
    lut = grid.select(index).to_lut(size)
    title = " ".join((grid.label or "InstantRetouch").replace('"', "'").split())[:120]  # .cube titles: one line, no quotes
    with new_output_file(folder, prefix, ".cube") as path:
        write_cube(path, lut, title=title)
    return path


def import_cube(path: str | Path) -> RetouchGrid:
    """A LUT file (.cube or Hald CLUT) as a spatially constant grid (applies anywhere, any aspect ratio)."""
    cube = read_lut_file(path)
    if cube.is_plain_3d:
        grid = lut_to_grid(cube.lut, domain_min=cube.domain_min, domain_max=cube.domain_max)
    else:  # 1D tables and video ranges: the whole chain sampled on one [0, 1] lattice first
        grid = lut_to_grid(bake_cube(cube))
    return RetouchGrid(grid, None, None, f"LUT {Path(path).name}" + (f" ({cube.title})" if cube.title else ""))


def apply_lut_file(
    image: torch.Tensor, path: str | Path, interpolation: str = "tetrahedral", strength: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """IMAGE (B, H, W, C) through a LUT file, exactly; ``strength`` and ``mask`` mix with the input.

    The result is ``image + strength * mask * (lut(image) - image)``, clipped to [0, 1]; alpha is
    kept. A mask of any size is resized (bilinear); 1 means the LUT applies fully.
    """
    check_comfy_image(image)
    if image.shape[-1] == 1:
        image = image.expand(-1, -1, -1, 3)
    cube = read_lut_file(path)
    pixels = comfy_to_bchw(image)
    looked_up = apply_cube(pixels, cube, interpolation)
    weight = torch.full_like(pixels[:, :1], float(strength))
    if mask is not None:
        mask = check_comfy_mask(mask, image)
        weight = weight * prepare_mask(mask, image.shape[0], image.shape[1], image.shape[2], 0.0).to(pixels)
    rgb = torch.lerp(pixels[:, :3], looked_up[:, :3], weight).clamp(0, 1)
    return bchw_to_comfy(torch.cat([rgb, pixels[:, 3:]], 1))


def list_lut_files(folders: list[str | Path]) -> list[str]:
    """LUT files (.cube, Hald .png/.tif) in ``folders`` and their subfolders, as sorted
    ``sub/name`` paths relative to their folder (the names ComfyUI shows for model files)."""
    names = set()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in files:
                if Path(file).suffix.lower() in LUT_SUFFIXES and not file.startswith("."):
                    names.add((Path(root) / file).relative_to(folder).as_posix())
    return sorted(names)


def find_lut_file(folders: list[str | Path], name: str) -> Path:
    """The file ``name`` (a :func:`list_lut_files` entry) in the first folder holding it."""
    for folder in folders:
        folder = Path(folder).resolve()
        path = (folder / name).resolve()
        if path.is_relative_to(folder) and path.is_file():
            return path
    searched = ", ".join(str(f) for f in folders)
    raise FileNotFoundError(f"LUT file {name!r} is not in the LUT folders: {searched}")

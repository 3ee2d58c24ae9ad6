""".cube LUT export and import for the nodes, without ComfyUI.

A LUT can only hold the global part of an edit: export averages the grid over the image
(:func:`~retouch_core.engine.lut.spatial_mean_grid`); import gives a spatially constant grid.
"""

from __future__ import annotations

from pathlib import Path

from ..retouch_core.engine.retouch_grid import RetouchGrid
from ..retouch_core.engine.lut import load_cube, lut_to_grid, write_cube
from .output_files import new_output_file


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
    """A ``.cube`` file as a spatially constant grid (applies anywhere, any aspect ratio)."""
    cube = load_cube(path)
    grid = lut_to_grid(cube.lut, domain_min=cube.domain_min, domain_max=cube.domain_max)
    return RetouchGrid(grid, None, None, f"LUT {Path(path).name}" + (f" ({cube.title})" if cube.title else ""))

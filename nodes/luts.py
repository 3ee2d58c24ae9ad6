""".cube LUT export and import for the nodes, without ComfyUI.

A LUT can only hold the global part of an edit: export averages the grid over the image
(:func:`~retouch_core.engine.lut.spatial_mean_grid`); import gives a spatially constant grid.
"""

from __future__ import annotations

from pathlib import Path

from ..retouch_core.engine.retouch_grid import RetouchGrid
from ..retouch_core.engine.lut import load_cube, lut_to_grid, write_cube


def export_cube(grid: RetouchGrid, folder: Path, stem: str, size: int = 33, index: int = 0) -> Path:
    """Write the global part of edit ``index`` of ``grid`` as ``folder/stem_NNNNN.cube``."""
    lut = grid.select(index).to_lut(size)
    folder.mkdir(parents=True, exist_ok=True)
    number = 1 + sum(1 for _ in folder.glob(f"{stem}_*.cube"))
    path = folder / f"{stem}_{number:05d}.cube"
    title = " ".join((grid.label or "InstantRetouch").replace('"', "'").split())[:120]  # .cube titles: one line, no quotes
    write_cube(path, lut, title=title)
    return path


def import_cube(path: str | Path) -> RetouchGrid:
    """A ``.cube`` file as a spatially constant grid (applies anywhere, any aspect ratio)."""
    cube = load_cube(path)
    grid = lut_to_grid(cube.lut, domain_min=cube.domain_min, domain_max=cube.domain_max)
    return RetouchGrid(grid, None, None, f"LUT {Path(path).name}" + (f" ({cube.title})" if cube.title else ""))

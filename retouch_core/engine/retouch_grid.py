"""RetouchGrid: an edit in bilateral space, with what it needs to be applied later.

A :class:`RetouchGrid` is the value that flows between nodes, apps and models: the affine grid,
the guide it slices with (``None`` = luminance), the size of the image it was made for (a grid
is resolution-independent but belongs to an aspect ratio when it edits content-dependently)
and a human-readable label. It owns its batch operations (one edit of a batch, stacking,
comparing guides, blending two grids under a mask), so callers never reach into its tensors.
Grid files: :mod:`retouch_core.formats.grid_files` (``save``/``load`` delegate to it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .blend import prepare_mask, regional_blend
from .grid import check_grid, scale_grid
from .guide import GuideParams
from .lut import DEFAULT_LUT_SIZE, grid_to_lut
from .slicing import slice_and_apply

#: Relative aspect-ratio difference up to which a content-dependent grid still applies.
ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class RetouchGrid:
    """An edit in bilateral space. Treat as immutable: nodes share it.

    Attributes:
        grid: (N, 12, D, H_g, W_g) float32 affine grid; N = 1 serves any batch.
        guide: guide parameters (batch 1 or N), or None for the luminance guide.
        source_size: (H, W) of the image the grid was made for, or None when the edit does
            not depend on image content or layout (a global or parametric edit).
        label: what made the grid, for plans and file metadata.

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> warm = RetouchGrid(grid_from_affine(torch.diag(torch.tensor([1.2, 1.0, 0.8, 0.0]))[:3]), label="warm")
        >>> warm.apply(torch.full((1, 3, 4, 6), 0.5))[0, :, 0, 0]
        tensor([0.6000, 0.5000, 0.4000])
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
        """How many edits the grid holds (1 serves a batch of any size)."""
        return self.grid.shape[0]

    def scaled(self, strength: float) -> "RetouchGrid":
        """Strength: identity at 0, this edit at 1, exaggerated above 1.

        Example:
            >>> from retouch_core.engine.grid import identity_grid
            >>> RetouchGrid(identity_grid(), label="id").scaled(0.5).label
            'id x0.5'
        """
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

    def apply(self, image: torch.Tensor, backend: str = "auto", band: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, C, H, W) image -> (B, C', H, W) retouched (see slice_and_apply); with ``band =
        (first_row, full_height)`` the image holds only those rows of a taller one."""
        self.check_image(image.shape[0], band[1] if band else image.shape[-2], image.shape[-1])
        return slice_and_apply(image, self.grid, self.guide, backend=backend, band=band)

    # ------------------------------------------------------------------ batch operations
    def select(self, index: int) -> "RetouchGrid":
        """Edit ``index`` of the batch as a batch-1 grid; ValueError if there is no such edit.

        Example:
            >>> from retouch_core.engine.grid import identity_grid
            >>> RetouchGrid(identity_grid(3)).select(2).batch
            1
        """
        if not 0 <= index < self.batch:
            raise ValueError(f"the grid holds {self.batch} edit(s); index {index} does not exist")
        guide = None if self.guide is None else self.guide.select(index)
        return RetouchGrid(self.grid[index : index + 1], guide, self.source_size, self.label)

    def for_image(self, index: int) -> "RetouchGrid":
        """The batch-1 grid that edits image ``index`` of a batch (a batch-1 grid edits them all)."""
        return self if self.batch == 1 else self.select(index)

    @classmethod
    def stack(cls, grids: list["RetouchGrid"]) -> "RetouchGrid":
        """Batch-1 grids of one size -> one grid with a batch of ``len(grids)``.

        Grids with the luminance guide get the identity learned guide (the same slicing) when
        others carry a learned one. Source size and label are those of the first grid.

        Example:
            >>> from retouch_core.engine.grid import identity_grid
            >>> RetouchGrid.stack([RetouchGrid(identity_grid()), RetouchGrid(identity_grid())]).batch
            2
        """
        first = grids[0]
        if len(grids) == 1:
            return first
        guides = [g.guide for g in grids]
        guide = None
        if any(g is not None for g in guides):
            knots = next(g for g in guides if g is not None).knots
            filled = [g if g is not None else GuideParams.identity(knots=knots) for g in guides]
            guide = GuideParams(*(torch.cat(parts) for parts in zip(*(g.tensors() for g in filled))))
        return cls(torch.cat([g.grid for g in grids]), guide, first.source_size, first.label)

    def same_guide(self, other: "RetouchGrid") -> bool:
        """Whether both grids slice with the same guide (then blending them is one slice each)."""
        a, b = self.guide, other.guide
        if a is None or b is None:
            return a is b
        return all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors()))

    def blend(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        other: "RetouchGrid | None" = None,
        feather: float = 0.0,
        backend: str = "auto",
    ) -> torch.Tensor:
        """This edit where ``mask`` is 1, ``other`` (identity if None) where it is 0.

        Args:
            image: (B, C, H, W) float in [0, 1], C in {1, 3, 4} (alpha passed through).
            mask: (H', W'), (B', H', W') or (B', 1, H', W'), B' in (1, B), any size (resized).
            other: the edit outside the mask; it may slice with another guide.
            feather: mask edge softening, Gaussian sigma in pixels.

        Returns:
            (B, 3 or 4, H, W) in the image's dtype.

        Example:
            >>> from retouch_core.engine.grid import grid_from_affine
            >>> dark = RetouchGrid(grid_from_affine(0.5 * torch.eye(3, 4)))
            >>> mask = torch.tensor([[1.0, 0.0]])
            >>> dark.blend(torch.ones(1, 3, 1, 2), mask)[0, 0]
            tensor([[0.5000, 1.0000]])
        """
        batch, height, width = image.shape[0], image.shape[-2], image.shape[-1]
        for grid in (self, other):
            if grid is not None:
                grid.check_image(batch, height, width)
        if other is None or self.same_guide(other):
            other_grid = None if other is None else other.grid
            return regional_blend(image, self.grid, mask, other_grid, self.guide, feather=feather, backend=backend)
        # Different guides: slicing is still linear in the grid, but per guide; blend the outputs.
        inside = self.apply(image, backend).float()
        outside = other.apply(image, backend).float()
        weight = prepare_mask(mask, batch, height, width, feather).to(inside.device)
        return torch.lerp(outside, inside, weight).to(image.dtype)

    def to_lut(self, size: int = DEFAULT_LUT_SIZE) -> torch.Tensor:
        """The global part of every edit as a 3D LUT (see :func:`~retouch_core.engine.lut.grid_to_lut`).

        Returns:
            (N, 3, size, size, size) float32, indexed ``[.., c, b, g, r]``.

        Example:
            >>> from retouch_core.engine.grid import identity_grid
            >>> RetouchGrid(identity_grid()).to_lut(5).shape
            torch.Size([1, 3, 5, 5, 5])
        """
        return grid_to_lut(self.grid.float(), size=size, guide=self.guide)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write a ``.safetensors`` grid file (:func:`retouch_core.formats.grid_files.save_grid`)."""
        from ..formats.grid_files import save_grid

        save_grid(self, path)

    @staticmethod
    def load(path: str | Path) -> "RetouchGrid":
        """Read a grid file (:func:`retouch_core.formats.grid_files.load_grid`; never unpickles)."""
        from ..formats.grid_files import load_grid

        return load_grid(path)

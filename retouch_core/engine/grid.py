"""Bilateral grids of 3x4 affine colour transforms: the one convention used everywhere.

Layout
------
A grid is a float tensor of shape ``(B, 12, D, H_g, W_g)``. Channel ``c = 4 * i + j`` holds
entry ``A[i, j]`` of the row-major 3x4 affine transform of a cell: row ``i`` is the output
channel (R, G, B), column ``j`` the input (R, G, B, offset), offset last. A cell maps a pixel
``p = (r, g, b)`` to::

    out_i = A[i, 0] * r + A[i, 1] * g + A[i, 2] * b + A[i, 3]

Coordinates
-----------
Pixel centres map to grid coordinates exactly as ``grid_sample(..., align_corners=False)``
does; for an image of ``H x W`` pixels, pixel column ``x``, row ``y`` and guide value ``z``::

    gx = (x + 0.5) * W_g / W - 0.5
    gy = (y + 0.5) * H_g / H - 0.5
    gz = z * D - 0.5

so cell ``(k, a, b)`` sits at ``(gz, gy, gx) = (k, a, b)`` and values between cell centres
are trilinear. The guide ``z`` is nominally in ``[0, 1]`` (dark to bright).

Border
------
Each coordinate is clamped to ``[0, size - 1]`` before interpolation (``padding_mode="border"``):
pixels beyond the outermost cell centres, and guide values outside ``[0, 1]``, use the nearest
cells. A grid therefore means the same thing at every image size, which is what lets a grid
predicted at low resolution be applied at full resolution.
"""

from __future__ import annotations

import torch

AFFINE_ROWS = 3
AFFINE_COLS = 4
GRID_CHANNELS = AFFINE_ROWS * AFFINE_COLS


def identity_affine(device=None, dtype=torch.float32) -> torch.Tensor:
    """The 3x4 identity affine ``[I | 0]``, shape (3, 4).

    Example:
        >>> identity_affine()[:, 3]  # the offset column
        tensor([0., 0., 0.])
    """
    return torch.eye(AFFINE_ROWS, AFFINE_COLS, device=device, dtype=dtype)


def grid_from_affine(
    affine: torch.Tensor, depth: int = 8, height: int = 16, width: int = 16
) -> torch.Tensor:
    """A grid whose every cell holds the same affine (a global colour matrix).

    Args:
        affine: (3, 4) or (B, 3, 4) row-major affine colour transform(s).
        depth, height, width: grid size D, H_g, W_g.

    Returns:
        (B, 12, D, H_g, W_g) grid (B = 1 for a (3, 4) input).

    Example:
        >>> grid_from_affine(torch.eye(3, 4), depth=4, height=2, width=2).shape
        torch.Size([1, 12, 4, 2, 2])
    """
    if affine.shape[-2:] != (AFFINE_ROWS, AFFINE_COLS) or affine.dim() not in (2, 3):
        raise ValueError(f"affine must have shape (3, 4) or (B, 3, 4), got {tuple(affine.shape)}")
    if min(depth, height, width) < 1:
        raise ValueError(f"grid size must be >= 1, got D={depth}, H_g={height}, W_g={width}")
    flat = affine.reshape(-1, GRID_CHANNELS, 1, 1, 1)
    return flat.expand(-1, GRID_CHANNELS, depth, height, width).contiguous()


def identity_grid(
    batch: int = 1,
    depth: int = 8,
    height: int = 16,
    width: int = 16,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """A grid of exact identity affines, shape (batch, 12, depth, height, width).

    Example:
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> image = torch.rand(1, 3, 32, 48)
        >>> torch.allclose(slice_and_apply(image, identity_grid()), image, atol=1e-6)
        True
    """
    eye = identity_affine(device=device, dtype=dtype).expand(batch, AFFINE_ROWS, AFFINE_COLS)
    return grid_from_affine(eye, depth, height, width)


def grid_affines(grid: torch.Tensor) -> torch.Tensor:
    """View a grid as its per-cell affines.

    Args:
        grid: (B, 12, D, H_g, W_g).

    Returns:
        (B, D, H_g, W_g, 3, 4) view-compatible tensor.

    Example:
        >>> torch.equal(grid_affines(identity_grid(2, 4, 3, 5))[1, 3, 2, 4], identity_affine())
        True
    """
    b, _, d, h, w = grid.shape
    return grid.permute(0, 2, 3, 4, 1).reshape(b, d, h, w, AFFINE_ROWS, AFFINE_COLS)


def check_grid(grid, batch: int | None = None, name: str = "grid") -> None:
    """Raise a clear error unless ``grid`` is a finite (B, 12, D, H_g, W_g) float tensor.

    Args:
        grid: the tensor to check.
        batch: the image batch size it must serve; the grid batch must be 1 or equal to it.
        name: how the tensor is called in error messages.

    Example:
        >>> check_grid(identity_grid(2), batch=2)
        >>> check_grid(identity_grid(2), batch=3)
        Traceback (most recent call last):
        ValueError: grid batch is 2 but the image batch is 3; use one grid for all images (batch 1) or one per image
    """
    if not isinstance(grid, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(grid).__name__}")
    if not grid.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {grid.dtype}")
    if grid.dim() != 5 or grid.shape[1] != GRID_CHANNELS:
        raise ValueError(
            f"{name} must have shape (B, 12, D, H_g, W_g) with 12 = 3x4 affine entries, "
            f"got {tuple(grid.shape)}"
        )
    if grid.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(grid.shape)}")
    if batch is not None and grid.shape[0] not in (1, batch):
        raise ValueError(
            f"{name} batch is {grid.shape[0]} but the image batch is {batch}; "
            "use one grid for all images (batch 1) or one per image"
        )
    if not torch.isfinite(grid).all():
        raise ValueError(f"{name} contains NaN or Inf values")


def scale_grid(grid: torch.Tensor, strength) -> torch.Tensor:
    """Edit strength: ``identity + s * (grid - identity)``.

    ``s = 0`` gives the identity (the input back), ``s = 1`` the grid itself, ``s > 1``
    exaggerates and ``s < 0`` inverts the edit's direction. Because slicing is linear in the
    grid, the output image is exactly linear in ``s`` too.

    Args:
        grid: (B, 12, D, H_g, W_g).
        strength: a float, or a tensor of shape (B,) for one strength per grid.

    Returns:
        (B, 12, D, H_g, W_g), a new tensor.

    Example:
        >>> half_as_dark = scale_grid(grid_from_affine(0.5 * torch.eye(3, 4)), 0.5)
        >>> half_as_dark[0, 0, 0, 0, 0].item()  # gain 1 + 0.5 * (0.5 - 1)
        0.75
    """
    check_grid(grid)
    s = torch.as_tensor(strength, device=grid.device, dtype=grid.dtype)
    if s.dim() > 1 or (s.dim() == 1 and s.shape[0] not in (1, grid.shape[0])):
        raise ValueError(
            f"strength must be a number or have shape (B,) with B = {grid.shape[0]}, "
            f"got shape {tuple(s.shape)}"
        )
    if not torch.isfinite(s).all():
        raise ValueError(f"strength must be finite, got {strength}")
    eye = identity_affine(device=grid.device, dtype=grid.dtype).reshape(1, GRID_CHANNELS, 1, 1, 1)
    # lerp is exact at both ends: s = 0 gives the identity and s = 1 the grid, bit for bit.
    return torch.lerp(eye.expand_as(grid), grid, s.reshape(-1, 1, 1, 1, 1))

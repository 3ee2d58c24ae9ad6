"""Regional blend: two grids mixed under a soft mask, exactly, at full resolution.

Slicing is linear in the grid and a sliced affine is linear in the pixel, so blending the
two outputs under a per-pixel mask ``m`` is the same as blending the per-pixel affines::

    out = m * A_1 p + (1 - m) * A_2 p

The second grid defaults to the identity (edit only where the mask is set).
"""

from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F

from .checks import check_image, join_alpha, split_alpha
from .slicing import slice_and_apply

# Feather (Gaussian sigma, pixels): below MIN_FEATHER the 3-tap kernel's side weights are under
# 1e-21, so no pixel changes; MAX_FEATHER is the ComfyUI node's limit, wider than any useful edge.
MIN_FEATHER = 0.1
MAX_FEATHER = 256.0


def prepare_mask(
    mask: torch.Tensor, batch: int, height: int, width: int, feather: float = 0.0
) -> torch.Tensor:
    """Bring a user mask to (batch, 1, height, width) in [0, 1].

    Args:
        mask: (H', W'), (B', H', W') or (B', 1, H', W') with B' in (1, batch); any size,
            resized bilinearly (antialiased when shrinking).
        batch, height, width: the image it must cover.
        feather: Gaussian blur sigma in output pixels, softening the mask edge.

    Returns:
        (batch, 1, height, width) float mask.

    Example:
        >>> prepare_mask(torch.ones(64, 64), batch=2, height=480, width=640, feather=2.0).shape
        torch.Size([2, 1, 480, 640])
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    shape = tuple(mask.shape)
    if mask.dim() == 2:
        mask = mask[None, None]
    elif mask.dim() == 3:
        mask = mask[:, None]
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.numel() == 0:
        raise ValueError(f"mask must have shape (H, W), (B, H, W) or (B, 1, H, W), got {shape}")
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"mask batch is {mask.shape[0]} but the image batch is {batch}")
    if not 0 <= feather <= MAX_FEATHER:
        raise ValueError(f"feather must be between 0 and {MAX_FEATHER:g} pixels, got {feather}")
    mask = mask.float() if not mask.is_floating_point() else mask
    if not torch.isfinite(mask).all():
        raise ValueError("mask contains NaN or Inf values")
    if mask.shape[-2:] != (height, width):
        shrinking = mask.shape[-2] > height or mask.shape[-1] > width
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)
    if feather >= MIN_FEATHER:  # a narrower Gaussian is the identity (and its sigma^2 underflows)
        radius = max(1, math.ceil(3 * feather))
        kernel = min(2 * radius + 1, 2 * ((min(height, width) - 1) // 2) + 1)
        if kernel >= 3:
            mask = kornia.filters.gaussian_blur2d(mask, (kernel, kernel), (feather, feather), border_type="replicate")
    return mask.clamp(0, 1).expand(batch, -1, -1, -1)


def regional_blend(
    image: torch.Tensor,
    grid: torch.Tensor,
    mask: torch.Tensor,
    other_grid: torch.Tensor | None = None,
    guide=None,
    *,
    feather: float = 0.0,
    backend: str = "auto",
) -> torch.Tensor:
    """Apply ``grid`` where ``mask`` is 1 and ``other_grid`` (identity if None) where it is 0.

    Args:
        image: (B, C, H, W) float in [0, 1], C in {1, 3, 4} (alpha passed through).
        grid, other_grid: (B or 1, 12, D, H_g, W_g); they may differ in size.
        mask: see :func:`prepare_mask`; resized to the image.
        guide: as in :func:`~retouch_core.engine.slicing.slice_and_apply`.
        feather: mask edge softening, Gaussian sigma in pixels.
        backend: slicing backend.

    Returns:
        (B, 3 or 4, H, W) in the image's dtype.

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> dark = grid_from_affine(0.5 * torch.eye(3, 4))
        >>> regional_blend(torch.ones(1, 3, 1, 4), dark, mask=torch.tensor([[1.0, 1.0, 0.0, 0.0]]))[0, 0]
        tensor([[0.5000, 0.5000, 1.0000, 1.0000]])
    """
    check_image(image)
    rgb, alpha = split_alpha(image)
    batch, _, height, width = rgb.shape
    dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    weight = prepare_mask(mask, batch, height, width, feather).to(device=image.device, dtype=dtype)
    inside = slice_and_apply(rgb, grid, guide, backend=backend).to(dtype)
    if other_grid is None:
        outside = rgb.to(dtype)
    else:
        outside = slice_and_apply(rgb, other_grid, guide, backend=backend).to(dtype)
    out = torch.lerp(outside, inside, weight)
    return join_alpha(out.to(image.dtype), alpha)

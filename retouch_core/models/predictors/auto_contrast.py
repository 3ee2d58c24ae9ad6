"""Classical auto-contrast as a grid: the conservative half of the default model's auto mode.

The levels stretch of Pillow's ``ImageOps.autocontrast(cutoff=0.5, preserve_tone=True)``: the
luminance's ``cutoff`` and ``1 - cutoff`` quantiles go to black and white, the same gain and
offset for R, G and B (hue kept). That is one 3x4 affine, so it is a grid whose every cell holds
it, valid for any guide. On real unedited photos it errs in other places than the learned model
does (it cannot brighten a well-spread dark photo, the network misjudges some scenes), so the
average of the two grids is closer to a photographer's retouch than either alone (the model card
has the numbers).

Example:
    >>> flat = 0.3 + 0.4 * torch.rand(1, 3, 32, 32)           # a low-contrast photo
    >>> affine = auto_contrast_affine(flat)
    >>> out = torch.einsum("bij,bjhw->bihw", affine[:, :, :3], flat) + affine[:, :, 3, None, None]
    >>> bool(out.min() < 0.1 and out.max() > 0.9)
    True
"""

from __future__ import annotations

import torch

from ...engine.grid import grid_from_affine
from ...engine.guide import luminance_guide
from ...engine.resize import resize

#: share of pixels clipped at each end (Pillow's ``cutoff=0.5`` percent)
CUTOFF = 0.005
#: quantiles are taken on a copy with at most this many pixels (enough for a 0.5 % tail)
_SAMPLE_PIXELS = 256 * 256


def auto_contrast_affine(image: torch.Tensor, cutoff: float = CUTOFF) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, 4): the auto-contrast stretch of each image as an affine.

    A flat image (both quantiles equal) gets the identity.

    Example:
        >>> ramp = torch.linspace(0.25, 0.75, 16).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)  # grey, mid-tones only
        >>> auto_contrast_affine(ramp).round(decimals=2)  # the same gain and offset for R, G and B
        tensor([[[ 2.0200,  0.0000,  0.0000, -0.5100],
                 [ 0.0000,  2.0200,  0.0000, -0.5100],
                 [ 0.0000,  0.0000,  2.0200, -0.5100]]])
        >>> torch.equal(auto_contrast_affine(torch.full((2, 3, 4, 4), 0.5)), torch.eye(3, 4).expand(2, 3, 4))
        True
    """
    batch, _, height, width = image.shape
    scale = min(1.0, (_SAMPLE_PIXELS / (height * width)) ** 0.5)
    small = resize(image, (max(1, round(height * scale)), max(1, round(width * scale)))) if scale < 1 else image
    luma = luminance_guide(small.clamp(0, 1))  # Rec. 601, as Pillow's "L" that preserve_tone uses
    low, high = torch.quantile(luma.flatten(1).float(), torch.tensor([cutoff, 1 - cutoff], device=small.device), dim=1)
    flat = high - low < 1e-6
    gain = torch.where(flat, torch.ones_like(low), 1 / (high - low).clamp_min(1e-6))
    offset = torch.where(flat, torch.zeros_like(low), -low * gain)
    affine = torch.zeros(batch, 3, 4, dtype=image.dtype, device=image.device)
    affine[:, :, :3] = torch.eye(3, dtype=image.dtype, device=image.device) * gain.to(image.dtype)[:, None, None]
    affine[:, :, 3] = offset.to(image.dtype)[:, None]
    return affine


def auto_contrast_grid(image: torch.Tensor, depth: int, size: int, cutoff: float = CUTOFF) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 12, depth, size, size): :func:`auto_contrast_affine` in every cell.

    Example:
        >>> ramp = torch.linspace(0.25, 0.75, 16).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)
        >>> grid = auto_contrast_grid(ramp, depth=4, size=2)
        >>> grid.shape
        torch.Size([1, 12, 4, 2, 2])
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> stretched = slice_and_apply(ramp, grid)  # one affine everywhere: the guide does not matter
        >>> stretched[0, 0].flatten()[[0, -1]].round(decimals=2)  # darkest and brightest pixel, 0.5 % tails clip
        tensor([-0.0100,  1.0100])
    """
    return grid_from_affine(auto_contrast_affine(image, cutoff), depth, size, size)

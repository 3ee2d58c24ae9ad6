"""Video without flicker: one edit for a batch of frames, or per-frame edits smoothed over time.

A model that predicts a grid per frame reacts to every small change of content and exposure, so
the edit itself jitters from frame to frame. Grids are tiny (12 x 8 x 16 x 16 numbers), so a
temporal filter on them is free: :func:`smooth_over_time` low-passes every grid (and guide)
value along the frame axis with a Gaussian. ``"key frame"`` is the extreme: one grid, from one
frame, for the whole batch. Neither removes a flicker that is already in the input (an exposure
that pumps): the same edit passes it through. :func:`deflicker_grid` does, by scaling each
frame's grid (a gain on the output, exact since slicing is linear in the grid) so that the
frame's output brightness follows the temporally smoothed brightness of the outputs. Slicing is linear in the grid, so a smoothed grid is the average of
the neighbouring frames' edits (for a shared guide exactly; learned guides are averaged too).

:func:`flicker` measures the result: how much the frame-to-frame change of an output's mean
brightness departs from that of a stable reference clip (the same clip without flicker).

Example:
    >>> grids = torch.rand(5, 12, 8, 16, 16)                  # per-frame grids (T, 12, D, H_g, W_g)
    >>> smooth_over_time(grids, sigma=2.0).shape              # same shape, low-passed over T
    torch.Size([5, 12, 8, 16, 16])
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from .fit import downsample
from .guide import LUMA_WEIGHTS
from .slicing import slice_and_apply

TEMPORAL_MODES = ("per-frame", "key frame", "smoothed", "smoothed + deflicker")
THUMBNAIL_PIXELS = 128 * 128  # brightness is measured on a thumbnail
DEFAULT_SIGMA = 2.0  # frames


def smooth_over_time(values: torch.Tensor, sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """Gaussian low-pass along the first (time) axis; the kernel is renormalised at the ends.

    Args:
        values: (T, ...) float, frame t first.
        sigma: standard deviation in frames (0 returns a copy).

    Returns:
        (T, ...) tensor of the same dtype. A constant sequence comes back unchanged.

    Example:
        >>> smooth_over_time(torch.tensor([0.0, 1.0, 0.0]), 1.0)
        tensor([0.3482, 0.4519, 0.3482])
    """
    if not sigma >= 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number >= 0 (frames), got {sigma}")
    frames = values.shape[0]
    if sigma == 0 or frames == 1:
        return values.clone()
    radius = min(frames - 1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    flat = values.reshape(frames, -1).double().T.unsqueeze(1)  # (N, 1, T)
    ones = torch.ones(1, 1, frames, dtype=torch.float64)
    # Zero padding plus division by the kernel mass that fell inside: no edge frame is repeated.
    total = F.conv1d(F.pad(flat, (radius, radius)), kernel.view(1, 1, -1))
    mass = F.conv1d(F.pad(ones, (radius, radius)), kernel.view(1, 1, -1))
    return (total / mass).squeeze(1).T.reshape(values.shape).to(values.dtype)


def temporal_grid(grid, frames: torch.Tensor, mode: str, sigma: float = DEFAULT_SIGMA, key_frame: int = 0):
    """The edit of a clip in one of :data:`TEMPORAL_MODES`, from its per-frame grids.

    Args:
        grid: a RetouchGrid with one grid per frame (batch T), e.g. a model's predictions.
        frames: (T, 3, H, W) the clip (used by the deflicker only).
        mode: ``"per-frame"`` (unchanged), ``"key frame"`` (frame ``key_frame``'s grid, batch 1,
            for every frame), ``"smoothed"`` or ``"smoothed + deflicker"``.
        sigma: Gaussian sigma in frames.

    Returns:
        RetouchGrid of batch T (batch 1 for ``"key frame"``).

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> from retouch_core.engine.retouch_grid import RetouchGrid
        >>> gains = torch.tensor([1.0, 3.0, 2.0]).view(3, 1, 1, 1, 1)  # a different edit per frame
        >>> grids = RetouchGrid(identity_grid(3, 2, 2, 2) * gains)
        >>> frames = torch.full((3, 3, 4, 4), 0.5)  # (T, 3, H, W)
        >>> temporal_grid(grids, frames, "key frame", key_frame=1).grid[:, 0, 0, 0, 0]  # batch 1
        tensor([3.])
        >>> temporal_grid(grids, frames, "smoothed", sigma=1.0).grid[:, 0, 0, 0, 0]
        tensor([1.7741, 2.1778, 2.2705])
    """
    if mode not in TEMPORAL_MODES:
        raise ValueError(f"temporal mode must be one of {TEMPORAL_MODES}, got {mode!r}")
    if mode == "key frame":
        if not 0 <= key_frame < grid.batch:
            raise ValueError(f"key_frame {key_frame} is not in the batch of {grid.batch} frames")
        return grid.select(key_frame)
    if mode.startswith("smoothed"):
        grid = smooth_grid_over_time(grid, sigma)
    if mode == "smoothed + deflicker":
        grid = deflicker_grid(grid, frames, sigma)
    return grid


def smooth_grid_over_time(grid, sigma: float = DEFAULT_SIGMA):
    """A RetouchGrid holding one grid per frame, with grid and guide smoothed over the frames.

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> from retouch_core.engine.retouch_grid import RetouchGrid
        >>> grids = RetouchGrid(identity_grid(3, 2, 2, 2) * torch.tensor([1.0, 3.0, 2.0]).view(3, 1, 1, 1, 1))
        >>> smoothed = smooth_grid_over_time(grids, sigma=1.0)
        >>> smoothed.grid.shape, smoothed.grid[:, 0, 0, 0, 0]  # (T, 12, D, H_g, W_g)
        (torch.Size([3, 12, 2, 2, 2]), tensor([1.7741, 2.1778, 2.2705]))
    """
    guide = grid.guide
    if guide is not None:
        guide = type(guide)(*(smooth_over_time(t, sigma) for t in guide.tensors()))
    return replace(grid, grid=smooth_over_time(grid.grid, sigma), guide=guide)


def deflicker_grid(grid, frames: torch.Tensor, sigma: float = DEFAULT_SIGMA):
    """Scale each frame's grid so its output brightness is the outputs' brightness smoothed over time.

    Args:
        grid: a RetouchGrid with one grid per frame (batch T).
        frames: (T, 3, H, W) the frames the grids edit (measured on a thumbnail).
        sigma: Gaussian sigma in frames of the target brightness.

    Returns:
        RetouchGrid of batch T.

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> from retouch_core.engine.retouch_grid import RetouchGrid
        >>> frames = torch.tensor([0.4, 0.6, 0.4, 0.6, 0.4]).view(5, 1, 1, 1).expand(5, 3, 4, 4)  # exposure pumps
        >>> steady = deflicker_grid(RetouchGrid(identity_grid(5, 2, 2, 2)), frames, sigma=2.0)
        >>> out = torch.cat([steady.select(t).apply(frames[t : t + 1]) for t in range(5)])
        >>> frame_brightness(out)
        tensor([0.4819, 0.4869, 0.4887, 0.4869, 0.4819], dtype=torch.float64)
        >>> still = torch.full((5, 3, 4, 4), 0.5)
        >>> round(flicker(frames, still), 1), round(flicker(out, still), 1)
        (51.0, 0.9)
    """
    if grid.batch != frames.shape[0]:
        raise ValueError(f"the grid holds {grid.batch} frame(s) but the clip has {frames.shape[0]}")
    thumbnails = downsample(frames[:, :3].float(), THUMBNAIL_PIXELS)
    outputs = torch.cat([
        slice_and_apply(thumbnails[t : t + 1], grid.grid[t : t + 1], None if grid.guide is None else grid.guide.select(t))
        for t in range(grid.batch)
    ])
    brightness = frame_brightness(outputs).clamp_min(1e-4)
    gains = (smooth_over_time(brightness, sigma) / brightness).to(grid.grid.dtype)
    return replace(grid, grid=grid.grid * gains.view(-1, 1, 1, 1, 1))


def frame_brightness(frames: torch.Tensor) -> torch.Tensor:
    """Mean luminance (Rec. 601) of each frame: (T, 3, H, W) -> (T,) float64.

    Example:
        >>> grey, green = torch.full((3, 2, 2), 0.5), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 2, 2)
        >>> frame_brightness(torch.stack([grey, green]))
        tensor([0.5000, 0.5870], dtype=torch.float64)
    """
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64).view(1, 3, 1, 1)
    return (frames[:, :3].double() * weights).sum(1).mean(dim=(1, 2))


def flicker(frames: torch.Tensor, reference: torch.Tensor) -> float:
    """Frame-to-frame brightness change not explained by the content, in 1/255 units.

    ``mean_t |dB_t(frames) - dB_t(reference)|`` with ``B_t`` the mean luminance of frame ``t``
    and ``dB_t = B_t - B_(t-1)``: 0 when the output brightens and darkens exactly as a stable
    reference clip of the same shot does (a pan changes content, so the reference moves too).

    Args:
        frames: (T, 3, H, W) output clip, T >= 2.
        reference: (T, 3, H', W') stable clip.

    Example:
        >>> still = torch.full((4, 3, 2, 2), 0.5)
        >>> pumping = still * torch.tensor([1.0, 1.1, 1.0, 1.1]).view(4, 1, 1, 1)  # +-0.05 every frame
        >>> round(flicker(pumping, still), 2), flicker(still, still)  # 0.05 * 255
        (12.75, 0.0)
    """
    if frames.shape[0] < 2 or frames.shape[0] != reference.shape[0]:
        raise ValueError(f"need two clips of the same length >= 2, got {frames.shape[0]} and {reference.shape[0]} frames")
    change = frame_brightness(frames).diff() - frame_brightness(reference).diff()
    return float(change.abs().mean() * 255)

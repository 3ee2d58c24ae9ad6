"""Fused CPU slice-and-apply kernel (numba), the fast path of :mod:`retouch_core.engine.slicing`.

One pass over the image: guide, trilinear slice and affine apply per pixel, nothing
full-size materialised but the output. The y-interpolation depends only on the row, so it
is done once per row into a (W_g, D, 12) buffer; each pixel then blends 4 (x, z) corners
instead of 8. Numba ships its own LLVM in the wheel, so this needs no compiler on the
user's machine. Same coordinate convention as :mod:`retouch_core.engine.grid`; every grid axis
must have at least 2 cells (the caller replicates size-1 axes, which changes nothing).
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Guide modes: how z is obtained for each pixel.
GUIDE_LINEAR = 0  # z = clamp(mix . clamp(rgb) + bias): luminance and the identity learned guide
GUIDE_MAP = 1  # z read from a precomputed map
GUIDE_LEARNED = 2  # full HDRNet guide: colour mix, monotone curves, 1x1 mix



def set_thread_count(threads: int) -> None:
    """Run the kernel on ``threads`` threads (capped at numba's pool size)."""
    nb.set_num_threads(max(1, min(threads, nb.config.NUMBA_NUM_THREADS)))


# FMA contraction only: the full fastmath set assumes no NaN/Inf and would delete the checks.
_FASTMATH = {"contract"}


@nb.njit(inline="always")
def _cell(coord, size):
    """Lower cell index and fraction of a grid coordinate, border-clamped (size >= 2)."""
    coord = min(max(coord, 0.0), size - 1.0)
    lower = min(int(coord), size - 2)
    return lower, coord - lower


@nb.njit(inline="always")
def _learned_guide(r, g, b, ccm, ccm_bias, slopes, cumulative, mix, mix_bias):
    knots = slopes.shape[1]
    z = mix_bias
    for c in range(3):
        v = min(max(ccm[c, 0] * r + ccm[c, 1] * g + ccm[c, 2] * b + ccm_bias[c], 0.0), 1.0)
        k = min(int(v * knots), knots - 1)
        z += mix[c] * (cumulative[c, k] + slopes[c, k] * (v - k / knots))
    return z


@nb.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def slice_apply_image(image, grid, guide_mode, guide_map, ccm, ccm_bias, slopes, mix, mix_bias, out):
    """Slice ``grid`` and apply it to one image, writing ``out``.

    Args:
        image: (3, H, W) float32 RGB.
        grid: (H_g, W_g, D, 12) float32 channel-last copy of one (12, D, H_g, W_g) grid,
            every axis >= 2.
        guide_mode: GUIDE_LINEAR, GUIDE_MAP or GUIDE_LEARNED.
        guide_map: (H, W) float32 guide for GUIDE_MAP, else any 2-D array.
        ccm, ccm_bias, slopes, mix, mix_bias: guide parameters, shapes (3, 3), (3,),
            (3, K), (3,), scalar (see :mod:`retouch_core.engine.guide`).
        out: (3, H, W) float32, written.

    Returns:
        Number of pixels whose RGB or guide value is NaN or Inf (0 when all is well).
    """
    _, height, width = image.shape
    grid_h, grid_w, depth, _ = grid.shape
    knots = slopes.shape[1]
    cumulative = np.zeros((3, knots + 1), np.float32)
    for c in range(3):
        for k in range(knots):
            cumulative[c, k + 1] = cumulative[c, k] + slopes[c, k] / knots
    x_lo = np.empty(width, np.int64)
    x_frac = np.empty(width, np.float32)
    for x in range(width):
        x_lo[x], x_frac[x] = _cell((x + 0.5) * grid_w / width - 0.5, grid_w)
    bad = np.zeros(height, np.int64)

    for y in nb.prange(height):
        y0, fy = _cell((y + 0.5) * grid_h / height - 0.5, grid_h)
        row = np.empty((grid_w, depth, 12), np.float32)
        for j in range(grid_w):
            for k in range(depth):
                for c in range(12):
                    row[j, k, c] = (1 - fy) * grid[y0, j, k, c] + fy * grid[y0 + 1, j, k, c]
        bad_here = 0
        for x in range(width):
            r = image[0, y, x]
            g = image[1, y, x]
            b = image[2, y, x]
            if guide_mode == GUIDE_MAP:
                z = guide_map[y, x]
            elif guide_mode == GUIDE_LINEAR:
                z = mix[0] * min(max(r, 0.0), 1.0) + mix[1] * min(max(g, 0.0), 1.0) + mix[2] * min(max(b, 0.0), 1.0) + mix_bias
            else:
                z = _learned_guide(r, g, b, ccm, ccm_bias, slopes, cumulative, mix, mix_bias)
            if not np.isfinite(r + g + b + z):
                bad_here += 1
            k0, fz = _cell(z * depth - 0.5, depth)
            j0 = x_lo[x]
            fx = x_frac[x]
            w00 = (1 - fx) * (1 - fz)
            w01 = (1 - fx) * fz
            w10 = fx * (1 - fz)
            w11 = fx * fz
            for i in range(3):
                c = 4 * i
                a0 = w00 * row[j0, k0, c] + w01 * row[j0, k0 + 1, c] + w10 * row[j0 + 1, k0, c] + w11 * row[j0 + 1, k0 + 1, c]
                a1 = w00 * row[j0, k0, c + 1] + w01 * row[j0, k0 + 1, c + 1] + w10 * row[j0 + 1, k0, c + 1] + w11 * row[j0 + 1, k0 + 1, c + 1]
                a2 = w00 * row[j0, k0, c + 2] + w01 * row[j0, k0 + 1, c + 2] + w10 * row[j0 + 1, k0, c + 2] + w11 * row[j0 + 1, k0 + 1, c + 2]
                a3 = w00 * row[j0, k0, c + 3] + w01 * row[j0, k0 + 1, c + 3] + w10 * row[j0 + 1, k0, c + 3] + w11 * row[j0 + 1, k0 + 1, c + 3]
                out[i, y, x] = a0 * r + a1 * g + a2 * b + a3
        bad[y] = bad_here
    return bad.sum()

"""Fused CPU slice-and-apply kernel (numba), the fast path of :mod:`retouch_core.engine.slicing`.

One pass over the image: guide, trilinear slice and affine apply per pixel, nothing
full-size materialised but the output. The y-interpolation depends only on the row, so it
is done once per row into a (W_g, D, 12) buffer; each pixel then blends 4 (x, z) corners
instead of 8. Every value is float32 (a float64 temporary would halve the throughput), and
the image stays planar, as torch holds it: converting to channels-last would cost a copy.
Numba ships its own LLVM in the wheel, so this needs no compiler on the user's machine. Same
coordinate convention as :mod:`retouch_core.engine.grid`; every grid axis must have at least 2
cells (the caller replicates size-1 axes, which changes nothing).

The kernel is compiled for its one signature when this module is imported, and cached in
the user's cache directory (:func:`cache_dir`), never next to this file: a pack installed in
a read-only folder still compiles only once per user.
"""

from __future__ import annotations

import os

import numba as nb
import numpy as np
from numba.core import caching
from numba.misc.appdirs import AppDirs

# Guide modes: how z is obtained for each pixel.
GUIDE_LINEAR = 0  # z = mix . clamp(rgb) + bias: luminance and the identity learned guide
GUIDE_MAP = 1  # z read from a precomputed map
GUIDE_LEARNED = 2  # full HDRNet guide: colour mix, monotone curves, 1x1 mix

F32 = np.float32


def cache_dir() -> str:
    """Where the compiled kernel is cached: ``instantretouch/numba`` in the user's cache dir.

    (``~/.cache`` or ``$XDG_CACHE_HOME`` on Linux, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows.) ``NUMBA_CACHE_DIR``, when set, takes precedence.
    """
    return os.path.join(AppDirs(appname="instantretouch", appauthor=False).user_cache_dir, "numba")


_UserWide = getattr(caching, "UserWideCacheLocator", None) or caching._UserWideCacheLocator


class _UserCacheLocator(_UserWide):
    """numba's user-wide cache locator, moved to :func:`cache_dir` and limited to this file."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(cache_dir(), self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.abspath(py_file) != os.path.abspath(__file__):
            return None  # other modules' kernels keep numba's own locations
        return super().from_function(py_func, py_file)


def _register_locator() -> None:
    # After numba's NUMBA_CACHE_DIR locator, before the one that writes next to the source.
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locators = impl._locator_classes
    locators[:] = [c for c in locators if c.__name__ != _UserCacheLocator.__name__]
    locators.insert(1, _UserCacheLocator)


_register_locator()


def set_thread_count(threads: int) -> None:
    """Run the kernel on ``threads`` threads (capped at numba's pool size)."""
    nb.set_num_threads(max(1, min(threads, nb.config.NUMBA_NUM_THREADS)))


# FMA contraction only: the full fastmath set assumes no NaN/Inf and would delete the checks.
_FASTMATH = {"contract"}


@nb.njit(inline="always")
def _cell(coord, size):
    """Lower cell index and fraction of a float32 grid coordinate, border-clamped (size >= 2).

    NaN lands on cell 0 (the caller reports it): an unclamped NaN index would read anywhere.
    """
    coord = coord if coord > F32(0) else F32(0)
    coord = coord if coord < F32(size - 1) else F32(size - 1)
    lower = min(int(coord), size - 2)
    return lower, coord - F32(lower)


@nb.njit(inline="always")
def _learned_guide(r, g, b, ccm, ccm_bias, slopes, cumulative, mix, mix_bias):
    knots = slopes.shape[1]
    z = mix_bias
    for c in range(3):
        v = min(max(ccm[c, 0] * r + ccm[c, 1] * g + ccm[c, 2] * b + ccm_bias[c], F32(0)), F32(1))
        k = min(int(v * F32(knots)), knots - 1)
        z += mix[c] * (cumulative[c, k] + slopes[c, k] * (v - F32(k) / F32(knots)))
    return z


@nb.njit(inline="always")
def _apply_pixel(image, y, x, z, row, j0, fx, depth, out):
    """Blend the 4 (x, z) corners of the y-interpolated ``row`` and apply them to pixel (y, x).

    Returns 1 when the pixel's RGB or guide value is NaN or Inf, else 0.
    """
    r = image[0, y, x]
    g = image[1, y, x]
    b = image[2, y, x]
    k0, fz = _cell(z * F32(depth) - F32(0.5), depth)
    w00 = (F32(1) - fx) * (F32(1) - fz)
    w01 = (F32(1) - fx) * fz
    w10 = fx * (F32(1) - fz)
    w11 = fx * fz
    for i in range(3):
        c = 4 * i
        a0 = w00 * row[j0, k0, c] + w01 * row[j0, k0 + 1, c] + w10 * row[j0 + 1, k0, c] + w11 * row[j0 + 1, k0 + 1, c]
        a1 = w00 * row[j0, k0, c + 1] + w01 * row[j0, k0 + 1, c + 1] + w10 * row[j0 + 1, k0, c + 1] + w11 * row[j0 + 1, k0 + 1, c + 1]
        a2 = w00 * row[j0, k0, c + 2] + w01 * row[j0, k0 + 1, c + 2] + w10 * row[j0 + 1, k0, c + 2] + w11 * row[j0 + 1, k0 + 1, c + 2]
        a3 = w00 * row[j0, k0, c + 3] + w01 * row[j0, k0 + 1, c + 3] + w10 * row[j0 + 1, k0, c + 3] + w11 * row[j0 + 1, k0 + 1, c + 3]
        out[i, y, x] = a0 * r + a1 * g + a2 * b + a3
    return not np.isfinite(r + g + b + z)


_F32_3D = nb.float32[:, :, ::1]
_F32_2D = nb.float32[:, ::1]
_F32_1D = nb.float32[::1]
SIGNATURE = nb.int64(_F32_3D, nb.int64, nb.int64, nb.float32[:, :, :, ::1], nb.int64, _F32_2D, _F32_2D, _F32_1D,
                     _F32_2D, _F32_1D, nb.float32, _F32_3D)


@nb.njit(SIGNATURE, parallel=True, fastmath=_FASTMATH, cache=True)
def slice_apply_image(image, first_row, full_height, grid, guide_mode, guide_map, ccm, ccm_bias, slopes, mix,
                      mix_bias, out):
    """Slice ``grid`` and apply it to one image (or a band of rows of one), writing ``out``.

    Args:
        image: (3, H, W) float32 RGB, C-contiguous: rows ``first_row``.. of a ``full_height``-tall
            image (0 and H for a whole image).
        grid: (H_g, W_g, D, 12) float32 channel-last copy of one (12, D, H_g, W_g) grid,
            every axis >= 2.
        guide_mode: GUIDE_LINEAR, GUIDE_MAP or GUIDE_LEARNED.
        guide_map: (H, W) float32 guide for GUIDE_MAP, else any 2-D array.
        ccm, ccm_bias, slopes, mix, mix_bias: float32 guide parameters, shapes (3, 3), (3,),
            (3, K), (3,), scalar (see :mod:`retouch_core.engine.guide`).
        out: (3, H, W) float32, written; may be ``image`` itself (each pixel is read before
            it is written).

    Returns:
        Number of pixels whose RGB or guide value is NaN or Inf (0 when all is well).
    """
    _, height, width = image.shape
    grid_h, grid_w, depth, _ = grid.shape
    row_scale = grid_h / full_height
    knots = slopes.shape[1]
    cumulative = np.zeros((3, knots + 1), np.float32)
    for c in range(3):
        for k in range(knots):
            cumulative[c, k + 1] = cumulative[c, k] + slopes[c, k] / F32(knots)
    x_lo = np.empty(width, np.int64)
    x_frac = np.empty(width, np.float32)
    for x in range(width):
        x_lo[x], x_frac[x] = _cell(F32((x + 0.5) * grid_w / width - 0.5), grid_w)
    m0, m1, m2 = mix[0], mix[1], mix[2]
    bad = np.zeros(height, np.int64)

    for y in nb.prange(height):
        y0, fy = _cell(F32((first_row + y + 0.5) * row_scale - 0.5), grid_h)
        row = np.empty((grid_w, depth, 12), np.float32)
        for j in range(grid_w):
            for k in range(depth):
                for c in range(12):
                    row[j, k, c] = grid[y0, j, k, c] + fy * (grid[y0 + 1, j, k, c] - grid[y0, j, k, c])
        # One loop per guide mode: a branch on the mode inside the pixel loop costs ~30%.
        bad_here = 0
        if guide_mode == GUIDE_MAP:
            for x in range(width):
                bad_here += _apply_pixel(image, y, x, guide_map[y, x], row, x_lo[x], x_frac[x], depth, out)
        elif guide_mode == GUIDE_LINEAR:
            for x in range(width):
                z = m0 * min(max(image[0, y, x], F32(0)), F32(1)) + m1 * min(max(image[1, y, x], F32(0)), F32(1)) \
                    + m2 * min(max(image[2, y, x], F32(0)), F32(1)) + mix_bias
                bad_here += _apply_pixel(image, y, x, z, row, x_lo[x], x_frac[x], depth, out)
        else:
            for x in range(width):
                z = _learned_guide(image[0, y, x], image[1, y, x], image[2, y, x],
                                   ccm, ccm_bias, slopes, cumulative, mix, mix_bias)
                bad_here += _apply_pixel(image, y, x, z, row, x_lo[x], x_frac[x], depth, out)
        bad[y] = bad_here
    return bad.sum()

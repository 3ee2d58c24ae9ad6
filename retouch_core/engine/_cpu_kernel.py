"""Fused CPU slice-and-apply kernel (numba), the fast path of :mod:`retouch_core.engine.slicing`.

One pass over the image, row by row: guide, trilinear slice and affine apply, nothing
full-size materialised but the output. The y-interpolation depends only on the row, so it is
done once per row into a (W_g, D, 12) buffer. The rest is written so that LLVM vectorises it
across pixels (8 float32 lanes on AVX2): a gather of the 2 depth cells each pixel falls in
cannot be vectorised, so each block of up to :data:`BLOCK` pixels that share their x cells is
blended with every depth node its guide values reach, weighted by the node's tent function
(zero for the others). On a photo a block reaches 2-3 of the 8 nodes; on noise all of them,
which is the worst case. The learned guide's monotone curves are evaluated the same way, as a
sum of hinges instead of a table lookup. Every value is float32 (a float64 temporary
would halve the throughput), and the image stays planar, as torch holds it: converting to
channels-last would cost a copy. Numba ships its own LLVM in the wheel, so this needs no
compiler on the user's machine. Same coordinate convention as :mod:`retouch_core.engine.grid`;
every grid axis must have at least 2 cells (the caller replicates size-1 axes, which changes
nothing).

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
        # The real path: ComfyUI packs are often symlinked into custom_nodes, and a cache keyed
        # by the link would be compiled again (about 28 s) for every link to the same files.
        py_file = os.path.realpath(py_file)
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(cache_dir(), self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.realpath(py_file) != os.path.realpath(__file__):
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
def _depth_coord(z, depth):
    """Guide value -> depth coordinate in node units, border-clamped to [0, depth - 1] (NaN -> 0)."""
    coord = z * F32(depth) - F32(0.5)
    coord = coord if coord > F32(0) else F32(0)
    return coord if coord < F32(depth - 1) else F32(depth - 1)


@nb.njit(fastmath=True)
def _value_range(values):
    """(min, max) of finite values; fastmath lets LLVM vectorise the reduction, which it may
    only because no value is NaN (callers pass clamped coordinates)."""
    low = values[0]
    high = values[0]
    for i in range(values.shape[0]):
        low = min(low, values[i])
        high = max(high, values[i])
    return low, high


#: Pixels per blend block: short enough that a block of a photo spans few depth nodes, long
#: enough to amortise the per-node setup (24 coefficients) and the loop's entry checks over the
#: vector loop (16 iterations of 8 lanes). Against 64: faster on noise and on photos with the
#: luminance guide, level with the learned guide; 256 loses on photos.
BLOCK = 128


@nb.njit(inline="always")
def _node_coefficients(left, right, k):
    """Node ``k`` of the block's left x cell and its difference to the right one (24 floats)."""
    a, b = left[k], right[k]
    return (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
            b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3], b[4] - a[4], b[5] - a[5],
            b[6] - a[6], b[7] - a[7], b[8] - a[8], b[9] - a[9], b[10] - a[10], b[11] - a[11])


@nb.njit(inline="always")
def _node_terms(c, node, coord, x_frac, r, g, bl):
    """The tent-weighted affine of one node applied to one pixel: 3 output terms."""
    w = max(F32(0), F32(1) - abs(coord - node))
    v = w * x_frac
    return (w * (c[0] * r + c[1] * g + c[2] * bl + c[3]) + v * (c[12] * r + c[13] * g + c[14] * bl + c[15]),
            w * (c[4] * r + c[5] * g + c[6] * bl + c[7]) + v * (c[16] * r + c[17] * g + c[18] * bl + c[19]),
            w * (c[8] * r + c[9] * g + c[10] * bl + c[11]) + v * (c[20] * r + c[21] * g + c[22] * bl + c[23]))


@nb.njit(inline="always")
def _blend_block(left, right, coord, x_frac, red, green, blue, out0, out1, out2):
    """Write the sliced affine of a block of pixels applied to them into ``out0..2``.

    ``left``/``right``: (D, 12) y-interpolated nodes of the block's two x cells; ``coord``:
    depth coordinates (:func:`_depth_coord`); ``x_frac``: fractions towards ``right``. Only the
    nodes within the block's coordinate range are visited: the tent weight of the others is 0.
    The first node writes the output, the others add to it (no pass to zero it first).
    """
    n = coord.shape[0]
    low, high = _value_range(coord)
    depth = left.shape[0]
    first = int(low)
    c = _node_coefficients(left, right, first)
    node = F32(first)
    for i in range(n):
        out0[i], out1[i], out2[i] = _node_terms(c, node, coord[i], x_frac[i], red[i], green[i], blue[i])
    for k in range(first + 1, min(int(high) + 1, depth - 1) + 1):
        c = _node_coefficients(left, right, k)
        node = F32(k)
        for i in range(n):
            t0, t1, t2 = _node_terms(c, node, coord[i], x_frac[i], red[i], green[i], blue[i])
            out0[i] += t0
            out1[i] += t1
            out2[i] += t2


@nb.njit(inline="always")
def _learned_guide_row(red, green, blue, ccm, ccm_bias, bends, mix_bias, z, scratch):
    """HDRNet guide of one row into ``z``: colour mix, monotone piecewise-linear curves, 1x1 mix.

    A curve with ``K`` equal pieces of slopes ``s_k`` on ``v`` in [0, 1] is a sum of hinges,
    ``sum_k (s_k - s_{k-1}) max(v - k/K, 0)`` (``s_{-1} = 0``): the same values as a table
    lookup, in branch-free vector code, and one operation a piece fewer than clamped ramps (the
    upper clamp is not needed because ``v <= 1``). Four pieces share one pass over the row: a
    pass per piece spent more time loading and storing ``z`` than computing. (Folding the
    ``- k/K`` into the bias would save another operation but lose float32 precision.)
    ``bends``: (3, K) the steps ``s_k - s_{k-1}`` with the 1x1 mix folded in (:func:`_curve_bends`).
    """
    knots = bends.shape[1]
    piece = F32(1) / F32(knots)
    zero = F32(0)
    width = z.shape[0]
    for x in range(width):
        z[x] = mix_bias
    for c in range(3):
        c0, c1, c2, cb = ccm[c, 0], ccm[c, 1], ccm[c, 2], ccm_bias[c]
        for x in range(width):
            scratch[x] = min(max(c0 * red[x] + c1 * green[x] + c2 * blue[x] + cb, zero), F32(1))
        d = bends[c]
        k = 0
        while k + 4 <= knots:
            a0 = F32(k) * piece
            a1, a2, a3 = a0 + piece, a0 + F32(2) * piece, a0 + F32(3) * piece
            d0, d1, d2, d3 = d[k], d[k + 1], d[k + 2], d[k + 3]
            for x in range(width):
                v = scratch[x]
                z[x] += (d0 * max(v - a0, zero) + d1 * max(v - a1, zero)
                         + d2 * max(v - a2, zero) + d3 * max(v - a3, zero))
            k += 4
        for rest in range(k, knots):
            start = F32(rest) * piece
            for x in range(width):
                z[x] += d[rest] * max(scratch[x] - start, zero)


@nb.njit(inline="always")
def _curve_bends(slopes, mix):
    """(3, K) hinge weights of the learned guide's curves, mix folded in: ``mix_c (s_k - s_{k-1})``."""
    bends = np.empty(slopes.shape, np.float32)
    for c in range(3):
        previous = F32(0)
        for k in range(slopes.shape[1]):
            slope = mix[c] * slopes[c, k]
            bends[c, k] = slope - previous
            previous = slope
    return bends


@nb.njit(fastmath={"reassoc"})
def _row_is_finite(red, green, blue, z):
    """Whether RGB and guide are finite on the whole row, as one vectorised sum: 0 * Inf and NaN
    are NaN, and reassociation keeps NaN (a sum in strict order runs one add at a time)."""
    total = F32(0)
    for x in range(z.shape[0]):
        total += F32(0) * (red[x] + green[x] + blue[x] + z[x])
    return total == F32(0)


@nb.njit(inline="always")
def _count_nonfinite(red, green, blue, z):
    """Pixels whose RGB or guide value is NaN or Inf (the vectorised row test first: rows are clean)."""
    if _row_is_finite(red, green, blue, z):
        return 0
    bad = 0
    for x in range(z.shape[0]):
        bad += not np.isfinite(red[x] + green[x] + blue[x] + z[x])
    return bad


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
        out: (3, H, W) float32, written; must not overlap ``image`` (a row of the output is
            accumulated while the same row of the input is still being read).

    Returns:
        Number of pixels whose RGB or guide value is NaN or Inf (0 when all is well).
    """
    _, height, width = image.shape
    grid_h, grid_w, depth, _ = grid.shape
    row_scale = grid_h / full_height
    x_lo = np.empty(width, np.int64)
    x_frac = np.empty(width, np.float32)
    for x in range(width):
        x_lo[x], x_frac[x] = _cell(F32((x + 0.5) * grid_w / width - 0.5), grid_w)
    # Pixels of x cell j are x_start[j]..x_start[j + 1] - 1 (x_lo never decreases).
    x_start = np.zeros(grid_w, np.int64)
    for x in range(width):
        x_start[x_lo[x] + 1] = x + 1
    for j in range(1, grid_w):
        x_start[j] = max(x_start[j], x_start[j - 1])
    m0, m1, m2 = mix[0], mix[1], mix[2]
    bends = _curve_bends(slopes, mix)  # once per image, not per row
    bad = np.zeros(height, np.int64)

    for y in nb.prange(height):
        y0, fy = _cell(F32((first_row + y + 0.5) * row_scale - 0.5), grid_h)
        row = np.empty((grid_w, depth, 12), np.float32)
        for j in range(grid_w):
            for k in range(depth):
                for c in range(12):
                    row[j, k, c] = grid[y0, j, k, c] + fy * (grid[y0 + 1, j, k, c] - grid[y0, j, k, c])
        red, green, blue = image[0, y], image[1, y], image[2, y]
        z = np.empty(width, np.float32)
        if guide_mode == GUIDE_MAP:
            z[:] = guide_map[y]
        elif guide_mode == GUIDE_LINEAR:
            for x in range(width):
                z[x] = m0 * min(max(red[x], F32(0)), F32(1)) + m1 * min(max(green[x], F32(0)), F32(1)) \
                    + m2 * min(max(blue[x], F32(0)), F32(1)) + mix_bias
        else:
            _learned_guide_row(red, green, blue, ccm, ccm_bias, bends, mix_bias, z, np.empty(width, np.float32))
        bad[y] = _count_nonfinite(red, green, blue, z)
        coord = np.empty(width, np.float32)
        for x in range(width):
            coord[x] = _depth_coord(z[x], depth)
        # Accumulated straight into the output row (a row buffer copied out cost a pass more).
        out0, out1, out2 = out[0, y], out[1, y], out[2, y]
        for j in range(grid_w - 1):
            for start in range(x_start[j], x_start[j + 1], BLOCK):
                stop = min(start + BLOCK, x_start[j + 1])
                _blend_block(row[j], row[j + 1], coord[start:stop], x_frac[start:stop], red[start:stop],
                             green[start:stop], blue[start:stop], out0[start:stop], out1[start:stop],
                             out2[start:stop])
    return bad.sum()

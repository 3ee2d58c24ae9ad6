"""Fit a bilateral grid to an (input, output) pair: bilateral guided upsampling.

Chen, Adams, Wadhwa, Hasinoff, "Bilateral Guided Upsampling", SIGGRAPH Asia 2016. An edit is
observed on a low-resolution pair; we find the grid that, sliced with
:func:`~retouch_core.engine.slicing.slice_and_apply`, best reproduces it, then apply that grid at full
resolution. Only colours change, so the full-resolution result keeps every edge and texture of
the input whatever the (possibly slow, possibly content-drifting) editor did.

The problem is linear least squares in the cell values. With ``X_c`` the transposed 3x4 affine
of cell ``c`` (a 4x3 matrix), ``p~ = (r, g, b, 1)`` and ``w_pc`` the trilinear slicing weight of
pixel ``p`` on cell ``c`` (exactly the weights of :mod:`retouch_core.engine.grid`), the prediction is
``sum_c w_pc X_c^T p~``, and we minimise::

    sum_p omega ||sum_c w_pc X_c^T p~_p - o_p||^2                        data (sliced model)
  + sum_axis lambda_axis sum_{c ~ c' along axis} ||X_c - X_c'||^2          smoothness
  + lambda_0 sum_c ||X_c - X_prior||^2                                     prior

``omega = H_g W_g / (number of pixels)`` gives every spatial column of cells a total data weight
of about 1, so the lambdas mean the same at any fitting resolution. ``X_prior`` is the global
least-squares affine (or the identity): it decides cells no pixel reaches.

The normal equations couple each cell with its 26 neighbours only, so the system matrix is
stored as 27 4x4 blocks per cell (the three output channels share the matrix) and solved with
block-Jacobi preconditioned conjugate gradients in float64. Accumulation is vectorised: every
pixel scatters its 27 axis-separable pair weights times its 10 unique moments of ``p~ p~^T``,
and its 8 corner weights times ``p~ o^T``, into its base cell with one ``index_add_``; a loop over
the 64 corner pairs (not over pixels) then distributes the base sums to the cell blocks.

Pairs larger than ``max_pixels`` (default 256 x 256) are shrunk first; a 512 px pair fits in
about 0.2 s on one CPU thread (``python -m retouch_core.apps.bench_fit``). The defaults
(``smoothness = (1e-4, 1e-5)`` for x/y and z, ``identity_prior = 1e-6``) were chosen on kodak24
and cbsd68 photos: lower values fit global and masked edits better (more detail per cell) but
leave poorly observed cells to fewer constraints; raise them for noisy or drifting editors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .grid import AFFINE_COLS, AFFINE_ROWS, GRID_CHANNELS
from .guide import apply_guide
from .resize import resize
from .checks import check_image, split_alpha
from .slicing import _resolve_guide

DEFAULT_MAX_PIXELS = 256 * 256
DEFAULT_SMOOTHNESS = (1e-4, 1e-5)  # (x/y, z), see the module docstring
DEFAULT_IDENTITY_PRIOR = 1e-6
PRIORS = ("global", "identity")

# Unique entries (i <= j) of the symmetric 4x4 moment matrix p~ p~^T.
_TRIU_I, _TRIU_J = torch.triu_indices(AFFINE_COLS, AFFINE_COLS)
_MOMENTS = _TRIU_I.numel()  # 10
_CHUNK_PIXELS = 1 << 14  # pixels per accumulation chunk: bounds the (chunk, 366) float64 buffer


@dataclass(frozen=True)
class NormalEquations:
    """Data term of the fit, before regularisation.

    Attributes:
        blocks: (B, D, H_g, W_g, 27, 4, 4) float64; block ``o`` couples a cell with its
            neighbour at offset ``o = 9 (dz + 1) + 3 (dy + 1) + (dx + 1)``.
        rhs: (B, D, H_g, W_g, 4, 3) float64, ``sum_p omega w_pc p~ o^T``.

    Example:
        >>> rgb = torch.rand(1, 3, 16, 16)
        >>> equations = accumulate_normal_equations(rgb, rgb, rgb.mean(1, keepdim=True), (4, 2, 2))
        >>> equations.size, equations.blocks.shape
        ((4, 2, 2), torch.Size([1, 4, 2, 2, 27, 4, 4]))
    """

    blocks: torch.Tensor
    rhs: torch.Tensor

    @property
    def size(self) -> tuple[int, int, int]:
        """Grid size (D, H_g, W_g)."""
        return tuple(self.rhs.shape[1:4])


# ----------------------------------------------------------------------------- accumulation
def _axis_lower(coord: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower cell index and fraction along one axis, border-clamped as in slicing.

    A size-1 axis has one cell: index 0, fraction 0 (all weight on it).
    """
    if size == 1:
        return torch.zeros_like(coord, dtype=torch.long), torch.zeros_like(coord)
    coord = coord.clamp(0, size - 1)
    lower = coord.floor().clamp(max=size - 2)
    return lower.long(), coord - lower


def _pair_weights(frac: torch.Tensor) -> torch.Tensor:
    """Products of two corner weights along one axis: (...,) -> (..., 3).

    Entry ``t`` is the weight product of a corner pair with ``t`` upper corners:
    ``(1-f)^2``, ``(1-f) f``, ``f^2``.
    """
    return torch.stack([(1 - frac) ** 2, (1 - frac) * frac, frac**2], dim=-1)


def _corner_weights(frac: torch.Tensor) -> torch.Tensor:
    """Lower/upper corner weights along one axis: (...,) -> (..., 2)."""
    return torch.stack([1 - frac, frac], dim=-1)


def accumulate_normal_equations(
    rgb: torch.Tensor, target: torch.Tensor, z: torch.Tensor, size: tuple[int, int, int]
) -> NormalEquations:
    """Scatter an image pair into the normal equations of the sliced grid model.

    Args:
        rgb: (B, 3, h, w) input pixels.
        target: (B, 3, h, w) output pixels.
        z: (B, 1, h, w) guide values at the input pixels.
        size: grid size (D, H_g, W_g).

    Returns:
        :class:`NormalEquations` for a (B, 12, D, H_g, W_g) grid.

    Example:
        >>> rgb = torch.rand(2, 3, 32, 32)
        >>> accumulate_normal_equations(rgb, 0.5 * rgb, rgb.mean(1, keepdim=True), (8, 4, 4)).rhs.shape
        torch.Size([2, 8, 4, 4, 4, 3])
    """
    depth, grid_h, grid_w = size
    batch, _, h, w = rgb.shape
    f64 = dict(device=rgb.device, dtype=torch.float64)
    nb = [max(n - 1, 1) for n in size]  # base cells (lower corners) per axis
    n_base = nb[0] * nb[1] * nb[2]
    omega = grid_h * grid_w / (h * w)

    # x and y weights depend on the column / row only; z on the pixel.
    x0, fx = _axis_lower((torch.arange(w, **f64) + 0.5) * grid_w / w - 0.5, grid_w)
    y0, fy = _axis_lower((torch.arange(h, **f64) + 0.5) * grid_h / h - 0.5, grid_h)
    base_xy = (y0[:, None] * nb[2] + x0[None, :]).reshape(-1)  # (h*w,)
    pair_xy = (_pair_weights(fy)[:, None, :, None] * _pair_weights(fx)[None, :, None, :]).reshape(h * w, 9)
    corner_xy = (_corner_weights(fy)[:, None, :, None] * _corner_weights(fx)[None, :, None, :]).reshape(h * w, 4)

    ones = torch.ones(batch, 1, h, w, **f64)
    p = torch.cat([rgb.to(torch.float64), ones], 1).reshape(batch, AFFINE_COLS, -1).transpose(1, 2)
    o = target.to(torch.float64).reshape(batch, AFFINE_ROWS, -1).transpose(1, 2)  # (B, P, 3)
    z0, fz = _axis_lower(z.to(torch.float64).reshape(batch, -1) * depth - 0.5, depth)

    width_row = 27 * _MOMENTS + 8 * AFFINE_COLS * AFFINE_ROWS  # 270 + 96
    sums = torch.zeros(batch * n_base, width_row, **f64)
    chunk = min(_CHUNK_PIXELS, h * w)
    # One row per pixel, written in place: [27 pair weights x 10 moments, 8 corners x 12].
    rows = torch.empty(batch, chunk, width_row, **f64)
    batch_offset = torch.arange(batch, device=rgb.device)[:, None] * n_base
    for start in range(0, h * w, chunk):
        n = min(chunk, h * w - start)
        sl = slice(start, start + n)
        pc, oc = p[:, sl], o[:, sl]
        moments = pc[..., _TRIU_I] * pc[..., _TRIU_J]  # (B, n, 10)
        cross = (pc[..., :, None] * oc[..., None, :]).reshape(batch, n, 1, 12)
        pair = _pair_weights(fz[:, sl])[..., :, None] * pair_xy[sl, None]  # (B, n, 3, 9) as (tz, ty, tx)
        corner = _corner_weights(fz[:, sl])[..., :, None] * corner_xy[sl, None]  # (B, n, 2, 4)
        pair_out = rows[:, :n, : 27 * _MOMENTS].unflatten(-1, (27, _MOMENTS))
        torch.mul(pair.reshape(batch, n, 27, 1), moments[:, :, None], out=pair_out)
        torch.mul(corner.reshape(batch, n, 8, 1), cross, out=rows[:, :n, 27 * _MOMENTS :].unflatten(-1, (8, 12)))
        base = (z0[:, sl] * (nb[1] * nb[2]) + base_xy[sl] + batch_offset).reshape(-1)
        sums.index_add_(0, base, rows[:, :n].reshape(-1, width_row))
    sums = sums.reshape(batch, *nb, width_row) * omega
    return _distribute(sums, size)


def _distribute(sums: torch.Tensor, size: tuple[int, int, int]) -> NormalEquations:
    """Base-cell sums (B, nz, ny, nx, 366) -> per-cell blocks and right-hand sides."""
    batch = sums.shape[0]
    nb = sums.shape[1:4]
    step = [1 if n > 1 else 0 for n in size]  # a size-1 axis has lower = upper corner
    pair = sums[..., : 27 * _MOMENTS].reshape(batch, *nb, 3, 3, 3, _MOMENTS)
    cross = sums[..., 27 * _MOMENTS :].reshape(batch, *nb, 2, 2, 2, AFFINE_COLS, AFFINE_ROWS)
    packed = sums.new_zeros(batch, *size, 27, _MOMENTS)
    rhs = sums.new_zeros(batch, *size, AFFINE_COLS, AFFINE_ROWS)
    corners = [(kz, ky, kx) for kz in (0, 1) for ky in (0, 1) for kx in (0, 1)]
    for k in corners:
        cell = tuple(slice(ki * s, ki * s + n) for ki, s, n in zip(k, step, nb))
        rhs[(slice(None), *cell)] += cross[..., k[0], k[1], k[2], :, :]
        for l in corners:
            offset = [(li - ki) * s for ki, li, s in zip(k, l, step)]
            o = 9 * (offset[0] + 1) + 3 * (offset[1] + 1) + (offset[2] + 1)
            packed[(slice(None), *cell, o)] += pair[..., k[0] + l[0], k[1] + l[1], k[2] + l[2], :]
    blocks = sums.new_zeros(batch, *size, 27, AFFINE_COLS, AFFINE_COLS)
    blocks[..., _TRIU_I, _TRIU_J] = packed
    blocks[..., _TRIU_J, _TRIU_I] = packed
    return NormalEquations(blocks=blocks, rhs=rhs)


# ----------------------------------------------------------------------------- solving
def _neighbour_index(size: tuple[int, int, int], device) -> torch.Tensor:
    """(N, 27) flat index of each cell's neighbour at each offset; N (a zero row) if outside."""
    depth, grid_h, grid_w = size
    n = depth * grid_h * grid_w
    k, a, b = torch.meshgrid(*(torch.arange(s, device=device) for s in size), indexing="ij")
    index = []
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                kk, aa, bb = k + dz, a + dy, b + dx
                inside = (kk >= 0) & (kk < depth) & (aa >= 0) & (aa < grid_h) & (bb >= 0) & (bb < grid_w)
                flat = (kk * grid_h + aa) * grid_w + bb
                index.append(torch.where(inside, flat, torch.full_like(flat, n)).reshape(-1))
    return torch.stack(index, dim=1)


def _add_regularisation(blocks: torch.Tensor, smoothness: tuple[float, float, float], prior_weight: float) -> torch.Tensor:
    """Add the first-difference smoothness (a 7-point Laplacian) and the prior to the blocks.

    Args:
        blocks: (B, D, H_g, W_g, 27, 4, 4) data blocks.
        smoothness: (lambda_z, lambda_y, lambda_x).

    Returns:
        (B, D, H_g, W_g, 27, 4, 4), a new tensor.
    """
    blocks = blocks.clone()
    size = blocks.shape[1:4]
    eye = torch.eye(AFFINE_COLS, dtype=blocks.dtype, device=blocks.device)
    centre = blocks.new_full(size, prior_weight)
    for axis, lam in enumerate(smoothness):
        if size[axis] < 2 or lam == 0:
            continue
        for sign in (-1, 1):
            # The neighbour at offset `sign` along `axis` exists for all cells but one slab.
            valid = [slice(None)] * 3
            valid[axis] = slice(1, None) if sign < 0 else slice(None, -1)
            offset = [1, 1, 1]
            offset[axis] += sign
            o = 9 * offset[0] + 3 * offset[1] + offset[2]
            blocks[(slice(None), *valid, o)] -= lam * eye
            centre[tuple(valid)] += lam
    blocks[..., 13, :, :] += centre[..., None, None] * eye
    return blocks


def _matvec(blocks: torch.Tensor, neighbours: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply the block-sparse system: (B, N, 4, 27*4) blocks, (B, N, 4, 3) x -> (B, N, 4, 3)."""
    padded = F.pad(x, (0, 0, 0, 0, 0, 1))  # zero row N for missing neighbours
    gathered = padded[:, neighbours]  # (B, N, 27, 4, 3)
    return blocks @ gathered.reshape(*gathered.shape[:2], -1, AFFINE_ROWS)


def _batched_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=(1, 2, 3), keepdim=True)


def conjugate_gradient(
    blocks: torch.Tensor, rhs: torch.Tensor, x0: torch.Tensor, *, tol: float = 1e-5, max_iter: int = 300
) -> torch.Tensor:
    """Block-Jacobi preconditioned CG on the block-sparse system, batched over images.

    Args:
        blocks: (B, D, H_g, W_g, 27, 4, 4) symmetric positive-definite system.
        rhs: (B, D, H_g, W_g, 4, 3); the three columns are solved together (same matrix).
        x0: (B, D, H_g, W_g, 4, 3) starting point.
        tol: stop when ``||r|| <= tol ||rhs||`` for every image.
        max_iter: iteration cap.

    Returns:
        (B, D, H_g, W_g, 4, 3) solution.

    Example:
        >>> rgb = torch.rand(1, 3, 32, 32, dtype=torch.float64)
        >>> eq = accumulate_normal_equations(rgb, rgb, rgb.mean(1, keepdim=True), (2, 2, 2))
        >>> blocks = eq.blocks.clone()
        >>> blocks[..., 13, :, :] += 1e-3 * torch.eye(4, dtype=torch.float64)  # offset 13: the cell itself
        >>> x = conjugate_gradient(blocks, eq.rhs, torch.zeros_like(eq.rhs), tol=1e-10, max_iter=500)
        >>> x.shape
        torch.Size([1, 2, 2, 2, 4, 3])
    """
    batch, *size = rhs.shape[:4]
    n = size[0] * size[1] * size[2]
    neighbours = _neighbour_index(tuple(size), rhs.device)
    flat_blocks = blocks.reshape(batch, n, 27, AFFINE_COLS, AFFINE_COLS)
    precond = torch.linalg.inv(flat_blocks[:, :, 13])  # (B, N, 4, 4)
    a = flat_blocks.permute(0, 1, 3, 2, 4).reshape(batch, n, AFFINE_COLS, 27 * AFFINE_COLS)
    b = rhs.reshape(batch, n, AFFINE_COLS, AFFINE_ROWS)
    x = x0.reshape(batch, n, AFFINE_COLS, AFFINE_ROWS).clone()

    r = b - _matvec(a, neighbours, x)
    zv = precond @ r
    d = zv
    rz = _batched_dot(r, zv)
    threshold = (tol**2) * _batched_dot(b, b).clamp_min(1e-300)
    for _ in range(max_iter):
        if bool((_batched_dot(r, r) <= threshold).all()):
            break
        ad = _matvec(a, neighbours, d)
        alpha = rz / _batched_dot(d, ad).clamp_min(1e-300)
        x = x + alpha * d
        r = r - alpha * ad
        zv = precond @ r
        rz_new = _batched_dot(r, zv)
        d = zv + (rz_new / rz.clamp_min(1e-300)) * d
        rz = rz_new
    return x.reshape(rhs.shape)


def global_affine(equations: NormalEquations, ridge: float = 1e-6) -> torch.Tensor:
    """The least-squares global affine of the pair, ridge-regularised toward the identity.

    Every pixel's trilinear weights sum to 1, so summing all blocks and right-hand sides gives
    the normal equations of a single affine, ``sum_p omega p~ p~^T`` and ``sum_p omega p~ o^T``.

    Returns:
        (B, 4, 3) transposed affine ``A^T`` (the identity for an empty pair).

    Example:
        >>> rgb = torch.rand(1, 3, 32, 32, dtype=torch.float64)
        >>> eq = accumulate_normal_equations(rgb, 0.5 * rgb + 0.1, rgb.mean(1, keepdim=True), (2, 2, 2))
        >>> global_affine(eq)[0].T.numpy().round(3) + 0.0  # A = [0.5 I | 0.1]; + 0.0 folds -0.0
        array([[0.5, 0. , 0. , 0.1],
               [0. , 0.5, 0. , 0.1],
               [0. , 0. , 0.5, 0.1]])
    """
    batch = equations.rhs.shape[0]
    gram = equations.blocks.sum(dim=(1, 2, 3, 4))  # (B, 4, 4)
    cross = equations.rhs.sum(dim=(1, 2, 3))  # (B, 4, 3)
    eye_t = torch.eye(AFFINE_COLS, AFFINE_ROWS, dtype=gram.dtype, device=gram.device)
    # The ridge is relative to the data scale, so it only matters for rank-deficient pairs
    # (e.g. grey images, where r = g = b and the colour gains are not identifiable).
    scale = ridge * (gram.diagonal(dim1=-2, dim2=-1).sum(-1) / AFFINE_COLS).clamp_min(1e-12)
    lhs = gram + scale[:, None, None] * torch.eye(AFFINE_COLS, dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(lhs, cross + scale[:, None, None] * eye_t.expand(batch, -1, -1))


def solve_grid(
    equations: NormalEquations,
    *,
    smoothness=DEFAULT_SMOOTHNESS,
    identity_prior: float = DEFAULT_IDENTITY_PRIOR,
    prior: str = "global",
    tol: float = 1e-5,
    max_iter: int = 300,
) -> torch.Tensor:
    """Regularise and solve the normal equations for the grid.

    Args:
        equations: from :func:`accumulate_normal_equations`.
        smoothness: weight of squared first differences between neighbouring cells; a float
            (all axes), ``(xy, z)`` or ``(x, y, z)``.
        identity_prior: weight ``lambda_0`` pulling every cell toward the prior affine.
        prior: ``"global"`` (the pair's least-squares global affine) or ``"identity"``.
        tol, max_iter: conjugate-gradient stopping rule.

    Returns:
        (B, 12, D, H_g, W_g) float64 grid.

    Example:
        >>> rgb = torch.rand(1, 3, 32, 32)
        >>> solve_grid(accumulate_normal_equations(rgb, rgb, rgb.mean(1, keepdim=True), (4, 4, 4))).shape
        torch.Size([1, 12, 4, 4, 4])
    """
    lam_z, lam_y, lam_x = _smoothness_weights(smoothness)
    if not identity_prior > 0 or not math.isfinite(identity_prior):
        raise ValueError(f"identity_prior must be a finite number > 0 (it keeps the system solvable), got {identity_prior}")
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    batch = equations.rhs.shape[0]
    if prior == "global":
        target = global_affine(equations)
    else:
        target = torch.eye(AFFINE_COLS, AFFINE_ROWS, dtype=torch.float64, device=equations.rhs.device).expand(batch, -1, -1)
    target = target[:, None, None, None]  # (B, 1, 1, 1, 4, 3)
    blocks = _add_regularisation(equations.blocks, (lam_z, lam_y, lam_x), identity_prior)
    rhs = equations.rhs + identity_prior * target
    x = conjugate_gradient(blocks, rhs, target.expand_as(rhs), tol=tol, max_iter=max_iter)
    # (B, D, H_g, W_g, 4, 3) = A^T per cell -> (B, 12, D, H_g, W_g), channel 4 i + j = A[i, j].
    return x.transpose(-1, -2).reshape(*x.shape[:4], GRID_CHANNELS).permute(0, 4, 1, 2, 3).contiguous()


def _smoothness_weights(smoothness) -> tuple[float, float, float]:
    """float | (xy, z) | (x, y, z) -> (lambda_z, lambda_y, lambda_x)."""
    values = (smoothness,) if isinstance(smoothness, (int, float)) else tuple(smoothness)
    if len(values) == 1:
        lam_x = lam_y = lam_z = values[0]
    elif len(values) == 2:
        (lam_x, lam_z), lam_y = values, values[0]
    elif len(values) == 3:
        lam_x, lam_y, lam_z = values
    else:
        raise ValueError(f"smoothness must be a number, (xy, z) or (x, y, z), got {smoothness!r}")
    weights = (float(lam_z), float(lam_y), float(lam_x))
    if not all(math.isfinite(v) and v >= 0 for v in weights):
        raise ValueError(f"smoothness weights must be finite and >= 0, got {smoothness!r}")
    return weights


# ----------------------------------------------------------------------------- image pairs
RESAMPLE = ("antialias", "nearest")


def downsample(image: torch.Tensor, max_pixels: int | None, resample: str = "antialias") -> torch.Tensor:
    """Shrink to at most ``max_pixels`` (aspect kept); no-op if already small enough.

    Args:
        image: (B, C, H, W).
        max_pixels: pixel budget, or None for no limit.
        resample: ``"antialias"`` (bilinear with antialiasing: a clean small image, what an
            editor should see) or ``"nearest"`` (a subset of the pixels, unchanged).

    Returns:
        (B, C, h, w) with ``h * w <= max_pixels``.

    Example:
        >>> downsample(torch.rand(1, 3, 2000, 3000), max_pixels=256 * 384).shape
        torch.Size([1, 3, 256, 384])
    """
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {RESAMPLE}, got {resample!r}")
    height, width = image.shape[-2:]
    if max_pixels is None or height * width <= max_pixels:
        return image
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1 or None, got {max_pixels}")
    scale = math.sqrt(max_pixels / (height * width))
    return _resize(image, (max(1, math.floor(height * scale)), max(1, math.floor(width * scale))), resample)


def _resize(image: torch.Tensor, size: tuple[int, int], resample: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size) with the given resampling (see :func:`downsample`)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    work = image if image.dtype in (torch.float32, torch.float64) else image.float()
    if resample == "nearest":
        return F.interpolate(work, size=size, mode="nearest-exact")
    return resize(work, size)


def _low_res_guide(guide, rgb: torch.Tensor, low: torch.Tensor, resample: str = "antialias") -> torch.Tensor:
    """Guide values (B, 1, h, w) at the low-resolution pixels ``low`` (B, 3, h, w) of ``rgb``.

    Parametric guides are evaluated on the low-resolution image (as slicing evaluates them on
    whatever image it is given); guide maps are shrunk like the image.
    """
    guide_map, params = _resolve_guide(guide, rgb.to(torch.float64) if rgb.dtype == torch.float64 else rgb.float())
    if guide_map is not None:
        return _resize(guide_map, tuple(low.shape[-2:]), resample).expand(low.shape[0], -1, -1, -1)
    return apply_guide(low.to(params.ccm.dtype), params)


def _check_sizes(depth: int, height: int, width: int) -> tuple[int, int, int]:
    size = (depth, height, width)
    if not all(isinstance(n, int) and n >= 1 for n in size):
        raise ValueError(f"grid size must be positive integers, got D={depth}, H_g={height}, W_g={width}")
    return size


@torch.no_grad()
def fit_grid(
    input: torch.Tensor,
    output: torch.Tensor,
    *,
    depth: int = 8,
    height: int = 16,
    width: int = 16,
    guide=None,
    smoothness=DEFAULT_SMOOTHNESS,
    identity_prior: float = DEFAULT_IDENTITY_PRIOR,
    prior: str = "global",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    resample: str = "antialias",
    tol: float = 1e-5,
    max_iter: int = 300,
) -> torch.Tensor:
    """Fit the grid that maps ``input`` to ``output`` through slice-and-apply.

    Args:
        input: (B, C, H, W) float in [0, 1], C in {1, 3, 4} (alpha ignored).
        output: (B, C', H, W), C' in {1, 3, 4}: the edited input (alpha ignored).
        depth, height, width: grid size D, H_g, W_g.
        guide: as in :func:`~retouch_core.engine.slicing.slice_and_apply` (None = luminance); use the
            same guide when applying the grid. Guide maps are (B or 1, 1, H, W).
        smoothness: first-difference weights, a float, ``(xy, z)`` or ``(x, y, z)``.
        identity_prior: weak pull toward the prior affine, for cells no pixel reaches.
        prior: ``"global"`` (the pair's global least-squares affine) or ``"identity"``.
        max_pixels: the pair is shrunk to at most this many pixels first; None fits at full size.
        resample: how the pair is shrunk. ``"antialias"`` (default) averages neighbouring
            pixels, which also averages away small misalignments: 3-4 dB better than
            ``"nearest"`` when the output is shifted by 1-2 px, as generative editors do.
            ``"nearest"`` keeps a subset of true pixel pairs: 2-7 dB better for pixel-aligned
            edits (an exported before/after), because an average of edited pixels is not the
            edit of the averaged pixels at edges (``python -m retouch_core.apps.bench_fit
            --resample nearest``).
        tol, max_iter: conjugate-gradient stopping rule.

    Returns:
        (B, 12, D, H_g, W_g) grid, float64 if ``input`` is float64, else float32. The fit is a
        closed-form solve and is not differentiable (it runs under ``torch.no_grad``).

    Example:
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> before = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> grid = fit_grid(before, 0.8 * before + 0.1)  # a matte look: an affine, fitted exactly
        >>> grid.shape, bool((slice_and_apply(before, grid) - (0.8 * before + 0.1)).abs().max() < 1e-4)
        (torch.Size([1, 12, 8, 16, 16]), True)
    """
    size = _check_sizes(depth, height, width)
    check_image(input, "input")
    check_image(output, "output")
    if output.shape[0] != input.shape[0] or output.shape[-2:] != input.shape[-2:]:
        raise ValueError(
            f"output must have the input's batch and size {(input.shape[0], *input.shape[-2:])}, "
            f"got shape {tuple(output.shape)}"
        )
    rgb, out = split_alpha(input)[0], split_alpha(output)[0]
    low = downsample(rgb, max_pixels, resample)
    z = _low_res_guide(guide, rgb, low, resample)
    equations = accumulate_normal_equations(low, downsample(out, max_pixels, resample), z, size)
    grid = solve_grid(
        equations, smoothness=smoothness, identity_prior=identity_prior, prior=prior, tol=tol, max_iter=max_iter
    )
    return grid.to(torch.float64 if input.dtype == torch.float64 else torch.float32)


@torch.no_grad()
def fit_grid_to_edit(
    image: torch.Tensor,
    edit_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    depth: int = 8,
    height: int = 16,
    width: int = 16,
    guide=None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    **solver,
) -> torch.Tensor:
    """Run ``edit_fn`` at low resolution only and fit a grid that replays it at any resolution.

    ``slice_and_apply(image, fit_grid_to_edit(image, edit_fn), guide)`` is then a full-resolution,
    content-preserving version of ``edit_fn(image)``: a slow or generative editor is run on at
    most ``max_pixels`` pixels.

    Args:
        image: (B, C, H, W) float in [0, 1], C in {1, 3, 4}.
        edit_fn: maps (B, 3, h, w) RGB (antialiased, float32 or float64) to (B, 3 or 4, h, w);
            called once, without autograd.
        depth, height, width: grid size D, H_g, W_g.
        guide: as in :func:`fit_grid` (maps at the full image size).
        max_pixels: resolution at which ``edit_fn`` runs.
        **solver: ``smoothness``, ``identity_prior``, ``prior``, ``tol``, ``max_iter`` of
            :func:`solve_grid`.

    Returns:
        (B, 12, D, H_g, W_g) grid (float64 for a float64 image, else float32).

    Example:
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> colours = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> photo = torch.nn.functional.interpolate(colours, size=(512, 768), mode="bilinear")
        >>> grid = fit_grid_to_edit(photo, torch.sqrt, max_pixels=128 * 192)  # sqrt runs at 128x192
        >>> bool((slice_and_apply(photo, grid) - photo.sqrt()).abs().mean() < 2e-3)
        True
    """
    size = _check_sizes(depth, height, width)
    check_image(image)
    rgb = split_alpha(image)[0]
    rgb = rgb if rgb.dtype in (torch.float32, torch.float64) else rgb.float()
    low = downsample(rgb, max_pixels)
    edited = edit_fn(low.clone())  # a copy: an in-place editor must not touch the caller's image
    check_image(edited, "edit_fn output")
    if edited.shape[0] != low.shape[0] or edited.shape[-2:] != low.shape[-2:]:
        raise ValueError(
            f"edit_fn must keep batch and size {(low.shape[0], *low.shape[-2:])}, got shape {tuple(edited.shape)}"
        )
    equations = accumulate_normal_equations(low, split_alpha(edited)[0], _low_res_guide(guide, rgb, low), size)
    grid = solve_grid(equations, **solver)
    return grid.to(torch.float64 if image.dtype == torch.float64 else torch.float32)

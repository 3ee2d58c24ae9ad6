"""Slice-and-apply: turn a bilateral grid into per-pixel affines and apply them.

For every pixel, the grid is sampled trilinearly at ``(x, y, z)`` with ``z`` the guide value
(coordinate convention in :mod:`retouch_core.engine.grid`) and the sampled 3x4 affine is applied to
the pixel's RGB. Three interchangeable backends give the same numbers:

``grid_sample``
    Reference path on ``torch.nn.functional.grid_sample`` (5-D, ``align_corners=False``,
    border padding). Differentiable w.r.t. image, grid and guide; any device with 5-D
    grid_sample.
``gather``
    The same interpolation written with ``torch.gather``, for devices without 5-D
    grid_sample (Apple MPS). Differentiable.
``cpu_kernel``
    A fused numba kernel (:mod:`retouch_core.engine._cpu_kernel`): one pass, no full-size
    intermediates, about the cost of a global 3x4 colour matrix. Inference only (no autograd).

``backend="auto"`` takes ``cpu_kernel`` for CPU inference, ``gather`` on MPS and
``grid_sample`` otherwise. The torch paths work in row bands of at most ``max_tile_pixels``
pixels, so memory stays bounded at any resolution; each pixel's result does not depend on
the banding.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .grid import AFFINE_COLS, AFFINE_ROWS, GRID_CHANNELS, check_grid, identity_affine
from .guide import GuideParams, apply_guide
from .checks import check_image, join_alpha, split_alpha

BACKENDS = ("auto", "grid_sample", "gather", "cpu_kernel")
DEFAULT_TILE_PIXELS = 1 << 18


def slice_and_apply(
    image: torch.Tensor,
    grid: torch.Tensor,
    guide=None,
    *,
    backend: str = "auto",
    max_tile_pixels: int = DEFAULT_TILE_PIXELS,
    band: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Apply a bilateral grid to an image at the image's own resolution.

    Args:
        image: (B, C, H, W) float in [0, 1]; C = 3, 1 (expanded to RGB) or 4 (alpha kept).
        grid: (B or 1, 12, D, H_g, W_g) affine grid; batch 1 is shared by all images.
        guide: ``None`` for the luminance guide, a guide map (B or 1, 1, H, W) / (B or 1, H, W),
            a :class:`GuideParams`, or a module with a ``params()`` method such as
            :class:`~retouch_core.engine.guide.LearnedGuide`.
        backend: one of ``"auto"``, ``"grid_sample"``, ``"gather"``, ``"cpu_kernel"``.
        max_tile_pixels: pixels per row band on the torch paths (bounds peak memory).
        band: ``(first_row, full_height)`` when ``image`` (and a guide map) hold only rows
            ``first_row..first_row + H - 1`` of a ``full_height``-tall image: each row is then
            sliced exactly as in the whole image, so an image can be edited band by band.

    Returns:
        (B, 3 or 4, H, W) in the image's dtype; a new tensor, inputs are never modified.

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> warm = grid_from_affine(torch.diag(torch.tensor([1.2, 1.0, 0.8, 0.0]))[:3])
        >>> slice_and_apply(torch.full((1, 3, 2160, 3840), 0.5), warm)[0, :, 0, 0]
        tensor([0.6000, 0.5000, 0.4000])
    """
    check_image(image, check_finite=False)  # each backend checks finiteness in its own pass
    check_grid(grid, batch=image.shape[0])
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if max_tile_pixels < 1:
        raise ValueError(f"max_tile_pixels must be >= 1, got {max_tile_pixels}")
    rgb, alpha = split_alpha(image)
    compute_dtype = torch.float64 if torch.float64 in (image.dtype, grid.dtype) else torch.float32
    rgb = rgb.to(compute_dtype)
    grid = grid.to(device=image.device, dtype=compute_dtype)
    guide_map, params = _resolve_guide(guide, rgb)
    first_row, full_height = band if band is not None else (0, rgb.shape[-2])
    if not 0 <= first_row <= full_height - rgb.shape[-2]:
        raise ValueError(f"band {band} does not hold the image's {rgb.shape[-2]} rows")

    chosen = _choose_backend(backend, rgb, grid, guide_map, params)
    if _is_identity(grid) and not _needs_grad(grid):
        # Strength 0 and "no edit" must give the input bit for bit: interpolating identity
        # affines is exact only up to float rounding, which 8-bit savers that truncate
        # (ComfyUI's SaveImage) turn into a 1/255 change.
        _check_finite(rgb, guide_map)
        out = rgb.clone()
    elif chosen == "cpu_kernel":
        out = _slice_cpu_kernel(rgb, grid, guide_map, params, first_row, full_height)
    else:
        _check_finite(rgb, guide_map)
        sampler = _sample_grid_sample if chosen == "grid_sample" else _sample_gather
        out = _slice_in_bands(rgb, grid, guide_map, params, sampler, max_tile_pixels, first_row, full_height)
    return join_alpha(out.to(image.dtype), alpha)


def new_cpu_image(*shape: int) -> torch.Tensor:
    """An uninitialised float32 CPU tensor whose memory numpy allocated.

    numpy asks Linux for transparent huge pages on large arrays (``madvise``), torch's allocator
    does not: touching a fresh 4K float image costs about 24000 page faults in 4 KB pages, which
    on a VM took longer than the slice itself. The tensor is an ordinary torch tensor.

    Example:
        >>> new_cpu_image(1, 3, 4, 5).shape
        torch.Size([1, 3, 4, 5])
    """
    return torch.from_numpy(np.empty(shape, np.float32))


def _check_finite(rgb: torch.Tensor, guide_map: torch.Tensor | None) -> None:
    if not torch.isfinite(rgb).all():
        raise ValueError("image contains NaN or Inf values")
    if guide_map is not None and not torch.isfinite(guide_map).all():
        raise ValueError("guide contains NaN or Inf values")


def _is_identity(grid: torch.Tensor) -> bool:
    """Whether every cell of ``grid`` holds exactly the identity affine."""
    eye = identity_affine(grid.device, grid.dtype).reshape(1, GRID_CHANNELS, 1, 1, 1)
    return bool((grid == eye).all())


def _resolve_guide(guide, rgb: torch.Tensor) -> tuple[torch.Tensor | None, GuideParams | None]:
    """Normalise the ``guide`` argument to (map (B|1, 1, H, W), None) or (None, params)."""
    batch, _, height, width = rgb.shape
    if guide is None:
        return None, GuideParams.identity(device=rgb.device, dtype=rgb.dtype)
    if hasattr(guide, "params") and callable(guide.params):
        guide = guide.params()
    if isinstance(guide, GuideParams):
        guide.check(batch=batch)
        return None, guide.to(device=rgb.device, dtype=rgb.dtype)
    if not isinstance(guide, torch.Tensor):
        raise TypeError(
            "guide must be None, a guide map tensor, GuideParams or a LearnedGuide, "
            f"got {type(guide).__name__}"
        )
    guide_map = guide.unsqueeze(1) if guide.dim() == 3 else guide
    if guide_map.dim() != 4 or guide_map.shape[1] != 1 or guide_map.shape[0] not in (1, batch):
        raise ValueError(
            f"guide map must have shape (B, 1, H, W) or (B, H, W) with B in (1, {batch}), "
            f"got {tuple(guide.shape)}"
        )
    if guide_map.shape[-2:] != (height, width):
        raise ValueError(
            f"guide map is {tuple(guide_map.shape[-2:])} but the image is {(height, width)}; "
            "compute the guide at the image's resolution"
        )
    return guide_map.to(device=rgb.device, dtype=rgb.dtype), None


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _choose_backend(backend, rgb, grid, guide_map, params) -> str:
    if backend != "auto":
        if backend == "cpu_kernel":
            _require_cpu_kernel(rgb, grid, guide_map, params)
        return backend
    param_tensors = params.tensors() if params is not None else ()
    if (
        rgb.device.type == "cpu"
        and rgb.dtype == torch.float32
        and not _needs_grad(rgb, grid, guide_map, *param_tensors)
        and _cpu_kernel() is not None
    ):
        return "cpu_kernel"
    return "gather" if rgb.device.type == "mps" else "grid_sample"


# The kernel is imported under this one name whatever package holds it (installed
# retouch_core, or the ComfyUI pack folder imported under a path-derived name): numba's
# on-disk cache records the module name and fails to load under any other.
KERNEL_MODULE = "instantretouch_cpu_kernel"


_KERNEL_LOCK = threading.Lock()  # one import of the kernel, whichever thread asks first


def _cpu_kernel():
    """The numba kernel module (compiled, or loaded from the cache), or None without numba."""
    with _KERNEL_LOCK:
        if KERNEL_MODULE in sys.modules:
            return sys.modules[KERNEL_MODULE]
        if importlib.util.find_spec("numba") is None:
            return None
        spec = importlib.util.spec_from_file_location(KERNEL_MODULE, Path(__file__).with_name("_cpu_kernel.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[KERNEL_MODULE] = module  # before running it: numba's cache looks it up
        try:
            with _keep_torch_thread_count():  # the kernel is compiled (or loaded) right here
                spec.loader.exec_module(module)
        except ImportError:
            del sys.modules[KERNEL_MODULE]
            return None
        return module


def load_cpu_kernel_in_background() -> threading.Thread:
    """Start importing numba and loading (or compiling) the CPU kernel in a daemon thread.

    Apps call this at start-up (the ComfyUI pack on import, the CLI before it reads the
    image), so the first slice finds the kernel ready instead of paying for numba's import
    and the cache load (or, on the very first run, the compilation). Safe to call repeatedly.

    Example:
        >>> thread = load_cpu_kernel_in_background()
        >>> thread.join(); thread.is_alive()
        False
    """
    thread = threading.Thread(target=_cpu_kernel, name="instantretouch-kernel", daemon=True)
    thread.start()
    return thread


def _require_cpu_kernel(rgb, grid, guide_map, params) -> None:
    if _cpu_kernel() is None:
        raise RuntimeError("backend='cpu_kernel' needs numba, which could not be imported")
    if rgb.device.type != "cpu":
        raise ValueError(f"backend='cpu_kernel' runs on CPU tensors, got device {rgb.device}")
    param_tensors = params.tensors() if params is not None else ()
    if _needs_grad(rgb, grid, guide_map, *param_tensors):
        raise ValueError("backend='cpu_kernel' has no autograd; use 'grid_sample' for training")


def _slice_cpu_kernel(rgb, grid, guide_map, params, first_row, full_height) -> torch.Tensor:
    kernel = _cpu_kernel()
    batch, _, height, width = rgb.shape
    image = rgb.float().contiguous()
    # The kernel assumes >= 2 cells per axis; replicating a single cell changes no value.
    grid = grid.float().expand(-1, -1, *(max(2, n) for n in grid.shape[2:]))
    grid_cl = grid.permute(0, 3, 4, 2, 1).contiguous()  # (N, H_g, W_g, D, 12)
    out = new_cpu_image(batch, 3, height, width)
    with _torch_thread_budget(kernel):
        for b in range(batch):
            if guide_map is not None:
                mode, zmap = kernel.GUIDE_MAP, guide_map[b % guide_map.shape[0], 0].float().contiguous().numpy()
            else:
                mode, zmap = _guide_mode(params.select(b), kernel), np.zeros((1, 1), np.float32)
            p = [t[0].detach().float().contiguous().numpy() for t in (params or GuideParams.identity()).select(b).tensors()]
            bad = kernel.slice_apply_image(image[b].numpy(), first_row, full_height, grid_cl[b % grid_cl.shape[0]].numpy(),
                                           mode, zmap, *p[:4], np.float32(p[4]), out[b].numpy())
            if bad:
                culprit = "guide" if torch.isfinite(image[b]).all() else "image"
                raise ValueError(f"{culprit} contains NaN or Inf values (image {b} of the batch)")
    return out


@contextlib.contextmanager
def _torch_thread_budget(kernel):
    """Run numba on torch's thread count and leave that count as it was."""
    with _keep_torch_thread_count() as threads:
        kernel.set_thread_count(threads)
        yield


@contextlib.contextmanager
def _keep_torch_thread_count():
    """Leave torch's thread count as it was, and yield it.

    Numba's OpenMP layer starts its pool (when the parallel kernel is compiled or first run)
    with ``omp_set_num_threads(NUMBA_NUM_THREADS)``, and OpenMP's count is torch's too:
    without this, the kernel would silently undo the user's ``torch.set_num_threads`` /
    ``OMP_NUM_THREADS`` for every later torch op.
    """
    threads = torch.get_num_threads()
    try:
        yield threads
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _guide_mode(params: GuideParams, kernel) -> int:
    """GUIDE_LINEAR when colour mix and curves are the identity (the luminance guide)."""
    identity = GuideParams.identity(knots=params.knots, dtype=params.ccm.dtype)
    is_linear = all(torch.equal(a, b) for a, b in zip(params.tensors()[:3], identity.tensors()[:3]))
    return kernel.GUIDE_LINEAR if is_linear else kernel.GUIDE_LEARNED


def _slice_in_bands(rgb, grid, guide_map, params, sampler, max_tile_pixels, first_row, full_height) -> torch.Tensor:
    """Run ``sampler`` over row bands and apply the sampled affines."""
    batch, _, height, width = rgb.shape
    rows = max(1, max_tile_pixels // width)
    out = torch.empty_like(rgb)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band = rgb[:, :, top:bottom]
        if guide_map is not None:
            z = guide_map[:, :, top:bottom].expand(batch, -1, -1, -1)
        else:
            z = apply_guide(band, params)
        affine = sampler(grid, z, first_row + top, full_height, width)
        out[:, :, top:bottom] = apply_affine(affine, band)
    return out


def apply_affine(affine: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """Per-pixel affines applied to pixels.

    Args:
        affine: (B, 12, H, W) row-major 3x4 affines (offset last).
        rgb: (B, 3, H, W).

    Returns:
        (B, 3, H, W).

    Example:
        >>> fade = torch.cat([0.8 * torch.eye(3), torch.full((3, 1), 0.1)], 1)  # 0.8 p + 0.1
        >>> apply_affine(fade.reshape(1, 12, 1, 1).expand(1, 12, 2, 2), torch.ones(1, 3, 2, 2))[0, :, 0, 0]
        tensor([0.9000, 0.9000, 0.9000])
    """
    b, _, h, w = affine.shape
    a = affine.view(b, AFFINE_ROWS, AFFINE_COLS, h, w)
    return (a[:, :, :3] * rgb.unsqueeze(1)).sum(2) + a[:, :, 3]


def _pixel_centres(start: int, stop: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel centres of rows/columns ``start..stop-1`` of ``length``, normalised to (0, 1)."""
    return (torch.arange(start, stop, device=like.device, dtype=like.dtype) + 0.5) / length


def _sample_grid_sample(grid, z, top, height, width) -> torch.Tensor:
    """Trilinear slice with 5-D grid_sample: (B, 12, h, W) affines for rows top..top+h-1."""
    batch, _, rows, _ = z.shape
    ys = _pixel_centres(top, top + rows, height, z).view(1, rows, 1).expand(batch, rows, width)
    xs = _pixel_centres(0, width, width, z).view(1, 1, width).expand(batch, rows, width)
    coords = torch.stack([xs, ys, z[:, 0]], dim=-1).unsqueeze(1) * 2 - 1  # (B, 1, h, W, 3)
    sampled = F.grid_sample(
        grid.expand(batch, -1, -1, -1, -1), coords, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[:, :, 0]


def _axis_corners(coord: torch.Tensor, size: int):
    """Lower/upper cell index and fraction along one grid axis, border-clamped."""
    if size == 1:
        zero = torch.zeros_like(coord, dtype=torch.long)
        return zero, zero, torch.zeros_like(coord)
    coord = coord.clamp(0, size - 1)
    lower = coord.detach().floor().clamp(max=size - 2)
    return lower.long(), lower.long() + 1, coord - lower


def _sample_gather(grid, z, top, height, width) -> torch.Tensor:
    """Trilinear slice with explicit gathers (no grid_sample): (B, 12, h, W) affines."""
    batch, _, rows, _ = z.shape
    _, _, depth, grid_h, grid_w = grid.shape
    y0, y1, fy = _axis_corners(_pixel_centres(top, top + rows, height, z) * grid_h - 0.5, grid_h)
    x0, x1, fx = _axis_corners(_pixel_centres(0, width, width, z) * grid_w - 0.5, grid_w)
    z0, z1, fz = _axis_corners(z[:, 0] * depth - 0.5, depth)  # (B, h, W)
    y0, y1, fy = (t.view(1, rows, 1) for t in (y0, y1, fy))
    x0, x1, fx = (t.view(1, 1, width) for t in (x0, x1, fx))
    cells = grid.reshape(grid.shape[0], GRID_CHANNELS, -1).expand(batch, -1, -1)
    affine = 0
    for zi, wz in ((z0, 1 - fz), (z1, fz)):
        for yi, wy in ((y0, 1 - fy), (y1, fy)):
            for xi, wx in ((x0, 1 - fx), (x1, fx)):
                index = ((zi * grid_h + yi) * grid_w + xi).reshape(batch, 1, -1)
                corner = torch.gather(cells, 2, index.expand(-1, GRID_CHANNELS, -1))
                affine = affine + (wz * wy * wx).reshape(batch, 1, -1) * corner
    return affine.view(batch, GRID_CHANNELS, rows, width)

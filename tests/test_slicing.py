"""slice_and_apply against independent references: a naive per-pixel loop, closed forms."""

import math

import kornia
import numpy as np
import pytest
import torch

from retouch_core.engine.grid import grid_from_affine, identity_grid, scale_grid
from retouch_core.engine.guide import GuideParams, LearnedGuide, apply_curves, apply_guide, luminance_guide
from retouch_core.engine.slicing import slice_and_apply

BACKENDS = ["grid_sample", "gather", "cpu_kernel"]


def naive_slice(image, grid, guide):
    """Per-pixel loop, written from the convention in retouch_core.engine.grid's docstring."""
    b_, _, h, w = image.shape
    _, _, d, gh, gw = grid.shape
    out = np.zeros((b_, 3, h, w))
    img, g, z = image.double().numpy(), grid.double().numpy(), guide.double().numpy()

    def corners(pos, size):
        pos = min(max(pos, 0.0), size - 1.0)
        lo = min(math.floor(pos), max(size - 2, 0))
        hi = min(lo + 1, size - 1)
        return ((lo, 1.0 - (pos - lo)), (hi, pos - lo))

    for n in range(b_):
        gn = g[n % g.shape[0]]
        for y in range(h):
            for x in range(w):
                affine = np.zeros(12)
                for k, wk in corners(z[n % z.shape[0], 0, y, x] * d - 0.5, d):
                    for a, wa in corners((y + 0.5) * gh / h - 0.5, gh):
                        for c, wc in corners((x + 0.5) * gw / w - 0.5, gw):
                            affine += wk * wa * wc * gn[:, k, a, c]
                m = affine.reshape(3, 4)
                out[n, :, y, x] = m[:, :3] @ img[n, :, y, x] + m[:, 3]
    return torch.from_numpy(out)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("grid_size", [(4, 3, 5), (1, 1, 1), (2, 1, 3)])
def test_matches_naive_loop(backend, grid_size, rng):
    image = torch.rand(2, 3, 7, 9, generator=rng)
    grid = torch.randn(1, 12, *grid_size, generator=rng)
    guide = luminance_guide(image)
    expected = naive_slice(image, grid, guide)
    got = slice_and_apply(image, grid, backend=backend)
    torch.testing.assert_close(got.double(), expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_smooth_photo_wider_than_a_kernel_block_matches_naive_loop(backend, rng):
    # On smooth content each block of the CPU kernel reaches only a few depth nodes and skips
    # the others: a node skipped one too early or too late shows up against the naive loop.
    ramp = torch.linspace(0, 1, 300).expand(1, 1, 12, 300)
    image = (torch.cat([ramp, ramp.flip(-1), 0.5 * ramp + 0.2], 1) + 0.01 * torch.rand(1, 3, 12, 300, generator=rng)).clamp(0, 1)
    grid = torch.randn(1, 12, 8, 2, 5, generator=rng)
    expected = naive_slice(image, grid, luminance_guide(image))
    torch.testing.assert_close(slice_and_apply(image, grid, backend=backend).double(), expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_guide_map_out_of_range_is_border_clamped(backend, rng):
    image = torch.rand(1, 3, 6, 5, generator=rng)
    grid = torch.randn(2, 12, 3, 2, 2, generator=rng)
    guide = torch.rand(2, 1, 6, 5, generator=rng) * 1.6 - 0.3
    expected = naive_slice(image.expand(2, -1, -1, -1), grid, guide)
    got = slice_and_apply(image.expand(2, -1, -1, -1), grid, guide, backend=backend)
    torch.testing.assert_close(got.double(), expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_identity_grid_returns_input(backend, rng):
    image = torch.rand(2, 3, 11, 13, generator=rng)
    out = slice_and_apply(image, identity_grid(depth=5, height=3, width=4), backend=backend)
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_grid_is_global_matrix(backend, rng):
    image = torch.rand(1, 3, 16, 12, generator=rng)
    affine = torch.randn(3, 4, generator=rng)
    out = slice_and_apply(image, grid_from_affine(affine, 4, 3, 3), backend=backend)
    expected = torch.einsum("ij,bjhw->bihw", affine[:, :3], image) + affine[:, 3].view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grid_along_z_reproduces_tone_curve(backend):
    depth = 8
    centres = (np.arange(depth) + 0.5) / depth
    curve = np.sqrt(centres)  # any tone curve, sampled at the z cell centres
    affine = torch.zeros(1, 12, depth, 1, 1)
    for i in range(3):
        affine[0, 4 * i + 3, :, 0, 0] = torch.from_numpy(curve).float()
    grey = torch.linspace(0, 1, 101).view(1, 1, 1, 101).expand(1, 3, 2, 101)
    out = slice_and_apply(grey, affine, backend=backend)
    expected = np.interp(grey[0, 0, 0].numpy(), centres, curve)  # np.interp clamps at the ends too
    for i in range(3):
        np.testing.assert_allclose(out[0, i, 0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0, 2.0, -1.0])
def test_strength_is_linear_and_zero_is_exact(strength, rng):
    image = torch.rand(1, 3, 9, 10, generator=rng)
    grid = identity_grid(depth=4, height=3, width=3) + 0.2 * torch.randn(1, 12, 4, 3, 3, generator=rng)
    full = slice_and_apply(image, grid)
    out = slice_and_apply(image, scale_grid(grid, strength))
    torch.testing.assert_close(out, image + strength * (full - image), atol=2e-6, rtol=0)
    if strength == 0.0:
        assert torch.equal(scale_grid(grid, 0.0), identity_grid(depth=4, height=3, width=3))
        assert torch.equal(out, image)  # bit for bit, whatever the backend rounds


def test_strength_per_grid(rng):
    grid = torch.randn(2, 12, 2, 2, 2, generator=rng)
    scaled = scale_grid(grid, torch.tensor([0.0, 1.0]))
    assert torch.equal(scaled[1], grid[1])
    assert torch.equal(scaled[0], identity_grid(depth=2, height=2, width=2)[0])


@pytest.mark.parametrize("backend", ["grid_sample", "gather"])
def test_tiled_equals_untiled(backend, rng):
    image = torch.rand(2, 3, 23, 17, generator=rng)
    grid = torch.randn(1, 12, 4, 3, 5, generator=rng)
    untiled = slice_and_apply(image, grid, backend=backend, max_tile_pixels=10**9)
    for tile in (1, 17, 40, 100):
        tiled = slice_and_apply(image, grid, backend=backend, max_tile_pixels=tile)
        torch.testing.assert_close(tiled, untiled, atol=1e-7, rtol=0)


def random_guide(batch, rng, knots=16):
    base = GuideParams.identity(batch, knots=knots)
    return GuideParams(
        ccm=base.ccm + 0.3 * torch.randn(batch, 3, 3, generator=rng),
        ccm_bias=0.1 * torch.randn(batch, 3, generator=rng),
        slopes=2 * torch.rand(batch, 3, knots, generator=rng),
        mix=torch.rand(batch, 3, generator=rng) * 0.6,
        mix_bias=0.05 * torch.randn(batch, generator=rng),
    )


@pytest.mark.parametrize(("guide_batch", "knots"), [(1, 16), (3, 16), (1, 7)])  # 7: not a multiple of the kernel's 4
def test_fast_paths_match_reference(guide_batch, knots, rng):
    image = torch.rand(3, 3, 31, 45, generator=rng)
    grid = torch.randn(3, 12, 8, 4, 6, generator=rng)
    guide = random_guide(guide_batch, rng, knots)
    reference = slice_and_apply(image, grid, guide, backend="grid_sample")
    for backend in ("gather", "cpu_kernel", "auto"):
        torch.testing.assert_close(slice_and_apply(image, grid, guide, backend=backend), reference, atol=2e-5, rtol=0)


def test_learned_guide_starts_as_luminance(rng):
    image = torch.rand(2, 3, 8, 8, generator=rng)
    torch.testing.assert_close(LearnedGuide()(image), kornia.color.rgb_to_grayscale(image), atol=1e-6, rtol=0)


def test_curves_are_piecewise_linear_and_monotone(rng):
    slopes = 2 * torch.rand(1, 3, 5, generator=rng)
    values = torch.linspace(-0.2, 1.2, 141).view(1, 1, 1, 141).expand(1, 3, 1, 141)
    curved = apply_curves(values, slopes)
    knots = np.linspace(0, 1, 6)
    for c in range(3):
        at_knots = np.concatenate([[0], np.cumsum(slopes[0, c].numpy() / 5)])
        np.testing.assert_allclose(curved[0, c, 0].numpy(), np.interp(values[0, c, 0].numpy(), knots, at_knots), atol=1e-6)
        assert (np.diff(curved[0, c, 0].numpy()) >= -1e-7).all()


def test_gradcheck_wrt_image_grid_and_guide():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    grid = torch.randn(1, 12, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    base = random_guide(1, torch.Generator().manual_seed(1)).to(dtype=torch.float64)
    tensors = [t.clone().requires_grad_(True) for t in base.tensors()]

    for backend in ("grid_sample", "gather"):
        def fn(img, grd, *guide_tensors):
            return slice_and_apply(img, grd, GuideParams(*guide_tensors), backend=backend)

        assert torch.autograd.gradcheck(fn, (image, grid, *tensors), eps=1e-6, atol=1e-5)


def test_learned_guide_receives_gradients():
    torch.manual_seed(0)
    guide = LearnedGuide()
    image = torch.rand(1, 3, 8, 8)
    grid = identity_grid(depth=4, height=2, width=2) + 0.3 * torch.randn(1, 12, 4, 2, 2)
    slice_and_apply(image, grid, guide).square().mean().backward()
    for name, p in guide.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_auto_uses_differentiable_path_when_grad_needed():
    grid = torch.randn(1, 12, 2, 2, 2, requires_grad=True)
    out = slice_and_apply(torch.rand(1, 3, 4, 4), grid)
    assert out.requires_grad
    with pytest.raises(ValueError, match="no autograd"):
        slice_and_apply(torch.rand(1, 3, 4, 4), grid, backend="cpu_kernel")


@pytest.mark.parametrize("backend", BACKENDS)
def test_channels_and_dtypes(backend, rng):
    grid = identity_grid(depth=2, height=2, width=2) * 0.5  # halves RGB, zero offsets
    grey = torch.rand(1, 1, 5, 6, generator=rng)
    out = slice_and_apply(grey, grid, backend=backend)
    assert out.shape == (1, 3, 5, 6)
    torch.testing.assert_close(out, 0.5 * grey.expand(1, 3, 5, 6), atol=1e-6, rtol=0)

    rgba = torch.rand(2, 4, 5, 6, generator=rng)
    out = slice_and_apply(rgba, grid, backend=backend)
    assert torch.equal(out[:, 3], rgba[:, 3])
    torch.testing.assert_close(out[:, :3], 0.5 * rgba[:, :3], atol=1e-6, rtol=0)

    for dtype in (torch.float16, torch.bfloat16):
        image = torch.rand(1, 3, 5, 6, generator=rng).to(dtype)
        out = slice_and_apply(image, grid, backend=backend)
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), 0.5 * image.float(), atol=1e-2, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [(1, 1), (1, 17), (17, 1)])
def test_tiny_images(backend, size, rng):
    image = torch.rand(1, 3, *size, generator=rng)
    grid = torch.randn(1, 12, 3, 4, 4, generator=rng)
    expected = naive_slice(image, grid, luminance_guide(image))
    torch.testing.assert_close(slice_and_apply(image, grid, backend=backend).double(), expected, atol=2e-5, rtol=0)


def test_inputs_are_not_modified(rng):
    image = torch.rand(1, 4, 6, 6, generator=rng)
    grid = torch.randn(1, 12, 2, 2, 2, generator=rng)
    guide = torch.rand(1, 1, 6, 6, generator=rng)
    copies = [t.clone() for t in (image, grid, guide)]
    for backend in BACKENDS:
        slice_and_apply(image, grid, guide, backend=backend)
    scale_grid(grid, 2.0)
    for original, copy in zip((image, grid, guide), copies):
        assert torch.equal(original, copy)


def test_apply_guide_batch_of_params(rng):
    image = torch.rand(2, 3, 4, 4, generator=rng)
    guide = random_guide(2, rng)
    both = apply_guide(image, guide)
    torch.testing.assert_close(both[1:], apply_guide(image[1:], guide.select(1)))


def test_cpu_kernel_keeps_torch_thread_count():
    """Numba's OpenMP pool start resets the process-wide thread count; the user's count must
    survive it. A fresh interpreter, because the pool starts once per process."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from retouch_core.engine.grid import identity_grid\n"
        "from retouch_core.engine.slicing import slice_and_apply\n"
        "torch.set_num_threads(1)\n"
        "slice_and_apply(torch.rand(1, 3, 8, 8), identity_grid(depth=4, height=2, width=2), backend='cpu_kernel')\n"
        "print(torch.get_num_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


@pytest.mark.parametrize("where", ["image", "guide"])
def test_cpu_kernel_reports_nan_instead_of_reading_out_of_bounds(where, rng):
    image = torch.rand(1, 3, 9, 11, generator=rng)
    guide = luminance_guide(image)
    (image if where == "image" else guide)[0, 0, 4, 5] = float("nan")
    with pytest.raises(ValueError, match=f"{where} contains NaN"):
        slice_and_apply(image, torch.randn(1, 12, 4, 3, 3, generator=rng), guide, backend="cpu_kernel")


def test_cpu_kernel_cache_is_in_user_cache_dir_and_pack_folder_may_be_read_only(tmp_path):
    """A copy of the library in a read-only folder slices, compiles into the user's cache dir
    ($XDG_CACHE_HOME here) and writes nothing into its own folder; the same files reached
    through a symlink (how packs are often put into ComfyUI's custom_nodes) load that cache
    instead of compiling again. Fresh interpreters, run outside the repository so that they
    import the copy."""
    import os
    import shutil
    import stat
    import subprocess
    import sys
    from pathlib import Path

    library = tmp_path / "site" / "retouch_core"
    shutil.copytree(Path(__file__).parents[1] / "retouch_core", library,
                    ignore=shutil.ignore_patterns("__pycache__", "weights"))
    for path in [library, *library.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = sorted(p.relative_to(library) for p in library.rglob("*"))
    cache_home = tmp_path / "cache"
    code = (
        "import torch\n"
        "from retouch_core.engine.grid import identity_grid\n"
        "from retouch_core.engine.slicing import _cpu_kernel, slice_and_apply\n"
        "image = torch.rand(1, 3, 8, 8)\n"
        "out = slice_and_apply(image, identity_grid(depth=4, height=2, width=2), backend='cpu_kernel')\n"
        "assert torch.allclose(out, image, atol=1e-6)\n"
        "import retouch_core\n"
        "stats = _cpu_kernel().slice_apply_image.stats\n"
        "print(retouch_core.__file__, sum(stats.cache_hits.values()), stats.cache_path)\n"
    )
    link = tmp_path / "custom_nodes" / "pack"
    link.parent.mkdir()
    link.symlink_to(library.parent, target_is_directory=True)

    def run(folder: Path) -> tuple[int, Path]:
        env = {**os.environ, "PYTHONPATH": str(folder), "XDG_CACHE_HOME": str(cache_home),
               "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("NUMBA_CACHE_DIR", None)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900,
                                check=False, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        imported, hits, path = result.stdout.split()[-3:]
        assert Path(imported).parent == folder / "retouch_core"  # the copy, not the repository
        return int(hits), Path(path)

    try:
        hits, cache_path = run(library.parent)
        assert hits == 0  # a fresh cache: compiled
        assert sorted(p.relative_to(library) for p in library.rglob("*")) == before
        assert cache_path.is_relative_to(cache_home / "instantretouch" / "numba")
        assert any(cache_path.glob("_cpu_kernel.slice_apply_image-*.nbi"))
        assert run(link) == (1, cache_path)  # through the symlink: loaded, not compiled
    finally:
        for path in [library, *library.rglob("*")]:  # let tmp_path be cleaned up
            path.chmod(path.stat().st_mode | stat.S_IWUSR)

"""fit_grid / fit_grid_to_edit against independent references: a dense least-squares solve of
the sliced model, closed-form colour matrices, np.interp tone curves and PSNR thresholds on
photos that ship with scikit-image (kodak24 / cbsd68 cases run only where that data exists)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from retouch_core.apps.shared_data import shared_data
from retouch_core.engine.fit import downsample, fit_grid, fit_grid_to_edit
from retouch_core.engine.grid import identity_grid
from retouch_core.engine.guide import GuideParams
from retouch_core.engine.slicing import slice_and_apply

data = pytest.importorskip("skimage.data")
SHARED = shared_data()


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- helpers


def photo(name: str) -> torch.Tensor:
    """A scikit-image sample photo as (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(getattr(data, name)())).permute(2, 0, 1)[None].float() / 255


def load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).copy()
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else -10 * math.log10(mse)


@pytest.fixture(scope="module")
def astronaut():
    return photo("astronaut")  # 512 x 512


@pytest.fixture(scope="module")
def coffee():
    return photo("coffee")  # 400 x 600


# Independent references for global edits: numpy / closed forms, no retouch_core code.
MATRIX = np.array([[1.1, 0.1, -0.05, 0.02], [0.05, 0.9, 0.08, -0.01], [-0.1, 0.05, 1.2, 0.03]])
CURVE_X, CURVE_Y = np.array([0, 0.25, 0.5, 0.75, 1.0]), np.array([0, 0.18, 0.5, 0.84, 1.0])
LUMA = np.array([0.299, 0.587, 0.114])


def numpy_edit(fn):
    """Wrap an (H, W, 3) float64 numpy edit as a (B, 3, H, W) torch edit."""

    def edit(image):
        arr = image.double().permute(0, 2, 3, 1).numpy()
        return torch.from_numpy(np.stack([fn(a) for a in arr])).permute(0, 3, 1, 2).to(image.dtype)

    return edit


def srgb_to_linear(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v):
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


GLOBAL_EDITS = {
    "colour_matrix": numpy_edit(lambda a: a @ MATRIX[:, :3].T + MATRIX[:, 3]),
    "tone_curve": numpy_edit(lambda a: np.interp(a, CURVE_X, CURVE_Y)),
    "gamma": numpy_edit(lambda a: a ** (1 / 1.6)),
    "white_balance": numpy_edit(lambda a: linear_to_srgb(srgb_to_linear(a) * [1.15, 1.0, 0.8])),
    "saturation": numpy_edit(lambda a: np.clip((a @ LUMA)[..., None] * -0.4 + 1.4 * a, 0, 1)),
}


def sky_band(h, w):
    """Soft top band (a sky mask): 1 at the top, 0 below 40 % of the height."""
    y = (np.arange(h) + 0.5) / h
    return np.broadcast_to((1 / (1 + np.exp((y - 0.4) / 0.06)))[:, None, None], (h, w, 1))


def radial(h, w):
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    return np.exp(-((x - 0.2) ** 2 + (y + 0.1) ** 2) / (2 * 0.35**2))[..., None]


def masked(fn, mask):
    return lambda a: a + mask(*a.shape[:2]) * (fn(a) - a)


MASKED_EDITS = {
    "sky_band_warm_curve": numpy_edit(
        masked(lambda a: np.interp(linear_to_srgb(srgb_to_linear(a) * [1.15, 1.0, 0.8]), CURVE_X, CURVE_Y), sky_band)
    ),
    "radial_exposure": numpy_edit(masked(lambda a: np.clip(1.5 * a, 0, 1), radial)),
}


# ----------------------------------------------------------------------------- the model itself
def dense_reference(image, target, size, smoothness, prior_weight):
    """Solve the fit as one dense least-squares problem built from slice_and_apply itself.

    Column k of the design matrix is the sliced output of the k-th basis grid, so this checks
    that fit_grid fits the sliced model (not per-cell models); the regulariser rows are built
    with explicit loops over neighbouring cells. Prior: the identity.
    """
    d, gh, gw = size
    _, _, h, w = image.shape
    basis = torch.eye(12 * d * gh * gw, dtype=torch.float64).reshape(-1, 12, d, gh, gw)
    columns = [slice_and_apply(image.double(), g[None], backend="grid_sample").reshape(-1) for g in basis]
    omega = gh * gw / (h * w)
    rows = [math.sqrt(omega) * torch.stack(columns, 1).numpy()]
    rhs = [math.sqrt(omega) * target.double().reshape(-1).numpy()]
    n = basis.shape[0]
    index = np.arange(n).reshape(12, d, gh, gw)
    lam = {0: smoothness[2], 1: smoothness[1], 2: smoothness[0]}  # axis of (d, gh, gw) -> (z, y, x)
    for axis in range(3):
        for ch in range(12):
            a = np.moveaxis(index[ch], axis, 0)
            for k in range(a.shape[0] - 1):
                for i, j in zip(a[k].ravel(), a[k + 1].ravel()):
                    row = np.zeros(n)
                    row[i], row[j] = 1, -1
                    rows.append(math.sqrt(lam[axis]) * row[None])
                    rhs.append(np.zeros(1))
    identity = identity_grid(depth=d, height=gh, width=gw, dtype=torch.float64).reshape(-1).numpy()
    rows.append(math.sqrt(prior_weight) * np.eye(n))
    rhs.append(math.sqrt(prior_weight) * identity)
    solution = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)[0]
    return torch.from_numpy(solution).reshape(1, 12, d, gh, gw)


def test_matches_dense_least_squares_of_the_sliced_model():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 9, 11, generator=gen, dtype=torch.float64)
    target = image.flip(1) ** 1.5 + 0.05 * torch.rand(1, 3, 9, 11, generator=gen, dtype=torch.float64)
    size, smooth, prior = (3, 2, 3), (1e-2, 2e-2, 3e-2), 1e-3  # (x, y, z) weights, distinct on purpose
    expected = dense_reference(image, target, size, smooth, prior)
    got = fit_grid(
        image, target, depth=3, height=2, width=3, smoothness=smooth, identity_prior=prior,
        prior="identity", max_pixels=None, tol=1e-12, max_iter=5000,
    )
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, atol=1e-8, rtol=0)


def test_single_cell_is_the_global_least_squares_affine():
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 20, 30, generator=gen, dtype=torch.float64)
    target = image.flip(1) * 0.8 + 0.1 + 0.02 * torch.randn(1, 3, 20, 30, generator=gen, dtype=torch.float64)
    grid = fit_grid(image, target, depth=1, height=1, width=1, identity_prior=1e-12, max_pixels=None, tol=1e-14)
    p = np.concatenate([image[0].reshape(3, -1).T.numpy(), np.ones((600, 1))], 1)
    affine_t = np.linalg.lstsq(p, target[0].reshape(3, -1).T.numpy(), rcond=None)[0]  # (4, 3)
    np.testing.assert_allclose(grid[0, :, 0, 0, 0].reshape(3, 4).numpy(), affine_t.T, atol=1e-8)


@pytest.mark.parametrize("guide_kind", ["luminance", "params", "map"])
def test_reproduces_a_grid_edit_at_the_fit_resolution(guide_kind, astronaut):
    image = downsample(astronaut, 96 * 96)
    gen = torch.Generator().manual_seed(2)
    true_grid = identity_grid(depth=6, height=5, width=5) + 0.15 * torch.randn(1, 12, 6, 5, 5, generator=gen)
    guide = {
        "luminance": None,
        "params": GuideParams(
            ccm=torch.eye(3)[None] + 0.2 * torch.randn(1, 3, 3, generator=gen), ccm_bias=torch.zeros(1, 3),
            slopes=0.5 + torch.rand(1, 3, 16, generator=gen), mix=torch.tensor([[0.3, 0.4, 0.3]]), mix_bias=torch.zeros(1),
        ),
        "map": torch.rand(1, 1, *image.shape[-2:], generator=gen),
    }[guide_kind]
    target = slice_and_apply(image, true_grid, guide, backend="grid_sample")
    grid = fit_grid(image, target, depth=6, height=5, width=5, guide=guide, max_pixels=None,
                    smoothness=1e-8, identity_prior=1e-9, tol=1e-12, max_iter=3000)
    assert psnr(slice_and_apply(image, grid, guide), target) > 60


# ----------------------------------------------------------------------------- photo targets
@pytest.mark.parametrize("edit", sorted(GLOBAL_EDITS))
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_global_edits_at_full_resolution(edit, name, request):
    image = request.getfixturevalue(name)
    fn = GLOBAL_EDITS[edit]
    grid = fit_grid_to_edit(image, fn)  # the edit runs at 256 x 256 px only
    assert grid.shape == (1, 12, 8, 16, 16) and grid.dtype == torch.float32
    assert psnr(slice_and_apply(image, grid), fn(image)) >= 40


@pytest.mark.parametrize("edit", sorted(MASKED_EDITS))
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_spatially_varying_edits_at_full_resolution(edit, name, request):
    image = request.getfixturevalue(name)
    fn = MASKED_EDITS[edit]
    assert psnr(slice_and_apply(image, fit_grid_to_edit(image, fn)), fn(image)) >= 30


def test_edit_from_a_quarter_resolution_run(astronaut):
    seen = []

    def edit(x):
        seen.append(tuple(x.shape))
        return GLOBAL_EDITS["tone_curve"](x)

    grid = fit_grid_to_edit(astronaut, edit, max_pixels=128 * 128)
    assert seen == [(1, 3, 128, 128)]  # called once, at low resolution
    assert psnr(slice_and_apply(astronaut, grid), GLOBAL_EDITS["tone_curve"](astronaut)) >= 40


def test_full_resolution_pair_both_resamplings(astronaut):
    # fit_grid on a full-size pair (as a user's before/after export): shrinking by averaging
    # mixes edited pixels across edges; keeping a subset of true pairs does not.
    fn = GLOBAL_EDITS["tone_curve"]
    output = fn(astronaut)
    results = {
        mode: psnr(slice_and_apply(astronaut, fit_grid(astronaut, output, resample=mode)), output)
        for mode in ("antialias", "nearest")
    }
    assert min(results.values()) >= 40, results
    assert results["nearest"] > results["antialias"], results


def test_render_edits(astronaut):
    render_mod = pytest.importorskip("retouch_core.language.render")
    params_mod = pytest.importorskip("retouch_core.language.params")
    edits = [
        params_mod.RetouchParams(exposure=0.4, contrast=30, highlights=-40, shadows=30),
        params_mod.RetouchParams(temperature=25, tint=-10, vibrance=30, saturation=15),
    ]
    for params in edits:
        fn = lambda x, p=params: render_mod.render(x, p)  # noqa: E731
        assert psnr(slice_and_apply(astronaut, fit_grid_to_edit(astronaut, fn)), fn(astronaut)) >= 40, params


def _shared(folder: str, count: int) -> list[Path]:
    paths = sorted((SHARED / folder).glob("*.png"))
    if not paths:
        pytest.skip(f"{SHARED / folder} not available")
    return paths[:: max(1, len(paths) // count)][:count]


@pytest.mark.parametrize("folder", ["kodak24", "cbsd68"])
def test_shared_photos(folder):
    for path in _shared(folder, 2):
        image = load_png(path)
        for fn, threshold in ((GLOBAL_EDITS["tone_curve"], 40), (MASKED_EDITS["radial_exposure"], 30)):
            got = psnr(slice_and_apply(image, fit_grid_to_edit(image, fn)), fn(image))
            assert got >= threshold, (path.name, got)


# ----------------------------------------------------------------------------- API behaviour
def test_batch_equals_separate_fits(astronaut):
    image = downsample(astronaut, 64 * 64)
    images = torch.cat([image, image.flip(-1)])
    outputs = torch.cat([GLOBAL_EDITS["gamma"](image), GLOBAL_EDITS["tone_curve"](image.flip(-1))])
    both = fit_grid(images, outputs, depth=4, height=4, width=4, tol=1e-12, max_iter=2000)
    for i in range(2):
        one = fit_grid(images[i : i + 1], outputs[i : i + 1], depth=4, height=4, width=4, tol=1e-12, max_iter=2000)
        torch.testing.assert_close(both[i : i + 1], one, atol=1e-5, rtol=0)


def test_alpha_and_grey_channels(astronaut):
    image = downsample(astronaut, 32 * 32)
    rgba = torch.cat([image, torch.rand(1, 1, *image.shape[-2:])], 1)
    out = GLOBAL_EDITS["gamma"](image)
    plain = fit_grid(image, out, depth=2, height=2, width=2)
    torch.testing.assert_close(fit_grid(rgba, torch.cat([out, rgba[:, 3:]], 1), depth=2, height=2, width=2), plain)
    grey = image.mean(1, keepdim=True)
    grid = fit_grid(grey, grey**0.5, depth=8, height=2, width=2)  # r = g = b: the ridge keeps it solvable
    assert torch.isfinite(grid).all()
    assert psnr(slice_and_apply(grey, grid)[:, :1], grey**0.5) > 35


def test_inputs_are_not_modified(astronaut):
    image = downsample(astronaut, 32 * 32)
    out = image**0.5
    before = image.clone(), out.clone()
    fit_grid(image, out, depth=2, height=2, width=2)
    assert torch.equal(image, before[0]) and torch.equal(out, before[1])


def test_downsample_respects_budget():
    image = torch.rand(1, 3, 300, 500)
    small = downsample(image, 10_000)
    assert small.shape[-2] * small.shape[-1] <= 10_000 and small.shape[-2:] == (77, 129)
    assert downsample(image, None) is image and downsample(image, 10**6) is image


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(depth=0), "grid size"),
        (dict(smoothness=-1.0), "smoothness"),
        (dict(smoothness=(1, 2, 3, 4)), "smoothness"),
        (dict(identity_prior=0.0), "identity_prior"),
        (dict(prior="mean"), "prior"),
        (dict(max_pixels=0), "max_pixels"),
        (dict(resample="bicubic"), "resample"),
    ],
)
def test_bad_arguments(kwargs, match):
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=match):
        fit_grid(image, image, **kwargs)


def test_bad_pairs():
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="output must have"):
        fit_grid(image, torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="NaN"):
        fit_grid(image, torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="guide map"):
        fit_grid(image, image, guide=torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="edit_fn must keep"):
        fit_grid_to_edit(image, lambda x: x[..., :4])

"""Tests of the photo-finishing renderer and the parameter record.

Effects are measured with independent references (scikit-image Lab/HSV, the IEC 61966-2-1 sRGB
formula in numpy, scipy's PCHIP and Gaussian filter), on real photographs that ship inside the
scikit-image wheel; Kodak crops from ``../shared/data`` are used when present.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter
from skimage import color, data

from retouch_core.apps.shared_data import shared_data
from retouch_core.language.params import (
    BANDS,
    PARAM_RANGES,
    SCALAR_FIELDS,
    RetouchParams,
    params_to_tensors,
    tensors_to_params,
    tone_curve_knots,
)
from retouch_core.language.render import CLARITY_SIGMA_FRACTION, band_mix, band_weights, render

KODAK = shared_data("kodak24")


# ------------------------------------------------------------------------------ helpers
def to_tensor(arr: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """HWC uint8 -> (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(arr)).permute(2, 0, 1)[None].to(dtype) / 255.0


def to_numpy(img: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) -> HWC float64."""
    return img[0].detach().permute(1, 2, 0).double().numpy()


def lab(img: torch.Tensor) -> np.ndarray:
    return color.rgb2lab(to_numpy(img))


def chroma(img: torch.Tensor) -> np.ndarray:
    lab_ = lab(img)
    return np.hypot(lab_[..., 1], lab_[..., 2])


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 EOTF."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def luma(img: torch.Tensor) -> np.ndarray:
    return to_numpy(img) @ np.array([0.2126, 0.7152, 0.0722])


def hue_deg(img: torch.Tensor) -> np.ndarray:
    return color.rgb2hsv(to_numpy(img))[..., 0] * 360.0


def hue_distance(h: np.ndarray, centre: float) -> np.ndarray:
    return np.abs((h - centre + 180.0) % 360.0 - 180.0)


def go(img: torch.Tensor, **kw) -> torch.Tensor:
    return render(img, RetouchParams(**kw))


def kodak(n: int, step: int = 1) -> list[torch.Tensor]:
    """Up to n Kodak crops (shared data, absent in CI)."""
    from PIL import Image

    paths = sorted(KODAK.glob("*.png"))[:n] if KODAK.is_dir() else []
    return [to_tensor(np.asarray(Image.open(p).convert("RGB"))[::step, ::step]) for p in paths]


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return to_tensor(data.astronaut()[::4, ::4])  # 128 x 128, skin, orange, blue, greys


@pytest.fixture(scope="module")
def coffee() -> torch.Tensor:
    return to_tensor(data.coffee()[::4, ::4])  # 100 x 150, dark and bright areas


@pytest.fixture(scope="module")
def wheel64() -> torch.Tensor:
    """(1, 3, 6, 16) float64: every hue band at several saturations and values, no greys."""
    g = torch.Generator().manual_seed(0)
    hue = torch.linspace(0.0, 360.0, 17, dtype=torch.float64)[:-1] + 7.0
    sat = torch.tensor([0.35, 0.6, 0.9, 0.5, 0.75, 0.45], dtype=torch.float64)
    val = 0.25 + 0.6 * torch.rand(6, 16, generator=g, dtype=torch.float64)
    hsv = np.stack(np.broadcast_arrays(hue[None, :].numpy() / 360.0, sat[:, None].numpy(), val.numpy()), -1)
    return torch.from_numpy(color.hsv2rgb(hsv)).permute(2, 0, 1)[None].contiguous()


# ----------------------------------------------------------------------------- identity
def test_zero_params_is_exact_identity_on_real_photos(astronaut):
    photos = [to_tensor(data.astronaut()), to_tensor(data.coffee()), astronaut] + kodak(2)
    for img in photos:
        assert torch.equal(render(img, RetouchParams()), img)
        assert torch.equal(render(img, {}), img)
    batch = torch.cat([astronaut, astronaut.flip(-1)])
    assert torch.equal(render(batch, [RetouchParams(), RetouchParams()]), batch)


def test_zero_params_that_require_grad_run_every_op_and_stay_identity(astronaut, coffee):
    for img in (astronaut, coffee):
        tensors = {k: v.requires_grad_() for k, v in params_to_tensors(RetouchParams()).items()}
        out = render(img, tensors)
        assert (out - img).abs().max() < 2e-6
        out.sum().backward()
        assert tensors["exposure"].grad.abs().item() > 0  # the graph was built, not skipped


@pytest.mark.skipif(not KODAK.is_dir(), reason="shared Kodak crops not present")
def test_kodak_effects_are_measurable():
    (img,) = kodak(1, step=4)
    assert lab(go(img, exposure=0.5))[..., 0].mean() > lab(img)[..., 0].mean()
    assert lab(go(img, temperature=40))[..., 2].mean() > lab(img)[..., 2].mean()


# ----------------------------------------------------------------------------- lighting
def test_exposure_doubles_linear_light_per_ev(coffee):
    lin_in = srgb_to_linear(to_numpy(coffee))
    means = []
    for ev in (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0):
        out = go(coffee, exposure=ev)
        lin_out = srgb_to_linear(to_numpy(out))
        unclipped = lin_in * 2.0**ev < 0.99
        assert unclipped.mean() > 0.3
        np.testing.assert_allclose(lin_out[unclipped], lin_in[unclipped] * 2.0**ev, rtol=1e-4, atol=2e-6)
        assert np.all(lin_out[~unclipped] > 0.98)  # clipped to white, not wrapped
        means.append(luma(out).mean())
    assert np.all(np.diff(means) > 0)


def test_temperature_raises_b_and_keeps_brightness(astronaut):
    b = [lab(go(astronaut, temperature=t))[..., 2].mean() for t in (-80, -40, 0, 40, 80)]
    assert np.all(np.diff(b) > 2.0)
    grey = torch.full((1, 3, 4, 4), 0.5)
    warm = lab(go(grey, temperature=50))
    assert warm[..., 2].mean() > 3.0 and abs(warm[..., 0].mean() - lab(grey)[..., 0].mean()) < 1.0


def test_tint_raises_a(astronaut):
    a = [lab(go(astronaut, tint=t))[..., 1].mean() for t in (-80, -40, 0, 40, 80)]
    assert np.all(np.diff(a) > 2.0)


def test_contrast_raises_luminance_spread_around_mid_grey(coffee):
    stds = [luma(go(coffee, contrast=c)).std() for c in (-100, -50, 0, 30, 60, 100)]
    assert np.all(np.diff(stds) > 0)
    mid = torch.full((1, 3, 2, 2), 0.5)
    assert torch.allclose(go(mid, contrast=80), mid, atol=1e-6)  # pivot is mid grey


def test_shadows_act_on_dark_pixels_more_than_bright(coffee):
    l0 = lab(coffee)[..., 0]
    dark, bright = l0 < 30, l0 > 70
    assert dark.sum() > 100 and bright.sum() > 100
    for s in (25, 50, 100):
        d = lab(go(coffee, shadows=s))[..., 0] - l0
        assert d[dark].mean() > 2.0 * d[bright].mean() and d[dark].mean() > 1.0
        d = lab(go(coffee, shadows=-s))[..., 0] - l0
        assert d[dark].mean() < 2.0 * d[bright].mean() and d[dark].mean() < -0.5


def test_highlights_act_on_bright_pixels_more_than_dark(coffee):
    l0 = lab(coffee)[..., 0]
    dark, bright = l0 < 30, l0 > 70
    for h in (25, 50, 100):
        d = lab(go(coffee, highlights=-h))[..., 0] - l0
        assert d[bright].mean() < 2.0 * d[dark].mean() and d[bright].mean() < -1.0
        d = lab(go(coffee, highlights=h))[..., 0] - l0
        assert d[bright].mean() > 2.0 * d[dark].mean() and d[bright].mean() > 0.5


def test_whites_blacks_and_fade_move_the_ends(coffee):
    y0 = luma(coffee)
    for v in (40, 100):
        assert np.percentile(luma(go(coffee, whites=v)), 99) > np.percentile(y0, 99) + 0.01
        assert np.percentile(luma(go(coffee, whites=-v)), 99) < np.percentile(y0, 99) - 0.01
        assert np.percentile(luma(go(coffee, blacks=v)), 1) > np.percentile(y0, 1) + 0.01
        assert np.percentile(luma(go(coffee, blacks=-v)), 1) < np.percentile(y0, 1) - 0.005
        faded = luma(go(coffee, fade=v))
        assert faded.min() > y0.min() + 0.1 * v / 100 and faded.std() < y0.std()
    black = torch.zeros(1, 3, 2, 2)
    assert torch.allclose(go(black, fade=50), torch.full_like(black, 0.1))  # 0.2 * 50 / 100


def test_basic_tone_is_monotone_and_hue_preserving(astronaut):
    ramp = torch.linspace(0, 1, 257).reshape(1, 1, 1, -1).expand(1, 3, 1, -1)
    for kw in ({"contrast": 100}, {"contrast": -100}, {"shadows": 100, "highlights": -100},
               {"shadows": -100, "highlights": 100, "whites": -100, "blacks": 100},
               {"whites": 100, "blacks": -100, "contrast": 50}):
        assert torch.all(go(ramp, **kw).diff(dim=-1) >= -1e-7), kw
        out = go(astronaut, **{k: v for k, v in kw.items() if k not in ("whites", "blacks")})
        h0, h1 = hue_deg(astronaut), hue_deg(out)
        sat = color.rgb2hsv(to_numpy(astronaut))[..., 1] > 0.15
        assert np.percentile(hue_distance(h1[sat], h0[sat]), 99) < 0.5, kw


def test_gamma_closed_form(coffee):
    x = to_numpy(coffee)
    for g in (-1.0, -0.4, 0.5, 1.0):
        np.testing.assert_allclose(to_numpy(go(coffee, gamma=g)), x ** (2.0**-g), atol=2e-6)


def test_tone_curve_hits_control_points_and_is_scipy_pchip(coffee):
    points = ((0.2, 0.1), (0.5, 0.55), (0.8, 0.95))
    ramp = torch.linspace(0, 1, 101, dtype=torch.float64).reshape(1, 1, 1, -1).expand(1, 3, 1, -1)
    out = render(ramp, RetouchParams(tone_curve=points))[0, 0, 0].numpy()
    for x, y in points:
        assert out[round(x * 100)] == pytest.approx(y, abs=1e-12)
    knots = np.array(tone_curve_knots(points))
    np.testing.assert_allclose(out, PchipInterpolator(knots[:, 0], knots[:, 1])(ramp[0, 0, 0].numpy()), atol=1e-12)
    assert np.all(np.diff(out) >= 0)
    # Applied to each channel of a photo, batched with a different curve (padding path).
    other = ((0.5, 0.4),)
    batch = torch.cat([coffee, coffee])
    res = render(batch, [RetouchParams(tone_curve=points), RetouchParams(tone_curve=other)])
    for i, pts in enumerate((points, other)):
        k = np.array(tone_curve_knots(pts))
        ref = PchipInterpolator(k[:, 0], k[:, 1])(to_numpy(coffee))
        np.testing.assert_allclose(to_numpy(res[i : i + 1]), ref, atol=2e-6)


def test_clarity_scales_mid_frequency_detail_only(coffee):
    y0 = luma(coffee)
    sigma = CLARITY_SIGMA_FRACTION * math.sqrt(y0.size)
    energies = []
    for c in (-100, -50, 0, 50, 100):
        y = luma(go(coffee, clarity=c))
        energies.append(np.abs(y - gaussian_filter(y, sigma)).mean())
        assert abs(y.mean() - y0.mean()) < 0.01
    assert np.all(np.diff(energies) > 0)
    flat = torch.full((1, 3, 16, 16), 0.4)
    assert torch.allclose(go(flat, clarity=100), flat, atol=1e-6)


# ------------------------------------------------------------------------- global colour
def test_saturation_scales_chroma_and_minus_100_is_grey(astronaut):
    means = [chroma(go(astronaut, saturation=s)).mean() for s in (-100, -50, 0, 50, 100)]
    assert np.all(np.diff(means) > 1.0)
    grey = go(astronaut, saturation=-100)
    assert chroma(grey).max() < 0.05
    assert np.abs(lab(grey)[..., 0] - lab(astronaut)[..., 0]).mean() < 0.1  # lightness kept


def test_vibrance_favours_low_chroma(astronaut):
    c0 = chroma(astronaut)
    low, high = (c0 > 3) & (c0 < 15), c0 > 40
    prev = c0.mean()
    for v in (25, 50, 100):
        c = chroma(go(astronaut, vibrance=v))
        assert c.mean() > prev
        prev = c.mean()
        assert (c[low] / c0[low]).mean() > (c[high] / c0[high]).mean() + 0.05
    assert chroma(go(astronaut, vibrance=-100)).mean() < c0.mean()


# ----------------------------------------------------------------------- specific colour
def test_orange_hue_shift_moves_only_orange_pixels(astronaut):
    h0 = hue_deg(astronaut)
    hsv0 = color.rgb2hsv(to_numpy(astronaut))
    far = hue_distance(h0, 30.0) > 35.0
    orange = (hue_distance(h0, 30.0) < 10.0) & (hsv0[..., 1] > 0.25) & (hsv0[..., 2] > 0.2)
    assert far.sum() > 1000 and orange.sum() > 500
    x0 = to_numpy(astronaut)
    for amount in (-100, -40, 40, 100):
        out = go(astronaut, hue_orange=amount)
        diff = np.abs(to_numpy(out) - x0).max(-1)
        assert diff[far].max() <= 1e-4
        assert diff[orange].mean() > 0.005 * abs(amount) / 100
        shift = (hue_deg(out)[orange] - h0[orange] + 180.0) % 360.0 - 180.0
        assert np.sign(np.median(shift)) == np.sign(amount)  # + turns orange toward yellow


def test_band_saturation_and_luminance_are_band_local():
    red, blue = (0.8, 0.15, 0.1), (0.1, 0.25, 0.85)
    img = torch.tensor([red, blue]).T.reshape(1, 3, 1, 2).repeat(1, 1, 4, 2)
    c0, l0 = chroma(img), lab(img)[..., 0]
    is_blue = np.zeros(c0.shape, bool)
    is_blue[:, [1, 3]] = True
    out = go(img, saturation_blue=-100)
    assert np.all(chroma(out)[is_blue] < 0.2 * c0[is_blue])
    assert np.allclose(to_numpy(out)[~is_blue], to_numpy(img)[~is_blue], atol=1e-6)
    out = go(img, luminance_blue=60)
    assert np.all(lab(out)[..., 0][is_blue] > l0[is_blue] + 5)
    assert np.allclose(to_numpy(out)[~is_blue], to_numpy(img)[~is_blue], atol=1e-6)


def test_band_weights_partition_of_unity_and_support():
    hues = torch.linspace(-720.0, 720.0, 14401, dtype=torch.float64).reshape(1, 1, -1)
    w = band_weights(hues)[0, :, 0]
    assert torch.allclose(w.sum(0), torch.ones(w.shape[1], dtype=torch.float64), atol=1e-12)
    assert w.min() >= 0
    h = hues[0, 0].numpy()
    assert torch.all(w[BANDS.index("orange")][torch.from_numpy(hue_distance(h, 30.0) >= 30.0)] == 0)
    assert torch.allclose(w[BANDS.index("blue")][torch.from_numpy(hue_distance(h, 240.0) < 1e-9)],
                          torch.tensor(1.0, dtype=torch.float64))
    sliders = torch.randn(1, 8, dtype=torch.float64)
    mixed = band_mix(hues, sliders)[0, 0, 0]
    assert torch.allclose(mixed, (w * sliders[0, :, None]).sum(0), atol=1e-12)


# -------------------------------------------------------------------------- split toning
def test_split_toning_tints_shadows_and_highlights(coffee):
    l0 = lab(coffee)
    dark, bright = l0[..., 0] < 30, l0[..., 0] > 70
    out = lab(go(coffee, split_shadow_hue=240, split_shadow_saturation=60))  # blue shadows
    db = out[..., 2] - l0[..., 2]
    assert db[dark].mean() < -5 and db[dark].mean() < 3 * db[bright].mean()
    out = lab(go(coffee, split_highlight_hue=60, split_highlight_saturation=60))  # yellow highlights
    db = out[..., 2] - l0[..., 2]
    assert db[bright].mean() > 5 and db[bright].mean() > 3 * db[dark].mean()
    assert np.abs(out[..., 0] - l0[..., 0]).mean() < 1.0
    tinted = [lab(go(coffee, split_highlight_hue=60, split_highlight_saturation=60, split_balance=b))[..., 2].mean()
              for b in (-100, 0, 100)]
    assert np.all(np.diff(tinted) > 0)  # + balance favours highlights


# ---------------------------------------------------------------------- batch and ranges
def test_batch_elements_get_their_own_params(astronaut, coffee):
    a, c = astronaut[..., :100, :100], coffee[..., :100, :100]
    pa = RetouchParams(exposure=0.5, hue_orange=40, clarity=30)
    pc = RetouchParams(temperature=-30, contrast=40, tone_curve=((0.3, 0.2),), split_shadow_saturation=20)
    both = render(torch.cat([a, c]), [pa, pc])
    assert torch.allclose(both[:1], render(a, pa), atol=1e-6)
    assert torch.allclose(both[1:], render(c, pc), atol=1e-6)


def test_extreme_params_stay_in_range_and_keep_dtype(astronaut):
    extreme = {name: (hi if name != "split_shadow_hue" else 359.0) for name, (_, hi) in PARAM_RANGES.items()}
    for params in (RetouchParams(**extreme), RetouchParams(**{n: lo for n, (lo, _) in PARAM_RANGES.items()})):
        out = render(astronaut, params)
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    half = render(astronaut.half(), RetouchParams(exposure=0.5, saturation=20))
    assert half.dtype == torch.float16
    with pytest.raises(ValueError):
        render(astronaut.permute(0, 2, 3, 1), RetouchParams())  # ComfyUI's BHWC
    with pytest.raises(ValueError, match="bogus"):
        render(astronaut, {"bogus": 1.0})


# ------------------------------------------------------------------------------ gradients
def _tensor_params(names, values, dtype=torch.float64):
    return [torch.tensor([v], dtype=dtype, requires_grad=True) for v in values]


@pytest.mark.parametrize(
    "names, values",
    [
        (("exposure", "temperature", "tint", "contrast", "shadows", "highlights"), (0.3, 20.0, -15.0, 30.0, 25.0, -20.0)),
        (("whites", "blacks", "gamma", "clarity", "fade"), (10.0, 15.0, 0.3, 40.0, 20.0)),
        (("vibrance", "saturation", "hue_orange", "saturation_blue", "luminance_green"), (30.0, -20.0, 40.0, 30.0, -25.0)),
        (("split_shadow_hue", "split_highlight_hue", "split_shadow_saturation", "split_highlight_saturation",
          "split_balance"), (220.0, 50.0, 30.0, 25.0, 20.0)),
    ],
)
def test_gradcheck_float64(names, values):
    g = torch.Generator().manual_seed(1)
    image = (0.2 + 0.6 * torch.rand(1, 3, 4, 5, generator=g, dtype=torch.float64)).requires_grad_()
    params = _tensor_params(names, values)

    def f(img, *ps):
        return render(img, dict(zip(names, ps)))

    assert torch.autograd.gradcheck(f, (image, *params), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_tone_curve_knots():
    g = torch.Generator().manual_seed(2)
    image = 0.05 + 0.9 * torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0.2, 0.55, 0.85], dtype=torch.float64, requires_grad=True)  # no end slope at a kink
    xs = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)

    def f(img, y_):
        knots = torch.stack([xs, torch.cat([xs[:1], y_, xs[-1:]])], -1)
        return render(img, {"tone_curve": knots})

    assert torch.autograd.gradcheck(f, (image.requires_grad_(), y), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_every_parameter_gets_a_finite_nonzero_gradient(wheel64):
    p = RetouchParams(
        exposure=0.3, contrast=20, highlights=-30, shadows=25, whites=10, blacks=-10, gamma=0.2,
        tone_curve=((0.25, 0.2), (0.75, 0.8)), fade=10, clarity=30, temperature=15, tint=-10,
        vibrance=20, saturation=10, split_shadow_hue=220, split_highlight_hue=40,
        split_shadow_saturation=30, split_highlight_saturation=25, split_balance=20,
        **{f"{k}_{b}": 10.0 * (i + 1) * (-1) ** i for k in ("hue", "saturation", "luminance") for i, b in enumerate(BANDS)},
    )
    tensors = {k: v.requires_grad_() for k, v in params_to_tensors(p, dtype=torch.float64).items()}
    image = wheel64.clone().requires_grad_()
    out = render(image, tensors)
    (out * torch.rand(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)).sum().backward()
    for name, t in tensors.items():
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, name
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


# -------------------------------------------------------------------------------- params
def _sample_params() -> RetouchParams:
    return RetouchParams(exposure=-1.25, contrast=33.0, hue_orange=-40.0, luminance_blue=12.5,
                         split_highlight_hue=359.5, split_highlight_saturation=10.0,
                         tone_curve=((0.25, 0.2), (0.75, 0.85)))


def test_json_round_trip_and_sparse_dict():
    p = _sample_params()
    assert RetouchParams.from_json(p.to_json()) == p
    d = p.to_dict()
    assert set(d) == {"exposure", "contrast", "hue_orange", "luminance_blue", "split_highlight_hue",
                      "split_highlight_saturation", "tone_curve"}
    assert json.loads(p.to_json())["tone_curve"] == [[0.25, 0.2], [0.75, 0.85]]
    assert RetouchParams().to_dict() == {} and RetouchParams.from_dict({}) == RetouchParams()
    assert set(RetouchParams().to_dict(include_zero=True)) == set(SCALAR_FIELDS) | {"tone_curve"}
    assert RetouchParams().is_identity() and RetouchParams(tone_curve=((0.5, 0.5),)).is_identity()
    assert not p.is_identity() and not RetouchParams(fade=1).is_identity()


def test_from_dict_errors_name_the_culprits():
    with pytest.raises(ValueError, match="brightness.*colour_temp|colour_temp.*brightness"):
        RetouchParams.from_dict({"brightness": 1, "colour_temp": 2, "exposure": 1})
    with pytest.raises(ValueError, match="exposure") as err:
        RetouchParams.from_dict({"exposure": 7.5, "contrast": -101})
    assert "contrast" in str(err.value)
    for bad in ({"split_shadow_hue": 360.0}, {"fade": -1}, {"gamma": float("nan")}, {"tint": "warm"},
                {"saturation": True}, {"tone_curve": [[0.5, 0.5], [0.4, 0.6]]},
                {"tone_curve": [[0.2, 0.6], [0.5, 0.4]]}, {"tone_curve": [[0.5, 1.2]]}, {"tone_curve": "S"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RetouchParams.from_dict(bad)
    with pytest.raises(ValueError):
        RetouchParams.from_json("[1, 2]")
    with pytest.raises(ValueError, match="exposure"):
        RetouchParams(exposure=9).validate()


def test_tensor_round_trip():
    ps = [_sample_params(), RetouchParams(gamma=0.5, tone_curve=((0.5, 0.7),)), RetouchParams()]
    t = params_to_tensors(ps, dtype=torch.float64)
    assert all(v.shape == (3,) for k, v in t.items() if k != "tone_curve")
    assert t["tone_curve"].shape == (3, 4, 2)  # (0,0), 2 points, (1,1); shorter rows padded
    assert tensors_to_params(t) == ps
    t["fade"] = t["fade"] - 5.0  # an optimiser stepped out of range
    assert tensors_to_params(t)[0].fade == 0.0

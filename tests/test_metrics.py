"""Tests for retouch_training.eval.metrics: known values on constructed images, published CIEDE2000
test data, skimage as an independent reference, and ordering under increasing distortion."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retouch_training.eval import metrics as M

skcolor = pytest.importorskip("skimage.color")
skexposure = pytest.importorskip("skimage.exposure")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _texture(b=2, size=128, seed=0, channels=3):
    """Smooth random texture in [0, 1] (box-blurred noise): structured enough for SSIM-type metrics."""
    n = torch.rand(b * channels, 1, size + 4, size + 4, generator=_gen(seed))
    t = F.conv2d(n, torch.ones(1, 1, 5, 5) / 25)
    lo, hi = t.amin((2, 3), keepdim=True), t.amax((2, 3), keepdim=True)
    return ((t - lo) / (hi - lo)).view(b, channels, size, size)


# Sharma, Wu & Dalal (2005), Table 1: L1 a1 b1 L2 a2 b2 dE00 (all 34 published pairs).
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


# ---------------------------------------------------------------- pixel metrics


def test_identical_images_give_ideal_values():
    x = _texture(b=2, size=64)
    assert torch.isinf(M.psnr(x, x)).all()
    assert torch.equal(M.l1(x, x), torch.zeros(2)) and torch.equal(M.l2(x, x), torch.zeros(2))
    assert torch.equal(M.ciede2000(x, x), torch.zeros(2))
    grey = M.to_gray(x)
    torch.testing.assert_close(M.ssim(grey, grey), torch.ones(2))
    torch.testing.assert_close(M.gmsd(grey, grey), torch.zeros(2))
    torch.testing.assert_close(M.cw_ssim(grey, grey), torch.ones(2))
    fid = M.fidelity_metrics(x, x)
    assert set(fid) == {"ssim", "cw_ssim", "gmsd"} and all(v.shape == (2,) for v in fid.values())
    torch.testing.assert_close(fid["ssim"], torch.ones(2))
    torch.testing.assert_close(fid["cw_ssim"], torch.ones(2))
    torch.testing.assert_close(fid["gmsd"], torch.zeros(2))


@pytest.mark.parametrize("shift", [0.01, 0.1, 0.25])
def test_constant_shift_closed_form(shift):
    x = torch.rand(3, 3, 16, 16, generator=_gen(1)) * (1 - shift)
    y = x + shift
    torch.testing.assert_close(M.l1(x, y), torch.full((3,), shift), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(M.l2(x, y), torch.full((3,), shift**2), atol=1e-7, rtol=1e-4)
    torch.testing.assert_close(M.psnr(x, y), torch.full((3,), -20 * math.log10(shift)), atol=1e-3, rtol=0)


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_noise_psnr_matches_sigma(sigma):
    x = torch.full((2, 3, 256, 256), 0.5)
    y = x + sigma * torch.randn(x.shape, generator=_gen(2))  # 0.5 +- 10 sigma stays in [0, 1]
    torch.testing.assert_close(M.psnr(x, y), torch.full((2,), 20 * math.log10(1 / sigma)), atol=0.05, rtol=0)


# ---------------------------------------------------------------- CIEDE2000


def test_ciede2000_sharma_published_pairs():
    data = torch.tensor(SHARMA, dtype=torch.float64)
    lab1, lab2 = data[:, 0:3, None, None], data[:, 3:6, None, None]  # (34, 3, 1, 1)
    expected = data[:, 6]
    # the table is printed to 4 decimals
    torch.testing.assert_close(M.delta_e_ciede2000(lab1, lab2).flatten(), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(M.delta_e_ciede2000(lab2, lab1).flatten(), expected, atol=1e-4, rtol=0)


def test_ciede2000_matches_skimage_on_random_lab():
    g = np.random.default_rng(3)
    n = 4000
    lab1 = np.stack([g.uniform(0, 100, n), g.uniform(-110, 110, n), g.uniform(-110, 110, n)], -1)
    lab2 = lab1 + g.normal(0, 8, (n, 3))
    lab2[:500, 1:] = 0.0  # neutral colours: h' undefined branch
    lab2[500:1000, 1] = -lab1[500:1000, 1]  # hue differences near 180 degrees: wrap-around branch
    ours = M.delta_e_ciede2000(torch.from_numpy(lab1.T[None, :, :, None]), torch.from_numpy(lab2.T[None, :, :, None]))
    ref = skcolor.deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(ours.flatten().numpy(), ref, atol=1e-9, rtol=1e-9)


def test_ciede2000_rgb_matches_skimage_and_has_finite_gradient():
    x = torch.rand(2, 3, 24, 20, generator=_gen(4))
    y = (x + 0.05 * torch.randn(x.shape, generator=_gen(5))).clamp(0, 1)
    def sk_lab(img):
        return skcolor.rgb2lab(img.permute(1, 2, 0).numpy())

    ref = [skcolor.deltaE_ciede2000(sk_lab(x[i]), sk_lab(y[i])).mean() for i in range(2)]
    torch.testing.assert_close(M.ciede2000(x, y), torch.tensor(ref, dtype=torch.float32), rtol=2e-3, atol=1e-3)
    xg = x.clone().requires_grad_(True)
    M.ciede2000(xg, x).sum().backward()  # identical colours: sqrt(0) must not poison the gradient
    assert torch.isfinite(xg.grad).all()


# ---------------------------------------------------------------- histogram matching / fidelity


def test_histogram_match_equals_skimage_including_ties():
    x = torch.rand(2, 3, 40, 30, generator=_gen(6))
    quantised = (torch.rand(2, 3, 40, 30, generator=_gen(7)) * 8).floor() / 8  # many equal values
    for out, ref in [(x**2.2, x), (quantised**2, quantised), (x, quantised), (quantised, x)]:
        ours = M.grayscale_histogram_match(out, ref)
        assert ours.shape == (2, 1, 40, 30)
        for i in range(2):
            expected = skexposure.match_histograms(M.to_gray(out)[i, 0].numpy(), M.to_gray(ref)[i, 0].numpy())
            np.testing.assert_allclose(ours[i, 0].numpy(), expected, atol=1e-6)


def test_histogram_match_undoes_gamma_and_raises_ssim():
    grey = _texture(b=2, size=64, channels=1).expand(-1, 3, -1, -1)  # r = g = b so grey is monotone in it
    altered = grey**2.2
    matched = M.grayscale_histogram_match(altered, grey)
    ref = M.to_gray(grey)
    # histogram of the matched image equals the original's (same multiset of values)
    torch.testing.assert_close(matched.flatten(1).sort(1).values, ref.flatten(1).sort(1).values, atol=1e-6, rtol=0)
    # a monotone tone change is undone exactly, so structure metrics see no difference
    torch.testing.assert_close(matched, ref, atol=1e-6, rtol=0)
    before, after = M.ssim(M.to_gray(altered), ref), M.ssim(matched, ref)
    assert (after > before).all() and (after > 0.999).all()
    # colour gamma is not a pure grey tone change; matching must still help
    colour = _texture(b=2, size=64, seed=9)
    before = M.ssim(M.to_gray(colour**2.2), M.to_gray(colour))
    after = M.fidelity_metrics(colour**2.2, colour)["ssim"]
    assert (after > before).all()


def test_distortion_ordering():
    x = _texture(b=2, size=128, seed=10)
    grey = M.to_gray(x)
    values = {k: [] for k in ["psnr", "ssim", "gmsd", "cw_ssim", "de"]}
    for sigma in [0.01, 0.05, 0.15]:
        y = (x + sigma * torch.randn(x.shape, generator=_gen(11))).clamp(0, 1)
        gy = M.to_gray(y)
        values["psnr"].append(M.psnr(x, y))
        values["ssim"].append(M.ssim(gy, grey))
        values["gmsd"].append(M.gmsd(gy, grey))
        values["cw_ssim"].append(M.cw_ssim(gy, grey))
        values["de"].append(M.ciede2000(x, y))
    for name, vals in values.items():
        v = torch.stack(vals)  # (3 levels, B)
        steps = v[1:] - v[:-1]
        worse_is_lower = name in ("psnr", "ssim", "cw_ssim")
        assert ((steps < 0) if worse_is_lower else (steps > 0)).all(), (name, v)


def test_cw_ssim_closed_form_contrast_and_translation_robustness():
    t = _texture(b=2, size=136, seed=12, channels=1)
    x = t[..., 4:132, 4:132]
    # The pyramid bands carry no DC, so y = g x + c scales every coefficient by g:
    # CW-SSIM = 2g / (1 + g^2) exactly (0.8 for g = 0.5).
    torch.testing.assert_close(M.cw_ssim(x, 0.5 * x + 0.2), torch.full((2,), 0.8), atol=1e-5, rtol=0)
    shifted = t[..., 5:133, 4:132]  # one-pixel translation
    assert (M.cw_ssim(x, shifted) > 0.98).all()
    assert (M.ssim(x, shifted) < 0.9).all()  # plain SSIM is far more sensitive to it
    with pytest.raises(ValueError, match="too small"):
        M.cw_ssim(x[..., :32, :32], x[..., :32, :32])


# ---------------------------------------------------------------- learned metrics, local weights only


def test_lpips_and_dists_report_missing_weights(tmp_path):
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(M.MissingWeightsError) as err:
        M.lpips(x, x, weights_dirs=[tmp_path])
    assert isinstance(err.value, FileNotFoundError)
    assert str(tmp_path / "alexnet-owt-7be5be79.safetensors") in str(err.value)
    assert str(tmp_path / "alexnet-owt-7be5be79.pth") in str(err.value)
    with pytest.raises(M.MissingWeightsError) as err:
        M.dists(x, x, weights_dirs=[tmp_path / "a", tmp_path / "b"])
    for d in ("a", "b"):
        assert str(tmp_path / d / "vgg16-397923af.safetensors") in str(err.value)


def test_lpips_and_dists_run_from_local_safetensors(tmp_path):
    """Random (not ImageNet) weights written locally: checks loading/wiring, not calibrated values."""
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None).features
    def trunk(features):  # torchvision key layout: features.<i>.<param>
        return {f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}

    save_file(trunk(alex), str(tmp_path / "alexnet.safetensors"))
    vgg = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    save_file(trunk(vgg), str(tmp_path / "vgg16.safetensors"))
    ab = torch.rand(1, 2 * 1475, 1, 1)
    ab = ab / ab.sum()  # DISTS weights sum to 1, so identical images score 0
    alpha_beta = {"alpha": ab[:, :1475].contiguous(), "beta": ab[:, 1475:].contiguous()}
    save_file(alpha_beta, str(tmp_path / "dists_weights.safetensors"))

    x = torch.rand(2, 3, 64, 64, generator=_gen(13))
    y = (x + 0.1 * torch.randn(x.shape, generator=_gen(14))).clamp(0, 1)
    model = M.load_lpips("alex", weights_dirs=[tmp_path])
    assert not any(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(model.net.slice1[0].weight, alex[0].weight)  # trunk really loaded
    import lpips as lpips_pkg  # calibrated heads ship inside the package and must be loaded too

    heads = torch.load(Path(lpips_pkg.__file__).parent / "weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.lin0.model[1].weight, heads["lin0.model.1.weight"])
    d_same, d_diff = M.lpips(x, x, model=model), M.lpips(x, y, model=model)
    assert d_same.shape == (2,) and torch.allclose(d_same, torch.zeros(2)) and (d_diff > 0).all()
    dm = M.load_dists(weights_dirs=[tmp_path])
    d_same, d_diff = M.dists(x, x, model=dm), M.dists(x, y, model=dm)
    assert d_same.shape == (2,) and torch.allclose(d_same, torch.zeros(2), atol=1e-5) and (d_diff > 0).all()

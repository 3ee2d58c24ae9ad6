"""Classical baselines of retouch_training.eval.baselines against closed forms and independent
references (numpy percentiles, Pillow called directly)."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from retouch_training.eval import baselines as B


def _ramp(lo=0.1, hi=0.7, n=1001, rows=3):
    """A horizontal ramp, the same in every channel: (1, 3, rows, n)."""
    return torch.linspace(lo, hi, n, dtype=torch.float64).expand(1, 3, rows, n).float().contiguous()


def test_auto_levels_maps_the_cutoff_quantiles_to_0_and_1():
    x = _ramp()
    x[:, 1] = x[:, 1] * 0.5 + 0.2  # channels with different ranges: levels are per channel
    out = B.auto_levels(x, cutoff=2.0)
    for c in range(3):
        values = x[0, c].double().numpy().ravel()
        lo, hi = np.percentile(values, [2.0, 98.0])  # independent reference (linear interpolation)
        expected = np.clip((x[0, c].double().numpy() - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(out[0, c].numpy(), expected, atol=1e-5)
        # the ramp hits 0 and 1 exactly at the cutoffs and ~2 % of pixels clip at each end
        assert float(out[0, c].min()) == 0.0 and float(out[0, c].max()) == 1.0
        assert abs(float((out[0, c] == 0).float().mean()) - 0.02) < 0.003
        assert abs(float((out[0, c] == 1).float().mean()) - 0.02) < 0.003


def test_auto_levels_leaves_a_flat_channel_and_rejects_bad_cutoff():
    x = _ramp()
    x[:, 2] = 0.3
    out = B.auto_levels(x)
    assert torch.equal(out[:, 2], x[:, 2])
    with pytest.raises(ValueError, match="cutoff"):
        B.auto_levels(x, cutoff=60)


def test_gray_world_makes_channel_means_equal_and_keeps_the_grey_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 40, 50, generator=g) * torch.tensor([0.3, 0.5, 0.7]).view(1, 3, 1, 1)  # no clipping
    out = B.gray_world(x)
    means = out.double().mean(dim=(0, 2, 3))
    assert float(means.max() - means.min()) < 1e-6
    assert abs(float(means.mean()) - float(x.double().mean())) < 1e-6
    # a per-channel gain: ratios between pixels of one channel are kept
    ratio = out[0, 0] / x[0, 0]
    assert float(ratio.max() - ratio.min()) < 1e-5


def test_levels_gray_world_is_levels_then_gray_world():
    x = _ramp()
    x[:, 0] *= 0.8
    assert torch.allclose(B.levels_gray_world(x), B.gray_world(B.auto_levels(x)))


def test_auto_contrast_equals_pillow_on_the_8bit_image():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 3, 30, 40, generator=g) * 0.5 + 0.25)
    arr = (x[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    reference = np.asarray(ImageOps.autocontrast(Image.fromarray(arr), cutoff=0.5, preserve_tone=True))
    out = (B.auto_contrast(x)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, reference)
    # a low-contrast image gets more contrast: the grey spread grows
    assert float(B.auto_contrast(x).std()) > float(x.std()) * 1.5


def test_baselines_ignore_the_instruction_and_are_registered():
    x = _ramp()
    assert set(B.BASELINES) == {"autocontrast", "levels-grayworld", "autolevels"}
    for name in ("autocontrast", "levels-grayworld"):
        assert torch.equal(B.BASELINES[name](x, "make it much darker"), B.BASELINES[name](x, ""))
    ok, missing = B.available_baselines()
    assert set(ok) | set(missing) == set(B.BASELINES)


def test_shape_check():
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        B.gray_world(torch.rand(3, 8, 8))


@pytest.mark.skipif(B.autolevels_program() is None, reason="autolevels not installed")
def test_autolevels_package_lowers_a_raised_black_point():
    # A ramp whose darkest values sit at 60/255: autolevels lowers a black point above its target
    # (14/255 by default), by at most its default maximum shift, and leaves the input file alone.
    x = _ramp(60 / 255, 200 / 255, n=256, rows=16)
    out = B.autolevels_package(x)
    assert out.shape == x.shape
    assert float(out.min()) <= float(x.min()) - 20 / 255

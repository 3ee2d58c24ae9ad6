"""Regional blend: exact per-pixel mixing of two grids under a soft mask."""

import pytest
import torch

from retouch_core.engine.blend import prepare_mask, regional_blend
from retouch_core.engine.grid import grid_from_affine, identity_grid
from retouch_core.engine.slicing import slice_and_apply


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 12, 16, generator=g)
    warm = grid_from_affine(torch.tensor([[1.1, 0, 0, 0.05], [0, 1.0, 0, 0], [0, 0, 0.8, 0]]), 4, 3, 3)
    dark = grid_from_affine(torch.tensor([[0.6, 0, 0, 0], [0, 0.6, 0, 0], [0, 0, 0.6, 0]]), 2, 2, 2)
    return image, warm, dark


def test_mask_one_and_zero_give_each_side(setup):
    image, warm, dark = setup
    ones, zeros = torch.ones(2, 12, 16), torch.zeros(2, 12, 16)
    torch.testing.assert_close(regional_blend(image, warm, ones, dark), slice_and_apply(image, warm))
    torch.testing.assert_close(regional_blend(image, warm, zeros, dark), slice_and_apply(image, dark))
    assert torch.equal(regional_blend(image, warm, zeros), image)


def test_soft_mask_is_per_pixel_linear_mix(setup):
    image, warm, dark = setup
    mask = torch.rand(1, 12, 16, generator=torch.Generator().manual_seed(1))
    out = regional_blend(image, warm, mask, dark)
    a, b = slice_and_apply(image, warm), slice_and_apply(image, dark)
    torch.testing.assert_close(out, mask[:, None] * a + (1 - mask[:, None]) * b, atol=1e-6, rtol=0)


def test_mask_of_another_size_is_resized(setup):
    image, warm, _ = setup
    half = torch.zeros(3, 4)
    half[:, 2:] = 1  # right half, at a quarter of the image size
    mask = prepare_mask(half, 2, 12, 16)
    assert mask.shape == (2, 1, 12, 16)
    assert torch.all(mask[..., :6] == 0) and torch.all(mask[..., 10:] == 1)
    out = regional_blend(image, warm, half)
    torch.testing.assert_close(out[..., :6], image[..., :6])
    torch.testing.assert_close(out[..., 10:], slice_and_apply(image, warm)[..., 10:])


def test_feather_softens_edge_but_keeps_far_regions():
    hard = torch.zeros(1, 40, 40)
    hard[:, :, 20:] = 1
    soft = prepare_mask(hard, 1, 40, 40, feather=3.0)[0, 0]
    assert 0.3 < soft[10, 19] < 0.7 and 0.3 < soft[10, 20] < 0.7
    assert soft[10, 5] < 1e-3 and soft[10, 35] > 1 - 1e-3
    assert torch.all(soft[:, 1:] >= soft[:, :-1] - 1e-6)  # still monotone across the edge


def test_identity_second_grid_equals_default(setup):
    image, warm, _ = setup
    mask = torch.rand(2, 12, 16, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        regional_blend(image, warm, mask, identity_grid(depth=2, height=2, width=2)),
        regional_blend(image, warm, mask),
        atol=1e-6,
        rtol=0,
    )

"""Classical auto-contrast as a grid, and its blend into the lite model's auto mode (issue 14)."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from skimage import data

from retouch_core.engine.slicing import slice_and_apply
from retouch_core.language.matcher import parse_instruction
from retouch_core.models.predictors.auto_contrast import auto_contrast_grid
from retouch_core.models.predictors.lite import LiteConfig, LiteRetouchModel


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(pixels, dtype=np.float32) / 255).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def flat_photo() -> np.ndarray:
    """A real photo with its tones squeezed into [60, 180]: what auto-contrast is for."""
    return (60 + data.astronaut().astype(np.float32) * 120 / 255).round().astype(np.uint8)


def test_matches_pillow_autocontrast_on_a_real_photo(flat_photo):
    expected = as_tensor(ImageOps.autocontrast(Image.fromarray(flat_photo), cutoff=0.5, preserve_tone=True))
    image = as_tensor(flat_photo)
    got = slice_and_apply(image, auto_contrast_grid(image, 8, 16)).clamp(0, 1)
    # Pillow works on the 8-bit histogram and rounds its lookup table: about a level apart
    assert (got - expected).abs().mean() < 1.5 / 255
    assert (got - expected).abs().max() < 4 / 255


def test_flat_image_is_left_unchanged():
    grey = torch.full((1, 3, 20, 30), 0.4)
    torch.testing.assert_close(slice_and_apply(grey, auto_contrast_grid(grey, 8, 16)), grey)


def test_auto_mode_blends_network_and_auto_contrast_linearly(flat_photo):
    image = as_tensor(flat_photo)[..., ::4, ::4].contiguous()
    torch.manual_seed(0)
    model = LiteRetouchModel(LiteConfig(input_size=64, grid_size=4)).eval()
    grids = {}
    for weight in (0.0, 0.5, 1.0):
        model.config = dataclasses.replace(model.config, auto_contrast=weight)
        grids[weight] = model.predict_grid(image, parse_instruction("")).grid
    torch.testing.assert_close(grids[0.5], 0.5 * (grids[0.0] + grids[1.0]))
    torch.testing.assert_close(grids[1.0], auto_contrast_grid(image, 8, 4))
    # an instruction is not mixed with the classic: auto mode only
    with_classic = model.predict_grid(image, parse_instruction("warmer")).grid
    model.config = dataclasses.replace(model.config, auto_contrast=0.0)
    torch.testing.assert_close(model.predict_grid(image, parse_instruction("warmer")).grid, with_classic)


def test_training_sees_the_blend_in_a_mixed_batch(flat_photo):
    """predict_grids, which training differentiates, blends the auto items of a batch with the
    classic exactly as inference does and leaves instructed items alone; the network gets the
    gradient of its share only."""
    image = as_tensor(flat_photo)[..., ::4, ::4].contiguous()
    batch = torch.cat([image, image.flip(-1)])
    plans = [parse_instruction(""), parse_instruction("warmer")]
    torch.manual_seed(0)
    model = LiteRetouchModel(LiteConfig(input_size=64, grid_size=4, auto_contrast=0.5))
    blended = model.predict_grids(batch, plans)
    torch.testing.assert_close(blended[:1], model.predict_grid(image, plans[0]).grid)
    model.config = dataclasses.replace(model.config, auto_contrast=0.0)
    alone = model.predict_grids(batch, plans)
    torch.testing.assert_close(blended[0], 0.5 * (alone[0] + auto_contrast_grid(image, 8, 4)[0]))
    torch.testing.assert_close(blended[1], alone[1])
    weight = next(model.net.parameters())
    grad_blended, = torch.autograd.grad(blended[0].sum(), weight)
    grad_alone, = torch.autograd.grad(alone[0].sum(), weight)
    torch.testing.assert_close(grad_blended, 0.5 * grad_alone)


def test_train_config_carries_the_blend_into_the_model():
    from retouch_training.train.lite import TrainLiteConfig

    assert TrainLiteConfig(auto_contrast=0.5).model_config().auto_contrast == 0.5
    assert TrainLiteConfig().model_config().auto_contrast == 0.0


@pytest.mark.parametrize("weight", [-0.1, 1.5, "0.5", True])
def test_config_refuses_weights_outside_zero_to_one(weight):
    with pytest.raises(ValueError, match="auto_contrast"):
        LiteConfig.from_json('{"auto_contrast": %s}' % (f'"{weight}"' if isinstance(weight, str) else
                                                         str(weight).lower()))

"""The shipped default model follows instructions in the measured direction on a real photo."""

import kornia
import pytest
import torch
from skimage import data

from retouch_core.models import load_retouch_model


@pytest.fixture(scope="module")
def model():
    return load_retouch_model("default")


@pytest.fixture(scope="module")
def photo():
    rgb = torch.from_numpy(data.chelsea().copy()).permute(2, 0, 1)[None].float() / 255
    return rgb[..., ::2, ::2].contiguous()


def lab_means(image):
    lab = kornia.color.rgb_to_lab(image.clamp(0, 1))
    return {"L": lab[:, 0].mean().item(), "a": lab[:, 1].mean().item(), "b": lab[:, 2].mean().item(),
            "chroma": lab[:, 1:].norm(dim=1).mean().item()}


@pytest.mark.parametrize("instruction, statistic, sign", [
    ("brighter", "L", 1), ("darker", "L", -1), ("warmer", "b", 1), ("cooler", "b", -1),
    ("more saturated", "chroma", 1), ("more magenta", "a", 1),
])
def test_instruction_moves_the_lab_statistic(model, photo, instruction, statistic, sign):
    before, after = lab_means(photo)[statistic], lab_means(model(photo, instruction))[statistic]
    assert sign * (after - before) > 1.0, (instruction, before, after)


def test_black_and_white_removes_the_colour(model, photo):
    assert lab_means(photo)["chroma"] > 10
    assert lab_means(model(photo, "make it black and white"))["chroma"] < 2


def test_auto_mode_lifts_an_underexposed_photo(model, photo):
    dark = photo * 0.45
    assert lab_means(model(dark, ""))["L"] > lab_means(dark)["L"] + 3

"""The non-learned model follows instructions in measurable directions on a real photo."""

import kornia
import pytest
import torch
from skimage import data

from retouch_core.models import RuleBasedModel, load_retouch_model
from retouch_core.models.predictors.rule_based import auto_params


@pytest.fixture(scope="module")
def photo():
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return torch.nn.functional.interpolate(image, size=(96, 96), mode="area")


def lab_means(image):
    lab = kornia.color.rgb_to_lab(image)
    return {"L": float(lab[:, 0].mean()), "a": float(lab[:, 1].mean()), "b": float(lab[:, 2].mean()),
            "chroma": float(lab[:, 1:].norm(dim=1).mean()), "L_std": float(lab[:, 0].std())}


@pytest.mark.parametrize(
    "instruction, key, sign",
    [("brighter", "L", 1), ("make it darker", "L", -1), ("warmer", "b", 1), ("cooler", "b", -1),
     ("more saturated", "chroma", 1), ("black and white", "chroma", -1), ("more contrast", "L_std", 1),
     ("exposure +1", "L", 1), ("tint +40", "a", 1)],
)
def test_instruction_directions(photo, instruction, key, sign):
    model = load_retouch_model("rule-based")
    out = model(photo, instruction)
    before, after = lab_means(photo)[key], lab_means(out)[key]
    assert sign * (after - before) > 0.5, (instruction, before, after)


def test_auto_brightens_dark_and_removes_cast():
    grey = torch.full((1, 3, 32, 32), 0.5)
    grey[:, :, :, 16:] = 0.3
    dark_blue = grey * torch.tensor([0.25, 0.3, 0.45]).view(1, 3, 1, 1)
    params = auto_params(dark_blue)
    assert params["exposure"] > 0.5
    assert params["temperature"] > 0  # warm up the blue cast
    out = RuleBasedModel()(dark_blue, "")
    assert lab_means(out)["L"] > lab_means(dark_blue)["L"] + 5
    assert abs(lab_means(out)["b"]) < abs(lab_means(dark_blue)["b"])


def test_auto_leaves_colourful_photo_without_grey_pixels_alone():
    red = torch.zeros(1, 3, 16, 16)
    red[:, 0] = 0.6
    red[:, 1] = 0.2
    assert set(auto_params(red)) == {"exposure"}


def test_same_result_at_any_resolution_above_the_low_res_branch():
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    medium = torch.nn.functional.interpolate(photo, size=(384, 384), mode="area")
    model = RuleBasedModel()
    out_medium = model(medium, "warmer, lift the shadows")
    out_large = torch.nn.functional.interpolate(model(photo, "warmer, lift the shadows"), size=(384, 384), mode="area")
    mse = (out_medium - out_large).square().mean()
    assert 10 * torch.log10(1 / mse) >= 40


def test_unknown_model_name():
    with pytest.raises(FileNotFoundError, match="rule-based"):
        load_retouch_model("no-such-model")

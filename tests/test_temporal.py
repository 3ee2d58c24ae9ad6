"""Video without flicker: temporal smoothing of grids, the deflicker, the flicker metric, the
Predict node's temporal modes, and the measurement on a pan over a real photo."""

import importlib
import math

import pytest
import torch

from retouch_core.apps.flicker import apply_frames, make_pan_clip, predict_frames
from retouch_core.apps.shared_data import shared_data
from retouch_core.engine.grid import grid_from_affine
from retouch_core.engine.temporal import (
    deflicker_grid,
    flicker,
    frame_brightness,
    smooth_over_time,
    temporal_grid,
)
from retouch_core.formats.grid_files import RetouchGrid
from retouch_core.formats.image_files import read_image
from retouch_core.models import load_retouch_model

pytestmark = pytest.mark.usefixtures("one_thread")
PHOTO = shared_data("kodak24") / "kodim23.png"


def naive_smooth(values, sigma):
    """Gaussian average over the frames inside the clip, one frame at a time."""
    frames = len(values)
    radius = min(frames - 1, math.ceil(3 * sigma))
    out = []
    for t in range(frames):
        weights = {s: math.exp(-0.5 * ((s - t) / sigma) ** 2) for s in range(max(0, t - radius), min(frames, t + radius + 1))}
        out.append(sum(w * values[s] for s, w in weights.items()) / sum(weights.values()))
    return torch.stack(out)


def test_smoothing_matches_a_naive_loop_and_keeps_constants():
    values = torch.randn(9, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for sigma in (0.7, 2.0, 10.0):
        torch.testing.assert_close(smooth_over_time(values, sigma), naive_smooth(values, sigma), atol=1e-12, rtol=0)
    constant = torch.full((5, 4), 0.3)
    torch.testing.assert_close(smooth_over_time(constant, 3.0), constant)
    assert torch.equal(smooth_over_time(values, 0), values)
    with pytest.raises(ValueError, match="sigma"):
        smooth_over_time(values, -1)


def test_flicker_metric_closed_form():
    stable = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    gains = torch.tensor([1.0, 1.1, 0.9, 1.0, 1.05, 1.0], dtype=torch.float64).view(-1, 1, 1, 1)
    expected = ((frame_brightness(stable * gains).diff() - frame_brightness(stable).diff()).abs().mean() * 255).item()
    by_hand = []
    for t in range(1, 6):
        luma = lambda x: float((0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).mean())  # noqa: E731
        by_hand.append(abs((luma(stable[t] * gains[t, 0]) - luma(stable[t - 1] * gains[t - 1, 0])) - (luma(stable[t]) - luma(stable[t - 1]))))
    assert flicker(stable * gains, stable) == pytest.approx(255 * sum(by_hand) / 5, rel=1e-9)
    assert flicker(stable * gains, stable) == pytest.approx(expected)
    assert flicker(stable, stable) == 0.0


def gain_grids(gains):
    affine = torch.eye(3, 4).expand(len(gains), 3, 4) * torch.tensor(gains).view(-1, 1, 1)
    return RetouchGrid(grid_from_affine(affine, 4, 2, 2))


def test_key_frame_and_smoothed_grids():
    frames = torch.rand(5, 3, 8, 8)
    per_frame = gain_grids([1.0, 1.4, 1.0, 1.4, 1.0])
    key = temporal_grid(per_frame, frames, "key frame", key_frame=1)
    assert key.batch == 1 and torch.equal(key.grid[0], per_frame.grid[1])
    smoothed = temporal_grid(per_frame, frames, "smoothed", sigma=1.0)
    torch.testing.assert_close(smoothed.grid, naive_smooth(per_frame.grid, 1.0))
    assert smoothed.grid.diff(dim=0).abs().mean() < 0.5 * per_frame.grid.diff(dim=0).abs().mean()


def test_deflicker_removes_an_exposure_flicker_of_a_static_shot():
    scene = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 0.8
    gains = torch.tensor([1.0, 1.08, 0.95, 1.05, 0.93, 1.02, 1.0, 0.97]).view(-1, 1, 1, 1)
    clip, stable = scene * gains, scene.expand(8, -1, -1, -1)
    identity = gain_grids([1.0] * 8)
    assert flicker(clip, stable) > 5
    out = apply_frames(deflicker_grid(identity, clip, sigma=3.0), clip)
    assert flicker(out, stable) < 0.3 * flicker(clip, stable)


def test_predict_node_temporal_modes(pack):
    logic = importlib.import_module(f"{pack.__name__}.nodes.logic")

    class BrightnessModel:
        """Predicts a gain that brings each frame's mean to 0.5 (an auto-exposure)."""

        name = "auto-exposure"
        calls = 0

        def predict(self, rgb, instruction):
            self.calls += 1
            from retouch_core.language.matcher import parse_instruction

            return gain_grids([0.5 / float(rgb.mean())]), parse_instruction(instruction)

    image = torch.rand(6, 8, 8, 3, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.5, 1, 6).view(-1, 1, 1, 1)
    model = BrightnessModel()
    per_frame, _ = logic.predict_grids(model, image, "")
    assert per_frame.batch == 6 and model.calls == 6
    model.calls = 0
    key, _ = logic.predict_grids(model, image, "", temporal="key frame", key_frame=2)
    assert key.batch == 1 and model.calls == 1 and torch.equal(key.grid[0], per_frame.grid[2])
    smoothed, _ = logic.predict_grids(model, image, "", temporal="smoothed", sigma=1.5)
    torch.testing.assert_close(smoothed.grid, naive_smooth(per_frame.grid, 1.5))
    with pytest.raises(ValueError, match="temporal must be one of"):
        logic.predict_grids(model, image, "", temporal="smooth")


@pytest.mark.skipif(not PHOTO.is_file(), reason="needs the kodak24 photos")
def test_pan_over_a_real_photo_flickers_less_when_smoothed():
    """The README measurement, smaller: a pan over kodim23 with a 3 % exposure flicker."""
    photo, _ = read_image(PHOTO)
    photo = torch.nn.functional.interpolate(photo[:, :3], scale_factor=0.5, antialias=True, mode="bilinear")
    clip, stable = make_pan_clip(photo, frames=12, size=(96, 128), step=2, gain=0.03)
    per_frame = predict_frames(load_retouch_model("default"), clip, "brighter, warmer")
    results = {}
    for mode in ("per-frame", "smoothed", "smoothed + deflicker"):
        grid = temporal_grid(per_frame, clip, mode, 2.0)
        results[mode] = (flicker(apply_frames(grid, clip), stable), float(grid.grid.diff(dim=0).abs().mean()))
    assert results["smoothed"][1] < 0.5 * results["per-frame"][1]  # the grids jitter less
    assert results["smoothed + deflicker"][0] < 0.5 * min(results["per-frame"][0], flicker(clip, stable))

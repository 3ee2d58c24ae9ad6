"""Calibrated "as shot" degradations: statistics, the unpaired fit, the sampler, the report."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from retouch_core.language.render import render
from retouch_training.data.calibration import (
    MAGNITUDE, STATISTICS, _stat_loss, fit_as_shot, load_as_shot, photo_statistics, report, sample_as_shot,
)
from retouch_training.data.degradations import DegradationConfig, sample_degradation
from retouch_training.data.masks import load_mask_provider


def small(photo, step=8):
    return torch.from_numpy(photo[::step, ::step].copy()).permute(2, 0, 1)[None].float() / 255


def test_statistics_against_closed_forms():
    grey = torch.full((1, 3, 32, 32), 0.5)
    stats = photo_statistics(grey)
    assert set(stats) == set(STATISTICS)
    L = 53.389  # CIELAB L* of sRGB 0.5 grey
    for q in ("L01", "L50", "L99"):
        assert float(stats[q]) == pytest.approx(L, abs=0.05)
    assert float(stats["L_std"]) == pytest.approx(0, abs=1e-3) and float(stats["chroma"]) < 0.01
    assert float(stats["shadow_detail"]) == pytest.approx(0, abs=1e-3)
    half = torch.cat([torch.zeros(1, 3, 32, 16), torch.ones(1, 3, 32, 16)], dim=3)
    assert float(photo_statistics(half)["L_std"]) == pytest.approx(50.0, abs=0.1)  # black/white halves


def test_fit_matches_the_statistics_of_a_known_render():
    """The real photo is the good photo rendered with known settings: the fit must reach its statistics."""
    good = small(data.astronaut())
    truth = {"exposure": -0.6, "contrast": -30.0, "saturation": -30.0, "temperature": -25.0}
    real = render(good, truth).clamp(0, 1)
    params, loss = fit_as_shot(good, real, steps=60)
    start = float(_stat_loss(photo_statistics(good), photo_statistics(real)))
    assert loss < 0.05 * start
    assert params["exposure"] + 0.1 * params["gamma"] < 0 and params["saturation"] < 0 and params["temperature"] < 0


@pytest.fixture()
def table_file(tmp_path):
    rows = [{"group": "a", "params": {"exposure": -1.0, "contrast": -20.0, "tint": 0.01}},
            {"group": "b", "params": {"saturation": -40.0}}]
    path = tmp_path / "as_shot.json"
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_sampler_scales_a_fitted_vector_and_drops_negligible_sliders(table_file):
    table = load_as_shot(str(table_file))
    rng = np.random.default_rng(0)
    draws = [sample_as_shot(table, rng) for _ in range(200)]
    from_a = [d for d in draws if "exposure" in d]
    assert 60 < len(from_a) < 140  # groups drawn uniformly
    for d in from_a:
        assert "tint" not in d  # 0.01 is below a fifth of the slider's step
        ratio = d["exposure"] / -1.0
        assert MAGNITUDE[0] - 1e-3 <= ratio <= MAGNITUDE[1] + 1e-3
        assert d["contrast"] == pytest.approx(-20.0 * ratio, abs=0.02)  # both rounded to 3 decimals


def test_low_light_share_picks_the_kind_first():
    """Folders dicm + lime (low light) and fivek_expertc: uniform gives low light 2/3 of the draws,
    ``p_low_light`` sets that share, and each kind's folders stay equally likely."""
    from retouch_training.data.calibration import AsShotTable

    table = AsShotTable({"dicm": [{"exposure": 1.0}], "lime": [{"gamma": 0.5}], "fivek_expertc": [{"contrast": -30.0}]})

    def shares(p_low_light, n=3000):
        rng = np.random.default_rng(1)
        draws = [next(iter(sample_as_shot(table, rng, p_low_light))) for _ in range(n)]
        return {name: draws.count(name) / n for name in ("exposure", "gamma", "contrast")}

    uniform = shares(None)
    assert uniform["contrast"] == pytest.approx(1 / 3, abs=0.03)
    balanced = shares(0.25)
    assert balanced["contrast"] == pytest.approx(0.75, abs=0.03)
    assert balanced["exposure"] == pytest.approx(0.125, abs=0.02) and balanced["gamma"] == pytest.approx(0.125, abs=0.02)


def test_degradation_config_draws_as_shot_steps(table_file):
    clean = small(data.astronaut())[0]
    config = DegradationConfig(as_shot=str(table_file), p_as_shot=1.0, p_local=0.0)
    steps = sample_degradation(clean, np.random.default_rng(3), config, load_mask_provider(None))
    assert len(steps) == 1 and steps[0].defects == ("as_shot",) and steps[0].mask is None
    default = sample_degradation(clean, np.random.default_rng(3), DegradationConfig(), load_mask_provider(None))
    assert "as_shot" not in default[0].defects


def test_report_writes_the_table_and_the_picture(table_file, tmp_path):
    photos = tmp_path / "good"
    real = tmp_path / "real"
    photos.mkdir(), real.mkdir()
    for i, name in enumerate(("astronaut", "coffee", "chelsea")):
        Image.fromarray(getattr(data, name)()).save(photos / f"{i}.png")
        Image.fromarray((getattr(data, name)() * 0.4).astype("uint8")).save(real / f"{i}.png")
    calibration = {"real": [str(real)], "good": [str(photos)], **json.loads(table_file.read_text())}
    picture = report(calibration, tmp_path / "report", count=3, tile=48)
    assert Image.open(picture).size == (3 * 48, 3 * 48)  # one real row, calibrated, old
    text = (tmp_path / "report" / "stats.md").read_text()
    assert "synthetic: calibrated as-shot" in text and all(f"| {k} |" in text for k in STATISTICS)

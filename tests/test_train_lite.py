"""train-lite: losses against closed forms, learning on a fixed batch, exact resume, export."""

import json

import kornia
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from retouch_core.models import LiteRetouchModel, load_retouch_model
from retouch_core.models.predictors.lite import HISTOGRAM_BINS, QUANTILES, LiteConfig, tone_statistics
from retouch_core.language.matcher import parse_instruction
from retouch_training.data.dataset import TripletDataset
from retouch_training.train.config import load_config
from retouch_training.train.lite import PlanCache, TrainLiteConfig, _batch, export, losses, train
from retouch_training.train.losses import out_of_gamut
from retouch_training.train.runtime import learning_rate
from retouch_training.train.state import load_train_state, restore_optimizer, save_train_state

CONFIG = TrainLiteConfig(crop_size=64, loss_size=32, batch_size=4, epochs=1, warmup_steps=1, checkpoint_every=2,
                         eval_records=4, lr=2e-3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """16 triplets from astronaut crops: darkened input, original target, 'brighter' or auto."""
    root = tmp_path_factory.mktemp("triplets")
    photo = data.astronaut()
    records = []
    for i in range(16):
        y, x = (i // 4) * 96, (i % 4) * 96
        crop = photo[y : y + 96, x : x + 96]
        Image.fromarray((crop * 0.6).astype("uint8")).save(root / f"in{i}.png")
        Image.fromarray(crop).save(root / f"tg{i}.png")
        records.append({"id": f"r{i}", "input": f"in{i}.png", "target": f"tg{i}.png", "subset": "style" if i % 2 else "auto",
                        "instruction": "brighter" if i % 2 else "", "split": "heldout" if i >= 12 else "train"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_gamut_closed_form():
    image = torch.tensor([[[[1.5, -0.5, 0.5, 1.0]]]]).expand(1, 3, 1, 4)
    assert out_of_gamut(image, power=1).item() == pytest.approx(0.25)  # train-lite's linear penalty
    assert out_of_gamut(image).item() == pytest.approx(0.125)  # the distillation's squared one


def test_yaml_config_reads_exponent_floats_as_floats(tmp_path):
    """PyYAML reads ``3e-4`` (no dot) as the string "3e-4"; the one config loader must coerce it,
    or AdamW would get a string learning rate."""
    path = tmp_path / "lite.yaml"
    path.write_text("lr: 3e-4\nweight_decay: 1e-5\nsubsets: [style]\nepochs: 2\n")
    config = load_config(TrainLiteConfig, path, ["batch_size=4"])
    assert isinstance(config.lr, float) and config.lr == 3e-4
    assert isinstance(config.weight_decay, float) and config.weight_decay == 1e-5
    assert config.subsets == ("style",) and (config.epochs, config.batch_size) == (2, 4)
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(TrainLiteConfig, None, ["learning_rate=1e-3"])


def test_learning_rate_schedule_warm_up_then_cosine():
    peak, warmup, total = 2e-3, 4, 20
    lrs = [learning_rate(s, peak, warmup, total) for s in range(total + 1)]
    assert lrs[:warmup] == pytest.approx([peak * (s + 1) / warmup for s in range(warmup)])
    assert lrs[warmup] == pytest.approx(peak) and lrs[-1] == pytest.approx(0.05 * peak)
    middle = warmup + (total - warmup) // 2  # cosine: halfway between peak and floor at mid-decay
    assert lrs[middle] == pytest.approx(peak * (0.05 + 0.95 * 0.5))
    assert learning_rate(100, peak, warmup) == peak  # no decay_steps: constant after warm-up


def test_losses_fall_on_a_fixed_batch(dataset):
    torch.manual_seed(0)
    model = LiteRetouchModel()
    batch = _batch(TripletDataset(dataset, "train", size=64), [0, 1, 2, 3])
    plans = PlanCache()(batch["instruction"])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    for _ in range(25):
        terms = losses(model, batch, plans, CONFIG)
        first = first if first is not None else terms["total"].item()
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
    assert terms["total"].item() < 0.6 * first
    assert set(terms) >= {"l1", "ssim", "smooth", "gamut", "total"}


def test_resume_reproduces_the_next_step(dataset, tmp_path):
    def step(model, optimizer):
        batch = _batch(TripletDataset(dataset, "train", size=64), [4, 5, 6, 7])
        terms = losses(model, batch, PlanCache()(batch["instruction"]), CONFIG)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        return terms["total"].item()

    torch.manual_seed(0)
    model = LiteRetouchModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step(model, optimizer)
    save_train_state(tmp_path, 1, models={"model": model.state_dict()}, optimizers={"optimizer": optimizer},
                     scalars={"epoch": 0})
    expected = step(model, optimizer)
    fresh = LiteRetouchModel()
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    saved = load_train_state(tmp_path)
    fresh.load_state_dict(saved.models["model"])
    restore_optimizer(fresh_optimizer, saved.optimizers["optimizer"])
    assert (saved.step, saved.scalars) == (1, {"epoch": 0})
    assert step(fresh, fresh_optimizer) == pytest.approx(expected, abs=1e-6)


def test_interrupted_run_resumes_to_the_same_weights(dataset, tmp_path):
    torch.manual_seed(0)
    full = train(dataset, tmp_path / "full", CONFIG, progress=False)
    torch.manual_seed(0)
    cut = train(dataset, tmp_path / "cut", CONFIG, progress=False, max_steps=1)
    assert cut["step"] == 1
    resumed = train(dataset, tmp_path / "cut", CONFIG, progress=False)
    assert resumed["step"] == full["step"] == 3
    a = export(tmp_path / "full", tmp_path / "a.safetensors")
    b = export(tmp_path / "cut", tmp_path / "b.safetensors")
    wa, wb = load_retouch_model(a), load_retouch_model(b)
    for (name, x), (_, y) in zip(wa.state_dict().items(), wb.state_dict().items()):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0, msg=name)


def test_export_loads_as_retouch_model(dataset, tmp_path):
    torch.manual_seed(0)
    train(dataset, tmp_path / "run", CONFIG, progress=False)
    path = export(tmp_path / "run", tmp_path / "lite.safetensors", {"note": "test"})
    model = load_retouch_model(path)
    assert isinstance(model, LiteRetouchModel) and model.metadata["note"] == "test"
    image = torch.rand(1, 3, 48, 64)
    grid, plan = model.predict(image, "brighter")
    assert grid.grid.shape == (1, 12, 8, 16, 16) and grid.guide is not None and plan.mode == "style"
    exact, _ = model.predict(image, "exposure +1")  # param mode: exact render, no network
    assert exact.guide is None and exact.apply(image).mean() > image.mean()


def test_untrained_model_is_identity_in_auto_mode_and_obeys_instructions():
    image = torch.rand(1, 3, 40, 40)
    model = LiteRetouchModel()
    torch.testing.assert_close(model(image, ""), image, atol=1e-5, rtol=0)
    lab = lambda x: kornia.color.rgb_to_lab(x.clamp(0, 1))  # noqa: E731
    assert lab(model(image, "warmer"))[:, 2].mean() > lab(image)[:, 2].mean() + 1  # projected onto the recipe


def test_tone_statistics_match_numpy():
    image = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    stats = tone_statistics(image)
    reference = np.quantile(image.flatten(2).numpy(), QUANTILES, axis=2).transpose(1, 2, 0).reshape(2, -1)
    np.testing.assert_allclose(stats[:, HISTOGRAM_BINS:].numpy(), reference, atol=1e-6)
    torch.testing.assert_close(stats[:, :HISTOGRAM_BINS].sum(1), torch.ones(2))
    dark = tone_statistics(torch.full((1, 3, 4, 4), 0.02))  # all mass in the first bin
    assert dark[0, 0] == pytest.approx(1.0)


def test_global_stats_model_starts_as_the_model_it_is_initialised_from(dataset, tmp_path):
    torch.manual_seed(0)
    train(dataset, tmp_path / "base", CONFIG, progress=False)
    base = export(tmp_path / "base", tmp_path / "base.safetensors")
    config = TrainLiteConfig(**{**CONFIG.__dict__, "global_stats": True, "init_from": str(base), "lr": 0.0})
    train(dataset, tmp_path / "stats", config, progress=False)
    grown = load_retouch_model(export(tmp_path / "stats", tmp_path / "stats.safetensors"))
    assert grown.config.global_stats and grown.net.stats_fc is not None
    image = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(grown(image, ""), load_retouch_model(base)(image, ""), atol=1e-6, rtol=0)


def test_untrained_recipe_prior_model_is_the_recipe_edit():
    """With the recipe prior, an untrained network returns the instruction's global recipe edit:
    the renderer's own output (independent reference) within fit accuracy; auto mode stays identity."""
    from retouch_core.language.render import render

    model = LiteRetouchModel(LiteConfig(recipe_prior=True))
    image = torch.from_numpy(data.astronaut()[::8, ::8].copy()).permute(2, 0, 1)[None].float() / 255
    for text in ("make it black and white", "warmer and brighter"):
        out = model(image, text)
        reference = render(image, parse_instruction(text).to_params()).clamp(0, 1)
        mse = (out - reference).square().mean()
        assert -10 * torch.log10(mse) > 35, text
    grey = model(image, "make it black and white")
    assert (grey.amax(1) - grey.amin(1)).mean() < 0.01  # no colour left
    torch.testing.assert_close(model(image, ""), image, atol=1e-5, rtol=0)


def test_init_from_starts_a_new_run_from_a_model_file(dataset, tmp_path):
    torch.manual_seed(0)
    train(dataset, tmp_path / "base", CONFIG, progress=False)
    base = export(tmp_path / "base", tmp_path / "base.safetensors")
    config = TrainLiteConfig(**{**CONFIG.__dict__, "recipe_prior": True, "init_from": str(base), "lr": 0.0})
    train(dataset, tmp_path / "tuned", config, progress=False)  # lr 0: weights must stay the base's
    tuned = load_retouch_model(export(tmp_path / "tuned", tmp_path / "tuned.safetensors"))
    assert tuned.config.recipe_prior
    for (name, x), (_, y) in zip(load_retouch_model(base).state_dict().items(), tuned.state_dict().items()):
        torch.testing.assert_close(x, y, atol=0, rtol=0, msg=name)

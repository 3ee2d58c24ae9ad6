"""Bilateral distillation: loss terms by hand, both stages learning, exact resume.

Offline: tiny random teacher (pixel codec), tiny random CLIP, random-backbone LPIPS.
"""

import itertools
import math
from pathlib import Path

import pytest
import torch

from distill_helpers import write_tiny_dataset
from retouch_core.language.attributes import default_bank
from retouch_core.language.clip_score import attribute_scores, tiny_clip
from retouch_core.language.matcher import parse_instruction
from retouch_training.data.dataset import TripletDataset
from retouch_training.train.config import DistillConfig, load_config
from retouch_training.train.distill import DistillTrainer
from retouch_training.train.losses import (
    attribute_targets,
    clip_alignment,
    curriculum_low,
    curriculum_range,
    dmd_gradient,
    grid_laplacian_smoothness,
    out_of_gamut,
    vsd_loss,
)
from retouch_training.train.runtime import step_generator
from conftest import reset_accelerate_state

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("triplets"))
    data = TripletDataset(root, size=64)
    return torch.utils.data.default_collate([data[0], data[1]])


def tiny_config(output_dir, *overrides) -> DistillConfig:
    return load_config(DistillConfig, CONFIGS / "tiny_smoke.yaml", [
        f"run.output_dir={output_dir}", "run.resume=null", "optim.lr=1e-3", "fake.lr=1e-3",
        "generator_timestep=500", *overrides])


def evaluate(trainer, batch):
    """Every loss term at a fixed noise / timestep draw and curriculum position (no update)."""
    with torch.no_grad():
        gen, fake = trainer.losses(batch, step_generator(123, 0, 0), True, step=0)
    return {k: float(v) for k, v in {**gen, **fake}.items()}


# ------------------------------------------------------------------------------------------
# loss terms by hand


def test_dmd_gradient_and_vsd_loss_match_hand_computation():
    gen = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2).requires_grad_(True)
    real = torch.tensor([[0.0, 2.0], [3.0, 2.0]]).view(1, 1, 2, 2)
    fake = torch.tensor([[1.0, 1.0], [2.0, 2.0]]).view(1, 1, 2, 2)
    # normaliser = mean |gen - real| = (1 + 0 + 0 + 2) / 4 = 0.75; grad = (fake - real) / 0.75
    expected = torch.tensor([[4 / 3, -4 / 3], [-4 / 3, 0.0]]).view(1, 1, 2, 2)
    torch.testing.assert_close(dmd_gradient(gen, real, fake), expected)
    loss = vsd_loss(gen, real, fake)
    assert loss.item() == pytest.approx(0.5 * (3 * 16 / 9) / 4)  # 0.5 * mean(grad^2)
    loss.backward()
    torch.testing.assert_close(gen.grad, expected / 4)  # d loss / d x = grad / numel


def test_dmd_normaliser_is_per_sample_and_guarded():
    gen = torch.zeros(3, 1, 1, 2)
    real = torch.tensor([1.0, 3.0, 0.0, 0.0, 0.0, 0.0]).view(3, 1, 1, 2)
    fake = torch.tensor([2.0, 2.0, 0.0, 0.0, 5.0, 5.0]).view(3, 1, 1, 2)
    grad = dmd_gradient(gen, real, fake, min_normaliser=1e-3)
    torch.testing.assert_close(grad[0].flatten(), torch.tensor([0.5, -0.5]))  # / mean(1, 3) = 2
    assert torch.equal(grad[1], torch.zeros_like(grad[1]))  # x̂ = real = fake: 0, not NaN
    torch.testing.assert_close(grad[2].flatten(), torch.tensor([5e3, 5e3]))  # floored normaliser


def test_curriculum_starts_at_high_noise_and_widens():
    assert curriculum_low(0, t_min=20, start=800, steps=100) == 800
    assert curriculum_low(50, t_min=20, start=800, steps=100) == 410
    assert curriculum_low(100, 20, 800, 100) == curriculum_low(10_000, 20, 800, 100) == 20


def test_clip_alignment_is_eq6_mean_over_matched_attributes_with_matcher_confidences():
    scorer = tiny_clip()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    instructions = ["darker, more contrast and warmth", "not too bright", ""]
    targets = attribute_targets(instructions)
    for i, text in enumerate(instructions):  # the matcher's intensities and confidences, 0 elsewhere
        plan = parse_instruction(text)
        for k, pair in enumerate(targets.pairs):
            name = next((n for n in plan.attributes if (default_bank()[n].positive, default_bank()[n].negative) == pair), None)
            assert float(targets.intensities[i, k]) == pytest.approx(plan.attributes.get(name, 0.0))
            assert float(targets.confidences[i, k]) == pytest.approx(plan.confidences.get(name, 0.0))
    assert (targets.confidences[0] < 1).any() and (targets.intensities[0] < 0).any()  # inherited "warmth", "darker"
    s_plus, s_minus = (s.detach() for s in attribute_scores(scorer, images, targets.pairs))

    def term(i, k):  # eq. 5 for image i, attribute k, direction from the sign of the intensity
        pos, neg = s_plus[i, k], s_minus[i, k]
        if targets.intensities[i, k] < 0:
            pos, neg = neg, pos
        return -math.log(math.exp(pos / 0.07) / (math.exp(pos / 0.07) + math.exp(neg / 0.07)))

    per_image = []
    for i in range(3):  # eq. 6: mean over the matched attributes of confidence x term
        matched = [k for k in range(len(targets.pairs)) if targets.intensities[i, k] != 0]
        per_image.append(sum(float(targets.confidences[i, k]) * term(i, k) for k in matched) / max(len(matched), 1))
    loss = clip_alignment(scorer, images, instructions, temperature=0.07)
    assert loss.item() == pytest.approx(sum(per_image) / 3, rel=1e-5)
    loss.backward()
    assert images.grad.abs().sum() > 0

    intensity_form = []  # the earlier form: |intensity|-weighted mean
    for i in range(3):
        w = [abs(float(targets.intensities[i, k])) for k in range(len(targets.pairs))]
        intensity_form.append(sum(w[k] * term(i, k) for k in range(len(w)) if w[k]) / max(sum(w), 1e-30))
    old = clip_alignment(scorer, images, instructions, temperature=0.07, weighting="intensity")
    assert old.item() == pytest.approx(sum(intensity_form) / 3, rel=1e-5)
    assert old.item() != pytest.approx(loss.item(), rel=1e-3)
    empty = clip_alignment(scorer, images, [""] * 3, temperature=0.07)
    assert empty.item() == 0.0 and empty.requires_grad


def test_curriculum_phases_follow_the_configured_ranges():
    config = load_config(DistillConfig, None, ["curriculum.phases=[{steps: 2, t_min: 700, t_max: 980}, "
                                               "{steps: 3, t_min: 300, t_max: 700}, {t_min: 20, t_max: 300}]"])
    ranges = [curriculum_range(step, config.curriculum) for step in range(7)]
    assert ranges == [(700, 980)] * 2 + [(300, 700)] * 3 + [(20, 300)] * 2
    linear = load_config(DistillConfig, None, ["curriculum.start=800", "curriculum.steps=100"]).curriculum
    assert [curriculum_range(s, linear) for s in (0, 50, 100)] == [(800, 980), (410, 980), (20, 980)]


def test_trainer_samples_vsd_timesteps_inside_the_current_phase(batch, tmp_path, monkeypatch):
    from retouch_training.train import distill

    phases = "[{steps: 1, t_min: 900, t_max: 950}, {steps: 1, t_min: 400, t_max: 450}, {t_min: 30, t_max: 60}]"
    trainer = DistillTrainer(tiny_config(tmp_path, f"curriculum.phases={phases}", "losses.clip=0"), log_stream=None)
    drawn = []
    original = distill.add_noise

    def recording_add_noise(x0, noise, timesteps, abar):
        drawn.append(timesteps.tolist())
        return original(x0, noise, timesteps, abar)

    monkeypatch.setattr(distill, "add_noise", recording_add_noise)
    logs = []
    for _ in range(3):
        drawn.clear()
        logs.append(trainer.train_step(itertools.repeat(batch)))
        vsd_draw = drawn[0]  # the VSD term noises first, then the fake-score loss
        assert all(logs[-1]["t_low"] <= t <= logs[-1]["t_high"] for t in vsd_draw), (vsd_draw, logs[-1])
    assert [(log["t_low"], log["t_high"]) for log in logs] == [(900, 950), (400, 450), (30, 60)]
    with pytest.raises(ValueError, match="phases\\[0\\].steps"):
        DistillTrainer(tiny_config(tmp_path, "curriculum.phases=[{steps: 0}, {t_min: 20}]"), log_stream=None)


def test_grid_smoothness_and_gamut_terms():
    assert grid_laplacian_smoothness(torch.ones(2, 12, 3, 3, 3)).item() == 0.0
    impulse = torch.zeros(1, 12, 5, 5, 5)
    impulse[0, 0, 2, 2, 2] = 1.0
    # Laplacian: -6 at the impulse, +1 at its 6 neighbours -> (36 + 6) / (12 * 125) values
    assert grid_laplacian_smoothness(impulse).item() == pytest.approx(42 / 1500)
    image = torch.tensor([-0.5, 0.2, 1.0, 1.5]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    assert out_of_gamut(image).item() == pytest.approx((0.25 + 0.25) / 4)


# ------------------------------------------------------------------------------------------
# training


def test_stage1_losses_go_down_on_a_fixed_batch(batch, tmp_path):
    trainer = DistillTrainer(tiny_config(tmp_path), log_stream=None)
    student = trainer.accelerator.unwrap_model(trainer.student)
    assert not any(p.requires_grad for p in student.adapter.parameters())  # stage 1: generator only
    assert all(p.requires_grad for p in student.generator.parameters())
    assert not any(p.requires_grad for p in trainer.teacher.codec.parameters())
    before = evaluate(trainer, batch)
    logs = [trainer.train_step(itertools.repeat(batch)) for _ in range(8)]
    after = evaluate(trainer, batch)
    assert set(logs[-1]) >= {"vsd", "mse", "lpips", "clip", "fake", "total", "dmd_norm", "grad_norm_student"}
    assert after["total"] < 0.8 * before["total"]
    assert after["mse"] < before["mse"] and after["lpips"] < before["lpips"]
    assert after["fake"] < before["fake"]


def test_stage2_losses_go_down_and_train_the_adapter(batch, tmp_path):
    trainer = DistillTrainer(tiny_config(tmp_path, "stage=2"), log_stream=None)
    student = trainer.accelerator.unwrap_model(trainer.student)
    start = [p.detach().clone() for p in student.adapter.parameters()]
    before = evaluate(trainer, batch)
    for _ in range(8):
        trainer.train_step(itertools.repeat(batch))
    after = evaluate(trainer, batch)
    assert {"bil_l1", "bil_lpips", "bil_xhat", "smooth", "gamut"} <= set(after)
    assert after["total"] < 0.8 * before["total"]
    assert after["bil_l1"] < before["bil_l1"] and after["bil_lpips"] < before["bil_lpips"]
    assert any(not torch.equal(a, b) for a, b in zip(start, student.adapter.parameters()))


@pytest.mark.parametrize("stage, mode", [(1, "full"), (2, "lora")])
def test_resume_reproduces_the_next_step(batch, tmp_path, stage, mode):
    overrides = [f"stage={stage}", f"fake.mode={mode}", "run.grad_accum=2"]
    first = DistillTrainer(tiny_config(tmp_path / "run", *overrides), log_stream=None)
    data = itertools.repeat(batch)
    for _ in range(2):
        first.train_step(data)
    checkpoint = first.save_checkpoint()
    expected = first.train_step(data)

    reset_accelerate_state()
    second = DistillTrainer(tiny_config(tmp_path / "run", *overrides, f"run.resume={checkpoint}"), log_stream=None)
    assert second.step == 2
    got = second.train_step(itertools.repeat(batch))
    for key in ("total", "vsd", "mse", "lpips", "clip", "fake"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6, rel=0), key
    # the updated weights agree too
    a = first.accelerator.unwrap_model(first.student).generator.unet.conv_out.weight
    b = second.accelerator.unwrap_model(second.student).generator.unet.conv_out.weight
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_v_prediction_teacher_distils(batch, tmp_path):
    """The small CPU configs use a v-prediction teacher: the data loss still falls."""
    trainer = DistillTrainer(tiny_config(tmp_path, "model.tiny_config.prediction_type=v_prediction"), log_stream=None)
    assert trainer.teacher.prediction_type == "v_prediction"
    before = evaluate(trainer, batch)
    for _ in range(8):
        trainer.train_step(itertools.repeat(batch))
    after = evaluate(trainer, batch)
    assert all(math.isfinite(v) for v in after.values())
    assert after["mse"] < before["mse"]

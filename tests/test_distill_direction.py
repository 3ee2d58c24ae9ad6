"""The sign of the distillation objective, isolated from every other loss term.

The generator's only signal here is VSD (data, LPIPS and CLIP weights are 0) and the scores are
known in closed form: the real and fake score models are point-mass denoisers, whose clean
estimate is a fixed latent ``mu`` for every noisy input. Distribution matching must then pull
the generator sample x̂ towards ``mu_real`` and away from ``mu_fake`` - a flipped sign anywhere
between ``vsd_loss`` and the optimizer step pushes it the other way. The fake-score update is
checked the same way: one step must lower its denoising loss on the draw it trained on and move
its clean estimate towards the (detached) generator sample.
"""

import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from distill_helpers import write_tiny_dataset
from retouch_core.models.diffusion.schedule import add_noise, schedule_coefficients, training_target, x0_from_output
from retouch_core.models.diffusion.teacher import denoise
from retouch_training.data.dataset import TripletDataset
from retouch_training.train.config import DistillConfig, load_config
from retouch_training.train.distill import DistillTrainer
from retouch_training.train.runtime import step_generator

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
VSD_ONLY = ["losses.mse=0", "losses.lpips=0", "losses.clip=0", "fake.mode=full"]


class PointMassDenoiser(nn.Module):
    """A score model of the point-mass distribution at ``mu``: its x0 estimate is ``mu`` for every x_t.

    Called like a diffusers UNet (``unet(cat(x_t, c_I), t, encoder_hidden_states=...).sample``),
    it returns the output of ``prediction_type`` (ε, v or x0) that encodes x0 = ``mu``. One
    parameter (multiplied by 0) lets the trainer's optimizer and backward pass run over it.
    """

    def __init__(self, mu: torch.Tensor, alphas_cumprod: torch.Tensor, prediction_type: str):
        super().__init__()
        self.register_buffer("mu", mu.detach().clone())
        self.register_buffer("alphas_cumprod", alphas_cumprod)
        self.prediction_type = prediction_type
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, sample, timesteps, encoder_hidden_states=None):
        x_t = sample[:, : self.mu.shape[1]]
        mu = self.mu.repeat(x_t.shape[0] // self.mu.shape[0], 1, 1, 1)  # the 3-branch CFG batch
        signal, sigma = schedule_coefficients(self.alphas_cumprod, timesteps, x_t)
        eps = (x_t - signal * mu) / sigma
        out = training_target(mu, eps, timesteps, self.alphas_cumprod, self.prediction_type)
        return SimpleNamespace(sample=out + 0.0 * self.dummy)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("triplets"))
    return torch.utils.data.default_collate([TripletDataset(root, size=64)[i] for i in (0, 1)])


def trainer_for(tmp_path, *overrides) -> DistillTrainer:
    # No generator_timestep override: the production t_max = T - 1.
    config = load_config(DistillConfig, CONFIGS / "tiny_smoke.yaml", [
        f"run.output_dir={tmp_path}", "run.resume=null", "optim.lr=1e-5", "fake.lr=1e-3", *VSD_ONLY, *overrides])
    return DistillTrainer(config, log_stream=None)


def generator_sample(trainer: DistillTrainer, batch) -> torch.Tensor:
    """x̂ of the first micro-batch of step 0, from the same noise draw ``train_step`` uses."""
    cond = trainer.conditioning(batch)
    noise = torch.randn(cond.image_latent.shape, generator=step_generator(trainer.config.run.seed, 0, 0))
    student = trainer.accelerator.unwrap_model(trainer.student)
    with torch.no_grad():
        return student(noise, cond.image_latent, cond.text, with_grid=False).x0.float()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_generator_step_moves_towards_the_real_score_and_away_from_the_fake(batch, tmp_path, prediction_type):
    trainer = trainer_for(tmp_path, f"model.tiny_config.prediction_type={prediction_type}")
    assert trainer.accelerator.unwrap_model(trainer.student).generator.timestep == trainer.teacher.num_train_timesteps - 1
    before = generator_sample(trainer, batch)
    offset = 0.5 * before.std() * torch.randn(before.shape, generator=torch.Generator().manual_seed(1))
    mu_real, mu_fake = before + offset, before - offset
    abar = trainer.teacher.alphas_cumprod
    trainer.teacher.unet = PointMassDenoiser(mu_real, abar, prediction_type)  # the real score (fake.mode=full)
    trainer.fake = PointMassDenoiser(mu_fake, abar, prediction_type)

    logs = trainer.train_step(itertools.repeat(batch))
    after = generator_sample(trainer, batch)

    step = after - before
    assert step.abs().max() > 0
    assert (after - mu_real).norm() < (before - mu_real).norm()
    assert (after - mu_fake).norm() > (before - mu_fake).norm()
    # and not by accident: the step is aligned with x0_real - x0_fake, per sample
    cosine = torch.nn.functional.cosine_similarity(step.flatten(1), offset.flatten(1))
    assert (cosine > 0.1).all(), cosine
    assert logs["vsd"] > 0 and logs["total"] == pytest.approx(logs["vsd"])  # VSD is the only generator term


def test_fake_score_step_fits_the_generator_samples(batch, tmp_path):
    # Generator frozen for this step (lr 0), so the samples the fake score fits stay put.
    trainer = trainer_for(tmp_path, "optim.lr=0")
    fake = trainer.accelerator.unwrap_model(trainer.fake)
    cond = trainer.conditioning(batch)
    x_hat = generator_sample(trainer, batch)
    # A fixed evaluation draw at mid noise, independent of the training draw.
    gen = torch.Generator().manual_seed(7)
    t = torch.full((x_hat.shape[0],), 400)
    x_t = add_noise(x_hat, torch.randn(x_hat.shape, generator=gen), t, trainer.teacher.alphas_cumprod)

    def fake_x0():
        with torch.no_grad():
            out = denoise(fake, x_t, t, cond.image_latent, cond.text)
        return x0_from_output(out, x_t, t, trainer.teacher.alphas_cumprod, trainer.teacher.prediction_type)

    def fake_loss():
        with torch.no_grad():
            return float(trainer.losses(batch, step_generator(trainer.config.run.seed, 0, 0), True, step=0)[1]["fake"])

    x0_before, loss_before = fake_x0(), fake_loss()
    trainer.train_step(itertools.repeat(batch))
    x0_after, loss_after = fake_x0(), fake_loss()

    assert torch.equal(generator_sample(trainer, batch), x_hat)  # only the fake score moved
    assert loss_after < loss_before  # on the draw it trained on (step 0's generator)
    assert (x0_after - x_hat).norm() < (x0_before - x_hat).norm()  # towards the generator samples

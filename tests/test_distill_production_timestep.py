"""The production one-step generator (t_max = T - 1, the teacher's prediction type) end to end.

The other distillation tests run the generator at t = 500 for speed of convergence; here the
default (no ``generator_timestep``) goes through ``retouch-train distill`` stage 1, the export
and ``load_retouch_model``, and the exported student's clean estimate is checked against eq. 2
computed by hand from diffusers' own DDPM schedule.
"""

import json
from pathlib import Path

import pytest
import torch

from distill_helpers import write_tiny_dataset
from retouch_core.models import load_retouch_model
from retouch_training.train import distill

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_default_generator_timestep_trains_exports_and_is_eq2(tmp_path, prediction_type):
    from diffusers import DDPMScheduler

    dataset = write_tiny_dataset(tmp_path / "triplets")
    out = tmp_path / "run"
    assert distill.main(["--config", str(CONFIGS / "tiny_smoke.yaml"), "--dataset", str(dataset), "--output-dir",
                         str(out), "--max-steps", "2", "--set", f"model.tiny_config.prediction_type={prediction_type}"]) == 0
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(value is not None for record in logs for value in record.values())  # finite at t = T - 1

    net = load_retouch_model(out / "student.safetensors").net
    assert net.generator.timestep == 999 and net.generator.prediction_type == prediction_type
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    got = net.predict(image, ["make it warmer"], with_grid=False).x0

    # Eq. 2 by hand: the UNet at t = 999, ᾱ from diffusers' scheduler built from the exported config.
    abar = DDPMScheduler.from_config(net.scheduler_config).alphas_cumprod[-1].double()
    latent = net.image_condition(image)
    z = net.inference_noise(latent)
    t = torch.tensor([999])
    with torch.no_grad():
        output = net.generator.unet(torch.cat([z, latent], 1), t, encoder_hidden_states=net.text(["make it warmer"])).sample
    z, output = z.double(), output.double()
    if prediction_type == "epsilon":
        expected = (z - (1 - abar).sqrt() * output) / abar.sqrt()
    else:
        expected = abar.sqrt() * z - (1 - abar).sqrt() * output
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-4)

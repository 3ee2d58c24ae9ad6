"""``run.gradient_checkpointing``: the trained UNets and the VAE decoder recompute their
activations in the backward pass (so they are not stored), and the step is unchanged."""

import itertools
from pathlib import Path

import pytest
import torch

from distill_helpers import write_tiny_dataset
from retouch_training.data.dataset import TripletDataset
from retouch_training.train.config import DistillConfig, load_config
from retouch_training.train.distill import DistillTrainer
from conftest import reset_accelerate_state

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("triplets"))
    return torch.utils.data.default_collate([TripletDataset(root, size=64)[i] for i in (0, 1)])


def counting(forward, calls: dict, name: str):
    def wrapped(*args, **kwargs):
        calls[name] += 1
        return forward(*args, **kwargs)

    return wrapped


def one_step(tmp_path, checkpointing: bool, mode: str, batch):
    """Logs of one step, the updated generator conv_out and forward-call counts of one block per model."""
    config = load_config(DistillConfig, CONFIGS / "tiny_smoke.yaml", [
        f"run.output_dir={tmp_path}", "run.resume=null", "model.tiny_config.codec=vae", f"fake.mode={mode}",
        "generator_timestep=500", "optim.lr=1e-3", "fake.lr=1e-3", f"run.gradient_checkpointing={checkpointing}"])
    trainer = DistillTrainer(config, log_stream=None)
    acc = trainer.accelerator
    blocks = {"generator": acc.unwrap_model(trainer.student).generator.unet.mid_block.resnets[1],
              "fake": acc.unwrap_model(trainer.fake).mid_block.resnets[1],  # behind LoRA layers in lora mode
              "vae_decoder": trainer.teacher.codec.vae.decoder.up_blocks[0]}
    calls = dict.fromkeys(blocks, 0)
    for name, block in blocks.items():  # counted in forward itself: recomputation skips module hooks
        block.forward = counting(block.forward, calls, name)
    logs = trainer.train_step(itertools.repeat(batch))
    weight = acc.unwrap_model(trainer.student).generator.unet.conv_out.weight.detach().clone()
    reset_accelerate_state()
    return logs, weight, calls


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_checkpointing_recomputes_activations_and_leaves_the_step_unchanged(tmp_path, batch, mode):
    plain_logs, plain_weight, plain_calls = one_step(tmp_path / "plain", False, mode, batch)
    logs, weight, calls = one_step(tmp_path / "ckpt", True, mode, batch)
    # Each block runs once more per backward pass through it: the recomputation.
    assert calls["generator"] == plain_calls["generator"] + 1
    assert calls["fake"] == plain_calls["fake"] + 1  # the fake-score loss (its VSD call is no_grad)
    assert calls["vae_decoder"] == plain_calls["vae_decoder"] + 1  # the data loss decodes x̂ with grad
    for key in ("total", "vsd", "mse", "fake", "grad_norm_student", "grad_norm_fake"):
        assert logs[key] == pytest.approx(plain_logs[key], rel=1e-4, abs=1e-6), key
    torch.testing.assert_close(weight, plain_weight, atol=1e-6, rtol=0)

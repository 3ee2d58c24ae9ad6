"""``python -m retouch_training.train.memory``: parameter counts of the paper's architecture and
activation bytes against hand counts."""

from pathlib import Path

import torch

from retouch_training.train.config import DistillConfig, TeacherTrainConfig, load_config
from retouch_training.train.memory import ActivationCounter, MemoryEstimate, architectures, count, estimate, fits, main

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_stable_diffusion_15_parameter_counts():
    unet, vae, text = architectures(None)
    # Published sizes: SD 1.5 UNet 859,520,964 + InstructPix2Pix's 4 extra input channels (4 x 320 x 3 x 3),
    # VAE 83,653,863, CLIP ViT-L/14 text encoder 123,060,480.
    assert count(unet) == 859_520_964 + 4 * 320 * 9
    assert count(vae) == 83_653_863
    assert count(text) == 123_060_480


def test_activation_counter_matches_a_hand_count():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
    counter = ActivationCounter()
    with counter.counting():
        model(torch.randn(4, 8))
    assert counter.saved == 4 * 8 * 4 + 4 * 16 * 4  # Linear saves its input, ReLU its output (float32)


def test_paper_configs_memory_and_checkpointing(capsys):
    teacher = load_config(TeacherTrainConfig, CONFIGS / "teacher.yaml")
    stage1 = load_config(DistillConfig, CONFIGS / "distill_stage1.yaml")
    plain, ckpt = estimate(stage1, checkpointing=False), estimate(stage1, checkpointing=True)
    assert ckpt.states == plain.states and ckpt.activations < 0.6 * plain.activations
    # student fp32 weights + grads + AdamW + EMA = 20 bytes per UNet parameter, at least
    assert plain.states > 20 * 859e6
    assert fits(estimate(teacher, checkpointing=True), 24) and not fits(plain, 40)
    assert not fits(MemoryEstimate(23e9, 0), 24)
    assert main(["--config", str(CONFIGS / "distill_stage1.yaml")]) == 0
    assert "gradient_checkpointing=true" in capsys.readouterr().out

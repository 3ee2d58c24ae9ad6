"""``train-teacher``: conditioning dropout, learning on a fixed batch, exact resume, CLI export."""

import itertools
import json
from pathlib import Path

import pytest
import torch

from distill_helpers import write_tiny_dataset
from retouch_core.models.diffusion.teacher import InstructPix2PixTeacher
from retouch_training.data.dataset import TripletDataset
from retouch_training.train.config import TeacherTrainConfig, load_config
from retouch_training.train.runtime import step_generator
from retouch_training.train.teacher import TeacherTrainer, dropout_masks, main
from conftest import reset_accelerate_state

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")
CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("triplets"), size=32)


@pytest.fixture(scope="module")
def batch(dataset_dir):
    data = TripletDataset(dataset_dir, size=32)
    return torch.utils.data.default_collate([data[0], data[1]])


def tiny_config(output_dir, *overrides) -> TeacherTrainConfig:
    return load_config(TeacherTrainConfig, None, [
        "model.tiny=true", f"run.output_dir={output_dir}", "run.resume=null", "run.cpu=true", "optim.lr=1e-3",
        "data.resolution=32", "data.size=32", "data.batch_size=2", "data.num_workers=0", "run.log_every=1",
        *overrides])


def test_dropout_masks_follow_instructpix2pix():
    no_text, no_image = dropout_masks(200_000, torch.Generator().manual_seed(0), 0.05, 0.05, 0.05)
    both = no_text & no_image
    assert both.float().mean().item() == pytest.approx(0.05, abs=3e-3)
    assert (no_text & ~no_image).float().mean().item() == pytest.approx(0.05, abs=3e-3)
    assert (no_image & ~no_text).float().mean().item() == pytest.approx(0.05, abs=3e-3)
    none_t, none_i = dropout_masks(100, torch.Generator().manual_seed(0), 0.0, 0.0, 0.0)
    assert not none_t.any() and not none_i.any()


def test_eq1_loss_goes_down_on_a_fixed_batch(batch, tmp_path):
    trainer = TeacherTrainer(tiny_config(tmp_path, "drop_text=0.0", "drop_image=0.0", "drop_both=0.0"), log_stream=None)
    assert not any(p.requires_grad for p in trainer.teacher.text.parameters())

    def loss():
        with torch.no_grad():
            return trainer.losses(batch, step_generator(7, 0, 0))["loss"].item()

    before = loss()
    for _ in range(10):
        logs = trainer.train_step(itertools.repeat(batch))
    assert set(logs) >= {"loss", "lr", "grad_norm", "drop_text", "drop_image"}
    assert loss() < 0.8 * before


def test_resume_reproduces_the_next_step(batch, tmp_path):
    overrides = ["run.grad_accum=2", "run.ema_decay=0.9"]
    first = TeacherTrainer(tiny_config(tmp_path, *overrides), log_stream=None)
    data = itertools.repeat(batch)
    for _ in range(2):
        first.train_step(data)
    checkpoint = first.save_checkpoint()
    expected = first.train_step(data)

    reset_accelerate_state()
    second = TeacherTrainer(tiny_config(tmp_path, *overrides, f"run.resume={checkpoint}"), log_stream=None)
    assert second.step == 2
    got = second.train_step(itertools.repeat(batch))
    assert got["loss"] == pytest.approx(expected["loss"], abs=1e-6, rel=0)
    for name, shadow in first.ema.shadow.items():
        torch.testing.assert_close(second.ema.shadow[name], shadow, atol=1e-6, rtol=0)


def test_cli_trains_checkpoints_and_exports_a_loadable_teacher(dataset_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--tiny", "--dataset", str(dataset_dir), "--output-dir", str(out), "--max-steps", "2",
                 "--set", "data.resolution=32", "--set", "data.size=32", "--set", "data.batch_size=2",
                 "--set", "data.num_workers=0", "--set", "run.log_every=1", "--set", "run.checkpoint_every=1",
                 "--set", "run.cpu=true"])
    assert code == 0
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2] and all("loss" in r for r in lines)
    assert "step 2 | loss" in capsys.readouterr().out
    assert (out / "checkpoints" / "latest").read_text() == "checkpoint-00000002"
    assert len(list((out / "checkpoints").glob("checkpoint-*"))) == 2  # keep_checkpoints
    teacher = InstructPix2PixTeacher.from_pretrained(out / "teacher")
    with torch.no_grad():
        image = teacher.sample(torch.rand(1, 3, 16, 16), ["warmer"], steps=2)
    assert image.shape == (1, 3, 16, 16)


def test_small_teacher_is_built_from_the_config_file(tmp_path):
    from retouch_training.train.runtime import build_teacher

    config = load_config(TeacherTrainConfig, CONFIGS / "small_cpu_teacher.yaml", [f"run.output_dir={tmp_path}"])
    tiny = config.model.tiny_config
    teacher = build_teacher(config.model)
    assert teacher.unet.config.block_out_channels == tuple(tiny.block_out_channels)
    assert teacher.text.max_length == tiny.max_length == 77  # whole instructions fit
    # Cross-attention only at the listed levels (the CPU budget) and in the mid block.
    assert [("CrossAttn" in b) for b in teacher.unet.config.down_block_types] == [
        i in tiny.attention_levels for i in range(len(tiny.block_out_channels))]
    with pytest.raises(ValueError, match="tiny_config.widths"):
        load_config(TeacherTrainConfig, None, ["model.tiny_config.widths=[1]"])

"""``distill`` as a command: configs, CLI registration, data order, stage 1 -> 2 -> export, and a
single-process ``accelerate launch`` run on CPU with bf16 autocast."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill_helpers import write_tiny_dataset
from retouch_core.language.matcher import parse_instruction
from retouch_core.models import load_retouch_model
from retouch_core.models.diffusion.bilateral_student import BilateralStudent
from retouch_training.train import distill
from retouch_training.train import teacher as train_teacher
from retouch_training.train.config import DistillConfig, TeacherTrainConfig, load_config
from retouch_training.train.distill import DistillTrainer
from retouch_training.train.runtime import ResumableBatchSampler
from retouch_training.train.state import load_train_state
from conftest import reset_accelerate_state

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("triplets"))


def test_shipped_configs_load_with_overrides():
    teacher = load_config(TeacherTrainConfig, CONFIGS / "teacher.yaml")
    assert teacher.optim.lr == 5e-5 and teacher.drop_both == 0.05 and teacher.run.mixed_precision == "bf16"
    s1 = load_config(DistillConfig, CONFIGS / "distill_stage1.yaml", ["optim.lr=1e-4", "fake.mode=full"])
    assert s1.stage == 1 and s1.optim.lr == 1e-4 and s1.fake.mode == "full" and s1.fake.rank == 64
    s2 = load_config(DistillConfig, CONFIGS / "distill_stage2.yaml")
    assert s2.stage == 2 and s2.data.size == 1024 and s2.adapter.feature_blocks == ("mid", "up0", "up1")
    # the paper's configs: 512 px, phased curriculum (high, mid, low), checkpointed activations
    assert s1.data.resolution == s2.data.resolution == teacher.data.resolution == 512
    assert [(p.t_min, p.t_max) for p in s1.curriculum.phases] == [(700, 980), (300, 700), (20, 300)]
    assert s1.run.gradient_checkpointing and s2.run.gradient_checkpointing and teacher.run.gradient_checkpointing
    assert load_config(DistillConfig, CONFIGS / "tiny_smoke.yaml").model.tiny
    with pytest.raises(ValueError, match="losses.vds"):
        load_config(DistillConfig, None, ["losses.vds=1"])
    with pytest.raises(ValueError, match="optim.lr"):
        load_config(DistillConfig, None, ["optim.lr=fast"])


def test_subcommands_register_and_map_to_the_config(tmp_path):
    parser = argparse.ArgumentParser(prog="retouch-train")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (train_teacher, distill):
        module.register(sub)
    args = parser.parse_args(["distill", "--stage", "2", "--config", str(CONFIGS / "distill_stage2.yaml"),
                              "--init-from", "runs/s1", "--teacher", "t", "--dataset", "d", "--resume", "none",
                              "--set", "losses.clip=0", "--max-steps", "7"])
    config = distill.config_from_args(args)
    assert (config.stage, config.init_from, config.model.teacher, config.data.root) == (2, "runs/s1", "t", "d")
    assert config.run.resume is None and config.losses.clip == 0 and config.run.max_steps == 7
    assert args.func is distill.run
    assert parser.parse_args(["train-teacher", "--tiny"]).func is train_teacher.run


def test_data_order_depends_only_on_seed_batch_and_process():
    full = ResumableBatchSampler(10, 3, seed=5)
    stream = iter(full)
    first = [next(stream) for _ in range(6)]
    resumed = iter(ResumableBatchSampler(10, 3, seed=5, start=4))
    assert [next(resumed), next(resumed)] == first[4:6]
    epoch0 = sum(first[:3], []) + first[3][:1]
    assert sorted(epoch0) == list(range(10))  # each epoch is a permutation
    ranks = [ResumableBatchSampler(10, 2, seed=5, rank=r, world=2).batch(0) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])


def test_stage1_then_stage2_then_export_round_trip(dataset_dir, tmp_path, capsys):
    common = ["--config", str(CONFIGS / "tiny_smoke.yaml"), "--dataset", str(dataset_dir), "--max-steps", "2",
              "--set", "generator_timestep=500"]
    assert distill.main([*common, "--output-dir", str(tmp_path / "s1")]) == 0
    stage1 = [json.loads(line) for line in (tmp_path / "s1" / "log.jsonl").read_text().splitlines()]
    assert {"vsd", "fake", "mse", "lpips", "clip", "total", "dmd_norm", "t_low"} <= set(stage1[-1])
    assert (tmp_path / "s1" / "student.safetensors").is_file()

    reset_accelerate_state()
    config = load_config(DistillConfig, CONFIGS / "tiny_smoke.yaml", [
        "stage=2", f"init_from={tmp_path / 's1'}", f"data.root={dataset_dir}", f"run.output_dir={tmp_path / 's2'}",
        "generator_timestep=500", "run.max_steps=2", "adapter.grid_depth=2"])  # another adapter than stage 1
    trainer = DistillTrainer(config, log_stream=None)
    stage1_ema = load_train_state(tmp_path / "s1").ema
    start = trainer.accelerator.unwrap_model(trainer.student).generator.unet.conv_in.weight
    assert torch.equal(start, stage1_ema["shadow.generator.unet.conv_in.weight"])  # stage 2 starts at the EMA
    logs = trainer.train()
    assert {"bil_l1", "bil_lpips", "bil_xhat", "smooth", "gamut"} <= set(logs)
    exported = tmp_path / "s2" / "student.safetensors"
    model = load_retouch_model(exported)
    assert isinstance(model, BilateralStudent)
    image = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    plan = parse_instruction("make it warmer")
    student = trainer.accelerator.unwrap_model(trainer.student)
    with trainer.ema.swapped_in(student):
        expected = BilateralStudent(student).predict_grid(image, plan)
    got = model.predict_grid(image, plan)
    assert torch.equal(got.grid, expected.grid)
    assert all(torch.equal(a, b) for a, b in zip(got.guide.tensors(), expected.guide.tensors()))


def test_accelerate_launch_single_process_cpu_bf16(dataset_dir, tmp_path):
    out = tmp_path / "launched"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
               "-m", "retouch_training.train.distill", "--config", str(CONFIGS / "tiny_smoke.yaml"),
               "--dataset", str(dataset_dir), "--output-dir", str(out), "--max-steps", "1",
               "--set", "generator_timestep=500", "--set", "run.checkpoint_every=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 1 and all(v is not None for v in record.values())
    assert (out / "checkpoints" / "checkpoint-00000001" / "models.safetensors").is_file()
    assert (out / "student.safetensors").is_file()
    runtime = json.loads((out / "runtime.json").read_text())
    assert runtime["mixed_precision"] == "bf16" and runtime["num_processes"] == 1 and runtime["device"] == "cpu"

"""Distillation on two CPU processes (``accelerate launch --multi_gpu --num_processes 2`` with
``run.cpu``: gloo): both stages
run, resume from a checkpoint, and log the same losses as one process with the same global batch.

Slow (several ``accelerate launch`` runs; about 4-8 min on 2 busy CPU cores): ``-m "not slow"``
leaves it out.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_helpers import write_tiny_dataset

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
TERMS = ("total", "vsd", "mse", "lpips", "clip", "fake")


def launch(processes: int, batch: int, out: Path, dataset: Path, steps: int, *extra: str) -> list[dict]:
    """``accelerate launch`` a tiny distillation; returns its log records."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    # `accelerate launch --cpu --num_processes 2` starts ONE process (accelerate's simple launcher);
    # --multi_gpu starts torchrun workers, and run.cpu (tiny_smoke.yaml) makes them gloo CPU ranks.
    launcher = ["--multi_gpu", "--main_process_port", "29517"] if processes > 1 else ["--cpu"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "retouch_training.train.distill", "--config", str(CONFIGS / "tiny_smoke.yaml"),
               "--dataset", str(dataset), "--output-dir", str(out), "--max-steps", str(steps),
               "--set", "generator_timestep=500", "--set", f"data.batch_size={batch}",
               "--set", "run.checkpoint_every=1", "--set", "data.crop=center", *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=out.parent)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def assert_same_losses(a: dict, b: dict) -> None:
    for key in TERMS:
        if key in a or key in b:
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-5), (key, a[key], b[key])


def test_two_processes_match_one_with_the_same_global_batch_and_resume(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "triplets", count=8)
    # Stage 1: two steps on 2 x 2, then resumed for a third; one process of batch 4 for three.
    two = launch(2, 2, tmp_path / "two_s1", dataset, 2)
    assert (tmp_path / "two_s1" / "checkpoints" / "checkpoint-00000002").is_dir()
    runtime = json.loads((tmp_path / "two_s1" / "runtime.json").read_text())
    assert runtime["num_processes"] == 2 and "MULTI_CPU" in runtime["distributed_type"] and "cpu" in runtime["device"]
    two += launch(2, 2, tmp_path / "two_s1", dataset, 3)[len(two):]  # resume: run.resume=latest
    one = launch(1, 4, tmp_path / "one_s1", dataset, 3)
    assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2, 3]
    for a, b in zip(two, one):
        assert_same_losses(a, b)

    # Stage 2 from each stage-1 run.
    two_s2 = launch(2, 2, tmp_path / "two_s2", dataset, 2, "--stage", "2", "--init-from", str(tmp_path / "two_s1"))
    one_s2 = launch(1, 4, tmp_path / "one_s2", dataset, 2, "--stage", "2", "--init-from", str(tmp_path / "one_s1"))
    assert {"bil_l1", "smooth", "gamut"} <= set(two_s2[-1])
    for a, b in zip(two_s2, one_s2):
        assert_same_losses(a, b)
        assert a["bil_l1"] == pytest.approx(b["bil_l1"], rel=1e-3)
    assert (tmp_path / "two_s2" / "student.safetensors").is_file()

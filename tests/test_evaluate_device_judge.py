"""``retouch-train evaluate --device`` (models and slicing on a device, synchronised timings) and
``--judge`` (a pluggable VLM judge: SC, PQ, O = sqrt(SC * PQ)), with a deterministic test judge."""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from retouch_core.models import load_retouch_model
from retouch_training.eval import evaluate as cli
from retouch_training.eval.judge import JudgeScores, load_judge, scores_from
from retouch_training.eval.methods import model_retoucher
from retouch_training.eval.protocol import time_retoucher
from retouch_training.eval.records import EvaluationError

TESTS = Path(__file__).resolve().parent


def _cli(argv):
    parser = argparse.ArgumentParser(prog="retouch-train")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


@pytest.fixture
def pairs(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        image = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
        for folder in ("in", "tgt"):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(image).save(tmp_path / folder / f"{name}.png")
    return tmp_path / "in", tmp_path / "tgt"


def _read(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255)


@pytest.mark.parametrize("form", ["python", "command"])
def test_judge_scores_and_overall_in_the_report(pairs, tmp_path, form):
    judge = "eval_judges:pixel_judge" if form == "python" else \
        f"{sys.executable} {TESTS / 'eval_judges.py'} {{input}} {{output}} {{instruction}}"
    report = tmp_path / "report"
    assert _cli(["--model", "identity", "--pairs", *map(str, pairs), "--judge", judge, "--device", "cpu",
                 "--report", str(report), "--no-progress"]) == 0
    summary = json.loads((report / "summary.json").read_text())["methods"][0]
    # identity: output = input, so SC = 10 mean(input), PQ = 10; O = mean over triplets of sqrt(SC PQ)
    sc = [10 * float(_read(pairs[0] / f"{n}.png").mean()) for n in ("a", "b")]
    expected = {"sc": np.mean(sc), "pq": 10.0, "o": np.mean([math.sqrt(s * 10) for s in sc])}
    for key, value in expected.items():
        assert summary["metrics"][key] == pytest.approx(value, rel=1e-4), key
    assert summary["device"] == "cpu"
    assert "device: cpu" in (report / "summary.md").read_text() and "O↑" in (report / "summary.md").read_text()


def test_without_a_judge_the_columns_are_not_requested(pairs, tmp_path):
    assert _cli(["--model", "identity", "--pairs", *map(str, pairs), "--report", str(tmp_path / "r"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "r" / "summary.json").read_text())["methods"][0]["metrics"]
    assert metrics["sc"] is None and metrics["pq"] is None and metrics["o"] is None


def test_judge_answers_are_parsed_or_refused():
    assert scores_from('{"sc": 6, "PQ": 8}') == JudgeScores(6.0, 8.0)
    assert scores_from("SC: 9\nPQ: 4\n").overall == pytest.approx(6.0)
    assert scores_from((1, 4)).overall == pytest.approx(2.0)
    for bad in ('{"SC": 3}', "nothing", (-1, 2), (float("nan"), 1)):
        with pytest.raises(EvaluationError):
            scores_from(bad)
    with pytest.raises(EvaluationError, match="no_such_module"):
        load_judge("no_such_module:judge")
    with pytest.raises(EvaluationError, match="output"):
        load_judge("echo {input}")


def test_unavailable_device_is_a_clear_error(pairs, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert _cli(["--model", "identity", "--pairs", *map(str, pairs), "--device", "cuda", "--no-progress"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_timings_synchronise_the_device_around_every_call(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    retoucher = lambda image, instruction: events.append("call") or image  # noqa: E731
    time_retoucher(retoucher, torch.rand(1, 3, 8, 8), sizes={"tiny": (8, 8)}, repeats=2, device="cuda")
    # warm-up call, then each timed call between two synchronisations
    assert events == ["call", "sync", "call", "sync", "sync", "call", "sync"]


def test_grid_models_run_prediction_and_slicing_on_the_device():
    model = load_retouch_model("default")
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    run = model_retoucher("default", device="cpu")
    torch.testing.assert_close(run(image, "warmer, lift the shadows"), model(image, "warmer, lift the shadows"))

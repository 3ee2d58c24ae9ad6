"""Tests for retouch_training.eval (records, methods, protocol, summary, report and the evaluate
CLI): metric paths against independently computed values on constructed images, the CIELAB direction proxies, every way of supplying outputs (callable,
folder, shell command, model name), triplets from pairs and manifests, and the written report."""

import argparse
import csv
import json
import math
import shlex
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from retouch_training.eval import evaluate as cli
from retouch_training.eval.methods import (
    NAMED_METHODS, GridFitOracle, LowResEditor, NamedMethod, PrecomputedOutputs, command_retoucher,
    fill_template, identity, model_retoucher,
)
from retouch_training.eval.protocol import (
    ROW_COLUMNS, direction_hits, evaluate, instructed_axes, lab_stats, load_learned_metrics,
    scale_agreement, time_retoucher,
)
from retouch_core.apps.shared_data import shared_data
from retouch_training.data.images import read_rgb
from retouch_training.eval.records import EvaluationError, dataset_triplets, pair_triplets, save_image
from retouch_training.eval.report import format_markdown, write_report
from retouch_training.eval.summary import summarize

skdata = pytest.importorskip("skimage.data")
skcolor = pytest.importorskip("skimage.color")

FIVEK = shared_data("fivek_expertc")
NO_WEIGHTS = {"dists": "weights not found locally (test)", "lpips": "weights not found locally (test)"}


# ---------------------------------------------------------------------------------------------
# helpers


def _photo(name="astronaut", size=64):
    """A bundled scikit-image photo as (1, 3, size, size) in [0, 1]."""
    rgb = getattr(skdata, name)()[..., :3]
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True).clamp(0, 1)


def _pairs(tmp_path, target_fn=lambda x: x ** 0.7, names=("astronaut",), size=64, instruction=""):
    """input/ and target/ folders of PNGs; returns the triplets read back with pair_triplets."""
    for name in names:
        x = _photo(name, size)
        save_image(x, tmp_path / "in" / f"{name}.png")
        save_image(target_fn(x), tmp_path / "tgt" / f"{name}.png")
    return pair_triplets(tmp_path / "in", tmp_path / "tgt", instruction)


def _u8(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def _run(retoucher, triplets, **kw):
    kw.setdefault("learned", NO_WEIGHTS)
    return evaluate(retoucher, triplets, progress=False, **kw)


def _cli(argv):
    """`retouch-train evaluate ...` through register(), as training/cli.py will wire it."""
    parser = argparse.ArgumentParser(prog="retouch-train")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def brighten(x, instruction=""):
    return x * 0.7 + 0.3


def darken(x, instruction=""):
    return x * 0.7


# ---------------------------------------------------------------------------------------------
# metric values


def test_identity_editing_metrics_equal_independent_computation(tmp_path):
    (t,) = _pairs(tmp_path)
    row = _run(identity, [t]).rows[0]
    a, b = _u8(t.input), _u8(t.target)  # read with PIL/numpy, not with the module under test
    mse = np.mean((a - b) ** 2)
    assert row["psnr"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert row["l1"] == pytest.approx(np.mean(np.abs(a - b)), rel=1e-5)
    assert row["l2"] == pytest.approx(mse, rel=1e-5)
    expected_de = skcolor.deltaE_ciede2000(skcolor.rgb2lab(a), skcolor.rgb2lab(b)).mean()
    assert row["delta_e"] == pytest.approx(expected_de, rel=2e-3)
    # The output is the input, so every fidelity metric is perfect.
    assert row["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert row["cw_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert row["gmsd"] == pytest.approx(0.0, abs=1e-6)


def test_identical_images_are_perfect_everywhere(tmp_path):
    triplets = _pairs(tmp_path, target_fn=lambda x: x)
    result = _run(identity, triplets)
    row = result.rows[0]
    assert (row["l1"], row["l2"], row["delta_e"]) == (0.0, 0.0, 0.0)
    assert math.isinf(row["psnr"])
    assert row["ssim"] == pytest.approx(1.0, abs=1e-5) and row["gmsd"] == pytest.approx(0.0, abs=1e-6)
    table = format_markdown([summarize(result)])
    assert "| ∞ |" in table


def test_pure_shift_l1_equals_shift(tmp_path):
    (t,) = _pairs(tmp_path, target_fn=lambda x: x * 0.5 + 0.2, names=("coffee",))
    # The target file holds the (quantised) image; shifting it by 0.1 stays inside [0, 1].
    row = _run(lambda x, i: read_rgb(t.target) + 0.1, [t]).rows[0]
    assert row["l1"] == pytest.approx(0.1, abs=1e-6)
    assert row["l2"] == pytest.approx(0.01, abs=1e-6)
    assert row["psnr"] == pytest.approx(20.0, abs=1e-3)


def test_global_tone_change_keeps_fidelity(tmp_path):
    """Histogram matching removes a monotone tone curve: structure metrics stay near perfect,
    while blurring (a structural loss) is penalised."""
    (t,) = _pairs(tmp_path)
    tone = _run(lambda x, i: x ** 0.6, [t]).rows[0]
    blur = _run(lambda x, i: F.avg_pool2d(x, 5, 1, 2, count_include_pad=False), [t]).rows[0]
    assert tone["ssim"] > 0.98 and tone["cw_ssim"] > 0.98
    assert blur["ssim"] < tone["ssim"] - 0.1 and blur["gmsd"] > tone["gmsd"] + 0.05


def test_tiny_images_and_single_triplet(tmp_path):
    (t,) = _pairs(tmp_path, size=8)
    result = _run(brighten, [t])
    row = result.rows[0]
    # SSIM's 11x11 window and CW-SSIM's 4-level pyramid do not fit: n/a with a reason, not a crash.
    assert math.isnan(row["ssim"]) and math.isnan(row["cw_ssim"])
    assert "ssim" in row["notes"] and "cw_ssim" in row["notes"]
    assert math.isfinite(row["gmsd"]) and math.isfinite(row["psnr"])
    summary = summarize(result)
    assert summary["n"] == 1
    for metric in ("gmsd", "l1", "l2", "psnr", "delta_e"):
        assert summary["metrics"][metric] == pytest.approx(row[metric])
    line = format_markdown([summary]).splitlines()[4]
    assert line.split(" | ")[1:3] == ["n/a", "n/a"]


def test_output_of_other_size_is_resized_with_a_note(tmp_path):
    (t,) = _pairs(tmp_path)
    row = _run(lambda x, i: F.interpolate(x, scale_factor=0.5), [t]).rows[0]
    assert "resized" in row["notes"] and math.isfinite(row["psnr"])


def test_bad_retoucher_output_is_an_error(tmp_path):
    (t,) = _pairs(tmp_path)
    with pytest.raises(EvaluationError, match="NaN"):
        _run(lambda x, i: x * math.nan, [t])
    with pytest.raises(EvaluationError, match="shape"):
        _run(lambda x, i: x[:, :1], [t])


# ---------------------------------------------------------------------------------------------
# LPIPS / DISTS


def test_missing_learned_weights_are_reported_missing(tmp_path):
    learned = load_learned_metrics([tmp_path / "no-weights"])
    assert set(learned) == {"dists", "lpips"} and all(isinstance(v, str) for v in learned.values())
    result = _run(identity, _pairs(tmp_path), learned=learned)
    assert result.rows[0]["dists"] == "missing" and result.rows[0]["lpips"] == "missing"
    summary = summarize(result)
    assert summary["metrics"]["dists"] == "missing" and summary["metrics"]["lpips"] == "missing"
    assert set(summary["missing"]) == {"dists", "lpips"}
    cells = format_markdown([summary]).splitlines()[4].split(" | ")
    assert cells[4:6] == ["missing", "missing"]  # DISTS, LPIPS columns


def _fake_weights(folder):
    """Random trunks under the file names the loaders look for (the real ones are not shipped)."""
    from safetensors.torch import save_file
    from torchvision.models.vgg import cfgs, make_layers

    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    alex = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
    tensors = {}
    for i, (o, c, k) in alex.items():
        tensors[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * 0.05
        tensors[f"features.{i}.bias"] = torch.zeros(o)
    save_file(tensors, str(folder / "alexnet.safetensors"))
    vgg = {f"features.{k}": v.contiguous() for k, v in make_layers(cfgs["D"]).state_dict().items()}
    save_file(vgg, str(folder / "vgg16.safetensors"))
    save_file({"alpha": torch.rand(1, 1475, 1, 1, generator=g), "beta": torch.rand(1, 1475, 1, 1, generator=g)},
              str(folder / "dists_weights.safetensors"))


def test_learned_metrics_computed_when_weights_present(tmp_path):
    _fake_weights(tmp_path / "w")
    learned = load_learned_metrics([tmp_path / "w"])
    assert not any(isinstance(v, str) for v in learned.values())
    triplets = _pairs(tmp_path, size=32)  # small: VGG16 on CPU is the slow part
    same, blurred = (
        _run(fn, triplets, learned=learned).rows[0]
        for fn in (identity, lambda x, i: F.avg_pool2d(x, 5, 1, 2, count_include_pad=False))
    )
    assert same["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert blurred["lpips"] > same["lpips"] and blurred["dists"] > same["dists"]


# ---------------------------------------------------------------------------------------------
# direction accuracy


def test_brightening_retoucher_on_brighter_scores_one_darkening_zero(tmp_path):
    triplets = _pairs(tmp_path, names=("astronaut", "coffee"), size=32, instruction="brighter")
    bright, dark = _run(brighten, triplets), _run(darken, triplets)
    up, down = summarize(bright)["direction"], summarize(dark)["direction"]
    assert up["brightness"] == {"n": 2, "hits": 2, "accuracy": 1.0}
    assert down["brightness"] == {"n": 2, "hits": 0, "accuracy": 0.0}
    assert up["all"]["accuracy"] == 1.0 and down["all"]["accuracy"] == 0.0
    assert [r["dir_acc"] for r in bright.rows] == [1.0, 1.0] and [r["dir_acc"] for r in dark.rows] == [0.0, 0.0]


def test_identity_never_counts_as_moved(tmp_path):
    triplets = _pairs(tmp_path, instruction="brighter")
    assert summarize(_run(identity, triplets))["direction"]["all"]["accuracy"] == 0.0


def _gray(x):
    return (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand_as(x)


EDITS = {
    "brighten": brighten,
    "darken": darken,
    "warm": lambda x: torch.stack([x[:, 0] * 1.1, x[:, 1], x[:, 2] * 0.85], 1).clamp(0, 1),
    "green down": lambda x: torch.stack([x[:, 0], x[:, 1] * 0.9, x[:, 2]], 1),
    "saturate": lambda x: (_gray(x) + 1.5 * (x - _gray(x))).clamp(0, 1),
    "flatten": lambda x: 0.5 + 0.5 * (x - 0.5),
}


@pytest.mark.parametrize(
    "instruction, edit, axis, hit",
    [
        ("brighter", "brighten", "brightness", True),
        ("brighter", "darken", "brightness", False),
        ("darker", "darken", "brightness", True),
        ("exposure +0.5 EV", "brighten", "brightness", True),
        ("make it warmer", "warm", "warmth", True),
        ("cooler", "warm", "warmth", False),
        ("pinker", "green down", "tint_magenta", True),
        ("green tint", "green down", "tint_magenta", False),
        ("more saturated", "saturate", "saturation", True),
        ("desaturate", "saturate", "saturation", False),
        ("more vibrant", "saturate", "vibrance", True),
        ("less contrast", "flatten", "contrast", True),
        ("more contrast", "flatten", "contrast", False),
    ],
)
def test_direction_proxies(instruction, edit, axis, hit):
    from retouch_core.language.matcher import parse_instruction

    x = _photo("astronaut", 48)
    axes = instructed_axes(parse_instruction(instruction))
    assert axis in axes
    hits = direction_hits(lab_stats(x), lab_stats(EDITS[edit](x)), axes)
    assert hits[axis] is hit


def test_instruction_without_proxy_is_not_applicable(tmp_path):
    result = _run(brighten, _pairs(tmp_path, instruction="cinematic"))
    assert math.isnan(result.rows[0]["dir_acc"])
    assert summarize(result)["direction"]["all"] == {"n": 0, "hits": 0, "accuracy": None}


def test_clip_direction_matches_edit_direction(tmp_path):
    from retouch_core.language.clip_score import edit_direction, tiny_clip

    scorer = tiny_clip()
    (t,) = _pairs(tmp_path, size=32, instruction="brighter and warmer")
    result = _run(brighten, [t], clip=scorer)
    row = result.rows[0]
    x = read_rgb(t.input)
    bank = __import__("retouch_core.language.attributes", fromlist=["default_bank"]).default_bank()
    pairs = [(bank[n].positive, bank[n].negative) for n in ("brightness", "warmth")]
    expected = edit_direction(scorer, x, brighten(x), pairs, [1.0, 1.0]).moved.float().mean().item()
    assert row["clip_n"] == 2 and row["clip_dir"] == pytest.approx(expected)
    assert summarize(result)["metrics"]["clip_dir"] == pytest.approx(expected)
    # Without --clip the column is "not requested", not n/a or zero.
    assert summarize(_run(brighten, [t]))["metrics"]["clip_dir"] is None


# ---------------------------------------------------------------------------------------------
# sources of triplets and outputs


def test_pairs_keep_common_names_and_warn(tmp_path):
    _pairs(tmp_path, names=("astronaut", "coffee"))
    save_image(_photo(), tmp_path / "in" / "lonely.png")
    with pytest.warns(UserWarning, match="without a partner"):
        triplets = pair_triplets(tmp_path / "in", tmp_path / "tgt")
    assert [t.id for t in triplets] == ["astronaut", "coffee"]
    assert all(t.instruction == "" and t.subset == "auto" for t in triplets)


def _manifest(tmp_path):
    root = tmp_path / "ds"
    records = []
    specs = [("heldout", "style", "brighter"), ("train", "style", "darker"), ("heldout", "auto", ""),
             ("heldout", "param", "exposure +1 EV")]
    for i, (split, subset, instruction) in enumerate(specs):
        save_image(_photo(size=32), root / "inputs" / f"photo{i}.png")
        save_image(_photo(size=32) ** 0.8, root / "targets" / f"photo{i}.png")
        records.append({"id": f"rec-{i}", "input": f"inputs/photo{i}.png", "target": f"targets/photo{i}.png",
                        "instruction": instruction, "subset": subset, "split": split})
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return root


def test_manifest_filters(tmp_path):
    root = _manifest(tmp_path)
    assert [t.id for t in dataset_triplets(root)] == ["rec-0", "rec-2", "rec-3"]
    assert [t.id for t in dataset_triplets(root, subset="style")] == ["rec-0"]
    assert [t.id for t in dataset_triplets(root, split="all", limit=2)] == ["rec-0", "rec-1"]
    t = dataset_triplets(root, subset="param")[0]
    assert t.input == root / "inputs/photo3.png" and t.instruction == "exposure +1 EV"
    with pytest.raises(EvaluationError, match="splits"):
        dataset_triplets(root, split="test")


def test_folder_outputs_by_id_or_input_name(tmp_path):
    root = _manifest(tmp_path)
    triplets = dataset_triplets(root)
    by_id, by_name = tmp_path / "by_id", tmp_path / "by_name"
    for t in triplets:
        save_image(brighten(read_rgb(t.input)), by_id / f"{t.id}.png")
        save_image(brighten(read_rgb(t.input)), by_name / t.input.name)
    a = _run(PrecomputedOutputs(by_id), triplets, timing_sizes={"x": (8, 8)})
    b = _run(PrecomputedOutputs(by_name), triplets)
    assert [r["psnr"] for r in a.rows] == [r["psnr"] for r in b.rows]
    assert a.rows[0]["dir_brightness"] == 1.0  # "brighter", brightened on disk
    assert a.timing_ms is None  # precomputed outputs cannot be timed
    (by_id / "rec-2.png").unlink()
    with pytest.raises(EvaluationError, match="1 of 3 outputs missing"):
        _run(PrecomputedOutputs(by_id), triplets)


def _copy_command(extra=""):
    script = "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])" + extra
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)} {{input}} {{output}} {{instruction}}"


def test_command_retoucher_copies_and_quotes_safely(tmp_path):
    (t,) = _pairs(tmp_path)
    side = tmp_path / "instruction.txt"
    trap = tmp_path / "pwned"
    cmd = _copy_command(f"; open({str(side)!r}, 'w').write(sys.argv[3])")
    instruction = f"it's \"warm\" $(touch {trap}) `touch {trap}`; {{x}}"
    copy = command_retoucher(cmd)
    x = read_rgb(t.input)
    assert torch.equal(copy(x, instruction), x)
    assert side.read_text() == instruction and not trap.exists()
    assert _run(copy, [t]).rows[0]["psnr"] == pytest.approx(_run(identity, [t]).rows[0]["psnr"])


def test_command_failures_are_reported(tmp_path):
    x = _photo(size=16)
    with pytest.raises(EvaluationError, match="exit 3"):
        command_retoucher(f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(3)' {{input}} {{output}}")(x, "")
    with pytest.raises(EvaluationError, match="no output"):
        command_retoucher("true {input} {output}")(x, "")
    with pytest.raises(EvaluationError, match="lacks"):
        command_retoucher("cp {input} /tmp/somewhere")


def test_fill_template_leaves_other_braces():
    out = fill_template("x {input} {'a': 1} {output} {instruction}", input="a b", output="o", instruction="")
    assert out == "x 'a b' {'a': 1} o ''"


def test_model_names():
    assert model_retoucher("identity") is identity
    assert isinstance(model_retoucher("oracle"), GridFitOracle)
    # An unknown name lists both the built-in models and the evaluation methods.
    with pytest.raises(EvaluationError, match=r"rule-based.*evaluation methods: \[.*'autocontrast'.*'identity'.*'oracle'"):
        model_retoucher("instantretouch-base")


def test_named_methods_registry_extends_the_cli(monkeypatch):
    """A new entry of NAMED_METHODS is a --model choice, listed in --help, with no other change."""
    halve = NamedMethod(lambda low_res: lambda image, instruction: image * 0.5, "half brightness")
    monkeypatch.setitem(NAMED_METHODS, "halve", halve)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(model_retoucher("halve")(x, ""), x * 0.5)
    parser = argparse.ArgumentParser(prog="retouch-train")
    subparsers = parser.add_subparsers(dest="command", required=True)
    assert "half brightness" in cli.register(subparsers).format_help()


def test_timing_uses_frame_sizes_and_transposes_portrait():
    seen = []
    timings = time_retoucher(lambda x, i: seen.append(tuple(x.shape[-2:])) or x, _photo(size=20)[..., :12],
                               sizes={"a": (8, 16), "b": (12, 20)}, repeats=2)
    assert set(timings) == {"a", "b"} and all(v >= 0 for v in timings.values())
    assert set(seen) == {(16, 8), (20, 12)}  # portrait input: frames transposed, same pixel counts


# ---------------------------------------------------------------------------------------------
# command line and report


def test_cli_end_to_end_report(tmp_path, capsys):
    from safetensors.torch import save_file

    from retouch_core.language.clip_score import CONFIG_NAME, tiny_clip

    triplets = _pairs(tmp_path, names=("astronaut", "coffee"), size=32, instruction="brighter")
    outs = tmp_path / "baseline"
    for t in triplets:
        save_image(darken(read_rgb(t.input)), outs / t.input.name)
    clip_dir = tmp_path / "clip"
    clip_dir.mkdir()
    scorer = tiny_clip()
    state = {k: v.contiguous() for k, v in scorer.model.state_dict().items()}
    save_file(state, str(clip_dir / "open_clip_model.safetensors"))
    (clip_dir / CONFIG_NAME).write_text(json.dumps(scorer.config))
    report = tmp_path / "report"

    code = _cli([
        "--pairs", str(tmp_path / "in"), str(tmp_path / "tgt"), "--instruction", "brighter",
        "--model", "identity", "--command", _copy_command(), "--label", "copy", "--outputs", str(outs),
        "--clip", str(clip_dir), "--weights-dir", str(tmp_path / "none"), "--report", str(report), "--no-progress",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| identity |" in printed and "| copy |" in printed and "| baseline |" in printed

    with open(report / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == ROW_COLUMNS
    assert [r["method"] for r in rows] == ["identity"] * 2 + ["copy"] * 2 + ["baseline"] * 2
    assert {r["lpips"] for r in rows} == {"missing"} and {r["dists"] for r in rows} == {"missing"}
    # Nobody brightened on "brighter": identity and copy do nothing, the baseline darkened.
    assert {r["dir_brightness"] for r in rows} == {"0"}

    md = (report / "summary.md").read_text()
    header = ("| method | SSIM↑ | CW-SSIM↑ | GMSD↓ | DISTS↓ | LPIPS↓ | L1↓ | L2↓ | PSNR↑ | ΔE↓ | CLIP↑ "
              "| ms@720p | ms@1K | ms@2K | ms@4K |")
    assert header in md and "brightness" in md

    summary = json.loads((report / "summary.json").read_text())
    methods = {m["name"]: m for m in summary["methods"]}
    assert list(methods) == ["identity", "copy", "baseline"]
    assert methods["identity"]["metrics"]["lpips"] == "missing" and methods["identity"]["metrics"]["dists"] == "missing"
    assert methods["copy"]["metrics"]["psnr"] == pytest.approx(methods["identity"]["metrics"]["psnr"])
    assert isinstance(methods["identity"]["metrics"]["clip_dir"], float)
    assert methods["baseline"]["direction"]["brightness"]["accuracy"] == 0.0  # darkened on "brighter"
    assert methods["identity"]["timing_ms"] is None

    if summary["plots"] == "written":
        for name in ("grid.png", "metrics.png"):
            with Image.open(report / name) as im:
                assert im.width > 300 and im.height > 200


def test_cli_timing_and_errors(tmp_path, capsys):
    _pairs(tmp_path, size=16)
    args = ["--pairs", str(tmp_path / "in"), str(tmp_path / "tgt"), "--no-progress", "--weights-dir", str(tmp_path)]
    assert _cli(args) == 2  # no method given
    assert _cli([*args, "--outputs", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    # Two identity runs get distinct names in the one table.
    assert _cli([*args, "--model", "identity", "--model", "identity"]) == 0
    assert "| identity#2 |" in capsys.readouterr().out


def test_write_report_without_plots(tmp_path):
    result = _run(identity, _pairs(tmp_path))
    written = write_report([result], tmp_path / "r", plots=False)
    assert set(written) == {"metrics.csv", "summary.md", "summary.json"}
    data = json.loads((tmp_path / "r" / "summary.json").read_text())  # strict JSON (no NaN/Infinity)
    assert data["methods"][0]["metrics"]["clip_dir"] is None and data["plots"] == "not requested"


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    triplets = _pairs(tmp_path, names=("astronaut", "coffee"), size=32, instruction="brighter")
    results = [_run(identity, triplets, name="identity"), _run(brighten, triplets, name="bright")]
    results[1].timing_ms = {"720p": 1.0, "1K": 2.0, "2K": 3.5, "4K": 8.0}
    written = write_report(results, tmp_path / "r")
    with Image.open(written["grid.png"]) as grid:
        # 2 rows of input | identity | bright | target
        assert grid.width >= 4 * 200 and grid.height >= 2 * 200


@pytest.mark.skipif(not (FIVEK / "input").is_dir(), reason="shared FiveK data not on this machine")
def test_fivek_identity_psnr():
    (t,) = pair_triplets(FIVEK / "input", FIVEK / "target", limit=1)
    row = _run(identity, [t]).rows[0]
    mse = np.mean((_u8(t.input) - _u8(t.target)) ** 2)
    assert row["psnr"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert row["ssim"] == pytest.approx(1.0, abs=1e-5)


def test_grid_fit_oracle_reaches_a_global_edit(tmp_path):
    """The oracle baseline recovers a global colour edit of the target almost exactly."""
    from PIL import Image
    from skimage import data

    from retouch_training.eval.records import Triplet

    photo = data.astronaut()[::4, ::4]
    Image.fromarray(photo).save(tmp_path / "in.png")
    Image.fromarray((255 * (photo / 255.0) ** 0.7).astype("uint8")).save(tmp_path / "tg.png")
    result = evaluate(GridFitOracle(), [Triplet("a", tmp_path / "in.png", tmp_path / "tg.png")], name="oracle", progress=False)
    assert result.rows[0]["psnr"] > 38


def test_low_res_editors_run_the_teacher_and_the_student_xhat(tmp_path):
    from retouch_core.models import low_res_copy
    from retouch_core.models.diffusion.bilateral_student import BilateralStudentNet, resize_to_multiple
    from retouch_core.models.diffusion.tiny import build_tiny_teacher

    teacher = build_tiny_teacher(seed=0).eval()
    teacher.save_pretrained(tmp_path / "teacher")
    BilateralStudentNet.from_teacher(teacher).save(tmp_path / "student.safetensors")
    image = torch.rand(1, 3, 50, 70)
    low = resize_to_multiple(low_res_copy(image, 32), teacher.size_multiple).clamp(0, 1)
    assert low.shape[-2:] == (24, 32)  # long side 32, both sides multiples of 4

    def upsampled(edit):
        return F.interpolate(edit.clamp(0, 1), size=(50, 70), mode="bilinear", align_corners=False)

    run = model_retoucher(f"teacher:{tmp_path / 'teacher'}", low_res=32)
    expected = teacher.sample(low, ["warmer"], steps=20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(run(image, "warmer"), upsampled(expected), atol=1e-5, rtol=0)

    student = BilateralStudentNet.load(tmp_path / "student.safetensors").eval()
    run = model_retoucher(f"xhat:{tmp_path / 'student.safetensors'}", low_res=32)
    with torch.no_grad():
        expected = student.codec.decode(student.predict(low, ["warmer"]).x0)
    torch.testing.assert_close(run(image, "warmer"), upsampled(expected), atol=1e-5, rtol=0)
    assert cli._method_name("model", f"xhat:{tmp_path / 'student.safetensors'}", None) == "xhat:student"
    with pytest.raises(EvaluationError, match="teacher:DIR"):
        LowResEditor("teacher:")


def test_scale_agreement_separates_resolution_dependent_edits():
    image = 0.2 + 0.6 * _photo(size=96)
    small, large = (36, 64), (108, 192)
    assert scale_agreement(lambda x, _: x ** 0.8, image, "", small, large) > 35  # pointwise: agrees
    # An edit that adds 0.1 only at the large size: MSE 0.01 -> exactly 20 dB (closed form).
    shifted = lambda x, _: x + 0.1 * (x.shape[-1] > 100)  # noqa: E731
    assert scale_agreement(shifted, image, "", small, large) == pytest.approx(20.0, abs=0.3)

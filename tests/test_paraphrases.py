"""The paraphrase protocol (retouch_training.eval.paraphrases): the shipped paraphrase file's schema,
the CIELAB proxies' signs on constructed images, a small run with known retouchers and its report,
and the command line (--paraphrases, --fivek)."""

import json
from pathlib import Path

import pytest
import torch

from retouch_core.language.matcher import parse_instruction
from retouch_training.eval import evaluate, methods, protocol, records
from retouch_training.eval import paraphrases as P
from retouch_training.eval.baselines import BASELINES

SET = Path(__file__).resolve().parents[1] / "training" / "eval" / "paraphrases.yaml"
PARAPHRASES = P.load_paraphrases(SET)


# --- the shipped set ------------------------------------------------------------------------


def test_shipped_set_is_large_and_covers_every_family_and_attribute():
    assert len(PARAPHRASES) >= 80
    by_family = {f: [p for p in PARAPHRASES if p.family == f] for f in P.FAMILIES}
    assert all(len(v) >= 10 for v in by_family.values()), {f: len(v) for f, v in by_family.items()}
    attributes = {a for p in PARAPHRASES for a in p.expect}
    assert attributes == {"brightness", "contrast", "warmth", "tint_magenta", "saturation"}
    for attribute in attributes:  # both directions of every attribute are asked for
        assert {p.expect[attribute] for p in PARAPHRASES if attribute in p.expect} == {1, -1}
    # the phrasings the issue reports as reversed by the default model
    texts = {p.text for p in PARAPHRASES}
    assert {"make it a little darker", "underexpose it slightly", "this is too bright",
            "wash out the colours a bit"} <= texts


# --- schema ---------------------------------------------------------------------------------


def _write(tmp_path, entries, version=1):
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"version": version, "paraphrases": entries}))
    return path


@pytest.mark.parametrize("entry, message", [
    ({"text": "darker", "family": "command", "expect": {"brightness": 2}}, "sign must be"),
    ({"text": "darker", "family": "command", "expect": {"sharpness": -1}}, "no proxy"),
    ({"text": "darker", "family": "wish", "expect": {"brightness": -1}}, "family"),
    ({"text": "darker", "family": "command", "expect": {}}, "at least one"),
    ({"text": " ", "family": "command", "expect": {"brightness": -1}}, "non-empty"),
    ({"text": "darker", "family": "mixed", "expect": {"brightness": -1}}, "at least two"),
    ({"text": "darker", "family": "command", "expect": {"brightness": True}}, "sign must be"),
    ({"text": "darker", "family": "command"}, "exactly the keys"),
])
def test_schema_errors_name_the_entry(tmp_path, entry, message):
    with pytest.raises(records.EvaluationError, match=message):
        P.load_paraphrases(_write(tmp_path, [entry]))


def test_schema_rejects_duplicates_and_wrong_version(tmp_path):
    entry = {"text": "Darker", "family": "command", "expect": {"brightness": -1}}
    with pytest.raises(records.EvaluationError, match="duplicate"):
        P.load_paraphrases(_write(tmp_path, [entry, {**entry, "text": "darker "}]))
    with pytest.raises(records.EvaluationError, match="version"):
        P.load_paraphrases(_write(tmp_path, [entry], version=2))
    assert P.load_paraphrases(_write(tmp_path, [entry]))[0].expect == {"brightness": -1}


# --- proxies and plan reading ---------------------------------------------------------------


def _photo():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 1, 1, generator=g) * 0.3 + 0.35
    return (base + 0.15 * torch.randn(1, 3, 24, 32, generator=g)).clamp(0.05, 0.95)


@pytest.mark.parametrize("attribute, edit", [
    ("brightness", lambda x: x * 0.8 + 0.15),  # every pixel up
    ("contrast", lambda x: (x - x.mean()) * 1.4 + x.mean()),  # spread around the mean
    ("warmth", lambda x: x * torch.tensor([1.08, 1.0, 0.88]).view(1, 3, 1, 1)),  # more red, less blue
    ("tint_magenta", lambda x: x * torch.tensor([1.05, 0.9, 1.05]).view(1, 3, 1, 1)),  # less green
    ("saturation", lambda x: x.mean(1, keepdim=True) + 1.5 * (x - x.mean(1, keepdim=True))),  # away from grey
])
def test_proxies_move_the_expected_way_on_constructed_edits(attribute, edit):
    x = _photo()
    y = edit(x).clamp(0, 1)
    before, after = protocol.lab_stats(x), protocol.lab_stats(y)
    assert protocol.direction_hits(before, after, {attribute: 1}) == {attribute: True}
    assert protocol.direction_hits(after, before, {attribute: 1}) == {attribute: False}  # the inverse edit misses


def test_plan_directions_reads_recipes_and_numbers():
    assert P.plan_directions(parse_instruction("darker and warmer")) == {"brightness": -1, "warmth": 1}
    # a style moves several proxies through its recipe: moody lowers exposure and saturation
    moody = P.plan_directions(parse_instruction("moody"))
    assert moody["brightness"] == -1 and moody["saturation"] == -1
    # fade lifts the blacks: read as lower contrast even with no contrast slider of its own
    assert P.plan_directions(parse_instruction("exposure +0.5, fade 30")) == {"brightness": 1, "contrast": -1}
    assert P.plan_directions(parse_instruction("")) == {}


# --- a small run ----------------------------------------------------------------------------


def test_run_and_report(tmp_path):
    entries = [
        P.Paraphrase("make it darker", "command", {"brightness": -1}),
        P.Paraphrase("it's too cold", "complaint", {"warmth": 1}),
        P.Paraphrase("brighter and warmer", "mixed", {"brightness": 1, "warmth": 1}),
    ]
    photos = P.PhotoSet(("a.png", "b.png"), (_photo(), _photo().flip(-1) * 0.9))

    def darken(x, instruction):
        return x * 0.8

    calls = []

    def counting_identity(x, instruction):  # a plain callable: run once per (instruction, photo)
        calls.append(instruction)
        return x

    runs = [("identity", methods.identity), ("darken", darken), ("counted", counting_identity),
            ("autocontrast", BASELINES["autocontrast"])]
    result = P.run_paraphrases(runs, entries, photos, progress=False)
    assert len(calls) == 3 * 2
    summary = P.summarize_paraphrases(result)
    dark = summary["methods"]["darken"]
    # darkening obeys only "make it darker": 2 of 6 pairs; brightness hits 2 of 4, warmth 0 of 4
    assert dark["all"] == {"hits": 2, "n": 6, "accuracy": pytest.approx(1 / 3)}
    assert dark["attributes"]["brightness"]["hits"] == 2 and dark["attributes"]["brightness"]["n"] == 4
    assert dark["families"]["command"]["accuracy"] == 1.0 and dark["families"]["mixed"]["accuracy"] == 0.0
    identity = summary["methods"]["identity"]
    assert identity["all"]["hits"] == 0 and set(identity["median_move"].values()) == {0.0}
    assert [i["hits"]["darken"] for i in summary["instructions"]] == [2, 0, 0]
    assert all(i["plan_obeys"] for i in summary["instructions"])

    written = P.write_paraphrase_report(result, tmp_path / "report", "test run")
    md = written["summary.md"].read_text()
    assert "| darken | 33.3% (2/6) |" in md and "make it darker" in md
    assert json.loads(written["summary.json"].read_text())["methods"]["darken"]["all"]["hits"] == 2
    assert len(written["rows.csv"].read_text().splitlines()) == 1 + 4 * 4 * 2  # 4 attribute checks x 4 methods x 2 photos


def test_load_photos_downscales_and_names_by_relative_path(tmp_path):
    for folder, size in (("set1", (80, 40)), ("set2", (30, 20))):
        records.save_image(torch.rand(1, 3, *size), tmp_path / folder / "p.png")
    photos = P.load_photos([tmp_path / "set1", tmp_path / "set2" / "p.png"], long_side=40)
    assert photos.ids == ("set1/p.png", "set2/p.png")
    assert [tuple(i.shape[-2:]) for i in photos.images] == [(40, 20), (30, 20)]
    with pytest.raises(records.EvaluationError, match="no such"):
        P.load_photos([tmp_path / "nope"])


# --- command line ---------------------------------------------------------------------------


def _cli(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="retouch-train")
    evaluate.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def test_cli_paraphrases_runs_reference_methods_and_the_model(tmp_path, capsys):
    records.save_image(_photo(), tmp_path / "photos" / "a.png")
    entries = [{"text": "make it darker", "family": "command", "expect": {"brightness": -1}}]
    path = _write(tmp_path, entries)
    assert _cli(["--paraphrases", str(path), "--photos", str(tmp_path / "photos"), "--model", "rule-based",
                 "--report", str(tmp_path / "r"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    names = list(summary["methods"])
    assert names[:3] == ["identity", "autocontrast", "levels-grayworld"] and names[-1] == "rule-based"
    assert summary["methods"]["rule-based"]["all"]["hits"] == 1  # the rule-based model darkens
    assert summary["methods"]["identity"]["all"]["hits"] == 0
    assert "## Per instruction" in capsys.readouterr().out
    assert _cli(["--paraphrases", str(path), "--model", "identity"]) == 2  # no --photos


def test_cli_fivek_adds_baselines_and_refuses_the_oracle(tmp_path):
    for side, image in (("input", _photo()), ("target", _photo() ** 0.8)):
        records.save_image(image, tmp_path / "fivek" / side / "a0001.png")
    report = tmp_path / "r"
    assert _cli(["--fivek", str(tmp_path / "fivek"), "--no-baselines", "--model", "identity", "--baselines",
                 "--report", str(report), "--no-progress"]) == 0
    names = [m["name"] for m in json.loads((report / "summary.json").read_text())["methods"]]
    assert names[:3] == ["identity", "autocontrast", "levels-grayworld"]
    assert _cli(["--fivek", str(tmp_path / "fivek"), "--model", "oracle", "--no-progress"]) == 2

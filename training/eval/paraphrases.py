"""The paraphrase protocol: does a method obey plain-language instructions on real photos?

A paraphrase set (``training/eval/paraphrases.yaml``) lists instructions as users write them
("it's too cold", "a tiny bit darker", "golden hour", "not so bright"), each with the attributes it
must move and the sign. Every method edits every photo with every instruction; for each expected
attribute the CIELAB proxy of :data:`.protocol.PROXIES` (brightness: mean L*, contrast: std L*,
warmth: mean b*, tint_magenta: mean a*, saturation: mean chroma) of the output is compared with the
input's (:func:`.protocol.direction_hits`). Nothing is compared with a target: the file is the truth.

Reported per method: direction accuracy over all (instruction, photo) pairs (a pair is a hit when
every expected attribute moved the right way), per attribute (each expected attribute of each pair),
per family, the median signed move of each proxy (how far, not only which way), and a miss table
per instruction. The rule-based reading of each instruction (:func:`plan_directions`) is shown
beside it: a method that conditions on the matcher's plan cannot obey an instruction the matcher
reads wrong.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from retouch_core.engine.resize import resize_long_side

from ..data.images import read_rgb
from .methods import identity
from .protocol import PROXIES, direction_hits, lab_stats
from .records import IMAGE_SUFFIXES, EvaluationError

__all__ = [
    "FAMILIES",
    "PARAM_PROXIES",
    "Paraphrase",
    "PhotoSet",
    "ParaphraseResult",
    "load_paraphrases",
    "plan_directions",
    "load_photos",
    "run_paraphrases",
    "summarize_paraphrases",
    "format_paraphrase_markdown",
    "write_paraphrase_report",
    "run_cli",
]

FAMILIES = ("command", "complaint", "mood", "negation", "intensity", "mixed")
# Renderer parameter -> (attribute whose proxy it pushes, sign), for reading a plan as directions.
# Vibrance and saturation both raise chroma on the same -100..100 slider scale, so they are summed;
# fade lifts the black point, which lowers the spread of L* (contrast) on a comparable 0..100 scale.
PARAM_PROXIES: Mapping[str, tuple[str, int]] = {
    "exposure": ("brightness", 1),
    "contrast": ("contrast", 1),
    "fade": ("contrast", -1),
    "temperature": ("warmth", 1),
    "tint": ("tint_magenta", 1),
    "saturation": ("saturation", 1),
    "vibrance": ("saturation", 1),
}
EXPECTABLE = tuple(a for a in PROXIES if a != "vibrance")  # vibrance and saturation share one proxy


@dataclass(frozen=True)
class Paraphrase:
    """One instruction and what it must do: ``expect`` maps attribute -> +1 (more) or -1 (less)."""

    text: str
    family: str
    expect: Mapping[str, int]


def _schema_error(path: Path, where: str, what: str) -> EvaluationError:
    return EvaluationError(f"{path}: {where}: {what}")


def load_paraphrases(path: str | Path) -> list[Paraphrase]:
    """Read and validate a paraphrase file (YAML or JSON with the same structure).

    Schema: ``{version: 1, paraphrases: [{text: str, family: one of FAMILIES, expect: {attribute:
    +1 | -1, ...}}, ...]}``; attributes are those with a proxy (:data:`EXPECTABLE`); texts are unique
    (ignoring case and surrounding spaces). Raises EvaluationError naming the entry and the problem.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"no paraphrase file {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("paraphrases"), list):
        raise _schema_error(path, "top level", "expected {version: 1, paraphrases: [...]}")
    entries, seen = [], set()
    for i, raw in enumerate(data["paraphrases"]):
        where = f"entry {i}"
        if not isinstance(raw, dict) or set(raw) != {"text", "family", "expect"}:
            raise _schema_error(path, where, "expected exactly the keys text, family, expect")
        text, family, expect = raw["text"], raw["family"], raw["expect"]
        if not isinstance(text, str) or not text.strip():
            raise _schema_error(path, where, "text must be a non-empty string")
        where = f"entry {i} ({text!r})"
        if text.strip().lower() in seen:
            raise _schema_error(path, where, "duplicate text")
        seen.add(text.strip().lower())
        if family not in FAMILIES:
            raise _schema_error(path, where, f"family {family!r} not in {FAMILIES}")
        if not isinstance(expect, dict) or not expect:
            raise _schema_error(path, where, "expect must map at least one attribute to +1 or -1")
        for attribute, sign in expect.items():
            if attribute not in EXPECTABLE:
                raise _schema_error(path, where, f"attribute {attribute!r} has no proxy (use one of {EXPECTABLE})")
            if sign not in (1, -1) or isinstance(sign, bool):
                raise _schema_error(path, where, f"{attribute}: sign must be +1 or -1, got {sign!r}")
        if family == "mixed" and len(expect) < 2:
            raise _schema_error(path, where, "a mixed entry expects at least two attributes")
        entries.append(Paraphrase(text, family, dict(expect)))
    if not entries:
        raise _schema_error(path, "paraphrases", "empty")
    return entries


def plan_directions(plan, bank=None) -> dict[str, int]:
    """The matcher's reading as proxy directions: attribute -> sign of the summed parameters the plan
    sets (its attribute recipes plus explicit numbers, :meth:`Plan.to_params`). Attributes whose
    parameters are absent or cancel out are left out.

    plan: a :class:`retouch_core.language.matcher.Plan`.
    """
    totals: dict[str, float] = {}
    for param, value in plan.to_params(bank).items():
        if param in PARAM_PROXIES:
            axis, sign = PARAM_PROXIES[param]
            totals[axis] = totals.get(axis, 0.0) + sign * value
    return {axis: (1 if total > 0 else -1) for axis, total in totals.items() if abs(total) > 1e-9}


def plan_obeys(paraphrase: Paraphrase, directions: Mapping[str, int]) -> bool:
    """True when the plan moves every expected attribute the expected way."""
    return all(directions.get(a) == s for a, s in paraphrase.expect.items())


# --------------------------------------------------------------------------------------------
# photos


@dataclass(frozen=True)
class PhotoSet:
    """Real photos for the protocol: ids (paths relative to the photos' common folder) and images
    (1, 3, H, W) with the long side at most ``long_side``."""

    ids: tuple[str, ...]
    images: tuple[torch.Tensor, ...]


def _photo_files(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise EvaluationError(f"--photos: no such file or folder: {p}")
    if not files:
        raise EvaluationError("--photos: no image files found")
    return list(dict.fromkeys(files))


def load_photos(paths: Sequence[str | Path], long_side: int = 512) -> PhotoSet:
    """Image files and folders (every image directly inside) -> :class:`PhotoSet`, downscaled
    (antialiased) so the long side is at most ``long_side``."""
    files = _photo_files(paths)
    root = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
    root = root.parent if len(files) > 1 and all(f.resolve().parent == root for f in files) else root
    images = []
    for f in files:
        images.append(resize_long_side(read_rgb(f), long_side).clamp(0.0, 1.0))
    ids = tuple(f.resolve().relative_to(root).as_posix() for f in files)
    return PhotoSet(ids, tuple(images))


# --------------------------------------------------------------------------------------------
# running


@dataclass
class ParaphraseResult:
    """rows: one dict per (method, instruction, photo, expected attribute) with the signed proxy move
    ``delta`` (output - input) and ``hit``; plans: instruction -> the matcher's directions."""

    methods: list[str]
    paraphrases: list[Paraphrase]
    photo_ids: tuple[str, ...]
    plans: dict[str, dict[str, int]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _instruction_blind(method: Callable) -> bool:
    """Methods that ignore the instruction run once per photo (identity and classical baselines)."""
    from .baselines import Baseline

    return method is identity or isinstance(method, Baseline)


def run_paraphrases(
    methods: Sequence[tuple[str, Callable[[torch.Tensor, str], torch.Tensor]]],
    paraphrases: Sequence[Paraphrase],
    photos: PhotoSet,
    progress: bool = True,
) -> ParaphraseResult:
    """Every method x instruction x photo; see the module docstring. methods: (name, retoucher)."""
    from tqdm.auto import tqdm

    from retouch_core.language.attributes import default_bank
    from retouch_core.language.matcher import parse_instruction

    bank = default_bank()
    plans = {p.text: plan_directions(parse_instruction(p.text, bank), bank) for p in paraphrases}
    result = ParaphraseResult([n for n, _ in methods], list(paraphrases), photos.ids, plans)
    before = [lab_stats(image) for image in photos.images]
    for name, method in methods:
        blind = _instruction_blind(method)
        cache: dict[int, dict[str, float]] = {}
        total = len(photos.ids) * (1 if blind else len(paraphrases))
        bar = tqdm(total=total, desc=name, unit="img", disable=not progress, leave=False)
        for paraphrase in paraphrases:
            for k, (photo_id, image) in enumerate(zip(photos.ids, photos.images)):
                if k not in cache or not blind:
                    with torch.inference_mode():
                        output = method(image.clone(), paraphrase.text)
                    cache[k] = lab_stats(output.detach().float().cpu().clamp(0, 1))
                    bar.update()
                after = cache[k]
                hits = direction_hits(before[k], after, paraphrase.expect)
                for attribute, sign in paraphrase.expect.items():
                    proxy = PROXIES[attribute]
                    result.rows.append({
                        "method": name, "instruction": paraphrase.text, "family": paraphrase.family,
                        "photo": photo_id, "attribute": attribute, "expected": sign,
                        "delta": after[proxy] - before[k][proxy], "hit": hits[attribute],
                    })
        bar.close()
    return result


# --------------------------------------------------------------------------------------------
# summaries and report


def _pairs(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], bool]:
    """(method, instruction, photo) -> every expected attribute moved the right way."""
    pairs: dict[tuple[str, str, str], bool] = {}
    for r in rows:
        key = (r["method"], r["instruction"], r["photo"])
        pairs[key] = pairs.get(key, True) and bool(r["hit"])
    return pairs


def _rate(hits: int, n: int) -> dict[str, Any]:
    return {"hits": hits, "n": n, "accuracy": hits / n if n else None}


def summarize_paraphrases(result: ParaphraseResult) -> dict[str, Any]:
    """{"methods": {name: {"all", "attributes", "families", "median_move"}}, "instructions": [...],
    "matcher": {"obeyed", "n"}}; accuracies are fractions in [0, 1]."""
    pairs = _pairs(result.rows)
    family_of = {p.text: p.family for p in result.paraphrases}
    methods: dict[str, Any] = {}
    for name in result.methods:
        mine = {k: v for k, v in pairs.items() if k[0] == name}
        rows = [r for r in result.rows if r["method"] == name]
        attributes = {}
        median_move = {}
        for attribute in EXPECTABLE:
            sel = [r for r in rows if r["attribute"] == attribute]
            if sel:
                attributes[attribute] = _rate(sum(r["hit"] for r in sel), len(sel))
                median_move[attribute] = statistics.median(r["expected"] * r["delta"] for r in sel)
        families = {}
        for family in FAMILIES:
            sel = [v for k, v in mine.items() if family_of[k[1]] == family]
            if sel:
                families[family] = _rate(sum(sel), len(sel))
        methods[name] = {"all": _rate(sum(mine.values()), len(mine)), "attributes": attributes,
                         "families": families, "median_move": median_move}
    instructions = []
    for p in result.paraphrases:
        counts = {name: sum(pairs[(name, p.text, photo)] for photo in result.photo_ids) for name in result.methods}
        plan = result.plans[p.text]
        instructions.append({"text": p.text, "family": p.family, "expect": dict(p.expect), "plan": plan,
                             "plan_obeys": plan_obeys(p, plan), "hits": counts})
    obeyed = sum(i["plan_obeys"] for i in instructions)
    return {"photos": list(result.photo_ids), "n_instructions": len(result.paraphrases), "methods": methods,
            "instructions": instructions, "matcher": {"obeyed": obeyed, "n": len(instructions)},
            "notes": list(result.notes)}


def _pct(rate: Mapping[str, Any]) -> str:
    return "n/a" if rate.get("accuracy") is None else f"{100 * rate['accuracy']:.1f}% ({rate['hits']}/{rate['n']})"


def _signs(directions: Mapping[str, int]) -> str:
    return ", ".join(f"{a} {'+' if s > 0 else '−'}" for a, s in directions.items()) or "(nothing)"


def format_paraphrase_markdown(summary: Mapping[str, Any], title: str = "Paraphrase protocol") -> str:
    """summary.md: overall / per attribute / per family accuracy and the per-instruction miss table."""
    methods = summary["methods"]
    names = list(methods)
    n_photos = len(summary["photos"])
    m = summary["matcher"]
    lines = [f"# {title}", "",
             f"{summary['n_instructions']} instructions x {n_photos} photos; a pair is a hit when every expected "
             "attribute's CIELAB proxy moved the instructed way (output vs input).", "",
             f"Matcher (rule-based reading of the text) names every expected attribute with the right sign for "
             f"{m['obeyed']}/{m['n']} instructions.", "",
             "## Direction accuracy", "",
             "| method | all pairs | " + " | ".join(FAMILIES) + " |", "|" + "---|" * (len(FAMILIES) + 2)]
    for name in names:
        fam = methods[name]["families"]
        lines.append(f"| {name} | {_pct(methods[name]['all'])} | "
                     + " | ".join(_pct(fam.get(f, {})) for f in FAMILIES) + " |")
    attributes = [a for a in EXPECTABLE if any(a in methods[n]["attributes"] for n in names)]
    lines += ["", "## Per attribute (each expected attribute of each pair)", "",
              "| method | " + " | ".join(attributes) + " |", "|" + "---|" * (len(attributes) + 1)]
    for name in names:
        att = methods[name]["attributes"]
        lines.append(f"| {name} | " + " | ".join(_pct(att.get(a, {})) for a in attributes) + " |")
    lines += ["", "Median signed move of the proxy (instructed sign x (output − input), CIELAB units; "
              "bigger = further the right way):", "",
              "| method | " + " | ".join(f"{a} ({PROXIES[a]})" for a in attributes) + " |",
              "|" + "---|" * (len(attributes) + 1)]
    for name in names:
        move = methods[name]["median_move"]
        lines.append(f"| {name} | " + " | ".join(f"{move[a]:+.2f}" if a in move else "n/a" for a in attributes)
                     + " |")
    lines += ["", "## Per instruction", "",
              f"Cells: photos (of {n_photos}) on which the method obeyed. **Bold** = missed on most photos. "
              "Matcher: what the rule-based reading moves (✓ = every expected attribute with the right sign).", "",
              "| family | instruction | expected | matcher | " + " | ".join(names) + " |",
              "|" + "---|" * (len(names) + 4)]
    for inst in summary["instructions"]:
        cells = [f"**{c}**" if 2 * c < n_photos else str(c) for c in (inst["hits"][n] for n in names)]
        mark = "✓" if inst["plan_obeys"] else "✗"
        lines.append(f"| {inst['family']} | {inst['text']} | {_signs(inst['expect'])} | {mark} {_signs(inst['plan'])} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Notes", "", "- photos: " + ", ".join(summary["photos"])]
    lines += [f"- {note}" for note in summary["notes"]]
    lines.append("- proxies: " + ", ".join(f"{a} → {PROXIES[a]}" for a in attributes))
    return "\n".join(lines) + "\n"


def write_paraphrase_report(result: ParaphraseResult, folder: str | Path, title: str) -> dict[str, Path]:
    """rows.csv (per method, instruction, photo, attribute), summary.md, summary.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize_paraphrases(result)
    written = {}
    with open(folder / "rows.csv", "w", newline="", encoding="utf-8") as f:
        columns = ("method", "instruction", "family", "photo", "attribute", "expected", "delta", "hit")
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in result.rows:
            writer.writerow({**r, "delta": f"{r['delta']:.4f}", "hit": int(r["hit"])})
    written["rows.csv"] = folder / "rows.csv"
    (folder / "summary.md").write_text(format_paraphrase_markdown(summary, title), encoding="utf-8")
    written["summary.md"] = folder / "summary.md"
    (folder / "summary.json").write_text(json.dumps({"title": title, **summary}, indent=2, ensure_ascii=False),
                                         encoding="utf-8")
    written["summary.json"] = folder / "summary.json"
    return written


def run_cli(args, names: Sequence[str]) -> int:
    """``retouch-train evaluate --paraphrases FILE --photos ...``: the methods of ``args`` (named
    ``names``) on every instruction and photo; prints summary.md, writes ``--report``."""
    import subprocess
    import sys

    from .evaluate import _build_method

    if not args.photos:
        print("error: --paraphrases needs --photos (files or folders of real photos)", file=sys.stderr)
        return 2
    try:
        paraphrases = load_paraphrases(args.paraphrases)
        photos = load_photos(args.photos, args.photo_size)
        methods = [(name, _build_method(kind, value, args.command_timeout, args.low_res))
                   for name, (kind, value, _) in zip(names, args.methods)]
        if any(not callable(method) for _, method in methods):
            raise EvaluationError("--paraphrases runs methods on each instruction: --outputs folders cannot be used")
        result = run_paraphrases(methods, paraphrases, photos, progress=not args.no_progress)
    except (EvaluationError, FileNotFoundError, subprocess.TimeoutExpired) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    title = f"Paraphrase protocol — {args.paraphrases}"
    print(format_paraphrase_markdown(summarize_paraphrases(result), title))
    if args.report:
        written = write_paraphrase_report(result, args.report, title)
        print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0

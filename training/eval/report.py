"""The written report of an evaluation: ``metrics.csv`` (per triplet), ``summary.md`` (the paper's
table and the direction accuracies), ``summary.json`` and, with matplotlib, the plots."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from .plots import plot_grid, plot_metrics
from .protocol import PROXIES, ROW_COLUMNS, TIMING_SIZES, MethodResult
from .summary import DECIMALS, JUDGE_METRICS, LABELS, TABLE_METRICS, cell, timing_labels, summarize

def format_markdown(summaries: Sequence[Mapping[str, Any]], title: str = "Evaluation") -> str:
    """summary.md: the paper's table, the per-attribute direction accuracy, and what was missing."""
    labels = timing_labels(summaries)
    scaled = any(s.get("scale_psnr") is not None for s in summaries)
    # The judge's columns only when a judge was given: without one the table is the paper's.
    shown = [m for m in TABLE_METRICS if m not in JUDGE_METRICS or any(s["metrics"][m] is not None for s in summaries)]
    header = ["method", *(LABELS[m] for m in shown), *(f"ms@{k}" for k in labels)]
    header += [f"{labels[0]}≈{labels[-1]} dB↑"] if scaled else []
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        cells = [s["name"], *(cell(s["metrics"][m], DECIMALS.get(m, 4)) for m in shown)]
        timing = s["timing_ms"]
        cells += [cell(None if timing is None else timing.get(k, math.nan), 1) for k in labels]
        cells += [cell(s.get("scale_psnr"), 2)] if scaled else []
        lines.append("| " + " | ".join(cells) + " |")

    axes = [a for a in PROXIES if any(a in s["direction"] for s in summaries)]
    lines += ["", "## Instruction direction accuracy (CIELAB proxies, no CLIP)", ""]
    if axes:
        lines += ["| method | " + " | ".join([*axes, "all"]) + " |", "|" + "---|" * (len(axes) + 2)]
        for s in summaries:
            d = s["direction"]
            cells = [
                f"{d[a]['accuracy']:.3f} ({d[a]['hits']}/{d[a]['n']})" if d.get(a, {}).get("n") else "n/a"
                for a in [*axes, "all"]
            ]
            lines.append(f"| {s['name']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Proxies: " + ", ".join(f"{a} → {PROXIES[a]}" for a in axes) + " (output vs input).")
    else:
        lines.append("No instruction names an attribute with a proxy (brightness, contrast, warmth, tint, "
                     "saturation, vibrance): n/a.")

    notes = sorted({f"{m}: {why}" for s in summaries for m, why in s["missing"].items()})
    lines += ["", "## Notes", "", f"- triplets per method: {', '.join(str(s['n']) for s in summaries)}"]
    lines += [f"- device: {', '.join(dict.fromkeys(s.get('device', 'cpu') for s in summaries))}"]
    lines += [f"- missing {n}" for n in notes]
    lines += [
        "- fidelity (SSIM, CW-SSIM, GMSD, DISTS, LPIPS) compares the grey, histogram-matched output with the grey "
        "input; L1, L2, PSNR, ΔE (CIEDE2000) compare the output with the target.",
        "- CLIP↑ = fraction of instructed attributes whose CLIP margin moved the instructed way.",
        "- SC↑, PQ↑ = the VLM judge's semantic consistency and perceptual quality (--judge); O↑ = mean of "
        "sqrt(SC × PQ) per triplet.",
        "- cells: n/a = not applicable, — = not requested, missing = weights not on this machine.",
    ]
    return "\n".join(lines) + "\n"


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return "inf" if math.isinf(value) and value > 0 else f"{value:.6g}"
    return value


def _json_safe(value: Any) -> Any:
    """Strict JSON with the tables' vocabulary: NaN -> "n/a", inf -> "inf" (json.dump would write the
    non-standard NaN / Infinity); None stays null = not requested."""
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_csv(results: Sequence[MethodResult], path: Path) -> Path:
    """metrics.csv: one line per (method, triplet) with :data:`ROW_COLUMNS`; empty cell = n/a."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_COLUMNS)
        writer.writeheader()
        for result in results:
            for row in result.rows:
                writer.writerow({k: _csv_value(row.get(k, "")) for k in ROW_COLUMNS})
    return path


def write_report(
    results: Sequence[MethodResult], folder: str | Path, source: str = "", plots: bool = True
) -> dict[str, Path]:
    """Write metrics.csv, summary.md, summary.json and (with matplotlib) grid.png, metrics.png.

    Returns {name: path} of the files written. Without matplotlib the plots are skipped with a
    warning and summary.json says so.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(r) for r in results]
    written = {"metrics.csv": write_csv(results, folder / "metrics.csv")}
    title = f"Evaluation{f' — {source}' if source else ''}"
    (folder / "summary.md").write_text(format_markdown(summaries, title), encoding="utf-8")
    written["summary.md"] = folder / "summary.md"

    plot_status = "not requested"
    if plots:
        try:
            written["grid.png"] = plot_grid(results, folder / "grid.png")
            written["metrics.png"] = plot_metrics(summaries, folder / "metrics.png")
            plot_status = "written"
        except ImportError as err:
            plot_status = f"skipped: matplotlib not importable ({err})"
            warnings.warn(f"plots {plot_status}; pip install matplotlib", stacklevel=2)

    payload = {
        "source": source,
        "columns": {m: LABELS[m] for m in TABLE_METRICS},
        "timing_sizes": {k: list(v) for k, v in TIMING_SIZES.items()},
        "proxies": dict(PROXIES),
        "plots": plot_status,
        "legend": {"missing": "weights not on this machine", "n/a": "not applicable", "null": "not requested"},
        "methods": summaries,
    }
    text = json.dumps(_json_safe(payload), indent=2, ensure_ascii=False)
    (folder / "summary.json").write_text(text, encoding="utf-8")
    written["summary.json"] = folder / "summary.json"
    return written



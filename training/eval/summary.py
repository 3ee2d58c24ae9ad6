"""One method's measurements summarised: means, pooled direction accuracies, and the table vocabulary
(column order, labels, decimals, cell text) shared by the report and the plots."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .protocol import EDITING, FIDELITY, LEARNED, MISSING, PROXIES, TIMING_SIZES, MethodResult

# The paper's column order.
TABLE_METRICS = (*FIDELITY, *LEARNED, *EDITING, "clip_dir", "sc", "pq", "o")
JUDGE_METRICS = ("sc", "pq", "o")  # VLM judge (training.eval.judge): means of SC, PQ, sqrt(SC * PQ)
LABELS = {
    "ssim": "SSIM↑", "cw_ssim": "CW-SSIM↑", "gmsd": "GMSD↓", "dists": "DISTS↓", "lpips": "LPIPS↓",
    "l1": "L1↓", "l2": "L2↓", "psnr": "PSNR↑", "delta_e": "ΔE↓", "clip_dir": "CLIP↑",
    "sc": "SC↑", "pq": "PQ↑", "o": "O↑",
}
DECIMALS = {"psnr": 2, "delta_e": 2, "clip_dir": 3, "l2": 5, "sc": 3, "pq": 3, "o": 3}


def _mean(values: Sequence[Any]) -> float:
    """Mean over numeric non-NaN values (inf kept: identical images have infinite PSNR); NaN if none."""
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return float(np.mean(nums)) if nums else math.nan


def summarize(result: MethodResult) -> dict[str, Any]:
    """Means and counts of one method.

    -> {"name", "n", "metrics": {metric: float | "missing" | None (not requested)},
        "direction": {axis | "all": {"n", "hits", "accuracy"}}, "timing_ms", "missing"}.
    CLIP and direction accuracies are pooled over attributes (micro average), so a triplet with
    three instructed attributes weighs three times one with a single attribute.
    """
    rows = result.rows
    means: dict[str, Any] = {}
    for metric in TABLE_METRICS:
        if metric in result.missing:
            means[metric] = MISSING
        elif metric == "clip_dir":
            n = sum(r["clip_n"] for r in rows)
            moved = sum(r["clip_dir"] * r["clip_n"] for r in rows if r["clip_n"])
            means[metric] = (moved / n if n else math.nan) if result.clip else None
        elif metric in JUDGE_METRICS:
            means[metric] = _mean([r[metric] for r in rows]) if result.judge else None
        else:
            means[metric] = _mean([r[metric] for r in rows])

    direction: dict[str, dict[str, Any]] = {}
    total_n = total_hits = 0
    for axis in PROXIES:
        values = [r[f"dir_{axis}"] for r in rows if not math.isnan(r[f"dir_{axis}"])]
        if values:
            hits = int(sum(values))
            direction[axis] = {"n": len(values), "hits": hits, "accuracy": hits / len(values)}
            total_n, total_hits = total_n + len(values), total_hits + hits
    direction["all"] = {"n": total_n, "hits": total_hits, "accuracy": total_hits / total_n if total_n else None}
    return {
        "name": result.name,
        "n": len(rows),
        "device": result.device,
        "metrics": means,
        "direction": direction,
        "timing_ms": result.timing_ms,
        "scale_psnr": result.scale_psnr,
        "missing": dict(result.missing),
    }


def cell(value: Any, decimals: int = 4) -> str:
    """Table cell: number, "missing", "n/a" (NaN: not applicable) or "—" (None: not requested)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{decimals}f}"


def timing_labels(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Default resolutions first (paper columns even when not measured), then any custom ones."""
    labels = list(TIMING_SIZES)
    for s in summaries:
        labels += [k for k in (s["timing_ms"] or {}) if k not in labels]
    return labels


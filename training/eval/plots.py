"""The pictures of a report: ``grid.png`` (input / outputs / target per triplet) and ``metrics.png``
(one bar panel per metric, direction accuracy, runtime). matplotlib's object API: no pyplot, so no
global backend or figure state."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .protocol import MethodResult
from ..data.images import read_rgb
from .records import thumbnail
from .summary import DECIMALS, LABELS, TABLE_METRICS, cell, timing_labels

def _to_hwc(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()


def plot_grid(results: Sequence[MethodResult], path: Path, long_side: int = 256) -> Path:
    """grid.png: one row per previewed triplet: input | each method's output | target, captioned
    with the record id and instruction."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    previews = results[0].previews
    n_rows, n_cols = len(previews), len(results) + 2
    fig = Figure(figsize=(2.6 * n_cols, 2.75 * n_rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    rows = fig.subfigures(n_rows, 1, squeeze=False)[:, 0]
    for r, (triplet, _) in enumerate(previews):
        panels = [("input", thumbnail(read_rgb(triplet.input), long_side))]
        panels += [(res.name, res.previews[r][1]) for res in results]
        panels += [("target", thumbnail(read_rgb(triplet.target), long_side))]
        said = f"“{triplet.instruction}”" if triplet.instruction.strip() else "(auto, no instruction)"
        caption = f"{triplet.id}: {said}"
        rows[r].suptitle(textwrap.shorten(caption, 40 * n_cols), fontsize=10, ha="left", x=0.01)
        axes = rows[r].subplots(1, n_cols, squeeze=False)[0]
        for ax, (label, image) in zip(axes, panels):
            ax.imshow(_to_hwc(image))
            ax.set_title(label, fontsize=9)
            ax.set_axis_off()
    fig.savefig(path)
    return path


def _bar_panel(ax, title: str, names: Sequence[str], values: Sequence[Any], colors, decimals: int) -> None:
    """One metric as bars per method; non-numeric cells (missing, n/a, inf) are written where the bar would be.

    values: floats, "missing", NaN (not applicable) or None (not requested).
    """
    finite = [isinstance(v, (int, float)) and v is not None and math.isfinite(v) for v in values]
    ax.set_title(title, fontsize=10)
    if not any(finite):
        # Nothing to draw: say why in the panel instead of showing an empty, auto-scaled axis.
        reasons = {cell(v) for v in values}
        text = {"missing": "missing\n(no local weights)", "—": "not requested", "n/a": "n/a"}.get(
            reasons.pop() if len(reasons) == 1 else "", ", ".join(sorted(reasons)))
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="0.4", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    numeric = [float(v) if ok else 0.0 for v, ok in zip(values, finite)]
    bars = ax.bar(range(len(names)), numeric, color=colors)
    top = max(abs(v) for v in numeric) or 1.0  # all zeros (e.g. GMSD of identical images): unit axis
    for bar, value in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0.0) + 0.02 * top, cell(value, decimals),
                ha="center", va="bottom", fontsize=8)
    ax.set_ylim(min(0.0, min(numeric)) * 1.2, top * 1.25)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)


def _timing_panel(ax, summaries: Sequence[Mapping[str, Any]], colors) -> None:
    """Median ms per resolution, grouped bars per timed method, each labelled with its value."""
    labels = timing_labels(summaries)
    timed = [(s, c) for s, c in zip(summaries, colors) if s["timing_ms"]]
    ax.set_title("runtime, median ms", fontsize=10)
    if not timed:
        ax.text(0.5, 0.5, "not requested\n(--timing)", ha="center", va="center", fontsize=12, color="0.4",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    width = 0.8 / len(timed)
    for i, (s, color) in enumerate(timed):
        # Not-yet-measured sizes stay empty rather than drawn as 0 ms.
        ms = [s["timing_ms"].get(k, math.nan) for k in labels]
        bars = ax.bar(np.arange(len(labels)) + i * width, ms, width, color=color, label=s["name"])
        # Values on the bars: methods can differ by orders of magnitude (a shell command vs a tensor op).
        ax.bar_label(bars, labels=[cell(v, 1) for v in ms], fontsize=7)
    ax.set_xticks(np.arange(len(labels)) + width * (len(timed) - 1) / 2, labels, fontsize=8)
    ax.margins(y=0.15)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)


def plot_metrics(summaries: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """metrics.png: one bar panel per table metric, direction accuracy, and runtime per resolution."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [s["name"] for s in summaries]
    colors = [f"C{i % 10}" for i in range(len(names))]
    panels = [(LABELS[m], [s["metrics"][m] for s in summaries], DECIMALS.get(m, 3)) for m in TABLE_METRICS]
    # None here means no instruction had a proxied attribute: not applicable, unlike CLIP's None.
    accuracy = [s["direction"]["all"]["accuracy"] for s in summaries]
    panels.append(("direction acc.↑ (no CLIP)", [math.nan if a is None else a for a in accuracy], 3))
    n_cols = 4
    n_rows = math.ceil((len(panels) + 1) / n_cols)
    fig = Figure(figsize=(4.0 * n_cols, 3.0 * n_rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, (title, values, decimals) in zip(axes, panels):
        _bar_panel(ax, title, names, values, colors, decimals)

    _timing_panel(axes[len(panels)], summaries, colors)
    for extra in axes[len(panels) + 1:]:
        extra.set_axis_off()
    fig.savefig(path)
    return path



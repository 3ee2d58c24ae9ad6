"""The evaluation protocol: every metric of one method on each triplet, plus its runtime.

Per triplet:

* fidelity to the *input* (paper protocol): both images to grey, the output's grey histogram
  matched to the input's, then SSIM, CW-SSIM, GMSD and, when their weights are on disk, DISTS and
  LPIPS (on the grey pair repeated to 3 channels). Without weights they are reported as
  ``"missing"``, never dropped;
* editing quality against the *target*: L1, L2 (MSE), PSNR, CIEDE2000;
* CLIP direction (a scorer given): fraction of the instruction's attributes whose CLIP margin
  s+ - s- moved the instructed way (:func:`retouch_core.language.clip_score.edit_direction`);
* direction accuracy without CLIP: for attributes with a measurable CIELAB proxy (brightness ->
  mean L*, contrast -> std L*, warmth -> mean b*, tint -> mean a*, saturation / vibrance -> mean
  chroma), did the output move the proxy the instructed way relative to the input;
* VLM judge (one given, :mod:`.judge`): SC, PQ and O = sqrt(SC * PQ);
* timing (asked for): median milliseconds of the retoucher on the first input resized to 720p,
  1K, 2K and 4K frames, the device synchronised before and after each call (:mod:`.device`).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from retouch_core.engine.psnr import psnr
from retouch_core.engine.resize import resize
from retouch_core.models.predictors.obedience import (  # attribute -> CIELAB statistic
    PARAM_AXES,
    PROXIES,
)

from ..data.images import read_rgb
from . import metrics as M
from .device import synchronize
from .methods import GridFitOracle, PrecomputedOutputs, Retoucher
from .records import EvaluationError, Triplet, thumbnail

# (height, width) of landscape frames; a portrait first input is timed on the transposed frame so
# the pixel count is the same for every method. Same pixel counts as retouch_core.apps.bench's
# 720p / 1080p / 1440p / 4K.
TIMING_SIZES: Mapping[str, tuple[int, int]] = {
    "720p": (720, 1280),
    "1K": (1080, 1920),
    "2K": (1440, 2560),
    "4K": (2160, 3840),
}

MISSING = "missing"
FIDELITY = ("ssim", "cw_ssim", "gmsd")
LEARNED = ("dists", "lpips")
EDITING = ("l1", "l2", "psnr", "delta_e")

# A proxy must change by more than this (Lab units) to count as moved: an identity edit that
# round-trips through 8-bit files must not score by float noise.
PROXY_TOLERANCE = 1e-4

ROW_COLUMNS = (
    "method", "id", "subset", "instruction",
    *FIDELITY, *LEARNED, *EDITING,
    "clip_dir", "clip_n", "sc", "pq", "o",
    *(f"dir_{axis}" for axis in PROXIES), "dir_acc",
    "notes",
)


# --------------------------------------------------------------------------------------------
# direction proxies and CLIP


def lab_stats(image: torch.Tensor) -> dict[str, float]:
    """CIELAB summary statistics of one image. (1, 3, H, W) in [0, 1] ->
    {L_mean, L_std, a_mean, b_mean, chroma} (chroma = mean sqrt(a*^2 + b*^2))."""
    import kornia

    lab = kornia.color.rgb_to_lab(image.clamp(0.0, 1.0).double())[0]
    L, a, b = lab[0], lab[1], lab[2]
    return {
        "L_mean": float(L.mean()),
        "L_std": float(L.std(unbiased=False)),
        "a_mean": float(a.mean()),
        "b_mean": float(b.mean()),
        "chroma": float(torch.sqrt(a * a + b * b).mean()),
    }


def instructed_axes(plan) -> dict[str, float]:
    """Proxied axes an instruction asks to move -> instructed sign (+1 / -1).

    plan: a :class:`retouch_core.language.matcher.Plan`. Explicit numbers win over words for the same axis
    ("brighter, exposure -0.3" asks for a darker picture in numbers the user chose).
    """
    axes = {name: math.copysign(1.0, w) for name, w in plan.attributes.items() if name in PROXIES and w != 0}
    for param, value in plan.params.items():
        if param in PARAM_AXES and value != 0:
            axes[PARAM_AXES[param]] = math.copysign(1.0, value)
    return axes


def direction_hits(
    before: Mapping[str, float], after: Mapping[str, float], axes: Mapping[str, float]
) -> dict[str, bool]:
    """Per axis: did the proxy statistic move in the instructed direction by more than the tolerance?

    before, after: :func:`lab_stats` of input and output; axes: :func:`instructed_axes`.
    """
    return {
        axis: sign * (after[PROXIES[axis]] - before[PROXIES[axis]]) > PROXY_TOLERANCE
        for axis, sign in axes.items()
    }


def clip_direction(scorer, before: torch.Tensor, after: torch.Tensor, plan, bank) -> tuple[int, int]:
    """(moved, instructed) counts of the plan's attributes by CLIP margin. before, after: (1, 3, H, W)."""
    from retouch_core.language.clip_score import edit_direction

    names = [n for n, w in plan.attributes.items() if w != 0]
    if not names:
        return 0, 0
    pairs = [(bank[n].positive, bank[n].negative) for n in names]
    with torch.no_grad():
        result = edit_direction(scorer, before, after, pairs, [plan.attributes[n] for n in names])
    return int(result.moved.sum()), len(names)


# --------------------------------------------------------------------------------------------
# per-triplet metrics


def load_learned_metrics(weights_dirs: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """{"dists": module or reason, "lpips": module or reason}; a str value says why it is missing.

    Loaded once per run and shared by every method (VGG16 is large).
    """
    learned: dict[str, Any] = {}
    for name, loader in (("dists", M.load_dists), ("lpips", M.load_lpips)):
        try:
            learned[name] = loader(weights_dirs=weights_dirs)
        except M.MissingWeightsError as err:
            learned[name] = f"weights not found locally ({', '.join(p.name for p in err.searched[:3])}, ...)"
        except ImportError as err:
            learned[name] = f"package not installed ({err.name})"
    return learned


def _guarded(name: str, fn: Callable[[], torch.Tensor], notes: list[str]) -> float:
    """fn() as a float; NaN plus a note when the metric cannot be computed (e.g. image too small)."""
    try:
        return float(fn().reshape(-1)[0])
    except (ValueError, RuntimeError) as err:
        notes.append(f"{name}: {str(err).splitlines()[0]}")
        return math.nan


def triplet_metrics(
    output: torch.Tensor, input: torch.Tensor, target: torch.Tensor, learned: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Fidelity (to input) and editing (to target) metrics of one triplet.

    output, input, target: (1, 3, H, W) in [0, 1], same size. learned: :func:`load_learned_metrics`
    (None: both reported missing). Returns ({metric: float or "missing"}, notes).
    """
    notes: list[str] = []
    # Paper protocol: compare structure only, after removing the tone change the edit intended.
    matched = M.grayscale_histogram_match(output, input)
    ref = M.to_gray(input)
    row: dict[str, Any] = {
        "ssim": _guarded("ssim", lambda: M.ssim(matched, ref), notes),
        "cw_ssim": _guarded("cw_ssim", lambda: M.cw_ssim(matched, ref), notes),
        "gmsd": _guarded("gmsd", lambda: M.gmsd(matched, ref), notes),
    }
    matched3, ref3 = matched.expand(-1, 3, -1, -1), ref.expand(-1, 3, -1, -1)
    learned = learned or {}
    with torch.no_grad():
        for name, fn in (("dists", M.dists), ("lpips", M.lpips)):
            model = learned.get(name, MISSING)
            row[name] = MISSING if isinstance(model, str) else _guarded(
                name, lambda fn=fn, model=model: fn(matched3, ref3, model=model), notes
            )
    row.update(
        l1=float(M.l1(output, target)),
        l2=float(M.l2(output, target)),
        psnr=float(psnr(output, target)),
        delta_e=float(M.ciede2000(output, target)),
    )
    return row, notes


def _as_output(raw: Any, like: torch.Tensor, notes: list[str]) -> torch.Tensor:
    """Normalise what a retoucher returned to (1, 3, H, W) float32 in [0, 1] on CPU, sized like ``like``."""
    if not isinstance(raw, torch.Tensor):
        raise EvaluationError(f"retoucher returned {type(raw).__name__}, expected a tensor")
    out = raw.detach().float().cpu()
    out = out.unsqueeze(0) if out.ndim == 3 else out
    if out.ndim != 4 or out.shape[:2] != (1, 3):
        raise EvaluationError(f"retoucher returned shape {tuple(raw.shape)}, expected (1, 3, H, W)")
    if not torch.isfinite(out).all():
        raise EvaluationError("retoucher returned NaN or infinite values")
    if out.shape[-2:] != like.shape[-2:]:
        # Fidelity needs pixel correspondence; record the resize instead of failing the whole run.
        notes.append(f"output {tuple(out.shape[-2:])} resized to {tuple(like.shape[-2:])}")
        out = resize(out.clamp(0.0, 1.0), tuple(like.shape[-2:]))
    # Files are 8-bit anyway; the metrics (piq) reject values outside [0, 1].
    return out.clamp(0.0, 1.0)


def _evaluate_one(
    produce: Callable[[Triplet, torch.Tensor], torch.Tensor],
    triplet: Triplet,
    learned: Mapping[str, Any],
    scorer,
    bank,
    judge=None,
) -> tuple[dict[str, Any], torch.Tensor]:
    """All metrics of one triplet. -> (CSV row without the method column, output (1, 3, H, W))."""
    from retouch_core.language.matcher import parse_instruction

    notes: list[str] = []
    image = read_rgb(triplet.input)
    target = read_rgb(triplet.target)
    if target.shape != image.shape:
        notes.append(f"target {tuple(target.shape[-2:])} resized to {tuple(image.shape[-2:])}")
        target = resize(target, tuple(image.shape[-2:])).clamp(0.0, 1.0)
    output = _as_output(produce(triplet, image), image, notes)

    row, metric_notes = triplet_metrics(output, image, target, learned)
    notes += metric_notes
    plan = parse_instruction(triplet.instruction, bank)

    moved, n = clip_direction(scorer, image, output, plan, bank) if scorer is not None else (0, 0)
    row["clip_dir"] = moved / n if n else math.nan
    row["clip_n"] = n
    scores = judge(image, output, triplet.instruction) if judge is not None else None
    row.update(sc=scores.sc, pq=scores.pq, o=scores.overall) if scores else row.update(sc=math.nan, pq=math.nan, o=math.nan)

    axes = instructed_axes(plan)
    hits = direction_hits(lab_stats(image), lab_stats(output), axes) if axes else {}
    for axis in PROXIES:
        row[f"dir_{axis}"] = float(hits[axis]) if axis in hits else math.nan
    row["dir_acc"] = sum(hits.values()) / len(hits) if hits else math.nan

    row.update(id=triplet.id, subset=triplet.subset, instruction=triplet.instruction, notes="; ".join(notes))
    return row, output


# --------------------------------------------------------------------------------------------
# evaluation of one method


@dataclass
class MethodResult:
    """Everything measured for one method.

    rows: per-triplet dicts with :data:`ROW_COLUMNS` keys (floats, NaN = not applicable,
    "missing" = weights absent); timing_ms: {size: median ms} or None when not measured;
    missing: metric -> reason; clip / judge: whether CLIP / a VLM judge was requested; device:
    where the retoucher ran; previews: (triplet, output
    thumbnail (1, 3, h, w)) of the first triplets, for the grid; scale_psnr: dB agreement of the
    smallest and largest timed frames (:func:`scale_agreement`), None when not measured.
    """

    name: str
    rows: list[dict[str, Any]]
    timing_ms: dict[str, float] | None = None
    scale_psnr: float | None = None
    missing: dict[str, str] = field(default_factory=dict)
    clip: bool = False
    judge: bool = False
    device: str = "cpu"
    previews: list[tuple[Triplet, torch.Tensor]] = field(default_factory=list)


def evaluate(
    retoucher: Retoucher | PrecomputedOutputs,
    triplets: Sequence[Triplet],
    *,
    name: str = "method",
    clip=None,
    learned: Mapping[str, Any] | None = None,
    timing_sizes: Mapping[str, tuple[int, int]] | None = None,
    timing_repeats: int = 3,
    preview_count: int = 8,
    progress: bool = True,
    judge=None,
    device: str | torch.device = "cpu",
) -> MethodResult:
    """Run one method over ``triplets`` and measure everything.

    retoucher: callable ``(image (1, 3, H, W), instruction) -> (1, 3, H, W)`` or
    :class:`PrecomputedOutputs`. clip: a :class:`~retouch_core.language.clip_score.ClipScorer` or None.
    learned: :func:`load_learned_metrics` result (None: loaded here from the default folders).
    timing_sizes: e.g. :data:`TIMING_SIZES` to time the retoucher on the first input (not
    possible for precomputed outputs: reported as not measured).
    judge: a :data:`~.judge.Judge` (SC, PQ, O per triplet) or None. device: where the retoucher
    runs (it is synchronised around each timed call; the retoucher moves its own tensors).
    """
    from tqdm.auto import tqdm

    from retouch_core.language.attributes import default_bank

    if not triplets:
        raise EvaluationError("no triplets to evaluate")
    if learned is None:
        learned = load_learned_metrics()
    if isinstance(retoucher, PrecomputedOutputs):
        retoucher.check(triplets)
        produce = lambda t, image: read_rgb(retoucher.path_for(t))  # noqa: E731
    elif isinstance(retoucher, GridFitOracle):
        produce = lambda t, image: retoucher(image, read_rgb(t.target))  # noqa: E731
    else:
        # A copy: a retoucher that edits its argument in place must not change the reference input.
        produce = lambda t, image: retoucher(image.clone(), t.instruction)  # noqa: E731

    bank = default_bank()
    missing = {k: v for k, v in learned.items() if isinstance(v, str)}
    result = MethodResult(name, [], missing=missing, clip=clip is not None, judge=judge is not None,
                          device=str(device))
    for triplet in tqdm(triplets, desc=name, unit="img", disable=not progress, leave=False):
        row, output = _evaluate_one(produce, triplet, learned, clip, bank, judge)
        result.rows.append({"method": name, **row})
        if len(result.previews) < preview_count:
            result.previews.append((triplet, thumbnail(output)))

    if timing_sizes and not isinstance(retoucher, (PrecomputedOutputs, GridFitOracle)):
        first = triplets[0]
        image = read_rgb(first.input)
        result.timing_ms = time_retoucher(retoucher, image, first.instruction, timing_sizes, timing_repeats, device)
        frames = sorted(timing_sizes.values(), key=lambda hw: hw[0] * hw[1])
        result.scale_psnr = scale_agreement(retoucher, image, first.instruction, frames[0], frames[-1])
    return result


def time_retoucher(
    retoucher: Retoucher,
    image: torch.Tensor,
    instruction: str = "",
    sizes: Mapping[str, tuple[int, int]] = TIMING_SIZES,
    repeats: int = 3,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Median wall-clock ms of ``retoucher`` on ``image`` (1, 3, H, W) resized to each frame of ``sizes``.

    Frames are (height, width) landscape; a portrait image gets the transposed frame so the pixel
    count is that of the named resolution. One untimed warm-up call per size (lazy init, caches).
    ``device`` is synchronised before the clock starts and before it stops (CUDA / MPS queue
    kernels asynchronously).
    """
    portrait = image.shape[-2] > image.shape[-1]
    timings = {}
    for label, (h, w) in sizes.items():
        frame = resize(image, (w, h) if portrait else (h, w)).clamp(0.0, 1.0)
        with torch.inference_mode():
            retoucher(frame, instruction)
            times = []
            for _ in range(max(1, repeats)):
                synchronize(device)
                start = time.perf_counter()
                retoucher(frame, instruction)
                synchronize(device)
                times.append(time.perf_counter() - start)
        timings[label] = 1000.0 * statistics.median(times)
    return timings


def scale_agreement(
    retoucher: Retoucher, image: torch.Tensor, instruction: str, small: tuple[int, int], large: tuple[int, int]
) -> float:
    """PSNR (dB) between the retoucher's output on ``image`` resized to ``small`` and its output
    on ``image`` resized to ``large``, area-downscaled to ``small``: does the edit depend on the
    resolution it is run at? Frames are (height, width), transposed for a portrait image."""
    portrait = image.shape[-2] > image.shape[-1]
    small, large = ((w, h) if portrait else (h, w) for h, w in (small, large))
    with torch.inference_mode():
        reference = retoucher(resize(image, small).clamp(0, 1), instruction).clamp(0, 1)
        big = retoucher(resize(image, large).clamp(0, 1), instruction).clamp(0, 1)
    return float(psnr(resize(big, small, mode="area"), reference)[0])



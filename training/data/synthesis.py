"""Making the triplets of one photo (the worker side of ``make-dataset``).

Everything here is a pure function of (config, photo, pair index): each record draws from its
own RNG seeded by ``(seed, photo hash, pair index)``, torch runs single-threaded, so the images
and the manifest record are identical whatever the number of workers or the order of the work.

One record (``subset``):

* ``auto``  - input = degraded photo, target = the good photo, instruction empty (the model must
  decide); ``restore_instruction`` describes the inverse ("brighten it and remove the blue cast").
* ``style`` - input = degraded (80 %) or good photo, target = good photo rendered with a style
  recipe of the attribute bank at strength 0.4/0.7/1/1.5; the instruction names the style
  (sometimes with the restoration too).
* ``param`` - input = degraded (70 %) or good photo, target = ``render(input, stated)`` exactly,
  the instruction states the numbers ("exposure +0.7, temperature +20"); half the time the stated
  values are the rounded correction of the degradation, otherwise random edits.

``inverse`` is the list of steps that maps the input to the target (fitted undo steps, then the
style recipe / the stated parameters), and ``inverse_psnr`` the PSNR of that round trip measured
on the written 8-bit files at full size (capped at 100 dB for exact renders).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from retouch_core.engine.resize import resize_long_side
from retouch_core.formats.atomic import atomic_write
from retouch_core.language.attributes import STYLE, AttributeBank, default_bank, recipe_to_params
from retouch_core.language.params import COLOUR_BANDS, PARAM_RANGES, PARAM_SPECS, kelvin_to_temperature
from retouch_core.language.render import render

from .degradations import (
    DegradationConfig,
    FitConfig,
    Step,
    apply_steps,
    capped_psnr,
    fit_inverse,
    render_masks,
    sample_degradation,
)
from .instructions import (
    AXES,
    CaptionRequest,
    TemplateCaptioner,
    check_instruction,
    consistency_problems,
    first_acceptable,
    load_captioner,
    with_attempt,
)
from .masks import load_mask_provider
from .sources import load_photo

__all__ = [
    "RECORDS_PER_SHARD",
    "SUBSETS",
    "PhotoResult",
    "PhotoTask",
    "SynthConfig",
    "process_photo",
    "record_id",
    "record_paths",
    "record_seed",
    "sample_stated",
    "write_png_atomic",
]

SUBSETS = ("auto", "style", "param")
#: 500 triplets = 1000 image files per folder.
RECORDS_PER_SHARD = 500


@dataclass(frozen=True)
class SynthConfig:
    """Settings that determine the content of every record (part of the dataset fingerprint)."""

    size: int = 512
    seed: int = 0
    subsets: tuple[tuple[str, float], ...] = (("auto", 1.0), ("style", 1.0), ("param", 1.0))
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    fit: FitConfig = field(default_factory=lambda: FitConfig(steps=25, resolution=64, lr=0.2))
    p_style_clean: float = 0.2
    p_param_clean: float = 0.3
    p_param_inverse: float = 0.5
    style_strengths: tuple[tuple[float, float], ...] = ((0.4, 0.25), (0.7, 0.25), (1.0, 0.35), (1.5, 0.15))
    caption_attempts: int = 12
    near_duplicate: float = 0.8
    captioner: str | None = None
    mask_provider: str | None = None


@dataclass(frozen=True)
class PhotoTask:
    """Records to make for one photo.

    Attributes:
        pairs: pair indices still to make; indices: their global record indices (shard = index // 500).
        earlier: ``(pair, instruction)`` of finished pairs of this photo, so the near-duplicate
            check sees the same history after a resume as in an uninterrupted run.
    """

    photo_index: int
    path: str
    sha256: str
    split: str
    pairs: tuple[int, ...]
    indices: tuple[int, ...]
    earlier: tuple[tuple[int, str], ...]
    out_dir: str


@dataclass
class PhotoResult:
    """Records made for one photo (in pair order), or the error that stopped it."""

    photo_index: int
    path: str
    records: list[dict[str, Any]]
    error: str = ""
    seconds: float = 0.0


def record_seed(seed: int, sha256: str, pair: int) -> int:
    """63-bit seed of one record, from (dataset seed, photo hash, pair index) only."""
    digest = hashlib.sha256(f"{seed}:{sha256}:{pair}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def record_id(sha256: str, pair: int) -> str:
    return f"{sha256[:16]}_{pair:03d}"


def record_paths(index: int, rid: str) -> tuple[str, str]:
    """Input and target paths, relative to the dataset root, in shard folder ``index // 500``."""
    shard = f"images/{index // RECORDS_PER_SHARD:04d}"
    return f"{shard}/{rid}_input.png", f"{shard}/{rid}_target.png"


# ----------------------------------------------------------------------------- image I/O
def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


def _quantize(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) float -> the same values rounded to 8 bits (what the PNG will hold)."""
    return torch.floor(image.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return torch.floor(image[0].clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def write_png_atomic(path: Path, array: np.ndarray) -> None:
    """Write (H, W, 3) uint8 as PNG atomically: a reader (or a resumed run) sees either no file or
    the complete file."""
    # compress_level 1: 4x faster than 6 for ~7 % more bytes
    atomic_write(path, lambda tmp: Image.fromarray(array, "RGB").save(tmp, format="PNG", compress_level=1))


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    # One thread per worker: the processes already use the cores, and single-threaded kernels
    # give bit-identical results whatever the worker count.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------- sampling
_STATED_GRID: dict[str, tuple[float, float, float]] = {
    "exposure": (0.1, 1.5, 0.05), "gamma": (0.1, 0.5, 0.05), "contrast": (5, 50, 5), "highlights": (5, 60, 5),
    "shadows": (5, 60, 5), "whites": (5, 50, 5), "blacks": (5, 50, 5), "temperature": (3, 50, 1),
    "tint": (3, 30, 1), "saturation": (5, 50, 5), "vibrance": (5, 50, 5),
    **{name: (5, 40, 5) for name, spec in PARAM_SPECS.items() if spec.group == COLOUR_BANDS},
}
_MAIN_STATED = tuple(n for n in _STATED_GRID if PARAM_SPECS[n].group != COLOUR_BANDS)
_BAND_STATED = tuple(n for n in _STATED_GRID if PARAM_SPECS[n].group == COLOUR_BANDS)


def _on_grid(name: str, value: float) -> float:
    lo, hi, step = _STATED_GRID.get(name, (0.0, 100.0, 1.0))
    magnitude = min(max(round(abs(value) / step) * step, lo), hi)
    return round(float(np.sign(value) * magnitude), 3)


def sample_stated(rng: np.random.Generator, steps: Sequence[Step], p_inverse: float) -> dict[str, float]:
    """Explicit parameters for a param record.

    With probability ``p_inverse`` (when there is a degradation) the rounded correction of its
    largest main parameters, so stated edits are often useful; otherwise 1-3 random edits.
    Values sit on round grids (0.05 EV, 5 slider units ...), as people type them.
    """
    if steps and rng.random() < p_inverse:
        step = next((s for s in steps if s.mask is None), steps[0])
        weight = {p: w for axis in AXES.values() for p, w in axis.items()}
        ranked = sorted((n for n in step.params if n in _STATED_GRID),
                        key=lambda n: -abs(step.params[n]) * weight.get(n, 1 / 40))
        stated = {n: _on_grid(n, -step.params[n]) for n in ranked[:3]}
        stated = {n: v for n, v in stated.items() if v}
        if stated:
            return stated
    count = 1 + int(rng.choice(3, p=[0.5, 0.35, 0.15]))
    stated: dict[str, float] = {}
    while len(stated) < count:
        pool = _MAIN_STATED if rng.random() < 0.8 else _BAND_STATED
        name = pool[int(rng.integers(len(pool)))]
        lo, hi, step_size = _STATED_GRID[name]
        magnitude = lo + step_size * int(rng.integers(int(round((hi - lo) / step_size)) + 1))
        stated[name] = round(float(magnitude if rng.random() < 0.5 else -magnitude), 3)
    if "temperature" in stated and rng.random() < 0.25:
        # Kelvin phrasing ("white balance 5200K") needs a value that is exactly a round Kelvin.
        kelvin = int(rng.integers(46, 111)) * 100
        stated["temperature"] = round(kelvin_to_temperature(kelvin), 3)
    return {n: v for n, v in stated.items() if PARAM_RANGES[n][0] <= v <= PARAM_RANGES[n][1]}


def _choose(rng: np.random.Generator, weighted: Sequence[tuple[Any, float]]) -> Any:
    weights = np.asarray([w for _, w in weighted], dtype=float)
    return weighted[int(rng.choice(len(weighted), p=weights / weights.sum()))][0]


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class _Tools:
    """Per-task helpers (built once per photo, not per record)."""

    captioner: Any
    template: TemplateCaptioner
    masks: Any
    bank: AttributeBank
    styles: tuple[str, ...]


def _caption(tools: _Tools, request: CaptionRequest, images: tuple[torch.Tensor, torch.Tensor],
             recent: Sequence[str], config: SynthConfig) -> tuple[str, str, list[str]]:
    """(text, captioner name, problems): the first candidate passing the checks, else a fallback."""
    captioners = [tools.template] if request.subset == "param" else [tools.captioner]
    if tools.captioner is not tools.template and request.subset != "param":
        captioners.append(tools.template)  # a model that keeps failing the checks falls back
    for captioner in captioners:
        candidates = (captioner.describe(images[0], images[1], with_attempt(request, a))
                      for a in range(config.caption_attempts))
        text, _ = first_acceptable(candidates, request, recent, config.near_duplicate, tools.bank)
        if text is not None:
            return text, captioner.name, []
    text = tools.template.fallback(request)
    problems = check_instruction(text, recent, config.near_duplicate, tools.bank)
    problems += consistency_problems(text, request, tools.bank)
    return text, f"{tools.template.name} (fallback)", problems


def _make_record(task: PhotoTask, k: int, clean: torch.Tensor, tools: _Tools, config: SynthConfig,
                 recent: Sequence[str]) -> dict[str, Any]:
    """Make, write and describe the record of pair ``task.pairs[k]``. clean: (1, 3, H, W)."""
    pair, index = task.pairs[k], task.indices[k]
    seed = record_seed(config.seed, task.sha256, pair)
    rng = np.random.default_rng(seed)
    subset = _choose(rng, config.subsets)
    degrade = subset == "auto" or rng.random() >= (config.p_style_clean if subset == "style" else config.p_param_clean)
    steps = sample_degradation(clean[0], rng, config.degradation, tools.masks) if degrade else []
    full_masks = render_masks(steps, clean[0], tools.masks)
    degraded = _quantize(apply_steps(clean, steps, full_masks))

    undo: list[Step] = []
    fit_info = None
    if steps:
        small_clean = resize_long_side(clean, config.fit.resolution, mode="area")
        fit = fit_inverse(resize_long_side(degraded, config.fit.resolution, mode="area"), small_clean, steps,
                          render_masks(steps, small_clean[0], tools.masks), config.fit)
        undo = fit.steps
        fit_info = {"psnr_negated": fit.psnr_negated, "psnr_fitted": fit.psnr_fitted,
                    "iterations": config.fit.steps, "resolution": config.fit.resolution}
    inverse, inverse_masks = list(undo), list(reversed(full_masks))

    style = stated = None
    if subset == "auto":
        target = clean
    elif subset == "style":
        name = tools.styles[int(rng.integers(len(tools.styles)))]
        strength = _choose(rng, config.style_strengths)
        style_params = recipe_to_params({name: strength}, tools.bank)
        style = {"name": name, "strength": strength, "params": style_params}
        target = _quantize(render(clean, style_params))
        inverse.append(Step(style_params))
        inverse_masks.append(None)
    else:
        stated = sample_stated(rng, steps, config.p_param_inverse)
        target = _quantize(render(degraded, stated))
        inverse, inverse_masks = [Step(stated)], [None]
    # Measured on 8-bit images, as a model's output would be saved: exact renders give 100 dB.
    round_trip = capped_psnr(_quantize(apply_steps(degraded, inverse, inverse_masks)), target)

    request = CaptionRequest(subset, tuple(undo), (style["name"], style["strength"]) if style else None, stated, seed)
    text, captioner_name, problems = _caption(tools, request, (degraded[0], target[0]), recent, config)

    rid = record_id(task.sha256, pair)
    input_path, target_path = record_paths(index, rid)
    write_png_atomic(Path(task.out_dir, input_path), _to_uint8(degraded))
    write_png_atomic(Path(task.out_dir, target_path), _to_uint8(target))
    height, width = clean.shape[-2:]
    record: dict[str, Any] = {
        "id": rid,
        "index": index,
        "input": input_path,
        "target": target_path,
        "instruction": "" if subset == "auto" else text,
        "restore_instruction": text if subset == "auto" else None,
        "subset": subset,
        "split": task.split,
        "source": {"path": task.path, "sha256": task.sha256, "pair": pair},
        "size": [width, height],
        "seed": seed,
        "degradation": [s.to_dict() for s in steps],
        "inverse": [s.to_dict() for s in inverse],
        "inverse_psnr": round(round_trip, 2),
        "fit": fit_info,
        "style": style,
        "stated_params": stated,
        "captioner": captioner_name,
    }
    if problems:
        record["instruction_problems"] = problems
    return record


def process_photo(task: PhotoTask, config: SynthConfig) -> PhotoResult:
    """Make the records of ``task`` (spawn-safe top-level function, used by the pool).

    Never raises for a bad photo: the error is returned so the run can list it and go on.
    """
    start = time.perf_counter()
    try:
        array = load_photo(task.path, config.size)
    except Exception as exc:  # a file that changed or broke after the scan
        return PhotoResult(task.photo_index, task.path, [], f"load failed: {type(exc).__name__}: {exc}")
    bank = default_bank()
    template = TemplateCaptioner(bank=bank)
    captioner = template if not config.captioner else load_captioner(config.captioner)
    tools = _Tools(captioner, template, load_mask_provider(config.mask_provider), bank,
                   tuple(a.name for a in bank.by_group(STYLE)))
    history = dict(task.earlier)
    records = []
    with _single_thread():
        clean = _to_tensor(array)
        for k, pair in enumerate(task.pairs):
            recent = [history[p] for p in sorted(history) if p < pair]
            record = _make_record(task, k, clean, tools, config, recent)
            history[pair] = record["restore_instruction"] or record["instruction"]
            records.append(record)
    return PhotoResult(task.photo_index, task.path, records, "", time.perf_counter() - start)

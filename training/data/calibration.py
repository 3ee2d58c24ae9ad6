"""Calibrated "as shot" degradations: make synthetic inputs look like real unedited photos.

The hand-written defect catalogue (:data:`~.degradations.DEFECTS`) draws faults one by one; real
unedited photos (camera renders such as the MIT-Adobe FiveK inputs, low-light snapshots) have all
their statistics off at once in correlated ways: flat and dark tone curves, lifted or crushed
blacks, muted colour, a white-balance cast. This module measures those statistics on real
unedited photos and fits, for each real photo, the renderer parameters that give a *good* photo
the same statistics (an unpaired moment match through the differentiable renderer). The fitted
parameter vectors form an empirical distribution that :func:`sample_as_shot` draws from.

Statistics (:func:`photo_statistics`, CIELAB on a small copy):

* tone curve: L* quantiles 1, 5, 25, 50, 75, 95, 99 % (black point = 1 %, white point = 99 %);
* contrast: L* standard deviation;
* saturation: mean chroma; white balance: mean a*, mean b*;
* local shadow/highlight behaviour: local contrast (mean |L* - blurred L*|) inside the shadows
  and inside the highlights (soft masks on the blurred L*), i.e. how much detail the darks and
  brights keep.

    retouch-train calibrate-degradations --real ../shared/data/fivek_expertc/input \
        --real ../shared/data/dicm --real ../shared/data/lime --good ../shared/data/kodak24 ... \
        --out training/data/as_shot.json --report docs/calibration

FiveK is used here by its *inputs* only (unpaired); its targets stay validation data.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "AS_SHOT_PARAMS",
    "STATISTICS",
    "AsShotTable",
    "fit_as_shot",
    "load_as_shot",
    "photo_statistics",
    "sample_as_shot",
]

#: Renderer parameters an "as shot" render may differ by (global tone and colour only).
AS_SHOT_PARAMS: tuple[str, ...] = (
    "exposure", "gamma", "contrast", "blacks", "whites", "shadows", "highlights", "saturation", "temperature", "tint",
)
QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: statistic -> typical spread in its units: the fit weighs each squared error by 1 / spread^2.
STATISTICS: dict[str, float] = {
    **{f"L{round(q * 100):02d}": 4.0 for q in QUANTILES},
    "L_std": 3.0,
    "chroma": 2.0,
    "a_mean": 1.5,
    "b_mean": 1.5,
    "shadow_detail": 0.5,
    "highlight_detail": 0.5,
}
STAT_SIZE = 64  # long side of the copy the statistics are measured on
#: Draws scale a fitted vector by U(lo, hi): around the measured photo, a little milder on average.
MAGNITUDE = (0.6, 1.15)


def _small(image: torch.Tensor, long_side: int = STAT_SIZE) -> torch.Tensor:
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    size = (max(8, round(h * scale)), max(8, round(w * scale)))
    return F.interpolate(image, size=size, mode="area") if scale < 1 else image


def photo_statistics(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Differentiable statistics of (B, 3, H, W) photos in [0, 1] -> name -> (B,) (see module doc).

    Example:
        >>> stats = photo_statistics(torch.rand(2, 3, 64, 64))
        >>> sorted(stats) == sorted(STATISTICS)
        True
    """
    import kornia

    lab = kornia.color.rgb_to_lab(image.clamp(0, 1))
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    flat = L.flatten(1)
    quantiles = torch.quantile(flat, torch.tensor(QUANTILES, dtype=flat.dtype), dim=1)  # (Q, B)
    stats = {f"L{round(q * 100):02d}": quantiles[i] for i, q in enumerate(QUANTILES)}
    stats["L_std"] = flat.std(dim=1)
    stats["chroma"] = torch.sqrt(a * a + b * b + 1e-6).flatten(1).mean(1)
    stats["a_mean"] = a.flatten(1).mean(1)
    stats["b_mean"] = b.flatten(1).mean(1)
    base = kornia.filters.gaussian_blur2d(L[:, None], (9, 9), (2.0, 2.0), border_type="replicate")[:, 0]
    detail = (L - base).abs()
    shadows = torch.sigmoid((30.0 - base) / 5.0)
    highlights = torch.sigmoid((base - 70.0) / 5.0)
    stats["shadow_detail"] = (detail * shadows).flatten(1).sum(1) / (shadows.flatten(1).sum(1) + 1.0)
    stats["highlight_detail"] = (detail * highlights).flatten(1).sum(1) / (highlights.flatten(1).sum(1) + 1.0)
    return stats


def _stat_loss(stats: dict[str, torch.Tensor], goal: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(((stats[k] - goal[k]) / s).square().mean() for k, s in STATISTICS.items())


def fit_as_shot(good: torch.Tensor, real: torch.Tensor, steps: int = 50, lr: float = 0.3) -> tuple[dict[str, float], float]:
    """Renderer parameters that give ``good`` the statistics of ``real``.

    Args:
        good, real: (1, 3, h, w) in [0, 1] (small copies; different photos).
        steps: Adam iterations; lr: rate in units of :data:`~.degradations.PARAM_SCALES`.

    Returns:
        (parameters, final loss): values of :data:`AS_SHOT_PARAMS`, clipped to their ranges.
    """
    from retouch_core.language.params import PARAM_RANGES
    from retouch_core.language.render import render

    from .degradations import PARAM_SCALES, _Adam

    scale = torch.tensor([PARAM_SCALES[n] for n in AS_SHOT_PARAMS])
    lo = torch.tensor([PARAM_RANGES[n][0] for n in AS_SHOT_PARAMS])
    hi = torch.tensor([PARAM_RANGES[n][1] for n in AS_SHOT_PARAMS])
    with torch.no_grad():
        goal = photo_statistics(real)
    z = torch.zeros(len(AS_SHOT_PARAMS), requires_grad=True)
    adam = _Adam([z], lr)
    best, best_values = math.inf, torch.zeros(len(AS_SHOT_PARAMS))
    for _ in range(steps + 1):
        values = torch.minimum(torch.maximum(scale * z, lo), hi)
        loss = _stat_loss(photo_statistics(render(good, dict(zip(AS_SHOT_PARAMS, values)))), goal)
        if float(loss.detach()) < best:
            best, best_values = float(loss.detach()), values.detach().clone()
        z.grad = None
        (loss + 1e-3 * z.square().sum()).backward()  # weak pull to zero: unneeded sliders stay off
        adam.step()
    return {n: round(float(v), 3) for n, v in zip(AS_SHOT_PARAMS, best_values)}, best


@dataclass(frozen=True)
class AsShotTable:
    """Fitted parameter vectors, grouped by the folder of the real photo they were fitted to."""

    groups: dict[str, list[dict[str, float]]]


@lru_cache(maxsize=4)
def load_as_shot(path: str) -> AsShotTable:
    """Read the ``rows`` of a calibration file written by ``calibrate-degradations``."""
    data = json.loads(Path(path).read_text())
    groups: dict[str, list[dict[str, float]]] = {}
    for row in data["rows"]:
        groups.setdefault(row["group"], []).append(row["params"])
    if not groups:
        raise ValueError(f"{path} has no calibrated rows")
    return AsShotTable(groups)


def sample_as_shot(table: AsShotTable, rng: np.random.Generator, p_low_light: float | None = None) -> dict[str, float]:
    """One draw: a group uniformly (so a large folder does not dominate), one of its fitted
    vectors, scaled by U(:data:`MAGNITUDE`); near-zero sliders are dropped (sparse inverse).

    With ``p_low_light``, the group is first chosen by kind: a low-light folder
    (:data:`~.sources.LOW_LIGHT_DIR_NAMES`) with that probability, else an "as shot" render
    folder such as the FiveK inputs; uniformly within the kind. (Uniform over folders gives
    low-light as many shares as it has folders: two of three with DICM, LIME and FiveK.)
    """
    from .sources import LOW_LIGHT_DIR_NAMES

    names = sorted(table.groups)
    if p_low_light is not None:
        low = [n for n in names if n.lower() in LOW_LIGHT_DIR_NAMES]
        other = [n for n in names if n not in low]
        if low and other:
            names = low if rng.random() < p_low_light else other
    rows = table.groups[names[int(rng.integers(len(names)))]]
    row = rows[int(rng.integers(len(rows)))]
    magnitude = float(rng.uniform(*MAGNITUDE))
    from .degradations import PARAM_SCALES

    return {n: round(v * magnitude, 3) for n, v in row.items() if abs(v) >= 0.2 * PARAM_SCALES[n]}


# --------------------------------------------------------------------------------- command
def _photos(folders: list[str]) -> list[Path]:
    from .sources import IMAGE_EXTENSIONS

    files = []
    for folder in folders:
        files += sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no photos under {folders}")
    return files


def _load_small(path: Path, long_side: int = STAT_SIZE) -> torch.Tensor:
    from .sources import load_photo

    return torch.from_numpy(load_photo(str(path), long_side)).permute(2, 0, 1)[None].float() / 255.0


def _group_of(path: Path, roots: list[str]) -> str:
    for root in roots:
        if Path(root) in path.parents:
            return Path(root).name if Path(root).name != "input" else Path(root).parent.name
    return path.parent.name


def _stats_table(groups: list[list[torch.Tensor]]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of every statistic over photos, each group weighing the same."""
    values = {k: [] for k in STATISTICS}
    weights = []
    for images in groups:
        for image in images:
            stats = photo_statistics(_small(image))
            for k in STATISTICS:
                values[k].append(float(stats[k]))
            weights.append(1.0 / len(images))
    table = {}
    for k, v in values.items():
        mean = float(np.average(v, weights=weights))
        table[k] = (mean, float(np.sqrt(np.average((np.asarray(v) - mean) ** 2, weights=weights))))
    return table


def calibrate(real: list[str], good: list[str], fits_per_photo: int, seed: int, steps: int, progress: bool = True) -> dict[str, Any]:
    """Fit every real photo against ``fits_per_photo`` random good photos; the calibration file's content."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    good_paths = _photos(good)
    rows = []
    for path in tqdm(_photos(real), desc="calibrate", disable=not progress):
        target = _load_small(path)
        for _ in range(fits_per_photo):
            source = good_paths[int(rng.integers(len(good_paths)))]
            params, loss = fit_as_shot(_load_small(source), target, steps)
            rows.append({"group": _group_of(path, real), "real": str(path), "good": str(source),
                         "loss": round(loss, 4), "params": params})
    return {"real": real, "good": good, "fits_per_photo": fits_per_photo, "seed": seed, "steps": steps, "rows": rows}


def _markdown(columns: dict[str, dict[str, tuple[float, float]]]) -> str:
    names = list(columns)
    lines = ["| statistic | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for stat in STATISTICS:
        lines.append(f"| {stat} | " + " | ".join(f"{columns[n][stat][0]:.1f} ± {columns[n][stat][1]:.1f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def report(calibration: dict[str, Any], out: Path, count: int = 6, seed: int = 1, tile: int = 160) -> Path:
    """Statistics side by side (real unedited per group and groups balanced, good photos, synthetic
    inputs from the old catalogue and from the calibrated sampler) as ``stats.md``, and a picture
    ``real_vs_synthetic.jpg``: one row of real photos per group, then calibrated and old synthetic
    inputs of the same good photos."""
    from PIL import Image

    from retouch_core.language.render import render

    from .degradations import DegradationConfig, apply_steps, sample_degradation
    from .masks import load_mask_provider

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    table = AsShotTable({})
    for row in calibration["rows"]:
        table.groups.setdefault(row["group"], []).append(row["params"])
    masks = load_mask_provider(None)
    good = [_load_small(p, tile) for p in _photos(calibration["good"])]
    new = [render(x, sample_as_shot(table, rng)).clamp(0, 1) for x in good]
    old = []
    for x in good:
        steps = sample_degradation(x[0], rng, DegradationConfig(), masks)
        old.append(apply_steps(x, steps, [None if s.mask is None else masks.render(s.mask, x[0])[None] for s in steps]).clamp(0, 1))
    real = {_group_of(_photos([folder])[0], calibration["real"]): [_load_small(p, tile) for p in _photos([folder])]
            for folder in calibration["real"]}
    columns = {f"real: {group} (n={len(images)})": _stats_table([images]) for group, images in real.items()}
    columns["real: groups balanced"] = _stats_table(list(real.values()))
    columns[f"good photos (n={len(good)})"] = _stats_table([good])
    columns["synthetic: old catalogue"] = _stats_table([old])
    columns["synthetic: calibrated as-shot"] = _stats_table([new])
    (out / "stats.md").write_text(_markdown(columns))
    rows = [images[:count] for images in real.values()] + [new[:count], old[:count]]
    sheet = Image.new("RGB", (tile * count, tile * len(rows)), "white")
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            pic = Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
            sheet.paste(pic, (c * tile + (tile - pic.width) // 2, r * tile + (tile - pic.height) // 2))
    path = out / "real_vs_synthetic.jpg"
    sheet.save(path, quality=90)
    return path


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("calibrate-degradations", help="fit as-shot degradations to real unedited photos",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--real", action="append", required=True, metavar="DIR", help="real unedited photos (repeatable)")
    p.add_argument("--good", action="append", required=True, metavar="DIR", help="good photos to degrade (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="calibration JSON to write")
    p.add_argument("--report", type=Path, help="folder for stats.md and real_vs_synthetic.jpg")
    p.add_argument("--fits-per-photo", type=int, default=1)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)


def _run(args) -> int:
    torch.set_num_threads(1)
    if args.out.exists():
        calibration = json.loads(args.out.read_text())
        print(f"using existing {args.out} (delete it to refit)")
    else:
        calibration = calibrate(args.real, args.good, args.fits_per_photo, args.seed, args.steps)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(calibration, indent=1) + "\n")
        print(f"wrote {args.out}: {len(calibration['rows'])} fitted vectors")
    if args.report:
        print(f"wrote {report(calibration, args.report)}")
        sys.stdout.write((args.report / "stats.md").read_text())
    return 0

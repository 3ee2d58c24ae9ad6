"""Synthetic photo-finishing degradations and their fitted inverses.

A degradation is a list of :class:`Step` s applied in order to the clean photo ``x``::

    x <- x + m * (render(x, step.params) - x)      # m = 1 for a global step, a soft mask otherwise

Each step is built from one to three *defects* of a realistic catalogue (:data:`DEFECTS`: under-
and over-exposure, colour casts, flat or harsh contrast, crushed or washed-out shadows, blown
highlights, desaturation, a hue shift in one colour band, ...), drawn with magnitudes skewed
toward mild, as in real photos.

The renderer is not invertible by negating parameters (clipping, non-linear tone curves that do
not compose into the identity, masks blended in the transition zones), so the inverse is *fitted*:
:func:`fit_inverse` starts from the negated parameters, applied in reverse order under the same
masks, and runs a few Adam steps on the differentiable renderer at low resolution to minimise the
error to the clean photo. Only the parameters the degradation touched are optimised, which keeps
the inverse sparse and its signs meaningful for the instruction that describes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from retouch_core.engine.psnr import psnr, psnr_from_mse
from retouch_core.language.params import BANDS, PARAM_RANGES
from retouch_core.language.render import BAND_CENTRES_DEG, render

from .masks import MaskProvider, MaskSpec

__all__ = [
    "DEFECTS",
    "LOCAL_DEFECTS",
    "PARAM_SCALES",
    "Defect",
    "DegradationConfig",
    "FitConfig",
    "FitResult",
    "Step",
    "apply_steps",
    "capped_psnr",
    "fit_inverse",
    "nearest_band",
    "render_masks",
    "sample_degradation",
]

PSNR_CAP = 100.0  # dB: a perfect round trip would be infinite, which the manifest's JSON cannot hold


@dataclass(frozen=True)
class Defect:
    """One kind of photo-finishing fault.

    Attributes:
        name: identifier recorded in the manifest.
        params: parameter -> (a, b): the value is drawn between ``a`` and ``b``, nearer ``a``
            (mild) more often. ``"hue_<band>"`` is replaced by one random band at sampling time.
        group: defects of the same group are mutually exclusive in one step.
        weight: relative frequency.
    """

    name: str
    params: dict[str, tuple[float, float]]
    group: str
    weight: float = 1.0


DEFECTS: tuple[Defect, ...] = (
    Defect("underexposed", {"exposure": (-0.35, -1.6)}, "exposure", 2.0),
    Defect("overexposed", {"exposure": (0.25, 1.0)}, "exposure", 1.0),
    Defect("dark_midtones", {"gamma": (-0.1, -0.4)}, "exposure", 0.5),
    Defect("bright_midtones", {"gamma": (0.1, 0.35)}, "exposure", 0.3),
    Defect("warm_cast", {"temperature": (12.0, 50.0)}, "temperature", 1.2),
    Defect("cool_cast", {"temperature": (-12.0, -50.0)}, "temperature", 1.2),
    Defect("magenta_cast", {"tint": (10.0, 35.0)}, "tint", 0.6),
    Defect("green_cast", {"tint": (-10.0, -35.0)}, "tint", 0.8),
    Defect("flat_contrast", {"contrast": (-20.0, -60.0)}, "contrast", 1.2),
    Defect("harsh_contrast", {"contrast": (20.0, 55.0)}, "contrast", 0.6),
    Defect("crushed_shadows", {"shadows": (-20.0, -60.0), "blacks": (-5.0, -35.0)}, "shadows", 0.8),
    Defect("washed_shadows", {"blacks": (20.0, 60.0), "shadows": (5.0, 30.0)}, "shadows", 0.8),
    Defect("blown_highlights", {"highlights": (25.0, 70.0), "whites": (5.0, 40.0)}, "highlights", 0.8),
    Defect("desaturated", {"saturation": (-15.0, -60.0)}, "saturation", 1.2),
    Defect("oversaturated", {"saturation": (15.0, 40.0)}, "saturation", 0.4),
    Defect("hue_shift", {"hue_<band>": (25.0, 70.0)}, "hue", 0.6),
)
#: Defects that make sense under a local mask (tone-curve defects need the whole histogram).
LOCAL_DEFECTS: tuple[str, ...] = (
    "underexposed", "overexposed", "warm_cast", "cool_cast", "magenta_cast", "green_cast", "desaturated", "hue_shift",
)

#: Adam works in units of these per parameter, so one learning rate suits EV and slider values.
PARAM_SCALES: dict[str, float] = {
    "exposure": 0.25, "gamma": 0.05, **{name: 5.0 for name in PARAM_RANGES if name not in ("exposure", "gamma")},
}


@dataclass(frozen=True)
class DegradationConfig:
    """How degradations are drawn.

    Attributes:
        defect_count_probs: probabilities of 1, 2, 3 ... defects in the global step.
        p_local: probability that a local (masked) step is added.
        p_local_only: given a local step, probability that there is no global step.
        severity_beta: Beta(a, b) shape of the magnitude between the mild and strong ends.
        as_shot: calibration file of ``calibrate-degradations`` (:mod:`.calibration`), or None.
        p_as_shot: with ``as_shot``, probability that the global step is an "as shot" render
            drawn from the calibrated distribution instead of the defect catalogue.
        p_low_light: share of those renders calibrated on low-light photos; None draws every
            calibration folder equally often (see :func:`.calibration.sample_as_shot`).
    """

    defect_count_probs: tuple[float, ...] = (0.5, 0.35, 0.15)
    p_local: float = 0.35
    p_local_only: float = 0.35
    severity_beta: tuple[float, float] = (1.6, 2.4)
    as_shot: str | None = None
    p_as_shot: float = 0.5
    p_low_light: float | None = None


@dataclass(frozen=True)
class Step:
    """One edit of a degradation or an inverse: render ``params``, blended under ``mask``."""

    params: dict[str, float]
    mask: MaskSpec | None = None
    defects: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"params": dict(self.params), "mask": self.mask.to_dict() if self.mask else None}
        if self.defects:
            out["defects"] = list(self.defects)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Step":
        mask = MaskSpec.from_dict(data["mask"]) if data.get("mask") else None
        return cls(dict(data["params"]), mask, tuple(data.get("defects", ())))


def _round_param(name: str, value: float) -> float:
    lo, hi = PARAM_RANGES[name]
    return round(min(max(float(value), lo), hi), 3)


def _draw_defect(defect: Defect, rng: np.random.Generator, beta: tuple[float, float]) -> dict[str, float]:
    params: dict[str, float] = {}
    band = BANDS[int(rng.integers(len(BANDS)))]
    sign = 1.0 if rng.random() < 0.5 else -1.0  # only used by the signless hue shift
    for name, (mild, strong) in defect.params.items():
        severity = float(rng.beta(*beta))
        value = mild + (strong - mild) * severity
        if name.startswith("hue_"):  # hue shifts go either way round the colour circle
            name = f"hue_{band}" if name == "hue_<band>" else name
            value = sign * value
        params[name] = _round_param(name, value)
    return params


def _pick_defects(pool: Sequence[Defect], count: int, rng: np.random.Generator) -> list[Defect]:
    chosen: list[Defect] = []
    for _ in range(count):
        allowed = [d for d in pool if d.group not in {c.group for c in chosen}]
        if not allowed:
            break
        w = np.array([d.weight for d in allowed])
        chosen.append(allowed[int(rng.choice(len(allowed), p=w / w.sum()))])
    return chosen


def nearest_band(hue_deg: float) -> str:
    """Name of the colour band whose centre is nearest to an HSV hue (degrees)."""
    distance = [abs((hue_deg - c + 180.0) % 360.0 - 180.0) for c in BAND_CENTRES_DEG]
    return BANDS[int(np.argmin(distance))]


def _local_defect_for(spec: MaskSpec, rng: np.random.Generator) -> Defect:
    """A defect plausible for the region (a colour-range mask gets that band's hue shift)."""
    by_name = {d.name: d for d in DEFECTS}
    if spec.kind == "colour" and rng.random() < 0.5:
        band = nearest_band(spec.params["hue"])
        return Defect("hue_shift", {f"hue_{band}": (25.0, 70.0)}, "hue")
    pool = [by_name[n] for n in LOCAL_DEFECTS]
    return _pick_defects(pool, 1, rng)[0]


def sample_degradation(
    clean: torch.Tensor, rng: np.random.Generator, config: DegradationConfig, masks: MaskProvider
) -> list[Step]:
    """Draw a degradation for ``clean`` (3, H, W) in [0, 1].

    Returns 1 or 2 :class:`Step` s: an optional global step with 1-3 defects (or, with
    ``config.as_shot``, a calibrated "as shot" render) and an optional local step (one defect
    under a mask from ``masks``); at least one step is present.
    """
    steps: list[Step] = []
    local = rng.random() < config.p_local
    if config.as_shot and rng.random() < config.p_as_shot:
        from .calibration import load_as_shot, sample_as_shot

        steps.append(Step(sample_as_shot(load_as_shot(config.as_shot), rng, config.p_low_light), None, ("as_shot",)))
    elif not (local and rng.random() < config.p_local_only):
        probs = np.asarray(config.defect_count_probs, dtype=float)
        count = 1 + int(rng.choice(len(probs), p=probs / probs.sum()))
        params: dict[str, float] = {}
        chosen = _pick_defects(DEFECTS, count, rng)
        for defect in chosen:
            params.update(_draw_defect(defect, rng, config.severity_beta))
        steps.append(Step(params, None, tuple(d.name for d in chosen)))
    if local:
        spec = masks.propose(clean, rng)
        if spec is not None:
            defect = _local_defect_for(spec, rng)
            steps.append(Step(_draw_defect(defect, rng, config.severity_beta), spec, (defect.name,)))
    if not steps:  # the provider declined and there was no global step
        defect = _pick_defects(DEFECTS, 1, rng)[0]
        steps.append(Step(_draw_defect(defect, rng, config.severity_beta), None, (defect.name,)))
    return steps


# ------------------------------------------------------------------------------- applying
def render_masks(steps: Sequence[Step], clean: torch.Tensor, masks: MaskProvider) -> list[torch.Tensor | None]:
    """Masks of ``steps`` for ``clean`` (3, H, W): each (1, 1, H, W) or ``None`` (global)."""
    return [masks.render(s.mask, clean).unsqueeze(0) if s.mask else None for s in steps]


def _apply_one(image: torch.Tensor, params: Any, mask: torch.Tensor | None) -> torch.Tensor:
    edited = render(image, params)
    return edited if mask is None else image + mask * (edited - image)


def apply_steps(
    image: torch.Tensor, steps: Sequence[Step], step_masks: Sequence[torch.Tensor | None]
) -> torch.Tensor:
    """Apply ``steps`` in order. image: (1, 3, H, W); masks (1, 1, H, W) or None -> (1, 3, H, W)."""
    for step, mask in zip(steps, step_masks):
        image = _apply_one(image, step.params, mask)
    return image


def capped_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two (1, 3, H, W) images in [0, 1], at most :data:`PSNR_CAP`."""
    return min(PSNR_CAP, float(psnr(a, b)[0]))


# ------------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class FitConfig:
    """Inverse fitting: ``steps`` Adam iterations at ``resolution`` px (long side), rate ``lr``."""

    steps: int = 40
    resolution: int = 96
    lr: float = 0.15


@dataclass(frozen=True)
class FitResult:
    """Fitted inverse steps (to apply in order to the degraded image) and low-res PSNRs."""

    steps: list[Step]
    psnr_negated: float
    psnr_fitted: float


class _Adam:
    """Plain Adam on a few leaf tensors.

    ``torch.optim.Adam`` would do, but importing it pulls in ``torch._dynamo`` (~2.5 s per
    worker process); for a handful of scalars these lines are all that is needed.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
            m_hat = m / (1.0 - b1**self.t)
            v_hat = v / (1.0 - b2**self.t)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


def _bounded(init: torch.Tensor, scale: torch.Tensor, z: torch.Tensor, lo: torch.Tensor,
             hi: torch.Tensor) -> torch.Tensor:
    """Parameter values ``init + scale * z`` clipped to their ranges, all (n,)."""
    return torch.minimum(torch.maximum(init + scale * z, lo), hi)


def fit_inverse(
    degraded: torch.Tensor,
    clean: torch.Tensor,
    steps: Sequence[Step],
    step_masks: Sequence[torch.Tensor | None],
    config: FitConfig,
) -> FitResult:
    """Fit the parameters that best undo ``steps``.

    Args:
        degraded, clean: (1, 3, h, w) in [0, 1], already at the fitting resolution.
        steps: the degradation; step_masks: their masks at (1, 1, h, w) (or None).
        config: optimiser settings.

    Returns:
        The inverse: the steps reversed, same masks, parameters fitted (start: negated), rounded
        to 3 decimals. The best iterate is kept, so the fit is never worse than the negation.
    """
    order = list(reversed(range(len(steps))))
    names = [sorted(steps[i].params) for i in order]
    masks = [step_masks[i] for i in order]
    inits = [torch.tensor([-steps[i].params[n] for n in ns], dtype=torch.float32) for i, ns in zip(order, names)]
    scales = [torch.tensor([PARAM_SCALES[n] for n in ns]) for ns in names]
    los = [torch.tensor([PARAM_RANGES[n][0] for n in ns]) for ns in names]
    his = [torch.tensor([PARAM_RANGES[n][1] for n in ns]) for ns in names]
    zs = [torch.zeros(len(ns), requires_grad=True) for ns in names]
    adam = _Adam(zs, config.lr)

    def values() -> list[torch.Tensor]:
        return [_bounded(i, s, z, lo, hi) for i, s, z, lo, hi in zip(inits, scales, zs, los, his)]

    def loss_of(vals: list[torch.Tensor]) -> torch.Tensor:
        out = degraded
        for ns, v, m in zip(names, vals, masks):
            out = _apply_one(out, {n: v[k] for k, n in enumerate(ns)}, m)
        return (out - clean).pow(2).mean()

    best_loss, best_vals = math.inf, [i.clone() for i in inits]
    first_loss = math.inf
    for it in range(config.steps + 1):
        vals = values()
        loss = loss_of(vals)
        value = float(loss.detach())
        if it == 0:
            first_loss = value
        if value < best_loss:
            best_loss, best_vals = value, [v.detach().clone() for v in vals]
        if it == config.steps:
            break
        for z in zs:
            z.grad = None
        loss.backward()
        adam.step()
    inverse = [
        Step({n: _round_param(n, float(v[k])) for k, n in enumerate(ns)}, steps[i].mask)
        for i, ns, v in zip(order, names, best_vals)
    ]
    db = psnr_from_mse(torch.tensor([first_loss, best_loss], dtype=torch.float64)).clamp(max=PSNR_CAP)
    return FitResult(inverse, round(float(db[0]), 3), round(float(db[1]), 3))

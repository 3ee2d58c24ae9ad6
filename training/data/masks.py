"""Soft local masks for synthetic degradations, and the :class:`MaskProvider` hook.

A mask is a ``(1, H, W)`` float tensor in ``[0, 1]`` computed from the *clean* photo (the good
photo before any degradation), so it can be re-rendered from the manifest: every mask is fully
described by a :class:`MaskSpec` (``kind`` + a flat dict of numbers), and geometric masks use
coordinates normalised by the long side, so the same spec gives the same mask at any resolution.

Kinds (:class:`ProceduralMaskProvider`):

* ``gradient`` - a linear ramp (graduated filter): ``angle`` (degrees, direction in which the mask
  grows; 90 = toward the top of the frame, so a sky band), ``offset`` (signed distance of the 0.5
  line from the centre along that direction), ``feather`` (ramp width).
* ``radial`` - an ellipse ``cx, cy, rx, ry`` with ``feather``; ``invert = 1`` selects the outside
  (a vignette-like mask).
* ``luminance`` - pixels whose Rec.709 luma lies in ``[lo, hi]`` with soft edges ``feather``.
* ``colour`` - pixels whose HSV hue lies within ``width`` degrees of ``hue`` and whose HSV
  saturation exceeds ``min_saturation``, soft edges ``feather`` (degrees).

Every kind also has ``strength`` in ``(0, 1]``, the peak opacity.

A segmentation model can supply masks by implementing :class:`MaskProvider` (``propose`` picks a
region, ``render`` recomputes it from the clean photo); :func:`load_mask_provider` instantiates
one from a ``"module:Class"`` string so worker processes can build their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .plugins import load_plugin

__all__ = [
    "MASK_KINDS",
    "MaskSpec",
    "MaskProvider",
    "ProceduralMaskProvider",
    "load_mask_provider",
    "render_mask",
]

MASK_KINDS = ("gradient", "radial", "luminance", "colour")
_REC709 = (0.2126, 0.7152, 0.0722)


@dataclass(frozen=True)
class MaskSpec:
    """A re-renderable mask description: ``kind`` plus its numeric parameters.

    ``provider`` names who can render it (``"procedural"`` for the built-in kinds); a
    segmentation provider would store e.g. ``{"label": "sky"}`` in ``params`` and its own name.
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    provider: str = "procedural"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "provider": self.provider, **self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MaskSpec":
        params = {k: v for k, v in data.items() if k not in ("kind", "provider")}
        return cls(kind=data["kind"], params=params, provider=data.get("provider", "procedural"))


@runtime_checkable
class MaskProvider(Protocol):
    """Source of local masks (procedural shapes, or a segmentation model where one is available).

    Implementations must be deterministic: ``propose`` may only draw randomness from ``rng``, and
    ``render`` must return the same mask for the same spec and clean photo.
    """

    name: str

    def propose(self, clean: torch.Tensor, rng: np.random.Generator) -> MaskSpec | None:
        """Pick a region of ``clean`` (3, H, W) in [0, 1]; ``None`` if it has nothing to offer."""
        ...

    def render(self, spec: MaskSpec, clean: torch.Tensor) -> torch.Tensor:
        """Mask of ``spec`` for ``clean`` (3, H, W): returns (1, H, W) in [0, 1]."""
        ...


def _smoothstep(lo: float, hi: float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - lo) / max(hi - lo, 1e-6)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _grid(height: int, width: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``(u, v)``, each (H, W), centred, scaled by the long side.

    ``u`` grows to the right, ``v`` grows *upward*, so angles read like a compass on the photo.
    """
    long_side = float(max(height, width))
    u = (torch.arange(width, dtype=dtype) + 0.5 - width / 2.0) / long_side
    v = (height / 2.0 - torch.arange(height, dtype=dtype) - 0.5) / long_side
    return u.expand(height, width), v.unsqueeze(1).expand(height, width)


def _luma(clean: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_REC709, dtype=clean.dtype).reshape(3, 1, 1)
    return (clean * weights).sum(0)


def _hue_saturation(clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HSV hue in degrees and saturation, each (H, W)."""
    r, g, b = clean[0], clean[1], clean[2]
    cmax, cmin = clean.amax(0), clean.amin(0)
    delta = cmax - cmin
    safe = torch.where(delta > 1e-6, delta, torch.ones_like(delta))
    hue = torch.where(
        cmax == r, ((g - b) / safe) % 6.0, torch.where(cmax == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    hue = torch.where(delta > 1e-6, hue * 60.0, torch.zeros_like(hue))
    lit = cmax > 1e-6
    sat = torch.where(lit, delta / torch.where(lit, cmax, torch.ones_like(cmax)), torch.zeros_like(cmax))
    return hue, sat


def render_mask(spec: MaskSpec, clean: torch.Tensor) -> torch.Tensor:
    """Render a procedural :class:`MaskSpec` for ``clean`` (3, H, W) -> (1, H, W) in [0, 1]."""
    p = spec.params
    _, height, width = clean.shape
    if spec.kind == "gradient":
        u, v = _grid(height, width, clean.dtype)
        a = math.radians(p["angle"])
        s = u * math.cos(a) + v * math.sin(a) - p["offset"]
        half = p["feather"] / 2.0
        mask = _smoothstep(-half, half, s)
    elif spec.kind == "radial":
        u, v = _grid(height, width, clean.dtype)
        d = torch.sqrt(((u - p["cx"]) / p["rx"]) ** 2 + ((v - p["cy"]) / p["ry"]) ** 2)
        mask = 1.0 - _smoothstep(1.0 - p["feather"], 1.0 + p["feather"], d)
        if p.get("invert", 0):
            mask = 1.0 - mask
    elif spec.kind == "luminance":
        y = _luma(clean)
        f = p["feather"]
        mask = _smoothstep(p["lo"] - f, p["lo"] + f, y) * (1.0 - _smoothstep(p["hi"] - f, p["hi"] + f, y))
    elif spec.kind == "colour":
        hue, sat = _hue_saturation(clean)
        dist = ((hue - p["hue"] + 180.0) % 360.0) - 180.0
        f = p["feather"]
        in_hue = 1.0 - _smoothstep(p["width"] - f, p["width"] + f, dist.abs())
        mask = in_hue * _smoothstep(p["min_saturation"] - 0.05, p["min_saturation"] + 0.05, sat)
    else:
        raise ValueError(f"unknown procedural mask kind {spec.kind!r} (known: {', '.join(MASK_KINDS)})")
    return (mask * p.get("strength", 1.0)).clamp(0.0, 1.0).unsqueeze(0)


def _r(x: float) -> float:
    # Specs are stored rounded so the manifest holds exactly the numbers that were rendered.
    return round(float(x), 4)


@dataclass(frozen=True)
class ProceduralMaskProvider:
    """Built-in masks: sky-like gradients, vignettes/spots, luminance and colour ranges.

    ``weights`` gives the relative frequency of each kind in :data:`MASK_KINDS` order.
    """

    name: str = "procedural"
    weights: tuple[float, float, float, float] = (0.35, 0.25, 0.2, 0.2)

    def propose(self, clean: torch.Tensor, rng: np.random.Generator) -> MaskSpec | None:
        w = np.asarray(self.weights, dtype=float)
        kind = MASK_KINDS[int(rng.choice(len(MASK_KINDS), p=w / w.sum()))]
        strength = _r(rng.uniform(0.7, 1.0))
        if kind == "gradient":
            # Mostly a band from the top (skies), sometimes from a side or the bottom.
            angle = rng.choice([90.0, 270.0, 0.0, 180.0], p=[0.7, 0.1, 0.1, 0.1]) + rng.normal(0.0, 10.0)
            params = {"angle": _r(angle), "offset": _r(rng.uniform(-0.05, 0.25)),
                      "feather": _r(rng.uniform(0.1, 0.4))}
        elif kind == "radial":
            invert = int(rng.random() < 0.6)  # vignette-like more often than a centre spot
            params = {"cx": _r(rng.normal(0.0, 0.08)), "cy": _r(rng.normal(0.0, 0.06)),
                      "rx": _r(rng.uniform(0.25, 0.5)), "ry": _r(rng.uniform(0.2, 0.4)),
                      "feather": _r(rng.uniform(0.2, 0.5)), "invert": invert}
        elif kind == "luminance":
            if rng.random() < 0.5:  # highlights range
                params = {"lo": _r(rng.uniform(0.5, 0.75)), "hi": 1.5}
            else:  # shadows range
                params = {"lo": -0.5, "hi": _r(rng.uniform(0.2, 0.45))}
            params["feather"] = _r(rng.uniform(0.05, 0.15))
        else:
            hue = _dominant_hue(clean, rng)
            params = {"hue": _r(hue), "width": _r(rng.uniform(15.0, 35.0)),
                      "feather": _r(rng.uniform(5.0, 15.0)), "min_saturation": _r(rng.uniform(0.1, 0.25))}
        params["strength"] = strength
        return MaskSpec(kind, params, self.name)

    def render(self, spec: MaskSpec, clean: torch.Tensor) -> torch.Tensor:
        return render_mask(spec, clean)


def _dominant_hue(clean: torch.Tensor, rng: np.random.Generator) -> float:
    """A hue that actually occurs in the photo: sampled from its saturated-pixel hue histogram."""
    hue, sat = _hue_saturation(clean)
    hues = hue[sat > 0.2].flatten()
    if hues.numel() < 16:
        return float(rng.uniform(0.0, 360.0))
    hist = torch.histc(hues, bins=36, min=0.0, max=360.0).double().numpy()
    return float(rng.choice(36, p=hist / hist.sum()) * 10.0 + 5.0)


def load_mask_provider(spec: str | None) -> MaskProvider:
    """``None`` -> :class:`ProceduralMaskProvider`; ``"package.module:Class"`` -> ``Class()``."""
    return load_plugin(spec, MaskProvider, ProceduralMaskProvider, "name, propose, render")

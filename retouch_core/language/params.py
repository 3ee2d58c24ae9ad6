"""Photo-finishing parameter vocabulary (see ``docs/PARAMS.md``).

:class:`RetouchParams` is the one record shared by the renderer, the attribute bank, the matcher
and the dataset. Every field at 0 (``tone_curve`` empty) is the identity edit.

:data:`PARAM_SPECS` is the one table of the vocabulary: every scalar field's name, group
(:data:`PARAM_GROUPS`: lighting, global colour, colour bands, split toning), range and unit, in
slider order; ``docs/PARAMS.md`` explains it in prose. The renderer, the attribute bank, the
matcher, the ComfyUI sliders and the dataset tools all read it (and :data:`AS_SHOT_KELVIN`, the
white point of Kelvin settings) from here, never from a copy.

For differentiable or batched use, :func:`params_to_tensors` turns one or many records into a
dict of float tensors (one ``(B,)`` tensor per scalar field, ``(B, K, 2)`` knots for the tone
curve) that :func:`retouch_core.language.render.render` accepts directly; :func:`tensors_to_params` goes
back.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Union

import torch

__all__ = [
    "AS_SHOT_KELVIN",
    "BANDS",
    "COLOUR_BANDS",
    "GLOBAL_COLOUR",
    "HUE_FIELDS",
    "LIGHTING",
    "PARAM_GROUPS",
    "PARAM_RANGES",
    "PARAM_SPECS",
    "SCALAR_FIELDS",
    "SPLIT_TONING",
    "SPLIT_TONING_ZONES",
    "TONE_CURVE_RANGE",
    "ParamGroup",
    "ParamSpec",
    "RetouchParams",
    "clip_param",
    "kelvin_to_temperature",
    "params_to_tensors",
    "temperature_to_kelvin",
    "tensors_to_params",
    "tone_curve_knots",
]

# ------------------------------------------------------------------------- the one table
BANDS: tuple[str, ...] = ("red", "orange", "yellow", "green", "aqua", "blue", "purple", "magenta")

LIGHTING = "lighting"
GLOBAL_COLOUR = "global colour"
COLOUR_BANDS = "colour bands"
SPLIT_TONING = "split toning"


@dataclass(frozen=True)
class ParamGroup:
    """A group of sliders, as photo editors lay them out.

    Attributes:
        name: the group's name (``docs/PARAMS.md``, attribute groups, dataset tools).
        slider_label: prefix of the group's slider names in the ComfyUI node ("light: exposure");
            kept as first shipped because the node's schema snapshot pins it.
        advanced: whether the node lists the group's sliders as advanced inputs, hidden until
            the user asks for them (right-click > Show Advanced); only what is shown changes,
            never the inputs or their order, so saved workflows keep their meaning.

    Example:
        >>> [name for name, spec in PARAM_SPECS.items() if spec.group == SPLIT_TONING][:2]
        ['split_shadow_hue', 'split_highlight_hue']
    """

    name: str
    slider_label: str
    advanced: bool


#: The four groups, in slider order.
PARAM_GROUPS: tuple[ParamGroup, ...] = (
    ParamGroup(LIGHTING, "light", advanced=False),
    ParamGroup(GLOBAL_COLOUR, "global colour", advanced=False),
    ParamGroup(COLOUR_BANDS, "colour band", advanced=True),
    ParamGroup(SPLIT_TONING, "split toning", advanced=True),
)


@dataclass(frozen=True)
class ParamSpec:
    """One scalar slider: name, group, closed range ``[lo, hi]`` (``[lo, hi)`` if periodic), unit.

    Example:
        >>> PARAM_SPECS["exposure"].unit, PARAM_SPECS["exposure"].clip(7.0)
        ('EV', 5.0)
        >>> PARAM_SPECS["split_shadow_hue"].clip(370.0)
        10.0
    """

    name: str
    group: str
    lo: float
    hi: float
    unit: str
    periodic: bool = False  # an angle: wraps around instead of clipping

    def contains(self, value: float) -> bool:
        """Whether ``value`` is a valid setting (finite and in range)."""
        if not math.isfinite(value):
            return False
        return self.lo <= value < self.hi if self.periodic else self.lo <= value <= self.hi

    def clip(self, value: float) -> float:
        """Bring ``value`` into range: angles wrap around the circle, everything else is clipped."""
        if self.periodic:
            wrapped = self.lo + (float(value) - self.lo) % (self.hi - self.lo)
            # float modulo can return exactly the period for tiny negative inputs
            return self.lo if wrapped >= self.hi else wrapped
        return min(max(float(value), self.lo), self.hi)


def _specs(group: str, unit: str, lo: float, hi: float, names, periodic: bool = False) -> list[ParamSpec]:
    return [ParamSpec(name, group, lo, hi, unit, periodic) for name in names]


_SLIDER = "slider (-100..100)"
#: name -> spec of every scalar field of :class:`RetouchParams`, in slider order (that of
#: ``docs/PARAMS.md``). Units: ``docs/PARAMS.md``; ``temperature`` is a mired shift (see
#: :func:`kelvin_to_temperature`), band hue 100 = +30 degrees.
PARAM_SPECS: Mapping[str, ParamSpec] = MappingProxyType({
    spec.name: spec
    for spec in (
        ParamSpec("exposure", LIGHTING, -5.0, 5.0, "EV"),
        *_specs(LIGHTING, _SLIDER, -100.0, 100.0, ("contrast", "highlights", "shadows", "whites", "blacks")),
        ParamSpec("gamma", LIGHTING, -1.0, 1.0, "log2 power"),
        ParamSpec("fade", LIGHTING, 0.0, 100.0, "strength (0..100)"),
        ParamSpec("clarity", LIGHTING, -100.0, 100.0, _SLIDER),
        ParamSpec("temperature", GLOBAL_COLOUR, -100.0, 100.0, "mired"),
        *_specs(GLOBAL_COLOUR, _SLIDER, -100.0, 100.0, ("tint", "vibrance", "saturation")),
        *_specs(COLOUR_BANDS, _SLIDER, -100.0, 100.0,
                (f"{kind}_{band}" for kind in ("hue", "saturation", "luminance") for band in BANDS)),
        *_specs(SPLIT_TONING, "degrees", 0.0, 360.0, ("split_shadow_hue", "split_highlight_hue"), periodic=True),
        *_specs(SPLIT_TONING, "strength (0..100)", 0.0, 100.0, ("split_shadow_saturation", "split_highlight_saturation")),
        ParamSpec("split_balance", SPLIT_TONING, -100.0, 100.0, _SLIDER),
    )
})

#: name -> (lo, hi) for every scalar field. Closed intervals, except the hue fields in
#: :data:`HUE_FIELDS`, which are angles in ``[lo, hi)``.
PARAM_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {name: (spec.lo, spec.hi) for name, spec in PARAM_SPECS.items()}
)
#: Scalar fields in a fixed order (use it to flatten params into a vector).
SCALAR_FIELDS: tuple[str, ...] = tuple(PARAM_SPECS)
HUE_FIELDS: frozenset[str] = frozenset(name for name, spec in PARAM_SPECS.items() if spec.periodic)
#: (hue, saturation) field pairs of split toning: they combine as 2-D vectors, never summed.
SPLIT_TONING_ZONES: tuple[tuple[str, str], ...] = (
    ("split_shadow_hue", "split_shadow_saturation"),
    ("split_highlight_hue", "split_highlight_saturation"),
)
#: Both coordinates of every tone-curve control point lie in this interval.
TONE_CURVE_RANGE: tuple[float, float] = (0.0, 1.0)

#: The white point Kelvin settings are relative to ("white balance 5200K"). The renderer's own
#: reference white is D65 (CCT 6504 K); the 4 K gap is 0.1 mired, below any slider step.
AS_SHOT_KELVIN = 6500.0


def clip_param(name: str, value: float) -> float:
    """Bring ``value`` into the range of scalar field ``name`` (hues wrap, the rest is clipped).

    Raises ``KeyError`` for a name that is not a scalar field (``tone_curve`` included).

    Example:
        >>> clip_param("exposure", -9.0), clip_param("split_shadow_hue", -10.0)
        (-5.0, 350.0)
    """
    if name not in PARAM_SPECS:
        raise KeyError(f"unknown scalar parameter {name!r}")
    return PARAM_SPECS[name].clip(value)


def kelvin_to_temperature(kelvin: float, as_shot: float = AS_SHOT_KELVIN) -> float:
    """Lightroom-style white balance in Kelvin -> ``temperature`` field (mired shift).

    ``1e6/as_shot - 1e6/kelvin``: a lower Kelvin setting gives a cooler (negative) value.
    The result is not clipped.

    Example:
        >>> round(kelvin_to_temperature(5200), 2)
        -38.46
    """
    if kelvin <= 0 or as_shot <= 0:
        raise ValueError("Kelvin values must be positive")
    return 1e6 / as_shot - 1e6 / kelvin


def temperature_to_kelvin(temperature: float, as_shot: float = AS_SHOT_KELVIN) -> float:
    """Inverse of :func:`kelvin_to_temperature`.

    Example:
        >>> round(temperature_to_kelvin(kelvin_to_temperature(5200)))
        5200
    """
    return 1e6 / (1e6 / as_shot - temperature)


ToneCurve = tuple[tuple[float, float], ...]


@dataclass
class RetouchParams:
    """One photo-finishing edit; all fields 0 / ``()`` is the identity.

    Field names, ranges and units are those of ``docs/PARAMS.md``. ``tone_curve`` holds
    ``(x, y)`` control points in ``[0, 1]`` with strictly increasing ``x`` and non-decreasing
    ``y``; the end points ``(0, 0)`` and ``(1, 1)`` are implied when no point sits at ``x = 0`` or
    ``x = 1``. Constructing a record does not range-check it (optimisers may step outside);
    :meth:`validate` and :meth:`from_dict` do.

    Example:
        >>> edit = RetouchParams(exposure=0.5, temperature=20.0, tone_curve=((0.25, 0.2),))
        >>> edit.to_json()
        '{"exposure": 0.5, "temperature": 20.0, "tone_curve": [[0.25, 0.2]]}'
        >>> RetouchParams.from_json(edit.to_json()) == edit, RetouchParams().is_identity()
        (True, True)
    """

    # lighting
    exposure: float = 0.0
    contrast: float = 0.0
    highlights: float = 0.0
    shadows: float = 0.0
    whites: float = 0.0
    blacks: float = 0.0
    gamma: float = 0.0
    tone_curve: ToneCurve = ()
    fade: float = 0.0
    clarity: float = 0.0
    # global colour
    temperature: float = 0.0
    tint: float = 0.0
    vibrance: float = 0.0
    saturation: float = 0.0
    # specific colour: hue shift (100 = +30 degrees), chroma scale, lightness, per band
    hue_red: float = 0.0
    hue_orange: float = 0.0
    hue_yellow: float = 0.0
    hue_green: float = 0.0
    hue_aqua: float = 0.0
    hue_blue: float = 0.0
    hue_purple: float = 0.0
    hue_magenta: float = 0.0
    saturation_red: float = 0.0
    saturation_orange: float = 0.0
    saturation_yellow: float = 0.0
    saturation_green: float = 0.0
    saturation_aqua: float = 0.0
    saturation_blue: float = 0.0
    saturation_purple: float = 0.0
    saturation_magenta: float = 0.0
    luminance_red: float = 0.0
    luminance_orange: float = 0.0
    luminance_yellow: float = 0.0
    luminance_green: float = 0.0
    luminance_aqua: float = 0.0
    luminance_blue: float = 0.0
    luminance_purple: float = 0.0
    luminance_magenta: float = 0.0
    # split toning
    split_shadow_hue: float = 0.0
    split_highlight_hue: float = 0.0
    split_shadow_saturation: float = 0.0
    split_highlight_saturation: float = 0.0
    split_balance: float = 0.0

    def __post_init__(self) -> None:
        # JSON gives lists; tuples keep records comparable with ==.
        try:
            self.tone_curve = tuple((float(x), float(y)) for x, y in self.tone_curve)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tone_curve must be a sequence of (x, y) pairs, got {self.tone_curve!r}") from exc

    # ------------------------------------------------------------------ checks
    def validate(self) -> "RetouchParams":
        """Raise ``ValueError`` naming every out-of-range field; return ``self`` if valid."""
        errors = [_range_error(name, getattr(self, name)) for name in SCALAR_FIELDS]
        errors.append(_tone_curve_error(self.tone_curve))
        errors = [e for e in errors if e]
        if errors:
            raise ValueError("invalid RetouchParams: " + "; ".join(errors))
        return self

    def is_identity(self) -> bool:
        """True when rendering changes nothing: every scalar 0 and the curve on ``y = x``."""
        if any(getattr(self, name) != 0 for name in SCALAR_FIELDS):
            return False
        return all(x == y for x, y in self.tone_curve)

    # ------------------------------------------------------------- (de)serialise
    def to_dict(self, include_zero: bool = False) -> dict[str, Any]:
        """Plain dict of the non-zero fields (all fields with ``include_zero``).

        ``tone_curve`` becomes a list of ``[x, y]`` lists so the dict is JSON-ready.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "tone_curve":
                if value or include_zero:
                    out["tone_curve"] = [[x, y] for x, y in value]
            elif value != 0 or include_zero:
                out[f.name] = float(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RetouchParams":
        """Build and validate a record from a (possibly partial) dict.

        Raises ``ValueError`` naming every unknown key, non-numeric value and out-of-range value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"RetouchParams.from_dict expects a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        errors: list[str] = []
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            errors.append(f"unknown parameter(s) {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if name == "tone_curve":
                curve, err = _parse_tone_curve(value)
                if err:
                    errors.append(err)
                else:
                    kwargs[name] = curve
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(f"{name} must be a number, got {value!r}")
                continue
            err = _range_error(name, float(value))
            if err:
                errors.append(err)
            else:
                kwargs[name] = float(value)
        if errors:
            raise ValueError("invalid RetouchParams: " + "; ".join(errors))
        return cls(**kwargs)

    def to_json(self, indent: int | None = None) -> str:
        """JSON object of the non-zero fields, keys sorted (stable for hashing and diffs)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "RetouchParams":
        """Inverse of :meth:`to_json`; same errors as :meth:`from_dict`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"RetouchParams.from_json: not valid JSON ({exc})") from exc
        except RecursionError:  # the json module recurses once per nesting level
            raise ValueError("RetouchParams.from_json: JSON nested too deeply") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "RetouchParams":
        """Copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def _range_error(name: str, value: float) -> str | None:
    spec = PARAM_SPECS[name]
    if not math.isfinite(value):
        return f"{name}={value!r} is not finite"
    if not spec.contains(value):
        closing = ")" if spec.periodic else "]"
        return f"{name}={value!r} outside [{spec.lo:g}, {spec.hi:g}{closing}"
    return None


def _parse_tone_curve(value: Any) -> tuple[ToneCurve, str | None]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return (), f"tone_curve must be a list of [x, y] points, got {value!r}"
    points = []
    for p in value:
        if (
            isinstance(p, (str, bytes))
            or not isinstance(p, Sequence)
            or len(p) != 2
            or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in p)
        ):
            return (), f"tone_curve point {p!r} is not an [x, y] pair of numbers"
        points.append((float(p[0]), float(p[1])))
    curve = tuple(points)
    return curve, _tone_curve_error(curve)


def _tone_curve_error(curve: ToneCurve) -> str | None:
    lo, hi = TONE_CURVE_RANGE
    for x, y in curve:
        if not (math.isfinite(x) and math.isfinite(y) and lo <= x <= hi and lo <= y <= hi):
            return f"tone_curve point ({x!r}, {y!r}) outside [{lo:g}, {hi:g}]^2"
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if not x1 > x0:
            return f"tone_curve x must be strictly increasing, got {x0!r} then {x1!r}"
        if y1 < y0:
            return f"tone_curve must be monotone (non-decreasing y), got {y0!r} then {y1!r}"
    return None


# ---------------------------------------------------------------------- tensors
ParamsLike = Union[RetouchParams, Sequence[RetouchParams]]


def tone_curve_knots(curve: ToneCurve) -> list[tuple[float, float]]:
    """Control points with the implied end points added: ``[(0, y0), ..., (1, yn)]``.

    An empty curve gives ``[(0, 0), (1, 1)]`` (the identity line).

    Example:
        >>> tone_curve_knots(((0.25, 0.2), (0.75, 0.8)))
        [(0.0, 0.0), (0.25, 0.2), (0.75, 0.8), (1.0, 1.0)]
    """
    knots = list(curve)
    if not knots or knots[0][0] > 0.0:
        knots.insert(0, (0.0, 0.0))
    if knots[-1][0] < 1.0:
        knots.append((1.0, 1.0))
    return knots


def params_to_tensors(
    params: ParamsLike,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Batch of records -> dict of float tensors for :func:`retouch_core.language.render.render`.

    Args:
        params: one :class:`RetouchParams` (B = 1) or a sequence of B of them.
        device, dtype: of the returned tensors.

    Returns:
        ``{name: (B,)}`` for every name in :data:`SCALAR_FIELDS`, plus ``"tone_curve"``: ``(B, K, 2)``
        knots ``(x, y)`` including the implied end points, x increasing from 0 to 1. Rows with
        fewer knots than the longest are padded by repeating their last knot ``(1, y_last)``;
        the renderer treats such zero-width intervals as absent. The tensors are leaves without
        ``requires_grad``; call ``.requires_grad_()`` on the ones to optimise.

    Example:
        >>> t = params_to_tensors([RetouchParams(exposure=0.5), RetouchParams(tone_curve=((0.5, 0.6),))])
        >>> t["exposure"], t["tone_curve"].shape
        (tensor([0.5000, 0.0000]), torch.Size([2, 3, 2]))
    """
    batch = [params] if isinstance(params, RetouchParams) else list(params)
    if not batch or not all(isinstance(p, RetouchParams) for p in batch):
        raise ValueError("params_to_tensors expects a RetouchParams or a non-empty sequence of them")
    out = {
        name: torch.tensor([float(getattr(p, name)) for p in batch], device=device, dtype=dtype)
        for name in SCALAR_FIELDS
    }
    knots = [tone_curve_knots(p.tone_curve) for p in batch]
    k = max(len(kn) for kn in knots)
    padded = [kn + [kn[-1]] * (k - len(kn)) for kn in knots]
    out["tone_curve"] = torch.tensor(padded, device=device, dtype=dtype)
    return out


def tensors_to_params(tensors: Mapping[str, torch.Tensor], clamp: bool = True) -> list[RetouchParams]:
    """Inverse of :func:`params_to_tensors` (e.g. after optimising the tensors).

    Args:
        tensors: ``{name: (B,)}`` for any subset of :data:`SCALAR_FIELDS` (missing = 0), and
            optionally ``"tone_curve"``: ``(B, K, 2)``.
        clamp: clip every value into :data:`PARAM_RANGES` (hues wrapped into ``[0, 360)``) and
            make the curve valid again, so the result passes :meth:`RetouchParams.validate`.

    Returns:
        B records. Padding knots and the implied end points ``(0, 0)``/``(1, 1)`` are dropped.

    Example:
        >>> [p.to_dict() for p in tensors_to_params({"exposure": torch.tensor([0.5, 9.0])})]  # clamped
        [{'exposure': 0.5}, {'exposure': 5.0}]
    """
    unknown = sorted(set(tensors) - set(SCALAR_FIELDS) - {"tone_curve"})
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}")
    sizes = {
        (t.shape[0] if t.dim() == 3 else 1) if k == "tone_curve" else t.numel()
        for k, t in tensors.items()
    }
    sizes.discard(1)
    if len(sizes) > 1:
        raise ValueError(f"inconsistent batch sizes {sorted(sizes)}")
    batch = sizes.pop() if sizes else 1
    rows: list[dict[str, Any]] = [{} for _ in range(batch)]
    for name, t in tensors.items():
        if name == "tone_curve":
            continue
        values = t.detach().reshape(-1).double().cpu().expand(batch).tolist()
        for row, v in zip(rows, values):
            if clamp:
                v = clip_param(name, v)
            row[name] = v
    if "tone_curve" in tensors:
        curves = tensors["tone_curve"].detach().double().cpu()
        if curves.dim() == 2:
            curves = curves.unsqueeze(0)
        curves = curves.expand(batch, -1, -1).tolist()
        for row, knots in zip(rows, curves):
            row["tone_curve"] = _knots_to_curve(knots, clamp)
    return [RetouchParams(**row) for row in rows]


def _knots_to_curve(knots: list[list[float]], clamp: bool) -> ToneCurve:
    points: list[tuple[float, float]] = []
    for x, y in knots:
        if clamp:
            x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
            if points:
                # Keep the curve valid: x strictly increasing, y non-decreasing.
                if x <= points[-1][0]:
                    continue
                y = max(y, points[-1][1])
        elif points and x == points[-1][0] and y == points[-1][1]:
            continue  # padding
        points.append((x, y))
    if points and points[0] == (0.0, 0.0):
        points = points[1:]
    if points and points[-1] == (1.0, 1.0):
        points = points[:-1]
    return tuple(points)

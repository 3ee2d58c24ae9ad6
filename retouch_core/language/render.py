"""Differentiable photo-finishing renderer: ``render(image, params) -> image``.

Images are ``(B, 3, H, W)`` float tensors in ``[0, 1]``, sRGB gamma-encoded. Parameters follow
``docs/PARAMS.md`` (:mod:`retouch_core.language.params`) and may differ per image of the batch. Every
step is a torch expression, so the output is differentiable w.r.t. the image and every parameter
(pass the parameters as ``(B,)`` tensors, see :func:`retouch_core.language.params.params_to_tensors`).

Order of operations (fixed):

1. **Linear stage** (linear light, ``kornia.color.rgb_to_linear_rgb``):
   white balance then exposure, fused into one 3x3 matrix per image.
   ``temperature`` moves the assumed scene white along the CIE daylight locus by
   ``temperature`` mired from D65 (+ = a bluer scene white, so the image gets warmer),
   ``tint`` moves it off the locus by ``0.03 * tint / 100`` in CIE 1960 uv (+ = greener scene
   white, so the image gets more magenta); a Bradford adaptation maps that white to D65 and is
   normalised to keep the luminance of white. Exposure multiplies by ``2 ** exposure``.
   Clamped to ``[0, 1]`` and re-encoded to sRGB.
2. **Basic tone** on encoded values ``v``, composed into one monotone 1-D curve and applied to
   the max and min channel of each pixel, the middle channel interpolated between them (the
   hue-preserving RGB tone mapping of the DNG spec, ``RefBaselineRGBTone``), in this order:
   whites/blacks ``v + 0.2 * (w * v**4 + b * (1 - v)**4)`` (then clamped), shadows
   ``v * 2 ** (2 * s * (1 - v)**3)``, highlights ``1 - (1 - v) * 2 ** (-2 * h * v**3)``, contrast
   ``v + c * (smootherstep(v) - v)`` (pivot 0.5; mid-tone slope 1.875 at +100, 0.125 at -100),
   with ``w, b, s, h, c`` = slider / 100.
3. **Clarity** (the only spatial op): Rec.709 luma ``Y``, ``Y - gaussian_blur(Y)`` with sigma
   ``1.5 %`` of ``sqrt(H * W)``, weighted by ``4 Y (1 - Y)`` and by ``clarity / 100``, added to
   the three channels.
4. **Gamma**, per channel: ``v ** (2 ** -gamma)``.
5. **Tone curve**, per channel: monotone piecewise-cubic Hermite (PCHIP, Fritsch-Butland
   slopes as in ``scipy.interpolate.PchipInterpolator``) through the control points.
6. **Fade**, per channel: ``v + 0.2 * fade / 100 * (1 - v) ** 2`` (black lifted to 0.2 at 100).
7. **Global colour** in CIE Lab (D65): ``(a*, b*)`` scaled by ``1 + vibrance / 100 / (1 + (C /
   40) ** 2)`` (low-chroma pixels first) then by ``1 + saturation / 100`` (-100 = grey).
8. **Specific colour** in Lab: per-pixel weights of the 8 bands from the HSV hue of the pixel
   (band centres 0, 30, 60, 120, 180, 240, 270, 300 degrees; raised-cosine cross-fades between
   neighbouring centres, so the weights sum to 1 and each band is exactly 0 beyond its
   neighbours' centres), faded out for near-neutral pixels (``C^2 / (C^2 + 6^2)``). Hue: rotation
   of ``(a*, b*)`` by ``hue / 100 * 30`` degrees; saturation: chroma scale ``1 + s / 100``;
   luminance: ``L* = 100 * (L* / 100) ** (2 ** -(l / 100))``.
9. **Split toning** in Lab: adds ``30 * saturation / 100`` units of chroma toward the Lab hue of
   the fully saturated sRGB colour at HSV hue ``split_*_hue``, weighted by a logistic split of
   ``L*`` at pivot ``0.5 - 0.25 * split_balance / 100`` (+ balance = more highlights).
10. Clamp to ``[0, 1]``.

Steps 7-9 share one Lab conversion and are applied as a residual,
``rgb + lab_to_rgb(lab') - lab_to_rgb(lab)``, so pixels they do not touch come back bit-exact.
A step whose parameters are all exactly 0 and do not require grad is skipped; all-zero
parameters therefore return the input unchanged (clamped to ``[0, 1]``).

Why this order: white balance and exposure are scene-referred gains, so they come first, in
linear light, as in a raw converter; tone is settled before colour so that chroma, band and
split-toning edits act on the final tonality (split toning keys on the final L*); the point
curve follows the sliders as in Lightroom; fade closes the lighting group as a finishing matte.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from kornia.color import (
    hsv_to_rgb,
    lab_to_rgb,
    linear_rgb_to_rgb,
    rgb_to_hsv,
    rgb_to_lab,
    rgb_to_linear_rgb,
)
from kornia.filters import gaussian_blur2d

from .params import BANDS, SCALAR_FIELDS, RetouchParams, params_to_tensors, tone_curve_knots

__all__ = [
    "BAND_CENTRES_DEG",
    "CLARITY_SIGMA_FRACTION",
    "as_param_tensors",
    "band_mix",
    "band_weights",
    "basic_tone",
    "basic_tone_curve",
    "clarity",
    "colour",
    "exposure_white_balance",
    "fade",
    "gamma",
    "global_colour_lab",
    "lighting",
    "pchip",
    "render",
    "specific_colour_lab",
    "split_toning_lab",
    "tone_curve",
    "white_balance_matrix",
]

ParamTensors = dict[str, torch.Tensor]
ParamsInput = Union[RetouchParams, Sequence[RetouchParams], Mapping[str, Any]]

#: HSV hue (degrees) at which each band of :data:`retouch_core.language.params.BANDS` has weight 1.
BAND_CENTRES_DEG: tuple[float, ...] = (0.0, 30.0, 60.0, 120.0, 180.0, 240.0, 270.0, 300.0)
#: Clarity blur sigma as a fraction of ``sqrt(H * W)``, so the look does not depend on resolution.
CLARITY_SIGMA_FRACTION = 0.015

_REC709 = (0.2126, 0.7152, 0.0722)
_HUE_SHIFT_DEG_PER_100 = 30.0
_VIBRANCE_C0 = 40.0  # Lab chroma at which vibrance acts at half strength
_NEUTRAL_C0 = 6.0  # Lab chroma below which band edits fade out (hue is noise there)
_SPLIT_CHROMA_PER_100 = 30.0
_SPLIT_SOFTNESS = 0.1  # logistic width of the shadow/highlight split, in L*/100
_DUV_PER_100_TINT = 0.03
_POW_EPS = 1e-6


# ------------------------------------------------------------------ white balance constants
def _daylight_xy(cct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CIE daylight locus: CCT (K), any shape -> chromaticity ``(x, y)``, same shape."""
    t = cct
    x_lo = -4.6070e9 / t**3 + 2.9678e6 / t**2 + 0.09911e3 / t + 0.244063
    x_hi = -2.0064e9 / t**3 + 1.9018e6 / t**2 + 0.24748e3 / t + 0.237040
    x = torch.where(t <= 7000.0, x_lo, x_hi)
    return x, -3.0 * x * x + 2.870 * x - 0.275


def _xy_to_uv(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = -2.0 * x + 12.0 * y + 3.0
    return 4.0 * x / d, 6.0 * y / d


def _uv_to_xy(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = 2.0 * u - 8.0 * v + 4.0
    return 3.0 * u / d, 2.0 * v / d


def _tint_normal() -> tuple[float, float]:
    # Tint is "off the locus"; a fixed normal (taken at D65) keeps it a simple green-magenta axis.
    t = torch.tensor([6504.0 - 1.0, 6504.0 + 1.0], dtype=torch.float64)
    u, v = _xy_to_uv(*_daylight_xy(t))
    du, dv = float(u[1] - u[0]), float(v[1] - v[0])
    n = math.hypot(du, dv)
    nu, nv = -dv / n, du / n
    return (nu, nv) if nv > 0 else (-nu, -nv)  # +v in uv is the green side of the locus


_D65_MIRED = 1e6 / 6504.0
_TINT_NORMAL = _tint_normal()
_SRGB_TO_XYZ = torch.tensor(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=torch.float64,
)
_BRADFORD = torch.tensor(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]], dtype=torch.float64
)
_WB_POST = torch.linalg.inv(_SRGB_TO_XYZ) @ torch.linalg.inv(_BRADFORD)  # cone -> linear sRGB
_WB_PRE = _BRADFORD @ _SRGB_TO_XYZ  # linear sRGB -> cone


# ------------------------------------------------------------------------ parameter handling
def as_param_tensors(
    params: ParamsInput, batch: int, device: torch.device, dtype: torch.dtype
) -> ParamTensors:
    """Normalise any accepted parameter form to ``{name: (B,)}`` plus ``"tone_curve": (B, K, 2)``.

    Args:
        params: a :class:`RetouchParams`, a sequence of 1 or B of them, or a mapping with any
            subset of the field names (missing = 0). Mapping values may be floats, ``()``/``(1,)``/
            ``(B,)`` tensors; ``"tone_curve"`` may be ``(K, 2)``/``(B, K, 2)`` knots as produced by
            :func:`params_to_tensors` or a sequence of control points.
        batch, device, dtype: of the image the parameters will be applied to.

    Returns:
        Tensors on ``device``/``dtype``, expanded to the batch. Casting keeps the autograd graph.

    Example:
        >>> cpu = torch.device("cpu")
        >>> p = as_param_tensors({"exposure": torch.tensor([0.5, -0.5])}, 2, cpu, torch.float32)
        >>> p["exposure"], p["contrast"], p["tone_curve"].shape  # missing sliders are 0, the curve is the identity
        (tensor([ 0.5000, -0.5000]), tensor([0., 0.]), torch.Size([2, 2, 2]))
        >>> as_param_tensors(RetouchParams(exposure=1.0), 3, cpu, torch.float32)["exposure"]  # one edit, whole batch
        tensor([1., 1., 1.])
        >>> as_param_tensors({"exposur": 1.0}, 1, cpu, torch.float32)
        Traceback (most recent call last):
        ValueError: unknown parameter(s) exposur
    """
    if isinstance(params, RetouchParams) or (
        isinstance(params, Sequence) and not isinstance(params, (str, bytes, Mapping))
    ):
        raw: Mapping[str, Any] = params_to_tensors(params, device=device, dtype=dtype)
    elif isinstance(params, Mapping):
        raw = params
    else:
        raise TypeError(f"params must be RetouchParams, a sequence of them or a mapping, got {type(params).__name__}")
    unknown = sorted(set(raw) - set(SCALAR_FIELDS) - {"tone_curve"})
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}")

    out: ParamTensors = {}
    for name in SCALAR_FIELDS:
        value = torch.as_tensor(raw.get(name, 0.0)).to(device=device, dtype=dtype).reshape(-1)
        if value.numel() == 1:
            value = value.expand(batch)
        elif value.numel() != batch:
            raise ValueError(f"parameter {name} has {value.numel()} values for a batch of {batch}")
        out[name] = value

    curve = raw.get("tone_curve", ())
    if not isinstance(curve, torch.Tensor):
        curve = torch.tensor(tone_curve_knots(tuple(tuple(p) for p in curve)), dtype=torch.float64)
    curve = curve.to(device=device, dtype=dtype)
    if curve.dim() == 2:
        curve = curve.unsqueeze(0)
    if curve.dim() != 3 or curve.shape[-1] != 2 or curve.shape[1] < 2 or curve.shape[0] not in (1, batch):
        raise ValueError(f"tone_curve knots must be (K, 2) or (B, K, 2) with K >= 2, got {tuple(curve.shape)}")
    out["tone_curve"] = curve.expand(batch, -1, -1)
    return out


def _active(*tensors: torch.Tensor) -> bool:
    # Parameters that require grad are never skipped, so gradients exist even at the identity.
    return any(t.requires_grad or bool(torch.any(t != 0)) for t in tensors)


def _bc(t: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, 1, 1)`` for broadcasting against images."""
    return t.reshape(-1, 1, 1, 1)


# ------------------------------------------------------------------------------ lighting
def white_balance_matrix(temperature: torch.Tensor, tint: torch.Tensor) -> torch.Tensor:
    """Linear-sRGB white-balance matrix minus identity.

    Args:
        temperature, tint: ``(B,)`` slider values.

    Returns:
        ``(B, 3, 3)`` matrix ``E``; the white balance is ``lin + E @ lin`` (up to the luminance
        normalisation done by :func:`exposure_white_balance`). ``E`` is exactly 0 at
        ``temperature = tint = 0``, which keeps that case bit-exact.

    Example:
        >>> e = white_balance_matrix(torch.tensor([0.0, 50.0]), torch.zeros(2))
        >>> e.shape, bool((e[0] == 0).all())  # exactly 0 at the neutral setting
        (torch.Size([2, 3, 3]), True)
        >>> e[1].sum(-1)  # E @ (1, 1, 1) before normalisation: +temperature raises red and lowers blue
        tensor([ 0.1684, -0.0134, -0.2807])
    """
    dtype = temperature.dtype

    def white_xyz(temp: torch.Tensor, tnt: torch.Tensor) -> torch.Tensor:
        cct = 1e6 / (_D65_MIRED - temp)
        u, v = _xy_to_uv(*_daylight_xy(cct))
        shift = tnt / 100.0 * _DUV_PER_100_TINT
        x, y = _uv_to_xy(u + shift * _TINT_NORMAL[0], v + shift * _TINT_NORMAL[1])
        return torch.stack([x / y, torch.ones_like(x), (1.0 - x - y) / y], dim=-1)  # (B, 3)

    bradford = _BRADFORD.to(device=temperature.device, dtype=dtype)
    src = white_xyz(temperature, tint) @ bradford.T
    # The destination goes through the same arithmetic so that src == dst exactly at 0.
    dst = white_xyz(torch.zeros_like(temperature), torch.zeros_like(tint)) @ bradford.T
    gain_minus_one = dst / src - 1.0  # (B, 3) von Kries gains in cone space
    post = _WB_POST.to(device=temperature.device, dtype=dtype)
    pre = _WB_PRE.to(device=temperature.device, dtype=dtype)
    return torch.einsum("ij,bj,jk->bik", post, gain_minus_one, pre)


def exposure_white_balance(
    image: torch.Tensor, exposure: torch.Tensor, temperature: torch.Tensor, tint: torch.Tensor
) -> torch.Tensor:
    """Step 1: white balance and exposure in linear light.

    Args:
        image: ``(B, 3, H, W)`` sRGB in ``[0, 1]``.
        exposure: ``(B,)`` EV; temperature, tint: ``(B,)`` slider values.

    Returns:
        ``(B, 3, H, W)`` sRGB in ``[0, 1]``; linear values above 1 are clipped.

    Example:
        >>> grey, zero = torch.full((1, 3, 1, 1), 0.5), torch.zeros(1)
        >>> exposure_white_balance(grey, torch.ones(1), zero, zero).flatten()  # +1 EV doubles linear light
        tensor([0.6858, 0.6858, 0.6858])
        >>> warm = exposure_white_balance(grey, zero, torch.tensor([50.0]), zero)
        >>> warm.shape, bool(warm[0, 0] > warm[0, 1] > warm[0, 2])  # a bluer assumed scene white: grey turns warm
        (torch.Size([1, 3, 1, 1]), True)
    """
    lin = rgb_to_linear_rgb(image)
    gain = torch.exp2(exposure)
    if _active(temperature, tint):
        e = white_balance_matrix(temperature, tint)
        # Normalise so that white keeps its luminance: temperature is not an exposure change.
        y_row = torch.tensor(_REC709, device=image.device, dtype=image.dtype)
        gain = gain / (1.0 + torch.einsum("i,bij->b", y_row, e))  # 1 + Y . E . (1, 1, 1)
        lin = lin + torch.einsum("bij,bjhw->bihw", e, lin)
    lin = (lin * _bc(gain)).clamp(0.0, 1.0)
    return linear_rgb_to_rgb(lin)


def basic_tone_curve(
    v: torch.Tensor,
    whites: torch.Tensor,
    blacks: torch.Tensor,
    shadows: torch.Tensor,
    highlights: torch.Tensor,
    contrast: torch.Tensor,
) -> torch.Tensor:
    """The composed 1-D basic-tone curve (formulas in the module docstring).

    Args:
        v: ``(B, C, H, W)`` encoded values in ``[0, 1]``.
        whites, blacks, shadows, highlights, contrast: ``(B,)`` slider values in [-100, 100].

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``, monotone non-decreasing in ``v`` over the whole range.

    Example:
        >>> v, zero = torch.linspace(0, 1, 5).view(1, 1, 1, 5), torch.zeros(1)
        >>> basic_tone_curve(v, zero, zero, zero, zero, torch.tensor([100.0])).flatten()  # S-curve pivoting on 0.5
        tensor([0.0000, 0.1035, 0.5000, 0.8965, 1.0000])
        >>> basic_tone_curve(v, zero, zero, torch.tensor([100.0]), zero, zero).flatten()  # shadows lift the dark end
        tensor([0.0000, 0.4487, 0.5946, 0.7664, 1.0000])
    """
    w, b, s, h, c = (_bc(p) / 100.0 for p in (whites, blacks, shadows, highlights, contrast))
    # Each term is written as "v + delta" so that 0 sliders give v back bit-exactly.
    # The 0.2 and 2-stop scales are the largest that keep each piece monotone at +-100.
    v = (v + 0.2 * (w * v**4 + b * (1.0 - v) ** 4)).clamp(0.0, 1.0)
    v = v * torch.exp2(2.0 * s * (1.0 - v) ** 3)
    v = v - (1.0 - v) * torch.expm1(-2.0 * math.log(2.0) * h * v**3)
    return v + c * (v * v * v * (v * (6.0 * v - 15.0) + 10.0) - v)


def basic_tone(image: torch.Tensor, p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Step 2: whites, blacks, shadows, highlights, contrast, hue-preserving.

    Per-channel curves would shift hues (a saturated orange drifts toward yellow under an
    S-curve); mapping only the max and min channel and interpolating the middle one keeps the
    HSV hue, as Adobe's DNG reference does.

    Args:
        image: ``(B, 3, H, W)`` in ``[0, 1]``; p: ``{name: (B,)}``.

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``.

    Example:
        >>> from kornia.color import rgb_to_hsv
        >>> orange = torch.tensor([0.8, 0.5, 0.2]).view(1, 3, 1, 1)
        >>> out = basic_tone(orange, as_param_tensors({"contrast": 100.0}, 1, orange.device, orange.dtype))
        >>> out.shape, out.flatten()  # more contrast stretches the channels apart...
        (torch.Size([1, 3, 1, 1]), tensor([0.9421, 0.5000, 0.0579]))
        >>> torch.allclose(rgb_to_hsv(out)[:, 0], rgb_to_hsv(orange)[:, 0])  # ...but the orange stays orange
        True
    """
    args = (p["whites"], p["blacks"], p["shadows"], p["highlights"], p["contrast"])
    hi = image.amax(1, keepdim=True)
    lo = image.amin(1, keepdim=True)
    d_hi = basic_tone_curve(hi, *args) - hi
    d_lo = basic_tone_curve(lo, *args) - lo
    span = hi - lo
    # Near-grey pixels have no meaningful middle-channel ratio; they just get the grey mapping.
    ok = span > 1e-6
    slope_minus_one = torch.where(ok, (d_hi - d_lo) / torch.where(ok, span, torch.ones_like(span)), 0.0)
    return (image + d_lo + (image - lo) * slope_minus_one).clamp(0.0, 1.0)


def _blur_luma(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(B, 1, H, W)``; large sigmas run on a box-downsampled copy."""
    h, w = y.shape[-2:]
    # A 6-sigma kernel on a 24 MP image would be ~500 taps; blur at 1/f size instead (the
    # blurred signal has no detail a bilinear upsample could lose).
    factor = max(1, int(sigma // 4.0))
    small = F.avg_pool2d(y, factor, factor, ceil_mode=True) if factor > 1 else y
    s = sigma / factor
    radius = min(math.ceil(3.0 * s), small.shape[-2] - 1, small.shape[-1] - 1)
    if radius >= 1:
        k = 2 * radius + 1
        small = gaussian_blur2d(small, (k, k), (s, s), border_type="reflect")
    if factor > 1:
        small = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return small


def clarity(image: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Step 3: mid-frequency local contrast on luma (the only spatial operation).

    Args:
        image: ``(B, 3, H, W)`` in ``[0, 1]``; amount: ``(B,)`` slider value in [-100, 100].

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``. A flat image is returned unchanged (up to float rounding).

    Example:
        >>> edge = torch.cat([torch.full((1, 3, 8, 4), 0.4), torch.full((1, 3, 8, 4), 0.6)], -1)
        >>> out = clarity(edge, torch.tensor([100.0]))
        >>> out.shape, out[0, 0, 0]  # a soft edge gets a darker and a brighter side: local contrast
        (torch.Size([1, 3, 8, 8]), tensor([0.4000, 0.3991, 0.3888, 0.3423, 0.6577, 0.6112, 0.6009, 0.6000]))
        >>> flat = torch.full((1, 3, 8, 8), 0.3)
        >>> torch.allclose(clarity(flat, torch.tensor([100.0])), flat, atol=1e-6)  # no detail, nothing to amplify
        True
    """
    h, w = image.shape[-2:]
    sigma = max(1.0, CLARITY_SIGMA_FRACTION * math.sqrt(h * w))
    weights = torch.tensor(_REC709, device=image.device, dtype=image.dtype).reshape(1, 3, 1, 1)
    luma = (image * weights).sum(1, keepdim=True)
    detail = luma - _blur_luma(luma, sigma)
    # The mid-tone weight keeps clarity from clipping deep shadows and bright highlights.
    delta = _bc(amount) / 100.0 * detail * 4.0 * luma * (1.0 - luma)
    return (image + delta).clamp(0.0, 1.0)


def gamma(image: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Step 4: ``out = in ** (2 ** -gamma)`` per channel.

    Args:
        image: ``(B, 3, H, W)`` in ``[0, 1]``; value: ``(B,)`` in [-1, 1].

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``. Below 1e-6 the power is replaced by its chord to 0 so
        that the gradient stays finite at black (no 8-bit value lies there).

    Example:
        >>> gamma(torch.tensor([0.0, 0.25, 1.0]).view(1, 3, 1, 1), torch.tensor([1.0])).flatten()  # square root
        tensor([0.0000, 0.5000, 1.0000])
    """
    e = _bc(torch.exp2(-value))
    v = image.clamp(0.0, 1.0)
    return torch.where(v > _POW_EPS, v.clamp_min(_POW_EPS) ** e, v * _POW_EPS ** (e - 1.0))


def pchip(knots: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Monotone piecewise-cubic Hermite interpolation, batched.

    Same curve as ``scipy.interpolate.PchipInterpolator`` (weighted-harmonic-mean slopes,
    three-point end slopes, linear for two knots).

    Args:
        knots: ``(B, K, 2)`` ``(x, y)``, x increasing; trailing repeats of the last knot are
            padding and are ignored.
        t: ``(B, N)`` query points; clamped to ``[x_0, x_last]`` (constant extrapolation).

    Returns:
        ``(B, N)`` curve values. Differentiable w.r.t. ``knots`` and ``t``.

    Example:
        >>> knots = torch.tensor([[[0.0, 0.0], [0.5, 0.7], [1.0, 1.0]]])  # (B=1, K=3, 2): a brightening curve
        >>> t = torch.linspace(0, 1, 5).view(1, 5)  # (B=1, N=5)
        >>> pchip(knots, t)  # through every knot, monotone in between
        tensor([[0.0000, 0.4100, 0.7000, 0.8900, 1.0000]])
        >>> padded = torch.cat([knots, knots[:, -1:]], 1)  # a repeated last knot is padding, so rows can share K
        >>> torch.equal(pchip(padded, t), pchip(knots, t))
        True
        >>> line = torch.tensor([[[0.0, 0.2], [1.0, 0.8]]])
        >>> pchip(line, torch.tensor([[-1.0, 0.5, 2.0]]))  # two knots: a straight line, constant outside
        tensor([[0.2000, 0.5000, 0.8000]])
    """
    x, y = knots[..., 0], knots[..., 1]
    bsz, k = x.shape
    if k == 2:  # pad so every row has a second interval for the end-slope formula
        x = torch.cat([x, x[:, -1:]], 1)
        y = torch.cat([y, y[:, -1:]], 1)
        k = 3
    h = x[:, 1:] - x[:, :-1]  # (B, K-1)
    real = h > 0
    ones = torch.ones_like(h)
    d = torch.where(real, (y[:, 1:] - y[:, :-1]) / torch.where(real, h, ones), 0.0)
    n_int = real.sum(1)  # (B,) number of real intervals; the last real knot is index n_int

    # Interior slopes: weighted harmonic mean of neighbouring secants, 0 at local extrema.
    h0, h1, d0, d1 = h[:, :-1], h[:, 1:], d[:, :-1], d[:, 1:]
    w1, w2 = 2.0 * h1 + h0, h1 + 2.0 * h0
    same_sign = d0 * d1 > 0
    den = w1 * d1 + w2 * d0
    interior = torch.where(same_sign, (w1 + w2) * d0 * d1 / torch.where(same_sign, den, torch.ones_like(den)), 0.0)

    def end_slope(ha, hb, da, db):
        m = ((2.0 * ha + hb) * da - ha * db) / (ha + hb).clamp_min(torch.finfo(ha.dtype).tiny)
        m = torch.where(torch.sign(m) != torch.sign(da), torch.zeros_like(m), m)
        overshoot = (torch.sign(da) != torch.sign(db)) & (m.abs() > 3.0 * da.abs())
        return torch.where(overshoot, 3.0 * da, m)

    first = end_slope(h[:, 0], h[:, 1], d[:, 0], d[:, 1])
    last_i = (n_int - 1).clamp_min(0).unsqueeze(1)
    prev_i = (n_int - 2).clamp_min(0).unsqueeze(1)
    last = end_slope(
        h.gather(1, last_i)[:, 0], h.gather(1, prev_i)[:, 0], d.gather(1, last_i)[:, 0], d.gather(1, prev_i)[:, 0]
    )
    linear = n_int == 1
    first = torch.where(linear, d[:, 0], first)
    last = torch.where(linear, d[:, 0], last)
    idx = torch.arange(k, device=x.device).unsqueeze(0)
    m = torch.cat([first.unsqueeze(1), interior, torch.zeros_like(first).unsqueeze(1)], 1)
    m = torch.where(idx == n_int.unsqueeze(1), last.unsqueeze(1), m)

    t = torch.minimum(torch.maximum(t, x[:, :1]), x.gather(1, n_int.unsqueeze(1)))
    # Left search never lands in a zero-width padding interval for t <= x_last.
    seg = (torch.searchsorted(x.contiguous(), t.contiguous(), right=False) - 1).clamp(0, k - 2)
    xa, xb = x.gather(1, seg), x.gather(1, seg + 1)
    ya, yb = y.gather(1, seg), y.gather(1, seg + 1)
    ma, mb = m.gather(1, seg), m.gather(1, seg + 1)
    hs = xb - xa
    s = (t - xa) / hs
    s2, s3 = s * s, s * s * s
    return (
        (2.0 * s3 - 3.0 * s2 + 1.0) * ya
        + (s3 - 2.0 * s2 + s) * hs * ma
        + (3.0 * s2 - 2.0 * s3) * yb
        + (s3 - s2) * hs * mb
    )


def tone_curve(image: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Step 5: the point curve, applied to R, G and B alike.

    Args:
        image: ``(B, 3, H, W)`` in ``[0, 1]``; knots: ``(B, K, 2)`` (see :func:`pchip`).

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``.

    Example:
        >>> knots = torch.tensor([[[0.0, 0.0], [0.5, 0.7], [1.0, 1.0]]])
        >>> out = tone_curve(torch.full((1, 3, 2, 2), 0.5), knots)
        >>> out.shape, out[0, :, 0, 0]  # mid grey lands on the middle knot in every channel
        (torch.Size([1, 3, 2, 2]), tensor([0.7000, 0.7000, 0.7000]))
    """
    b = image.shape[0]
    out = pchip(knots, image.reshape(b, -1).clamp(0.0, 1.0))
    return out.reshape(image.shape).clamp(0.0, 1.0)


def fade(image: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Step 6: matte look, a flattened toe that lifts black to ``0.2 * amount / 100``.

    Args:
        image: ``(B, 3, H, W)`` in ``[0, 1]``; amount: ``(B,)`` in [0, 100].

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]`` (white stays white, slope at black ``1 - 0.4 * amount / 100``).

    Example:
        >>> fade(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1), torch.tensor([100.0])).flatten()  # black -> 0.2
        tensor([0.2000, 0.5500, 1.0000])
    """
    return image + 0.2 * _bc(amount) / 100.0 * (1.0 - image) ** 2


def lighting(image: torch.Tensor, p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Steps 1-6 (lighting group; white balance rides along in the linear stage).

    Args:
        image: ``(B, 3, H, W)`` in ``[0, 1]``; p: output of :func:`as_param_tensors`.

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``.

    Example:
        >>> grey = torch.full((1, 3, 2, 2), 0.5)
        >>> p = as_param_tensors(RetouchParams(exposure=1.0, fade=50.0), 1, grey.device, grey.dtype)
        >>> out = lighting(grey, p)
        >>> out.shape, out[0, :, 0, 0]  # exposure first, then the fade lifts the result a little
        (torch.Size([1, 3, 2, 2]), tensor([0.6957, 0.6957, 0.6957]))
    """
    if _active(p["exposure"], p["temperature"], p["tint"]):
        image = exposure_white_balance(image, p["exposure"], p["temperature"], p["tint"])
    if _active(p["whites"], p["blacks"], p["shadows"], p["highlights"], p["contrast"]):
        image = basic_tone(image, p)
    if _active(p["clarity"]):
        image = clarity(image, p["clarity"])
    if _active(p["gamma"]):
        image = gamma(image, p["gamma"])
    knots = p["tone_curve"]
    if knots.requires_grad or not torch.equal(knots[..., 0], knots[..., 1]):
        image = tone_curve(image, knots)
    if _active(p["fade"]):
        image = fade(image, p["fade"])
    return image


# -------------------------------------------------------------------------------- colour
def global_colour_lab(lab: torch.Tensor, vibrance: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """Step 7: vibrance then saturation as chroma scales in Lab.

    Args:
        lab: ``(B, 3, H, W)`` L* in [0, 100], a*, b*; vibrance, saturation: ``(B,)``.

    Returns:
        ``(B, 3, H, W)`` Lab; L* and the hue angle are unchanged.

    Example:
        >>> from kornia.color import rgb_to_lab
        >>> lab = rgb_to_lab(torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1))
        >>> global_colour_lab(lab, torch.zeros(1), torch.tensor([-100.0])).flatten()  # -100: grey, same L*
        tensor([46.2419,  0.0000,  0.0000])
        >>> vivid = global_colour_lab(lab, torch.tensor([100.0]), torch.zeros(1))
        >>> vivid[:, 1:].norm(dim=1) / lab[:, 1:].norm(dim=1)  # already saturated: well below the 2x at C = 0
        tensor([[[1.2472]]])
    """
    lum, ab = lab[:, :1], lab[:, 1:]
    c2 = (ab * ab).sum(1, keepdim=True)
    factor = (1.0 + _bc(vibrance) / 100.0 / (1.0 + c2 / _VIBRANCE_C0**2)) * (1.0 + _bc(saturation) / 100.0)
    return torch.cat([lum, ab * factor], 1)


def band_weights(hue_deg: torch.Tensor) -> torch.Tensor:
    """Partition-of-unity weights of the 8 hue bands.

    Args:
        hue_deg: ``(B, H, W)`` HSV hue in degrees (any real value; taken modulo 360).

    Returns:
        ``(B, 8, H, W)`` weights in ``[0, 1]`` summing to 1, band order
        :data:`retouch_core.language.params.BANDS`. Band ``i`` is 1 at its centre, falls as a raised
        cosine to 0 at the neighbouring centres and is exactly 0 beyond them; the weights are
        C1 in hue, so gradients w.r.t. the image stay continuous.

    Example:
        >>> w = band_weights(torch.tensor([[[0.0, 45.0, 90.0]]]))  # (B=1, H=1, W=3) hues in degrees
        >>> w.shape, torch.allclose(w.sum(1), torch.ones(1, 1, 3))  # a partition of unity
        (torch.Size([1, 8, 1, 3]), True)
        >>> w[0, :4, 0, 1]  # 45 degrees: halfway between the orange (30) and yellow (60) centres
        tensor([0.0000, 0.5000, 0.5000, 0.0000])
    """
    centres = torch.tensor(BAND_CENTRES_DEG, device=hue_deg.device, dtype=hue_deg.dtype)
    gap_next = (centres.roll(-1) - centres) % 360.0
    gap_prev = (centres - centres.roll(1)) % 360.0
    diff = (hue_deg.unsqueeze(1) - centres.reshape(1, -1, 1, 1) + 180.0) % 360.0 - 180.0
    t = torch.where(diff >= 0, diff / gap_next.reshape(1, -1, 1, 1), -diff / gap_prev.reshape(1, -1, 1, 1))
    return torch.where(t < 1.0, 0.5 + 0.5 * torch.cos(math.pi * t), 0.0)


def _band_lookup(hue_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, W)`` hue in degrees -> lower band index ``(B, N)`` and its weight ``(B, N)``."""
    bsz = hue_deg.shape[0]
    centres = torch.tensor(BAND_CENTRES_DEG, device=hue_deg.device, dtype=hue_deg.dtype)
    gaps = (centres.roll(-1) - centres) % 360.0
    h = torch.remainder(hue_deg, 360.0).reshape(bsz, -1)
    seg = (torch.bucketize(h, centres, right=True) - 1).clamp(0, len(BANDS) - 1)
    t = ((h - centres[seg]) / gaps[seg]).clamp(0.0, 1.0)
    return seg, 0.5 + 0.5 * torch.cos(math.pi * t)


def _mix(lookup: tuple[torch.Tensor, torch.Tensor], sliders: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    seg, w = lookup
    s_lo = sliders.gather(1, seg)
    s_hi = sliders.gather(1, (seg + 1) % len(BANDS))
    return (s_lo + (1.0 - w) * (s_hi - s_lo)).reshape(shape[0], 1, *shape[1:])


def band_mix(hue_deg: torch.Tensor, sliders: torch.Tensor) -> torch.Tensor:
    """Per-pixel band-weighted slider value, ``sum_i band_weights(hue)_i * sliders_i``.

    Only the two bands whose centres bracket the hue have non-zero weight, so this gathers
    those two instead of materialising the ``(B, 8, H, W)`` weights of :func:`band_weights`.

    Args:
        hue_deg: ``(B, H, W)`` HSV hue in degrees; sliders: ``(B, 8)`` in band order.

    Returns:
        ``(B, 1, H, W)``.

    Example:
        >>> sliders = torch.arange(8.0).view(1, 8) * 10  # red 0, orange 10, yellow 20, ...
        >>> band_mix(torch.tensor([[[0.0, 45.0, 90.0]]]), sliders)  # (1, 1, 1, 3)
        tensor([[[[ 0., 15., 25.]]]])
        >>> hue = torch.tensor([[[45.0]]])
        >>> full = (band_weights(hue) * sliders.view(1, 8, 1, 1)).sum(1, keepdim=True)  # the (B, 8, H, W) way
        >>> torch.allclose(band_mix(hue, sliders), full)
        True
    """
    return _mix(_band_lookup(hue_deg), sliders, hue_deg.shape)


def specific_colour_lab(
    lab: torch.Tensor, hue_deg: torch.Tensor, hue: torch.Tensor, sat: torch.Tensor, lum: torch.Tensor
) -> torch.Tensor:
    """Step 8: per-band hue rotation, chroma scale and lightness in Lab.

    Args:
        lab: ``(B, 3, H, W)``; hue_deg: ``(B, H, W)`` HSV hue used for band membership;
        hue, sat, lum: ``(B, 8)`` slider values in band order.

    Returns:
        ``(B, 3, H, W)`` Lab. Pixels whose bands all have 0 sliders come back bit-exact.

    Example:
        >>> import math
        >>> from kornia.color import rgb_to_hsv, rgb_to_lab
        >>> image = torch.tensor([[0.8, 0.2], [0.2, 0.8], [0.2, 0.2]]).view(1, 3, 1, 2)  # a red and a green pixel
        >>> lab, hue_deg = rgb_to_lab(image), rgb_to_hsv(image)[:, 0] * 180 / math.pi
        >>> hue = torch.zeros(1, 8)
        >>> hue[0, 0] = 100.0  # the red band only
        >>> out = specific_colour_lab(lab, hue_deg, hue, torch.zeros(1, 8), torch.zeros(1, 8))
        >>> angle = lambda t: torch.rad2deg(torch.atan2(t[:, 2], t[:, 1]))
        >>> out.shape, (angle(out) - angle(lab))[0, 0, 0]  # red turns by nearly the full 30 degrees
        (torch.Size([1, 3, 1, 2]), tensor(29.7800))
        >>> torch.equal(out[..., 1], lab[..., 1])  # green is outside the red band: bit-exact
        True
    """
    lookup = _band_lookup(hue_deg)
    lightness, ab = lab[:, :1], lab[:, 1:]
    c2 = (ab * ab).sum(1, keepdim=True)
    neutral_fade = c2 / (c2 + _NEUTRAL_C0**2)  # hue of a near-grey pixel is noise; leave it alone

    def mix(sliders: torch.Tensor) -> torch.Tensor:
        return neutral_fade * _mix(lookup, sliders / 100.0, hue_deg.shape)

    if _active(hue):
        theta = mix(hue) * math.radians(_HUE_SHIFT_DEG_PER_100)
        cos, sin = torch.cos(theta), torch.sin(theta)
        a, b = ab[:, :1], ab[:, 1:]
        ab = torch.cat([a * cos - b * sin, a * sin + b * cos], 1)
    if _active(sat):
        ab = ab * (1.0 + mix(sat))
    if _active(lum):
        # 100 * (L/100) ** e written as L * (L/100) ** (e - 1): exact at e = 1, finite gradient at L = 0.
        e = torch.exp2(-mix(lum))
        lightness = lightness * (lightness / 100.0).clamp(_POW_EPS, 1.0) ** (e - 1.0)
    return torch.cat([lightness, ab], 1)


def _hue_direction(hue_deg: torch.Tensor) -> torch.Tensor:
    """``(B,)`` HSV hue in degrees -> ``(B, 2)`` unit (a*, b*) of that fully saturated sRGB colour."""
    h = torch.remainder(hue_deg, 360.0) * (math.pi / 180.0)
    hsv = torch.stack([h, torch.ones_like(h), torch.ones_like(h)], 1).reshape(-1, 3, 1, 1)
    ab = rgb_to_lab(hsv_to_rgb(hsv))[:, 1:, 0, 0]
    return ab / ab.norm(dim=1, keepdim=True)


def split_toning_lab(
    lab: torch.Tensor,
    shadow_hue: torch.Tensor,
    highlight_hue: torch.Tensor,
    shadow_saturation: torch.Tensor,
    highlight_saturation: torch.Tensor,
    balance: torch.Tensor,
) -> torch.Tensor:
    """Step 9: tint shadows and highlights toward two hues, lightness kept.

    Args:
        lab: ``(B, 3, H, W)``; hues: ``(B,)`` degrees; saturations: ``(B,)`` in [0, 100];
        balance: ``(B,)`` in [-100, 100].

    Returns:
        ``(B, 3, H, W)`` Lab.

    Example:
        >>> from kornia.color import rgb_to_lab
        >>> lab = rgb_to_lab(torch.tensor([0.1, 0.9]).view(1, 1, 1, 2).expand(1, 3, 1, 2))  # dark and light grey
        >>> zero = torch.zeros(1)
        >>> out = split_toning_lab(lab, torch.tensor([240.0]), torch.tensor([30.0]), torch.tensor([100.0]), zero, zero)
        >>> out[:, 1:].norm(dim=1)  # shadow toning at 100: ~30 units of chroma in the shadows only
        tensor([[[29.5093,  0.4787]]])
        >>> torch.equal(out[:, 0], lab[:, 0])  # lightness kept
        True
    """
    pivot = 0.5 - 0.25 * _bc(balance) / 100.0
    w_high = torch.sigmoid((lab[:, :1] / 100.0 - pivot) / _SPLIT_SOFTNESS)
    d_shadow = _hue_direction(shadow_hue).reshape(-1, 2, 1, 1)
    d_high = _hue_direction(highlight_hue).reshape(-1, 2, 1, 1)
    shift = _SPLIT_CHROMA_PER_100 / 100.0 * (
        _bc(shadow_saturation) * (1.0 - w_high) * d_shadow + _bc(highlight_saturation) * w_high * d_high
    )
    return torch.cat([lab[:, :1], lab[:, 1:] + shift], 1)


def colour(image: torch.Tensor, p: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Steps 7-9 (global colour, specific colour, split toning) in one Lab round trip.

    Args:
        image: ``(B, 3, H, W)`` in ``[0, 1]``; p: output of :func:`as_param_tensors`.

    Returns:
        ``(B, 3, H, W)``, not yet clamped (out-of-gamut colours exceed ``[0, 1]``).

    Example:
        >>> red = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1)
        >>> out = colour(red, as_param_tensors({"saturation": -100.0}, 1, red.device, red.dtype))
        >>> out.shape, out.flatten()  # no chroma left: grey of the same L*
        (torch.Size([1, 3, 1, 1]), tensor([0.4295, 0.4295, 0.4295]))
        >>> torch.equal(colour(red, as_param_tensors({}, 1, red.device, red.dtype)), red)  # all 0: no Lab round trip
        True
    """
    band_hue = torch.stack([p[f"hue_{b}"] for b in BANDS], 1)
    band_sat = torch.stack([p[f"saturation_{b}"] for b in BANDS], 1)
    band_lum = torch.stack([p[f"luminance_{b}"] for b in BANDS], 1)
    do_global = _active(p["vibrance"], p["saturation"])
    do_bands = _active(band_hue, band_sat, band_lum)
    split = [p[k] for k in ("split_shadow_hue", "split_highlight_hue", "split_shadow_saturation",
                            "split_highlight_saturation", "split_balance")]
    # Hues and balance do nothing without saturation, but keep them in the graph if optimised.
    do_split = _active(split[2], split[3]) or any(t.requires_grad for t in split)
    if not (do_global or do_bands or do_split):
        return image
    lab = rgb_to_lab(image)
    out = lab
    if do_global:
        out = global_colour_lab(out, p["vibrance"], p["saturation"])
    if do_bands:
        hue_deg = rgb_to_hsv(image)[:, 0] * (180.0 / math.pi)
        out = specific_colour_lab(out, hue_deg, band_hue, band_sat, band_lum)
    if do_split:
        out = split_toning_lab(out, *split)
    # Residual form: the Lab round trip error (~1e-5) cancels, untouched pixels stay exact.
    return image + (lab_to_rgb(out, clip=False) - lab_to_rgb(lab, clip=False))


# -------------------------------------------------------------------------------- render
def render(image: torch.Tensor, params: ParamsInput) -> torch.Tensor:
    """Apply a photo-finishing edit (order of operations in the module docstring).

    Args:
        image: ``(B, 3, H, W)`` float sRGB in ``[0, 1]`` (ComfyUI's ``IMAGE`` is ``(B, H, W, 3)``:
            permute first). Half precision is computed in float32.
        params: a :class:`RetouchParams` (same edit for the batch), a sequence of B of them, or
            a mapping of tensors (see :func:`as_param_tensors`), e.g. the output of
            :func:`retouch_core.language.params.params_to_tensors` with ``requires_grad`` leaves.

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``, same dtype as ``image``.

    Example:
        >>> image = torch.full((1, 3, 4, 4), 0.2)
        >>> brighter = render(image, RetouchParams(exposure=1.0))  # one stop: linear light x2
        >>> brighter.shape, bool((brighter > image).all()), torch.equal(render(image, RetouchParams()), image)
        (torch.Size([1, 3, 4, 4]), True, True)
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (B, 3, H, W) tensor, got {shape}")
    if not image.is_floating_point():
        raise ValueError(f"image must be floating point in [0, 1], got {image.dtype}")
    work = image if image.dtype in (torch.float32, torch.float64) else image.float()
    p = as_param_tensors(params, work.shape[0], work.device, work.dtype)
    out = colour(lighting(work, p), p)
    return out.clamp(0.0, 1.0).to(image.dtype)

"""Guidance maps: the third (z) coordinate at which a bilateral grid is sliced.

HDRNet's learned guide is a tiny per-pixel network ``z = g(r, g, b)``::

    c = clamp(M p + m, 0, 1)                 3x3 colour mix, per-channel bias
    f_c = curve_c(c_c)                       monotone piecewise-linear curve per channel
    z = clamp(sum_c w_c f_c + w_0, 0, 1)     1x1 mix to one channel

Each curve has ``K`` uniform segments on ``[0, 1]`` with non-negative slopes ``s_{c,k}``::

    curve_c(v) = sum_k s_{c,k} * clamp(v - k / K, 0, 1 / K)

which is monotone by construction and the identity when every slope is 1. With ``M = I``,
``m = 0``, identity curves, ``w = (0.299, 0.587, 0.114)`` and ``w_0 = 0`` the guide is exactly
kornia's luminance (:func:`luminance_guide`), which is how :class:`LearnedGuide` starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F
from torch import nn

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # kornia.color.rgb_to_grayscale's weights
DEFAULT_KNOTS = 16


def luminance_guide(image: torch.Tensor) -> torch.Tensor:
    """The fixed guide: luminance of an RGB image, (B, 3, H, W) -> (B, 1, H, W).

    Example:
        >>> luminance_guide(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten()  # pure red
        tensor([0.2990])
    """
    return kornia.color.rgb_to_grayscale(image)


@dataclass(frozen=True)
class GuideParams:
    """Parameters of the HDRNet guide for a batch of 1 or B images.

    Attributes:
        ccm: (N, 3, 3) colour mix ``M``.
        ccm_bias: (N, 3) bias ``m``.
        slopes: (N, 3, K) non-negative segment slopes of the per-channel curves.
        mix: (N, 3) weights ``w`` of the 1x1 mix.
        mix_bias: (N,) bias ``w_0``.

    Example:
        >>> image = torch.rand(1, 3, 8, 8)
        >>> torch.allclose(apply_guide(image, GuideParams.identity()), luminance_guide(image), atol=1e-6)
        True
    """

    ccm: torch.Tensor
    ccm_bias: torch.Tensor
    slopes: torch.Tensor
    mix: torch.Tensor
    mix_bias: torch.Tensor

    @staticmethod
    def identity(
        batch: int = 1, knots: int = DEFAULT_KNOTS, device=None, dtype=torch.float32
    ) -> "GuideParams":
        """Parameters for which the guide equals :func:`luminance_guide`."""
        kw = dict(device=device, dtype=dtype)
        return GuideParams(
            # Not torch.eye: on the meta device (models check their architecture there before
            # loading weights) it falls back to torch._refs, whose import took 2-5 s and 300 MB.
            ccm=torch.tensor(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), **kw).expand(batch, 3, 3).clone(),
            ccm_bias=torch.zeros(batch, 3, **kw),
            slopes=torch.ones(batch, 3, knots, **kw),
            mix=torch.tensor(LUMA_WEIGHTS, **kw).expand(batch, 3).clone(),
            mix_bias=torch.zeros(batch, **kw),
        )

    @property
    def batch(self) -> int:
        return self.ccm.shape[0]

    @property
    def knots(self) -> int:
        return self.slopes.shape[-1]

    def to(self, device=None, dtype=None) -> "GuideParams":
        return GuideParams(*(t.to(device=device, dtype=dtype) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.ccm, self.ccm_bias, self.slopes, self.mix, self.mix_bias)

    def select(self, index: int) -> "GuideParams":
        """The parameters of image ``index`` (broadcasting a batch of 1), batch 1."""
        i = 0 if self.batch == 1 else index
        return GuideParams(*(t[i : i + 1] for t in self.tensors()))

    def check(self, batch: int | None = None) -> None:
        """Raise ValueError on inconsistent shapes, negative slopes or non-finite values."""
        n, k = self.batch, self.knots
        expected = {"ccm": (n, 3, 3), "ccm_bias": (n, 3), "slopes": (n, 3, k), "mix": (n, 3), "mix_bias": (n,)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"guide {name} must have shape {shape}, got {got}")
        if k < 1:
            raise ValueError("guide curves need at least one segment")
        if batch is not None and n not in (1, batch):
            raise ValueError(f"guide batch is {n} but the image batch is {batch}")
        if any(not torch.isfinite(t).all() for t in self.tensors()):
            raise ValueError("guide parameters contain NaN or Inf values")
        if (self.slopes < 0).any():
            raise ValueError("guide curve slopes must be >= 0 (the curves must be monotone)")


def apply_curves(values: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
    """Monotone piecewise-linear curves, one per channel.

    Args:
        values: (B, 3, H, W), clamped to [0, 1] inside.
        slopes: (B or 1, 3, K) segment slopes.

    Returns:
        (B, 3, H, W).

    Example:
        >>> values = torch.tensor([0.25, 0.5, 1.0]).view(1, 3, 1, 1)
        >>> apply_curves(values, torch.ones(1, 3, 4)).flatten()  # unit slopes: the identity curve
        tensor([0.2500, 0.5000, 1.0000])
    """
    k = slopes.shape[-1]
    starts = torch.arange(k, device=values.device, dtype=values.dtype) / k
    v = values.clamp(0, 1).unsqueeze(2)  # (B, 3, 1, H, W)
    ramps = (v - starts.view(1, 1, k, 1, 1)).clamp(0, 1.0 / k)
    return (ramps * slopes[..., None, None]).sum(2)


def apply_guide(image: torch.Tensor, params: GuideParams) -> torch.Tensor:
    """Evaluate the learned guide, (B, 3, H, W) -> (B, 1, H, W) in [0, 1].

    Example:
        >>> apply_guide(torch.full((2, 3, 4, 4), 0.5), GuideParams.identity()).shape
        torch.Size([2, 1, 4, 4])
    """
    ccm = params.ccm.expand(image.shape[0], 3, 3)
    mixed = torch.einsum("bij,bjhw->bihw", ccm, image)
    mixed = (mixed + params.ccm_bias[..., None, None]).clamp(0, 1)
    curved = apply_curves(mixed, params.slopes)
    z = (curved * params.mix[..., None, None]).sum(1, keepdim=True) + params.mix_bias.view(-1, 1, 1, 1)
    return z.clamp(0, 1)


_SOFTPLUS_ONE = float(torch.log(torch.expm1(torch.tensor(1.0))))  # softplus^-1(1)


class LearnedGuide(nn.Module):
    """Trainable HDRNet guide, initialised to luminance.

    Slopes are stored through a softplus so that every value of the raw parameters gives a
    monotone curve.

    Example:
        >>> guide = LearnedGuide()
        >>> guide(torch.rand(2, 3, 8, 8)).shape  # a (B, 1, H, W) guide map, luminance at first
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, knots: int = DEFAULT_KNOTS):
        super().__init__()
        init = GuideParams.identity(knots=knots)
        self.ccm = nn.Parameter(init.ccm[0].clone())
        self.ccm_bias = nn.Parameter(init.ccm_bias[0].clone())
        self.raw_slopes = nn.Parameter(torch.full((3, knots), _SOFTPLUS_ONE))
        self.mix = nn.Parameter(init.mix[0].clone())
        self.mix_bias = nn.Parameter(torch.zeros(()))

    def params(self) -> GuideParams:
        """The current parameters as a batch-1 :class:`GuideParams` (differentiable)."""
        return GuideParams(
            ccm=self.ccm[None],
            ccm_bias=self.ccm_bias[None],
            slopes=F.softplus(self.raw_slopes)[None],
            mix=self.mix[None],
            mix_bias=self.mix_bias[None],
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1, H, W) guide map."""
        return apply_guide(image, self.params())

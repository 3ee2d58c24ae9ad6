"""The rule-based model: matcher + param renderer + grid fit, no learned weights.

Style and param instructions become renderer parameters through the attribute bank's
recipes and the explicit numbers the matcher read. Auto mode (empty instruction) uses a
classic auto-enhance: exposure toward a mid-grey log-average luminance (Reinhard's key
0.18) and a partial white balance from the photo's near-neutral pixels (grey-pixel
assumption; plain grey-world would call a brown table a colour cast), solved for the
renderer's temperature and tint by one Newton step. The renderer runs on a low-resolution copy and the edit is
carried to full resolution by a fitted bilateral grid.

This is the non-learned baseline that learned models must beat.
"""

from __future__ import annotations

import math
from dataclasses import replace

import kornia
import torch

from ...engine.fit import fit_grid
from ...engine.retouch_grid import RetouchGrid
from ...language.matcher import Plan
from ...language.render import render
from ..base import DEFAULT_LOW_RES, RetouchModel, low_res_copy

KEY_LUMINANCE = 0.18  # Reinhard's "key": log-average luminance of a well-exposed scene
EXPOSURE_SHARE = 0.7  # correct 70%: a full correction flattens low-key and high-key photos
GREY_SHARE = 0.6  # remove part of the cast: some casts (sunsets, candle light) are the mood
NEUTRAL_CHROMA = 15.0  # Lab chroma below which a pixel is taken as a grey surface
MIN_NEUTRAL_FRACTION = 0.05  # fewer grey pixels than this: no evidence of a cast, leave colour alone
MAX_AUTO_WB = 40.0
MAX_AUTO_EV = 2.0
PROBE = 10.0  # slider step of the finite-difference Jacobian


class RuleBasedModel(RetouchModel):
    """Non-learned retouch model (see module docstring).

    Example:
        >>> from retouch_core.language.matcher import parse_instruction
        >>> model = RuleBasedModel(low_res=64, grid_size=(4, 8, 8))
        >>> photo = torch.linspace(0, 1, 3 * 120 * 160).reshape(1, 3, 120, 160)
        >>> model.params_for(photo, parse_instruction("warmer, exposure +0.5"))
        {'temperature': 30.0, 'exposure': 0.5}
        >>> grid, plan = model.predict(photo, "warmer")
        >>> grid.grid.shape, grid.source_size, grid.label
        (torch.Size([1, 12, 4, 8, 8]), (120, 160), 'rule-based: temperature +30')
    """

    name = "rule-based"

    def __init__(self, low_res: int = DEFAULT_LOW_RES, grid_size: tuple[int, int, int] = (8, 16, 16)):
        self.low_res = low_res
        self.depth, self.height, self.width = grid_size

    def params_for(self, image: torch.Tensor, plan: Plan) -> dict[str, float]:
        """Renderer parameters for a (1, 3, h, w) low-resolution image and a plan."""
        if plan.mode == "auto":
            return auto_params(image)
        return plan.to_params()

    @torch.no_grad()
    def predict_grid(self, image: torch.Tensor, plan: Plan) -> RetouchGrid:
        low = low_res_copy(image.float(), self.low_res)
        params = self.params_for(low, plan)
        grid = grid_from_params(low, params, (self.depth, self.height, self.width))
        return replace(grid, source_size=tuple(image.shape[-2:]), label=f"{self.name}: {grid.label}")


@torch.no_grad()
def grid_from_params(
    image: torch.Tensor, params, grid_size: tuple[int, int, int] = (8, 16, 16), low_res: int = DEFAULT_LOW_RES
) -> RetouchGrid:
    """The grid that carries a renderer edit of ``image`` to any resolution.

    Args:
        image: (1, 3, H, W) float in [0, 1]; rendered on a copy of at most ``low_res`` px.
        params: anything :func:`~retouch_core.language.render.render` takes (RetouchParams, dict).
        grid_size: (D, H_g, W_g).

    Returns:
        Batch-1 :class:`RetouchGrid` whose ``source_size`` is the image's (H, W).

    Example:
        >>> from retouch_core.language.params import RetouchParams
        >>> grid = grid_from_params(torch.rand(1, 3, 600, 800), RetouchParams(exposure=0.5))
        >>> grid.batch, grid.source_size, grid.label
        (1, (600, 800), 'exposure +0.5')
    """
    low = low_res_copy(image.float(), low_res)
    grid = fit_grid(low, render(low, params), depth=grid_size[0], height=grid_size[1], width=grid_size[2])
    items = params.to_dict().items() if hasattr(params, "to_dict") else dict(params).items()
    label = ", ".join(f"{k} {v:+.3g}" for k, v in items if isinstance(v, (int, float)))
    return RetouchGrid(grid, None, tuple(image.shape[-2:]), label)


@torch.no_grad()
def global_grid_from_params(image: torch.Tensor, params, depth: int = 8, guide=None, size: int = 64) -> torch.Tensor:
    """The spatially constant grid that best replays a global renderer edit of ``image``.

    A global edit is one colour function, so one affine per guide level carries it (52-65 dB
    on the bank's recipes); fitting it on a ``size``-px copy takes milliseconds.

    Args:
        image: (1, 3, H, W) float in [0, 1].
        params: anything :func:`~retouch_core.language.render.render` takes.
        depth: D, the grid's guide levels.
        guide: the guide the grid will be sliced with (None = luminance).
        size: side of the square copy the edit is rendered and fitted on.

    Returns:
        (1, 12, D, 1, 1) grid; expand it to any (H_g, W_g).

    Example:
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> from retouch_core.language.render import render
        >>> photo = torch.linspace(0, 1, 3 * 8 * 8).reshape(1, 3, 8, 8)
        >>> grid = global_grid_from_params(photo, {"exposure": 0.5}, depth=8)
        >>> grid.shape
        torch.Size([1, 12, 8, 1, 1])
        >>> bool((slice_and_apply(photo, grid) - render(photo, {"exposure": 0.5})).abs().max() < 0.02)
        True
    """
    low = torch.nn.functional.interpolate(image.float(), size=(size, size), mode="area")
    return fit_grid(low, render(low, params), depth=depth, height=1, width=1, guide=guide)


def _log_average_luminance(image: torch.Tensor) -> float:
    linear = kornia.color.rgb_to_linear_rgb(image.clamp(0, 1))
    luminance = linear[:, 0] * 0.2126 + linear[:, 1] * 0.7152 + linear[:, 2] * 0.0722
    return float(torch.exp(torch.log(luminance + 1e-4).mean()))


def _neutral_mask(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) -> (h * w,) bool: pixels that look like grey surfaces, neither black nor clipped."""
    lab = kornia.color.rgb_to_lab(image.clamp(0, 1))[0].flatten(1)
    chroma = lab[1:].norm(dim=0)
    return (chroma < NEUTRAL_CHROMA) & (lab[0] > 20) & (lab[0] < 95)


def _mean_ab(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    lab = kornia.color.rgb_to_lab(image.clamp(0, 1))[0].flatten(1)
    return lab[1:, mask].mean(dim=1)  # (2,): mean a*, b* of the masked pixels


def auto_params(image: torch.Tensor) -> dict[str, float]:
    """Auto-enhance parameters for a (1, 3, h, w) image: exposure, temperature, tint.

    Example:
        >>> bluish_grey = torch.tensor([0.45, 0.47, 0.55]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
        >>> {name: round(value) for name, value in auto_params(bluish_grey).items()}  # warmed, exposure kept
        {'exposure': 0, 'tint': -7, 'temperature': 26}
        >>> saturated_blue = torch.tensor([0.1, 0.2, 0.9]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
        >>> list(auto_params(saturated_blue))  # no grey surface: no evidence of a cast, colour left alone
        ['exposure']
    """
    thumb = low_res_copy(image, 64)
    ev = EXPOSURE_SHARE * math.log2(KEY_LUMINANCE / _log_average_luminance(thumb))
    params = {"exposure": max(-MAX_AUTO_EV, min(MAX_AUTO_EV, ev))}
    exposed = render(thumb, params)
    neutral = _neutral_mask(exposed)
    if neutral.float().mean() < MIN_NEUTRAL_FRACTION:
        return params
    base = _mean_ab(exposed, neutral)
    jacobian = torch.stack(
        [(_mean_ab(render(thumb, {**params, name: PROBE}), neutral) - base) / PROBE for name in ("tint", "temperature")],
        dim=1,
    )  # (2 outputs a*, b*) x (2 inputs tint, temperature)
    step = torch.linalg.lstsq(jacobian, -GREY_SHARE * base[:, None]).solution[:, 0].clamp(-MAX_AUTO_WB, MAX_AUTO_WB)
    params["tint"], params["temperature"] = float(step[0]), float(step[1])
    return params

"""Obedience by construction: a learned grid may refine an instruction, never reverse it.

Every instructed attribute with a CIELAB proxy (brightness -> mean L*, contrast -> L* spread,
warmth -> mean b*, magenta tint -> mean a*, saturation/vibrance -> mean chroma; explicit
numbers for exposure, contrast, temperature, tint, saturation, vibrance the same way) must move
its proxy the instructed way by at least a visible margin. The margin is
``MARGINS[proxy] * clamp(|intensity|, 0.4, 1)``, but never more than ``RECIPE_SHARE`` of what
the instruction's own recipe achieves on this photo, so it is always reachable (a black photo
told "darker" cannot get much darker; the recipe's share of nothing is nothing). Attributes
without a proxy of their own (styles such as "moody" or "pastel", tone zones such as "lift the
shadows") are defined by their recipes: every proxy their recipe clearly moves on this photo
must move the same way (:func:`required_moves`).

:func:`obey` projects a predicted grid onto that constraint set along the segment to the recipe
grid: ``(1 - t) * predicted + t * recipe`` with the smallest ``t`` in :data:`MIX_STEPS` whose
output (sliced on a small copy of the photo) meets every margin. ``t = 0`` keeps the network's
grid untouched whenever it already obeys; ``t = 1`` is the rule-based edit, which meets every
margin by construction of the margins. The check costs a handful of slices of a 96 px copy.

Example:
    >>> from retouch_core.engine.grid import identity_grid
    >>> from retouch_core.language.matcher import parse_instruction
    >>> photo = torch.rand(1, 3, 64, 64)
    >>> darkening = identity_grid(1, 8, 16, 16) * 0.5   # a network that halves every pixel
    >>> grid = obey(photo, darkening, None, parse_instruction("brighter"))
    >>> bool(proxy_statistics(slice_and_apply(photo, grid))["L_mean"] > proxy_statistics(photo)["L_mean"])
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import kornia
import torch
import torch.nn.functional as F

from ...engine.slicing import slice_and_apply
from ...language.matcher import Plan
from .rule_based import global_grid_from_params

__all__ = ["MARGINS", "PARAM_AXES", "PROXIES", "STYLE_SHARE", "instructed_axes", "obey", "proxy_statistics", "required_moves", "styled"]

#: attribute -> the CIELAB statistic it must move.
PROXIES: Mapping[str, str] = {
    "brightness": "L_mean",
    "contrast": "L_std",
    "warmth": "b_mean",
    "tint_magenta": "a_mean",
    "saturation": "chroma",
    "vibrance": "chroma",
}
#: explicit parameter -> the attribute whose proxy it pushes, with the sign of the number.
PARAM_AXES: Mapping[str, str] = {
    "exposure": "brightness",
    "contrast": "contrast",
    "temperature": "warmth",
    "tint": "tint_magenta",
    "saturation": "saturation",
    "vibrance": "vibrance",
}
#: visible move (CIELAB units) asked of a full-intensity instruction; "slightly" (0.4) asks 40 %.
MARGINS: Mapping[str, float] = {"L_mean": 2.0, "L_std": 1.5, "b_mean": 2.0, "a_mean": 1.5, "chroma": 2.0}
MIN_SHARE = 0.4
#: a style's recipe must move a proxy by this share of a visible margin for the move to count
#: (a dark photo told "dreamy" barely loses contrast in the recipe, but must not gain it)
STYLE_SHARE = 0.05
RECIPE_SHARE = 0.8
MIX_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)
CHECK_SIZE = 96


def proxy_statistics(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """CIELAB proxies of (B, 3, H, W) in [0, 1] -> name -> (B,): L_mean, L_std, a_mean, b_mean, chroma.

    Example:
        >>> half = torch.tensor([0.0, 1.0]).repeat(1, 3, 2, 1)  # (1, 3, 2, 2): black left, white right
        >>> red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
        >>> stats = proxy_statistics(torch.cat([half, red]))
        >>> {name: stats[name].round().tolist() for name in ("L_mean", "L_std", "chroma")}
        {'L_mean': [50.0, 53.0], 'L_std': [50.0, 0.0], 'chroma': [0.0, 105.0]}
    """
    lab = kornia.color.rgb_to_lab(image.clamp(0, 1)).flatten(2)
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    return {"L_mean": L.mean(1), "L_std": L.std(1, unbiased=False), "a_mean": a.mean(1), "b_mean": b.mean(1),
            "chroma": torch.sqrt(a * a + b * b).mean(1)}


def instructed_axes(plan: Plan) -> dict[str, float]:
    """Proxied attributes the plan asks to move -> signed intensity.

    Explicit numbers win over words on the same attribute ("brighter, exposure -0.3" asks for a
    darker picture in numbers the user chose); their intensity is 1.

    Example:
        >>> from retouch_core.language.matcher import parse_instruction
        >>> instructed_axes(parse_instruction("slightly warmer and more saturated"))
        {'warmth': 0.4, 'saturation': 1.0}
        >>> instructed_axes(parse_instruction("brighter, exposure -0.3"))
        {'brightness': -1.0}
        >>> instructed_axes(parse_instruction("dark and moody"))  # a style: no proxy of its own
        {}
    """
    axes = {name: float(w) for name, w in plan.attributes.items() if name in PROXIES and w != 0}
    for param, value in plan.params.items():
        if param in PARAM_AXES and value != 0:
            axes[PARAM_AXES[param]] = math.copysign(1.0, value)
    return axes


def styled(plan: Plan) -> bool:
    """Whether the plan names attributes without a proxy of their own (styles, tone zones, ...).

    Example:
        >>> from retouch_core.language.matcher import parse_instruction
        >>> [styled(parse_instruction(text)) for text in ("warmer", "lift the shadows", "dark and moody")]
        [False, True, True]
    """
    return any(name not in PROXIES and w != 0 for name, w in plan.attributes.items())


def required_moves(plan: Plan, recipe_move: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Proxy -> (sign, margin) for a plan, given how far the recipe moves each proxy on this photo.

    Two attributes on one proxy (saturation and vibrance) keep the stronger request. Attributes
    without a proxy ("moody", "pastel", "lift the shadows") are defined by their recipe, so the
    recipe's own moves on the remaining proxies (at least ``STYLE_SHARE`` of a visible margin)
    are required too, the same way, by ``MIN_SHARE`` of a visible margin or ``RECIPE_SHARE`` of
    the recipe's move if that is less: "dark and moody" must darken, "pastel" must desaturate.

    Example:
        >>> from retouch_core.language.matcher import parse_instruction
        >>> recipe_move = {"L_mean": 10.0, "L_std": 0.0, "a_mean": 0.0, "b_mean": 0.0, "chroma": 0.0}
        >>> required_moves(parse_instruction("brighter"), recipe_move)  # the full visible margin, 2 L*
        {'L_mean': (1.0, 2.0)}
        >>> required_moves(parse_instruction("brighter"), {**recipe_move, "L_mean": 1.0})  # 80 % of what is reachable
        {'L_mean': (1.0, 0.8)}
        >>> moody = {"L_mean": -5.0, "L_std": 0.5, "a_mean": 0.0, "b_mean": 0.01, "chroma": -3.0}
        >>> required_moves(parse_instruction("moody"), moody)  # b* barely moves: not required
        {'L_mean': (-1.0, 0.8), 'L_std': (1.0, 0.4), 'chroma': (-1.0, 0.8)}
    """
    moves: dict[str, tuple[float, float]] = {}
    for name, weight in instructed_axes(plan).items():
        stat = PROXIES[name]
        sign = math.copysign(1.0, weight)
        margin = MARGINS[stat] * min(1.0, max(MIN_SHARE, abs(weight)))
        margin = min(margin, RECIPE_SHARE * max(0.0, sign * recipe_move[stat]))
        if stat not in moves or margin > moves[stat][1]:
            moves[stat] = (sign, margin)
    if styled(plan):
        for stat, visible in MARGINS.items():
            move = recipe_move[stat]
            if stat not in moves and abs(move) >= STYLE_SHARE * visible:
                moves[stat] = (math.copysign(1.0, move), min(MIN_SHARE * visible, RECIPE_SHARE * abs(move)))
    return moves


def _small(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    scale = CHECK_SIZE / max(h, w)
    if scale >= 1:
        return image
    return F.interpolate(image, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")


def _slack(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
           moves: Mapping[str, tuple[float, float]]) -> float:
    """Smallest signed move beyond the margin over the required proxies (>= 0: all met)."""
    return min(float(sign * (after[s] - before[s])) - margin for s, (sign, margin) in moves.items())


@torch.no_grad()
def obey(image: torch.Tensor, grid: torch.Tensor, guide, plan: Plan, recipe: torch.Tensor | None = None) -> torch.Tensor:
    """Project a predicted grid so that every instructed attribute moves the instructed way.

    Args:
        image: (1, 3, H, W) in [0, 1], any size (checked on a small copy).
        grid: (1, 12, D, H_g, W_g) predicted grid.
        guide: what ``slice_and_apply`` takes for this grid (None, GuideParams, LearnedGuide).
        plan: the parsed instruction; plans without attributes (auto mode) return ``grid`` unchanged.
        recipe: (1, 12, D, 1, 1) the instruction's recipe grid for ``guide``; fitted here if None.

    Returns:
        (1, 12, D, H_g, W_g): ``grid`` itself when it obeys, else the first mix toward the recipe
        that does (see module docstring).

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine, identity_grid
        >>> from retouch_core.language.matcher import parse_instruction
        >>> photo = torch.linspace(0.1, 0.9, 64).reshape(1, 1, 8, 8).expand(1, 3, 8, 8)  # a grey ramp
        >>> brighter = parse_instruction("brighter")
        >>> lifting = grid_from_affine(torch.cat([torch.eye(3), torch.full((3, 1), 0.1)], dim=1), 4, 2, 2)
        >>> obey(photo, lifting, None, brighter) is lifting  # already obeys: untouched
        True
        >>> halving = identity_grid(1, 4, 2, 2) * 0.5
        >>> grid = obey(photo, halving, None, brighter)
        >>> brightness = [proxy_statistics(image)["L_mean"].item() for image in (photo, slice_and_apply(photo, grid))]
        >>> grid.shape, brightness[1] > brightness[0]
        (torch.Size([1, 12, 4, 2, 2]), True)
        >>> obey(photo, halving, None, parse_instruction("")) is halving  # auto mode asks for no direction
        True
    """
    if not instructed_axes(plan) and not styled(plan):
        return grid
    small = _small(image.float())
    if recipe is None:
        recipe = global_grid_from_params(small, plan.to_params(), grid.shape[2], guide)
    recipe = recipe.expand_as(grid).to(grid.dtype)
    before = proxy_statistics(small)
    recipe_after = proxy_statistics(slice_and_apply(small, recipe, guide))
    moves = required_moves(plan, {k: float(recipe_after[k] - before[k]) for k in before})
    if not moves:
        return grid
    best_t, best_slack = 1.0, -math.inf
    for t in MIX_STEPS:
        mixed = grid if t == 0 else torch.lerp(grid, recipe, t)
        slack = _slack(before, proxy_statistics(slice_and_apply(small, mixed, guide)), moves)
        if slack >= 0:
            return mixed
        if slack > best_slack:
            best_t, best_slack = t, slack
    return torch.lerp(grid, recipe, best_t)

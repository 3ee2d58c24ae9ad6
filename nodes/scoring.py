"""CLIP attribute scoring for the node, without ComfyUI.

The instruction is read by the rule-based matcher; each matched attribute contributes its
CLIP prompt pair with the matcher's signed weight (a negative weight asks for the opposite
direction). An empty instruction scores every attribute of the bank with weight +1, which
describes the image rather than checks an edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..retouch_core.language.attributes import default_bank
from ..retouch_core.language.clip_score import ClipScorer, alignment_loss, attribute_scores
from .layout import comfy_to_bchw
from ..retouch_core.language.matcher import parse_instruction


@dataclass(frozen=True)
class AttributeReport:
    """What the CLIP Attribute Score node outputs.

    Attributes:
        table: human-readable per-attribute table (the STRING output).
        loss: InfoNCE alignment loss of the (after) images, mean over the batch.
        direction: mean over images and attributes of sign(w) * (s+ - s-) after, minus the
            same before when a before image is given; > 0 means the instructed direction.
    """

    table: str
    loss: float
    direction: float


def instruction_pairs(instruction: str) -> tuple[list[str], list[tuple[str, str]], list[float], str]:
    """Attribute names, prompt pairs, signed weights and a note for an instruction."""
    bank = default_bank()
    plan = parse_instruction(instruction, bank)
    if plan.attributes:
        names = list(plan.attributes)
        weights = [float(plan.attributes[n]) for n in names]
        note = ""
    else:
        names = list(bank.names())
        weights = [1.0] * len(names)
        note = "no attribute in the instruction: every attribute of the bank is scored (weight +1)"
    pairs = [(bank[n].positive, bank[n].negative) for n in names]
    return names, pairs, weights, note


def score_instruction(
    scorer: ClipScorer, image: torch.Tensor, instruction: str, before: torch.Tensor | None = None,
    temperature: float = 0.07,
) -> AttributeReport:
    """Score ComfyUI IMAGE(s) (B, H, W, C) against the attributes an instruction asks for."""
    names, pairs, weights, note = instruction_pairs(instruction)
    after = comfy_to_bchw(image)[:, :3].to(scorer.device, scorer.dtype)
    with torch.no_grad():
        s_plus, s_minus = attribute_scores(scorer, after, pairs)
        loss = alignment_loss(s_plus, s_minus, temperature=temperature, weights=weights)
        sign = torch.tensor(weights, device=s_plus.device).sign()
        margin = (s_plus - s_minus) * sign  # (B, K), > 0: closer to the instructed pole
        delta = None
        if before is not None:
            if before.shape[0] not in (1, image.shape[0]):
                raise ValueError(f"before has {before.shape[0]} images but the image batch has {image.shape[0]}")
            b_plus, b_minus = attribute_scores(scorer, comfy_to_bchw(before)[:, :3].to(scorer.device, scorer.dtype), pairs)
            delta = margin - (b_plus - b_minus) * sign
    direction = float((delta if delta is not None else margin).mean())
    return AttributeReport(_table(names, weights, s_plus, s_minus, delta, note), float(loss), direction)


def _table(names, weights, s_plus, s_minus, delta, note) -> str:
    lines = [f"{'attribute':<20} {'weight':>7} {'s+':>7} {'s-':>7}" + (f" {'delta':>8} moved" if delta is not None else "")]
    for k, name in enumerate(names):
        row = f"{name:<20} {weights[k]:>+7.2f} {float(s_plus[:, k].mean()):>7.4f} {float(s_minus[:, k].mean()):>7.4f}"
        if delta is not None:
            d = float(delta[:, k].mean())
            row += f" {d:>+8.4f} {'yes' if d > 0 else 'no'}"
        lines.append(row)
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)

"""The instruction as a fixed-length vector for learned models.

The vector concatenates, in a fixed order:

- one signed weight per attribute of the bank (the matcher's reading; 0 when not asked),
- every explicit scalar parameter divided by its largest magnitude (so each is in [-1, 1]),
- a one-hot of the mode (auto, style, param).

The layout depends only on the bank and the parameter vocabulary, which a model file records
by name so that a changed vocabulary is detected instead of silently misread.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...language.attributes import AttributeBank, default_bank
from ...language.matcher import MODES, Plan
from ...language.params import PARAM_RANGES


@dataclass(frozen=True)
class ConditionLayout:
    """Names of the vector's entries, in order.

    Example:
        >>> from retouch_core.language.matcher import parse_instruction
        >>> layout = ConditionLayout.default()
        >>> plans = [parse_instruction(""), parse_instruction("warmer, exposure +1")]
        >>> vectors = layout.encode_batch(plans)
        >>> vectors.shape == (2, layout.size) and layout.size == len(layout.names())
        True
        >>> [layout.names()[i] for i in vectors[0].nonzero().flatten()]  # the empty instruction: auto mode
        ['mode:auto']
    """

    attributes: tuple[str, ...]
    params: tuple[str, ...]
    modes: tuple[str, ...] = MODES

    @staticmethod
    def default(bank: AttributeBank | None = None) -> "ConditionLayout":
        return ConditionLayout(tuple((bank or default_bank()).names()), tuple(PARAM_RANGES))

    @property
    def size(self) -> int:
        return len(self.attributes) + len(self.params) + len(self.modes)

    def names(self) -> list[str]:
        return [f"attr:{a}" for a in self.attributes] + [f"param:{p}" for p in self.params] + [f"mode:{m}" for m in self.modes]

    def encode(self, plan: Plan) -> torch.Tensor:
        """(size,) float32 vector for one plan.

        Example:
            >>> from retouch_core.language.matcher import parse_instruction
            >>> layout = ConditionLayout.default()
            >>> vector = layout.encode(parse_instruction("warmer, exposure +1"))  # exposure spans -5..5: 1 -> 0.2
            >>> {layout.names()[i]: round(vector[i].item(), 3) for i in vector.nonzero().flatten()}
            {'attr:warmth': 1.0, 'param:exposure': 0.2, 'mode:style': 1.0}
        """
        vector = torch.zeros(self.size)
        for name, weight in plan.attributes.items():
            if name in self.attributes:
                vector[self.attributes.index(name)] = float(weight)
        offset = len(self.attributes)
        for name, value in plan.params.items():
            if name in self.params:
                lo, hi = PARAM_RANGES[name]
                vector[offset + self.params.index(name)] = float(value) / max(abs(lo), abs(hi))
        vector[offset + len(self.params) + self.modes.index(plan.mode)] = 1.0
        return vector

    def encode_batch(self, plans: list[Plan]) -> torch.Tensor:
        """(B, size) for a list of plans."""
        return torch.stack([self.encode(p) for p in plans])

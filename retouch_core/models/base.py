"""What every retouch model offers: instruction + image in, bilateral grid out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from ..engine.checks import check_image
from ..engine.resize import resize_long_side
from ..engine.retouch_grid import RetouchGrid
from ..language.matcher import Plan, parse_instruction

DEFAULT_LOW_RES = 256


def low_res_copy(image: torch.Tensor, long_side: int = DEFAULT_LOW_RES) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, h, w) with max(h, w) <= long_side, antialiased; the same tensor if small.

    Example:
        >>> low_res_copy(torch.zeros(1, 3, 600, 800)).shape  # aspect ratio kept
        torch.Size([1, 3, 192, 256])
        >>> small = torch.zeros(1, 3, 64, 96)
        >>> low_res_copy(small) is small  # no copy below the limit
        True
    """
    if max(image.shape[-2:]) <= long_side:
        return image
    return resize_long_side(image, long_side).clamp(0, 1)


class RetouchModel(ABC):
    """A model that reads an image and an instruction and predicts a grid.

    The prediction runs on a low-resolution copy; the grid is then applied at any resolution
    of the same framing, so the cost at full resolution is one slice-and-apply.

    Example:
        >>> from retouch_core.models import load_retouch_model
        >>> model = load_retouch_model("rule-based")
        >>> model(torch.rand(1, 3, 480, 640), "a bit brighter", strength=0.5).shape
        torch.Size([1, 3, 480, 640])
    """

    name: str = "model"

    @abstractmethod
    def predict_grid(self, image: torch.Tensor, plan: Plan) -> RetouchGrid:
        """Grid for one image.

        Args:
            image: (1, 3, H, W) float in [0, 1], any resolution.
            plan: the parsed instruction (mode auto / style / param).

        Returns:
            A batch-1 :class:`RetouchGrid`.
        """

    def predict(self, image: torch.Tensor, instruction: str) -> tuple[RetouchGrid, Plan]:
        """Parse ``instruction`` and predict a grid for a (1, 3, H, W) float image in [0, 1].

        Every public way into a model (this, ``__call__``, the nodes, the CLI) passes here, so
        this is the one input check: TypeError for integer images, ValueError for other shapes.
        """
        check_image(image)
        if image.shape[0] != 1 or image.shape[1] != 3:
            raise ValueError(f"predict takes one RGB image (1, 3, H, W), got {tuple(image.shape)}")
        if not isinstance(instruction, str):
            raise TypeError(f"the instruction must be text, got {type(instruction).__name__}")
        plan = parse_instruction(instruction)
        return self.predict_grid(image, plan), plan

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, instruction: str, strength: float = 1.0) -> torch.Tensor:
        """Retouch (1, 3, H, W) at full resolution."""
        grid, _ = self.predict(image, instruction)
        return grid.scaled(strength).apply(image) if strength != 1.0 else grid.apply(image)

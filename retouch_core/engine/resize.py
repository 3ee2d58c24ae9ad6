"""The image resize family: to a size, to a long side, to multiples of a stride.

Every function takes and returns (B, C, H, W) tensors and returns the input tensor itself when
there is nothing to do. ``mode="bilinear"`` is antialiased (a clean small copy when shrinking,
plain bilinear when enlarging); ``mode="area"`` averages pixel blocks (exact box filter for
integer factors, the cheap choice for losses and statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("bilinear", "area")


def resize(image: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size).

    Example:
        >>> resize(torch.rand(1, 3, 40, 60), (20, 30)).shape
        torch.Size([1, 3, 20, 30])
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    size = (int(size[0]), int(size[1]))
    if tuple(image.shape[-2:]) == size:
        return image
    if mode == "area":
        return F.interpolate(image, size=size, mode="area")
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def long_side_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the aspect of (height, width) and max(h, w) == long_side (sides >= 1).

    Example:
        >>> long_side_size(1080, 1920, 256)
        (144, 256)
    """
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_long_side(image: torch.Tensor, long_side: int, mode: str = "bilinear", enlarge: bool = False) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w) with long side ``long_side``; a smaller image is returned as
    is unless ``enlarge``.

    Example:
        >>> resize_long_side(torch.rand(1, 3, 300, 200), 150).shape
        torch.Size([1, 3, 150, 100])
    """
    height, width = image.shape[-2:]
    if max(height, width) <= long_side and not enlarge:
        return image
    return resize(image, long_side_size(height, width, long_side), mode)

"""The image resize family: to a size, to a long side.

Every image function takes and returns (B, C, H, W) tensors (:func:`long_side_size` works on
sizes) and returns the input tensor itself when there is nothing to do. ``mode="bilinear"`` is
antialiased (a clean small copy when shrinking, plain bilinear when enlarging); ``mode="area"``
averages pixel blocks (exact box filter for integer factors, the cheap choice for losses and
statistics). Resizing to multiples of a stride is ``resize_to_multiple`` in
``models/diffusion/bilateral_student.py``, built on :func:`resize`.
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
        >>> flat = torch.full((1, 3, 40, 60), 0.25)  # a constant image stays constant, shrunk or enlarged
        >>> [torch.allclose(resize(flat, hw, m), torch.tensor(0.25)) for hw in ((20, 30), (80, 90)) for m in MODES]
        [True, True, True, True]
        >>> resize(torch.arange(16.0).view(1, 1, 4, 4), (2, 2), mode="area")  # "area": the means of the 2x2 blocks
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
        >>> resize(flat, (40, 60)) is flat  # nothing to do: the input itself
        True
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
        >>> long_side_size(1920, 1080, 256)  # portrait: the height is the long side
        (256, 144)
        >>> long_side_size(1000, 10, 50)  # 0.5 would round to 0: a side is never empty
        (50, 1)
    """
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_long_side(
    image: torch.Tensor, long_side: int, mode: str = "bilinear", enlarge: bool = False
) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w) with long side ``long_side``; a smaller image is returned as
    is unless ``enlarge``.

    Example:
        >>> resize_long_side(torch.rand(1, 3, 300, 200), 150).shape
        torch.Size([1, 3, 150, 100])
        >>> small = torch.rand(1, 3, 30, 20)
        >>> resize_long_side(small, 150) is small  # already small enough: returned as is
        True
        >>> resize_long_side(small, 150, enlarge=True).shape
        torch.Size([1, 3, 150, 100])
    """
    height, width = image.shape[-2:]
    if max(height, width) <= long_side and not enlarge:
        return image
    return resize(image, long_side_size(height, width, long_side), mode)

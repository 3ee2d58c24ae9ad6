"""Image files as training and evaluation see them: RGB tensors read by ``retouch_core``'s image I/O
(:func:`retouch_core.formats.image_files.read_image`), so 16-bit files keep their precision and
EXIF-rotated photos come upright, exactly as the library and the nodes read them."""

from __future__ import annotations

from pathlib import Path

import torch

from retouch_core.formats.image_files import read_image


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file as (1, 3, H, W) float32 in [0, 1]: upright, at its bit depth, alpha dropped
    and grey repeated to three channels.

    Example:
        >>> read_rgb("photo.jpg").shape  # doctest: +SKIP
        torch.Size([1, 3, 768, 512])
    """
    image, _ = read_image(path)
    if image.shape[1] < 3:  # grey or grey + alpha
        return image[:, :1].expand(-1, 3, -1, -1).contiguous()
    return image[:, :3].contiguous()

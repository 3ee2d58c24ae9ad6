"""Image tensors as users have them: shape checks and channel handling.

The core works on (B, C, H, W) float tensors in [0, 1]: C = 3 (RGB), 1 (grey, expanded to
RGB) or 4 (RGBA, alpha passed through untouched). ComfyUI's (B, H, W, C) layout is the
node pack's business (``nodes/layout.py``).
"""

from __future__ import annotations

import torch

SUPPORTED_CHANNELS = (1, 3, 4)


def check_image(image, name: str = "image", check_finite: bool = True) -> None:
    """Raise a clear error unless ``image`` is a non-empty (B, C, H, W) float tensor.

    Args:
        image: the tensor to check; C must be 1, 3 or 4.
        name: how the tensor is called in error messages.
        check_finite: also reject NaN/Inf (one pass over the data).

    Example:
        >>> check_image(torch.rand(1, 3, 4, 4))
        >>> check_image(torch.rand(4, 4, 3))
        Traceback (most recent call last):
        ValueError: image must have shape (B, C, H, W), got (4, 4, 3)
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor with values in [0, 1], got dtype {image.dtype}"
            " (convert integers with image.float() / 255)"
        )
    if image.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(image.shape)}")
    if image.shape[1] not in SUPPORTED_CHANNELS:
        raise ValueError(
            f"{name} must have 1 (grey), 3 (RGB) or 4 (RGBA) channels, got shape {tuple(image.shape)}"
        )
    if image.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(image.shape)}")
    if check_finite and not torch.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or Inf values")


def split_alpha(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, C, H, W) with C in {1, 3, 4} -> RGB (B, 3, H, W) and alpha (B, 1, H, W) or None.

    Example:
        >>> rgb, alpha = split_alpha(torch.rand(2, 4, 8, 8))
        >>> rgb.shape, alpha.shape, split_alpha(torch.rand(2, 1, 8, 8))[0].shape
        (torch.Size([2, 3, 8, 8]), torch.Size([2, 1, 8, 8]), torch.Size([2, 3, 8, 8]))
    """
    channels = image.shape[1]
    if channels == 1:
        return image.expand(-1, 3, -1, -1), None
    if channels == 4:
        return image[:, :3], image[:, 3:]
    return image, None


def join_alpha(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Inverse of :func:`split_alpha` for the output: (B, 3, H, W) [+ (B, 1, H, W)].

    Example:
        >>> rgba = torch.rand(1, 4, 8, 8)
        >>> torch.equal(join_alpha(*split_alpha(rgba)), rgba)
        True
    """
    if alpha is None:
        return rgb
    return torch.cat([rgb, alpha.to(rgb.dtype)], dim=1)

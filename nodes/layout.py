"""ComfyUI tensor layout: IMAGE (B, H, W, C) and MASK (B, H, W) to and from the core's (B, C, H, W).

``retouch_core`` works on (B, C, H, W); only the node pack meets ComfyUI's channels-last
layout, so the conversions and the checks with ComfyUI wording live here.
"""

from __future__ import annotations

import torch

# LoadImage's MASK for a file without alpha: a 64x64 block of zeros.
_PLACEHOLDER_MASK_SIZE = (64, 64)


def comfy_to_bchw(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE (B, H, W, C) or (H, W, C) -> (B, C, H, W) view."""
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"ComfyUI images have shape (B, H, W, C), got {shape}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    return image.movedim(-1, 1)


def bchw_to_comfy(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> ComfyUI IMAGE (B, H, W, C), contiguous."""
    return image.movedim(1, -1).contiguous()


def check_comfy_image(image: torch.Tensor, name: str = "image") -> None:
    """Raise ValueError unless ``image`` is a (B, H, W, C) IMAGE with C in {1, 3, 4}."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name} must be a ComfyUI IMAGE of shape (B, H, W, 3 or 4), got {shape}")
    if image.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(image.shape)}")


def check_comfy_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Validate a MASK for ``image`` and return it as (B', H', W').

    Rejects LoadImage's placeholder (a 64x64 block of zeros for a file without alpha) with a
    message saying how to get a real mask; any other size is resized later.
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3, 4):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a ComfyUI MASK of shape (B, H, W), got {shape}")
    mask = mask.reshape(-1, mask.shape[-2], mask.shape[-1])  # ComfyUI's own normalisation
    if mask.numel() == 0:
        raise ValueError(f"mask is empty: shape {tuple(mask.shape)}")
    batch, height, width = image.shape[:3]
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"the mask batch has {mask.shape[0]} masks but the image batch has {batch} images")
    placeholder = tuple(mask.shape[-2:]) == _PLACEHOLDER_MASK_SIZE and (height, width) != _PLACEHOLDER_MASK_SIZE
    if placeholder and not mask.any():
        raise ValueError(
            "the mask is LoadImage's empty 64x64 placeholder: the loaded file has no alpha channel. "
            "Paint a mask in the mask editor, load one with LoadImageMask, or use a segmentation node"
        )
    return mask

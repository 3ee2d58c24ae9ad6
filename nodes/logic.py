"""What the nodes do, without ComfyUI: functions on ComfyUI-shaped tensors.

IMAGE is (B, H, W, C) float in [0, 1]; MASK is (B, H, W) or (H, W). Every function returns
new tensors on the CPU (ComfyUI's intermediate device) and never modifies its inputs: node
outputs are cached and shared. ``progress(done, total)`` is called after each image of a
batch; under ComfyUI it is a ProgressBar update, which is also where a cancel lands.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..retouch_core.engine.blend import regional_blend
from ..retouch_core.formats.grid_files import RetouchGrid
from ..retouch_core.engine.checks import bchw_to_comfy, comfy_to_bchw
from ..retouch_core.engine.temporal import DEFAULT_SIGMA, TEMPORAL_MODES, select_frame, stack_frame_grids, temporal_grid

Progress = Callable[[int, int], None]

# LoadImage's MASK for a file without alpha: a 64x64 block of zeros.
_PLACEHOLDER_MASK_SIZE = (64, 64)


def _no_progress(done: int, total: int) -> None:
    pass


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


def apply_grid(
    image: torch.Tensor, grid: RetouchGrid, device: torch.device | None = None, progress: Progress = _no_progress
) -> torch.Tensor:
    """IMAGE (B, H, W, C) -> retouched IMAGE at the same resolution, one image at a time."""
    check_comfy_image(image)
    batch, height, width = image.shape[:3]
    grid.check_image(batch, height, width)
    out = []
    for index in range(batch):
        single = _select(grid, index)
        pixels = comfy_to_bchw(image[index : index + 1]).to(device or image.device)
        out.append(bchw_to_comfy(single.apply(pixels)).cpu())
        progress(index + 1, batch)
    return torch.cat(out)


def blend_regions(
    image: torch.Tensor,
    grid: RetouchGrid,
    mask: torch.Tensor,
    other: RetouchGrid | None = None,
    feather: float = 0.0,
    device: torch.device | None = None,
    progress: Progress = _no_progress,
) -> torch.Tensor:
    """``grid`` where the mask is 1, ``other`` (identity if None) where it is 0; IMAGE out."""
    check_comfy_image(image)
    mask = check_comfy_mask(mask, image)
    batch, height, width = image.shape[:3]
    for g in (grid, other):
        if g is not None:
            g.check_image(batch, height, width)
    out = []
    for index in range(batch):
        pixels = comfy_to_bchw(image[index : index + 1]).to(device or image.device)
        first = _select(grid, index)
        second = _select(other, index) if other is not None else None
        if second is not None and not _same_guide(first.guide, second.guide):
            blended = _blend_two_guides(pixels, first, second, mask[index % mask.shape[0]], feather)
        else:
            blended = regional_blend(
                pixels, first.grid, mask[index % mask.shape[0]][None], None if second is None else second.grid,
                first.guide, feather=feather,
            )
        out.append(bchw_to_comfy(blended).cpu())
        progress(index + 1, batch)
    return torch.cat(out)


def _blend_two_guides(pixels, first: RetouchGrid, second: RetouchGrid, mask, feather) -> torch.Tensor:
    """Blend outputs of two grids that slice with different guides."""
    from ..retouch_core.engine.blend import prepare_mask

    a, b = first.apply(pixels).float(), second.apply(pixels).float()
    weight = prepare_mask(mask[None], 1, pixels.shape[-2], pixels.shape[-1], feather).to(a.device)
    return torch.lerp(b, a, weight).to(pixels.dtype)


def _same_guide(a, b) -> bool:
    """Whether two grids slice with the same guide (then one blend of two grids suffices)."""
    if a is None or b is None:
        return a is b
    return all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors()))


def _select(grid: RetouchGrid, index: int) -> RetouchGrid:
    """The batch-1 grid that edits image ``index``."""
    return select_frame(grid, index)


def predict_grids(
    model, image: torch.Tensor, instruction: str, progress: Progress = _no_progress, temporal: str = "per-frame",
    sigma: float = DEFAULT_SIGMA, key_frame: int = 0,
) -> tuple[RetouchGrid, str]:
    """Grids for an IMAGE batch and the plan as text.

    Args:
        model: a :class:`~retouch_core.models.RetouchModel`.
        image: IMAGE (B, H, W, C); alpha is ignored for prediction.
        instruction: free text; empty = auto mode.
        temporal: how a batch of video frames is edited (:data:`TEMPORAL_MODES`): ``"per-frame"``
            (one grid per image, stacked), ``"key frame"`` (one grid from frame ``key_frame``
            for the whole batch) or ``"smoothed"`` (per-frame grids low-passed over time with
            a Gaussian of ``sigma`` frames); ``"smoothed + deflicker"`` also evens out the output
            brightness over time (removes an exposure flicker of the input).
    """
    check_comfy_image(image)
    if temporal not in TEMPORAL_MODES:
        raise ValueError(f"temporal must be one of {TEMPORAL_MODES}, got {temporal!r}")
    if temporal == "key frame" and not 0 <= key_frame < image.shape[0]:
        raise ValueError(f"key_frame {key_frame} is not in the batch of {image.shape[0]} frames")
    frames = [key_frame] if temporal == "key frame" else range(image.shape[0])  # a key frame alone is enough
    grids, plan = [], None
    for done, index in enumerate(frames, start=1):
        rgb = comfy_to_bchw(image[index : index + 1])[:, :3].expand(-1, 3, -1, -1)
        grid, plan = model.predict(rgb, instruction)
        grids.append(grid)
        progress(done, len(frames))
    grid = stack_grids(grids)
    if temporal != "key frame":
        grid = temporal_grid(grid, comfy_to_bchw(image)[:, :3].expand(-1, 3, -1, -1), temporal, sigma)
    return grid, f"model: {model.name}\n{plan.describe()}"


def stack_grids(grids: list[RetouchGrid]) -> RetouchGrid:
    """Batch-1 grids of one size -> one grid with a batch of len(grids)."""
    return stack_frame_grids(grids)


def param_grids(
    image: torch.Tensor, values: dict[str, float], params_json: str = "", progress: Progress = _no_progress
) -> RetouchGrid:
    """Renderer sliders (plus optional JSON such as a tone curve) -> one fitted grid per image."""
    from ..retouch_core.models.predictors.rule_based import grid_from_params
    from ..retouch_core.language.params import RetouchParams

    check_comfy_image(image)
    merged = {name: value for name, value in values.items() if value != 0}
    if params_json.strip():
        merged.update(RetouchParams.from_json(params_json).to_dict())
    params = RetouchParams.from_dict(merged)
    grids = []
    for index in range(image.shape[0]):
        rgb = comfy_to_bchw(image[index : index + 1])[:, :3].expand(-1, 3, -1, -1)
        grids.append(grid_from_params(rgb, params))
        progress(index + 1, image.shape[0])
    return stack_grids(grids)


def fit_from_example(
    image: torch.Tensor, edited: torch.Tensor, before: torch.Tensor | None = None, progress: Progress = _no_progress,
    robust: bool = True,
) -> tuple[RetouchGrid, float, torch.Tensor]:
    """Grids that reproduce ``edited`` (any editor's output, usually at low resolution).

    Args:
        image: IMAGE (B, H, W, C), the photo to edit at full resolution.
        edited: IMAGE (B or 1, h, w, C), an edit of ``image`` (same framing, any size).
        before: optional IMAGE the editor was given; default: ``image`` resized to ``edited``.
        robust: align the edit, match its blur and ignore what a colour edit cannot explain
            (:func:`~retouch_core.engine.robust_fit.fit_grid_robust`); False: plain least squares.

    Returns:
        the grids; the confidence (share of the edit's pixels the grids explain, mean over the
        batch; 1.0 for a plain fit); the residual MASK (B, H, W) in [0, 1] at the image's size
        (1 = not explained by a colour edit, e.g. new content; zeros for a plain fit).
    """
    import torch.nn.functional as F

    from ..retouch_core.engine.fit import fit_grid
    from ..retouch_core.engine.robust_fit import fit_grid_robust

    check_comfy_image(image)
    check_comfy_image(edited, "edited")
    batch, height, width = image.shape[:3]
    if edited.shape[0] not in (1, batch):
        raise ValueError(f"edited has {edited.shape[0]} images but the image batch has {batch}")
    grids, confidences, residuals = [], [], []
    for index in range(batch):
        after = comfy_to_bchw(edited[index % edited.shape[0]][None])[:, :3].expand(-1, 3, -1, -1).float()
        if before is not None:
            source = comfy_to_bchw(before[index % before.shape[0]][None])[:, :3].expand(-1, 3, -1, -1).float()
        else:
            source = comfy_to_bchw(image[index : index + 1])[:, :3].expand(-1, 3, -1, -1).float()
        if source.shape[-2:] != after.shape[-2:]:
            source = F.interpolate(source, size=after.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        if robust:
            fit = fit_grid_robust(source, after)
            grid, confidence = fit.grid, float(fit.confidence[0])
            residual = F.interpolate(fit.residual.float(), size=(height, width), mode="bilinear", align_corners=False)
        else:
            grid, confidence, residual = fit_grid(source, after), 1.0, torch.zeros(1, 1, height, width)
        grids.append(RetouchGrid(grid, None, tuple(image.shape[1:3]), "fitted from an example edit"))
        confidences.append(confidence)
        residuals.append(residual[:, 0].clamp(0, 1))
        progress(index + 1, batch)
    return stack_grids(grids), sum(confidences) / batch, torch.cat(residuals)

"""What the nodes do, without ComfyUI: functions on ComfyUI-shaped tensors.

IMAGE is (B, H, W, C) float in [0, 1]; MASK is (B, H, W) or (H, W). Every function returns
new tensors on the CPU (ComfyUI's intermediate device) and never modifies its inputs: node
outputs are cached and shared. ``progress(done, total)`` is called after each image of a
batch; under ComfyUI it is a ProgressBar update, which is also where a cancel lands.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..retouch_core.engine.retouch_grid import RetouchGrid
from ..retouch_core.engine.temporal import DEFAULT_SIGMA, TEMPORAL_MODES, temporal_grid
from .layout import bchw_to_comfy, check_comfy_image, check_comfy_mask, comfy_to_bchw

Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


def apply_grid(
    image: torch.Tensor, grid: RetouchGrid, device: torch.device | None = None, progress: Progress = _no_progress
) -> torch.Tensor:
    """IMAGE (B, H, W, C) -> retouched IMAGE at the same resolution, one image at a time."""
    check_comfy_image(image)
    batch, height, width = image.shape[:3]
    grid.check_image(batch, height, width)
    out = []
    for index in range(batch):
        single = grid.for_image(index)
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
        second = other.for_image(index) if other is not None else None
        blended = grid.for_image(index).blend(pixels, mask[index % mask.shape[0]][None], second, feather)
        out.append(bchw_to_comfy(blended).cpu())
        progress(index + 1, batch)
    return torch.cat(out)


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
    grid = RetouchGrid.stack(grids)
    if temporal != "key frame":
        grid = temporal_grid(grid, comfy_to_bchw(image)[:, :3].expand(-1, 3, -1, -1), temporal, sigma)
    return grid, f"model: {model.name}\n{plan.describe()}"


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
    return RetouchGrid.stack(grids)


def fit_from_example(image: torch.Tensor, edited: torch.Tensor, before: torch.Tensor | None = None, progress: Progress = _no_progress) -> RetouchGrid:
    """Grids that reproduce ``edited`` (any editor's output, usually at low resolution).

    Args:
        image: IMAGE (B, H, W, C), the photo to edit at full resolution.
        edited: IMAGE (B or 1, h, w, C), an edit of ``image`` (same framing, any size).
        before: optional IMAGE the editor was given; default: ``image`` resized to ``edited``.
    """
    import torch.nn.functional as F

    from ..retouch_core.engine.fit import fit_grid

    check_comfy_image(image)
    check_comfy_image(edited, "edited")
    batch = image.shape[0]
    if edited.shape[0] not in (1, batch):
        raise ValueError(f"edited has {edited.shape[0]} images but the image batch has {batch}")
    grids = []
    for index in range(batch):
        after = comfy_to_bchw(edited[index % edited.shape[0]][None])[:, :3].expand(-1, 3, -1, -1).float()
        if before is not None:
            source = comfy_to_bchw(before[index % before.shape[0]][None])[:, :3].expand(-1, 3, -1, -1).float()
        else:
            source = comfy_to_bchw(image[index : index + 1])[:, :3].expand(-1, 3, -1, -1).float()
        if source.shape[-2:] != after.shape[-2:]:
            source = F.interpolate(source, size=after.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        grid = fit_grid(source, after)
        grids.append(RetouchGrid(grid, None, tuple(image.shape[1:3]), "fitted from an example edit"))
        progress(index + 1, batch)
    return RetouchGrid.stack(grids)

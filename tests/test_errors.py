"""Bad input gets a clear error that names the offending shape, dtype or value."""

import pytest
import torch

from retouch_core.engine.blend import prepare_mask, regional_blend
from retouch_core.engine.grid import grid_from_affine, identity_grid, scale_grid
from retouch_core.engine.slicing import slice_and_apply

BACKENDS = ["grid_sample", "gather", "cpu_kernel"]
IMAGE = torch.rand(2, 3, 8, 8)
GRID = identity_grid(depth=2, height=2, width=2)


@pytest.mark.parametrize(
    "grid, message",
    [
        (torch.zeros(1, 9, 2, 2, 2), r"\(B, 12, D, H_g, W_g\).*\(1, 9, 2, 2, 2\)"),
        (torch.zeros(12, 2, 2, 2), r"got \(12, 2, 2, 2\)"),
        (torch.zeros(3, 12, 2, 2, 2), "grid batch is 3 but the image batch is 2"),
        (torch.zeros(1, 12, 0, 2, 2), "empty"),
    ],
)
def test_bad_grid_shapes(grid, message):
    with pytest.raises(ValueError, match=message):
        slice_and_apply(IMAGE, grid)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_grid(value):
    grid = GRID.clone()
    grid[0, 3, 1, 1, 1] = value
    with pytest.raises(ValueError, match="grid contains NaN or Inf"):
        slice_and_apply(IMAGE, grid)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_image(backend, value):
    image = IMAGE.clone()
    image[1, 2, 5, 3] = value
    with pytest.raises(ValueError, match="image contains NaN or Inf"):
        slice_and_apply(image, GRID, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_guide_map(backend):
    guide = torch.rand(2, 1, 8, 8)
    guide[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="guide contains NaN or Inf"):
        slice_and_apply(IMAGE, GRID, guide, backend=backend)


def test_guide_of_another_size():
    with pytest.raises(ValueError, match=r"guide map is \(4, 4\) but the image is \(8, 8\)"):
        slice_and_apply(IMAGE, GRID, torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="guide map must have shape"):
        slice_and_apply(IMAGE, GRID, torch.rand(2, 3, 8, 8))


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (1, 3, 0, 4), (1, 3, 4, 0)])
def test_empty_images(shape):
    with pytest.raises(ValueError, match="empty"):
        slice_and_apply(torch.zeros(shape), GRID)


def test_image_type_shape_and_dtype():
    with pytest.raises(TypeError, match="torch.uint8"):
        slice_and_apply(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), GRID)
    with pytest.raises(TypeError, match="ndarray"):
        slice_and_apply(IMAGE.numpy(), GRID)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got \(3, 8, 8\)"):
        slice_and_apply(IMAGE[0], GRID)
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 8, 8\)"):
        slice_and_apply(torch.rand(1, 2, 8, 8), GRID)
    with pytest.raises(ValueError, match="backend must be one of"):
        slice_and_apply(IMAGE, GRID, backend="cuda_magic")


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.ones(2, 2, 8, 8), r"\(H, W\), \(B, H, W\) or \(B, 1, H, W\), got \(2, 2, 8, 8\)"),
        (torch.ones(8), r"got \(8,\)"),
        (torch.ones(3, 8, 8), "mask batch is 3 but the image batch is 2"),
        (torch.ones(2, 0, 8), "got"),
        (torch.full((8, 8), float("nan")), "mask contains NaN"),
    ],
)
def test_bad_masks(mask, message):
    with pytest.raises(ValueError, match=message):
        regional_blend(IMAGE, GRID, mask)


def test_bad_strength_and_affine():
    with pytest.raises(ValueError, match="strength must be finite"):
        scale_grid(GRID, float("nan"))
    with pytest.raises(ValueError, match=r"shape \(B,\) with B = 1"):
        scale_grid(GRID, torch.ones(3))
    with pytest.raises(ValueError, match=r"\(3, 4\) or \(B, 3, 4\), got \(4, 4\)"):
        grid_from_affine(torch.eye(4))
    with pytest.raises(ValueError, match="feather"):
        prepare_mask(torch.ones(8, 8), 1, 8, 8, feather=-1)

"""RetouchGrid: batch operations against closed forms, and grid files byte-compatible with v1."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from retouch_core.engine.grid import grid_from_affine, identity_grid
from retouch_core.engine.guide import GuideParams
from retouch_core.engine.lut import grid_to_lut
from retouch_core.engine.retouch_grid import RetouchGrid
from retouch_core.formats.grid_files import load_grid, save_grid


def gain_grid(*gains: float) -> RetouchGrid:
    """A batch of global grids: edit i multiplies every channel by gains[i] (closed form)."""
    affines = torch.stack([g * torch.eye(3, 4) for g in gains])
    return RetouchGrid(grid_from_affine(affines, 4, 2, 2), label="gains")


def dark_guide() -> GuideParams:
    """A learned guide that is not the luminance (halved curve slopes)."""
    g = GuideParams.identity()
    return GuideParams(g.ccm, g.ccm_bias, g.slopes * 0.5, g.mix, g.mix_bias)


def test_select_for_image_and_stack_round_trip():
    batch = gain_grid(0.5, 1.0, 2.0)
    image = torch.rand(1, 3, 6, 8)
    for index, gain in enumerate((0.5, 1.0, 2.0)):
        torch.testing.assert_close(batch.select(index).apply(image), gain * image)
    with pytest.raises(ValueError, match="index 3 does not exist"):
        batch.select(3)
    single = gain_grid(2.0)
    assert single.for_image(5) is single and batch.for_image(1).batch == 1
    restacked = RetouchGrid.stack([batch.select(i) for i in range(3)])
    assert torch.equal(restacked.grid, batch.grid) and restacked.guide is None


def test_stack_fills_luminance_guides_with_the_identity_guide():
    learned = RetouchGrid(identity_grid(1, 4, 2, 2), dark_guide())
    plain = RetouchGrid(identity_grid(1, 4, 2, 2))
    stacked = RetouchGrid.stack([learned, plain])
    assert stacked.guide.batch == 2
    image = torch.rand(1, 3, 6, 8)
    # The filled-in guide slices exactly like the luminance guide it stands for.
    torch.testing.assert_close(stacked.select(1).apply(image), plain.apply(image), atol=1e-6, rtol=0)
    assert all(torch.equal(a, b) for a, b in zip(stacked.select(0).guide.tensors(), learned.guide.tensors()))


def test_same_guide():
    plain, learned = gain_grid(1.0), RetouchGrid(identity_grid(1, 4, 2, 2), dark_guide())
    assert plain.same_guide(gain_grid(2.0))
    assert learned.same_guide(RetouchGrid(identity_grid(1, 4, 2, 2), dark_guide()))
    assert not plain.same_guide(learned) and not learned.same_guide(plain)
    assert not learned.same_guide(RetouchGrid(identity_grid(1, 4, 2, 2), GuideParams.identity()))


def depth_grid(guide=None) -> RetouchGrid:
    """A grid whose offset grows with depth: its output depends on the guide it slices with."""
    grid = identity_grid(1, 4, 2, 2).clone()
    grid[:, 3::4] += torch.linspace(0.0, 0.3, 4)[:, None, None]  # offset channels 3, 7, 11
    return RetouchGrid(grid, guide)


@pytest.mark.parametrize("outside_guide", [None, "learned"])
def test_blend_is_the_masked_mix_of_the_two_edits(outside_guide):
    inside = gain_grid(1.5)
    outside = depth_grid(dark_guide() if outside_guide else None)
    image = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(6, 8)
    mask[:, 4:] = 1
    out = inside.blend(image, mask, outside)
    # Each side is its own grid sliced with its own guide (apply is tested against a naive loop).
    torch.testing.assert_close(out[..., 4:], 1.5 * image[..., 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., :4], outside.apply(image)[..., :4], atol=1e-5, rtol=0)
    torch.testing.assert_close(inside.blend(image, mask), torch.where(mask > 0, 1.5 * image, image), atol=1e-5, rtol=0)
    assert not torch.allclose(depth_grid(dark_guide()).apply(image), depth_grid().apply(image), atol=1e-3)


def test_blend_checks_the_layout_of_both_grids():
    wide = RetouchGrid(identity_grid(), source_size=(100, 300))
    with pytest.raises(ValueError, match="aspect ratio"):
        gain_grid(1.0).blend(torch.rand(1, 3, 10, 10), torch.ones(10, 10), wide)


def test_to_lut_is_the_lut_of_the_grid():
    grid = RetouchGrid(grid_from_affine(torch.tensor([[1.1, 0, 0, 0.02], [0, 1.0, 0, 0], [0, 0, 0.85, 0]]), 4, 2, 2),
                       dark_guide())
    torch.testing.assert_close(grid.to_lut(9), grid_to_lut(grid.grid, 9, guide=grid.guide))


def test_grid_file_layout_is_version_1(tmp_path):
    """save_grid writes the v1 layout, and a v1 file written independently loads."""
    grid = RetouchGrid(grid_from_affine(1.2 * torch.eye(3, 4), 4, 2, 2), dark_guide(), (480, 640), "warm")
    save_grid(grid, tmp_path / "new.safetensors")
    with safe_open(str(tmp_path / "new.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "instantretouch-grid", "format_version": "1",
                                "source_size": "[480, 640]", "label": "warm"}
        assert set(f.keys()) == {"grid", "guide.ccm", "guide.ccm_bias", "guide.slopes", "guide.mix", "guide.mix_bias"}
    # A file as the first release wrote it (written here with safetensors alone).
    old = {"grid": grid.grid, **{f"guide.{k}": v for k, v in zip(("ccm", "ccm_bias", "slopes", "mix", "mix_bias"),
                                                                   grid.guide.tensors())}}
    save_file(old, str(tmp_path / "old.safetensors"),
              metadata={"format": "instantretouch-grid", "format_version": "1",
                        "source_size": json.dumps([480, 640]), "label": "warm"})
    for path in ("old.safetensors", "new.safetensors"):
        back = RetouchGrid.load(tmp_path / path)
        assert torch.equal(back.grid, grid.grid) and back.source_size == (480, 640) and back.label == "warm"
        assert all(torch.equal(a, b) for a, b in zip(back.guide.tensors(), grid.guide.tensors()))
    assert load_grid(tmp_path / "old.safetensors").guide is not None

"""The LUT nodes' logic: Apply LUT (exact, strength, mask), listing of the `luts` folders."""

import importlib

import pytest
import torch

from retouch_core.engine.lut import identity_lattice, write_cube


@pytest.fixture(scope="module")
def luts(pack):
    return importlib.import_module(f"{pack.__name__}.nodes.luts")


MATRIX = torch.tensor([[0.8, 0.1, 0.0], [0.0, 1.1, -0.1], [0.1, 0.0, 0.7]])


@pytest.fixture
def cube_file(tmp_path):
    """A channel-mixing .cube LUT (affine, so both interpolations reproduce it exactly)."""
    lut = torch.einsum("ij,bjklm->biklm", MATRIX, identity_lattice(9))
    path = tmp_path / "looks" / "film" / "mix.cube"
    path.parent.mkdir(parents=True)
    write_cube(path, lut)
    return path


def image(batch=2, height=12, width=16, channels=3):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("interpolation", ["tetrahedral", "trilinear"])
def test_apply_lut_is_exact_with_strength(luts, cube_file, interpolation):
    img = image()
    expected = img @ MATRIX.T
    out = luts.apply_lut_file(img, cube_file, interpolation, 1.0)
    torch.testing.assert_close(out, expected.clamp(0, 1), atol=1e-5, rtol=0)
    half = luts.apply_lut_file(img, cube_file, interpolation, 0.5)
    torch.testing.assert_close(half, (img + 0.5 * (expected - img)).clamp(0, 1), atol=1e-5, rtol=0)
    assert torch.equal(luts.apply_lut_file(img, cube_file, interpolation, 0.0), img)


def test_apply_lut_mask_and_alpha(luts, cube_file):
    img = image(batch=1, channels=4)
    mask = torch.zeros(1, 6, 8)
    mask[:, :, 4:] = 1.0  # right half, at half the image size: resized
    out = luts.apply_lut_file(img, cube_file, "tetrahedral", 1.0, mask)
    assert torch.equal(out[..., 3], img[..., 3])
    assert torch.equal(out[:, :, :7, :3], img[:, :, :7, :3])  # left, away from the resized edge
    torch.testing.assert_close(out[:, :, 9:, :3], (img[:, :, 9:, :3] @ MATRIX.T).clamp(0, 1), atol=1e-5, rtol=0)


def test_lut_files_in_subfolders_are_listed_and_found(luts, cube_file, tmp_path):
    other = tmp_path / "other"
    (other / ".hidden").mkdir(parents=True)
    (other / "a.CUBE").write_text("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n")
    (other / ".hidden" / "b.cube").write_text("")
    (other / "notes.txt").write_text("")
    (tmp_path / "secret.cube").write_text("")
    folders = [tmp_path / "looks", other, tmp_path / "missing"]
    assert luts.list_lut_files(folders) == ["a.CUBE", "film/mix.cube"]
    assert luts.find_lut_file(folders, "film/mix.cube") == cube_file.resolve()
    with pytest.raises(FileNotFoundError, match="not in the LUT folders"):
        luts.find_lut_file(folders, "../secret.cube")  # no escaping a folder

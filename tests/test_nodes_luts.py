"""The LUT nodes' logic: Apply LUT (exact, strength, mask), listing of the `luts` folders."""

import importlib
import shlex
import subprocess
import sys

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


def test_shipped_lut_is_listed_and_found(luts, tmp_path):
    """The pack's luts/ folder holds the shipped LUT; listed after the user's (empty) folders."""
    assert luts.list_lut_files([luts.SHIPPED_LUT_FOLDER]) == [luts.SHIPPED_LUT]
    folders = [tmp_path / "models" / "luts", luts.SHIPPED_LUT_FOLDER]
    assert luts.list_lut_files(folders) == [luts.SHIPPED_LUT]
    assert luts.find_lut_file(folders, luts.SHIPPED_LUT) == (luts.SHIPPED_LUT_FOLDER / luts.SHIPPED_LUT).resolve()


def test_shipped_lut_regenerates_bit_for_bit(luts, tmp_path):
    """The command in the shipped file's header, run from the pack folder, writes that file
    byte for byte (so it cannot drift from the code that made it)."""
    shipped = luts.SHIPPED_LUT_FOLDER / luts.SHIPPED_LUT
    marker = "# Regenerate it bit for bit from the pack folder: "
    [line] = [line for line in shipped.read_text().splitlines() if line.startswith(marker)]
    command = shlex.split(line[len(marker):])
    assert command[:3] == ["python", "-m", "retouch_core.apps.style_lut"] and command[-2:] == ["--folder", "luts"]
    command = [sys.executable, *command[1:-1], str(tmp_path)]
    result = subprocess.run(command, cwd=luts.SHIPPED_LUT_FOLDER.parent, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / luts.SHIPPED_LUT).read_bytes() == shipped.read_bytes()


def test_shipped_lut_is_the_cinematic_style(luts):
    """Applied with the node's code, the shipped LUT is the renderer's "cinematic" edit."""
    from retouch_core.formats.lut_files import read_lut_file
    from retouch_core.language.attributes import recipe_to_params
    from retouch_core.language.render import render

    path = luts.SHIPPED_LUT_FOLDER / luts.SHIPPED_LUT
    cube = read_lut_file(path)
    assert cube.title == "InstantRetouch cinematic (17^3)" and cube.lut.shape == (1, 3, 17, 17, 17)
    img = image(batch=1, height=32, width=32)
    expected = render(img.permute(0, 3, 1, 2), recipe_to_params({"cinematic": 1.0})).permute(0, 2, 3, 1)
    out = luts.apply_lut_file(img, path, "tetrahedral", 1.0)
    assert (out - img).abs().mean() > 0.02  # a visible grade
    # 17^3 lattice: interpolation error, largest (~0.035) where a channel clips at black
    assert (out - expected).abs().mean() < 1e-3 and (out - expected).abs().max() < 0.05

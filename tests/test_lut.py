""".cube I/O and grid <-> LUT conversion against independent references: hand-written .cube
text, a naive numpy trilinear lookup, closed-form colour matrices and the grid's own slicing."""

import math

import numpy as np
import pytest
import torch

from retouch_core.engine.fit import downsample, fit_grid_to_edit
from retouch_core.engine.grid import grid_from_affine, identity_grid
from retouch_core.engine.lut import (
    CubeFormatError,
    apply_lut,
    edit_to_lut,
    format_cube,
    grid_to_lut,
    identity_lattice,
    load_cube,
    lut_to_grid,
    params_to_lut,
    parse_cube,
    read_cube,
    spatial_mean_grid,
    write_cube,
)
from retouch_core.engine.slicing import slice_and_apply

data = pytest.importorskip("skimage.data")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def astronaut():
    return torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1)[None].float() / 255


def psnr(a, b):
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else -10 * math.log10(mse)


MATRIX = torch.tensor([[1.1, 0.1, -0.05, 0.02], [0.05, 0.9, 0.08, -0.01], [-0.1, 0.05, 1.2, 0.03]])


def colour_matrix(x):
    return torch.einsum("ij,bjhw->bihw", MATRIX[:, :3].to(x.dtype), x) + MATRIX[:, 3].to(x.dtype).view(1, 3, 1, 1)


def gamma(x):
    return x ** (1 / 1.6)


# Written by hand, red varying fastest: the 8 corners in the order (r, g, b) =
# 000, 100, 010, 110, 001, 101, 011, 111.
IDENTITY_2 = """# hand-written identity
TITLE "identity"
LUT_3D_SIZE 2

0 0 0
1 0 0
0 1 0
1 1 0
0 0 1
1 0 1
0 1 1
1 1 1
"""
# Output (b, g, r) at each corner: red and blue swapped. Read in the wrong order (blue
# fastest), this file would be the identity, so it pins down the ordering.
SWAP_RB_2 = """TITLE "swap red and blue"
LUT_3D_SIZE 2
DOMAIN_MIN 0 0 0
DOMAIN_MAX 1 1 1
0 0 0
0 0 1
0 1 0
0 1 1
1 0 0
1 0 1
1 1 0
1 1 1
"""


def naive_lookup(lut, rgb):
    """Trilinear lookup, one colour at a time: lut (3, N, N, N) [c, b, g, r], rgb (3,)."""
    n = lut.shape[-1]
    pos = [min(max(v, 0.0), 1.0) * (n - 1) for v in rgb]
    lo = [min(int(math.floor(p)), n - 2) for p in pos]
    out = np.zeros(3)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = 1.0
                for d, p, l in zip((dr, dg, db), pos, lo):
                    w *= (p - l) if d else 1 - (p - l)
                out += w * lut[:, lo[2] + db, lo[1] + dg, lo[0] + dr]
    return out


# ----------------------------------------------------------------------------- reading
def test_hand_written_identity():
    cube = parse_cube(IDENTITY_2)
    assert cube.title == "identity" and cube.lut.shape == (1, 3, 2, 2, 2)
    assert torch.equal(cube.lut, identity_lattice(2))
    image = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(apply_lut(image, cube.lut), image, atol=1e-6, rtol=0)


def test_hand_written_channel_swap_is_red_fastest(tmp_path):
    path = tmp_path / "swap.cube"
    path.write_text(SWAP_RB_2)
    lut = read_cube(path)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(apply_lut(red, lut), torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1))
    image = torch.rand(2, 3, 4, 6, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(apply_lut(image, lut), image.flip(1), atol=1e-6, rtol=0)
    # Entry [c, b, g, r]: the red=1, green=0, blue=0 corner holds blue = 1.
    assert lut[0, :, 0, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_apply_matches_naive_trilinear():
    gen = torch.Generator().manual_seed(2)
    lut = torch.rand(1, 3, 4, 4, 4, generator=gen, dtype=torch.float64)
    image = torch.rand(1, 3, 6, 5, generator=gen, dtype=torch.float64) * 1.4 - 0.2  # some out of domain
    got = apply_lut(image, lut)
    pixels = image[0].reshape(3, -1).T.numpy()
    expected = np.stack([naive_lookup(lut[0].numpy(), p) for p in pixels]).T.reshape(3, 6, 5)
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-12)


def test_alpha_and_batch_pass_through():
    gen = torch.Generator().manual_seed(3)
    rgba = torch.rand(2, 4, 5, 5, generator=gen)
    lut = parse_cube(SWAP_RB_2).lut
    out = apply_lut(rgba, lut)
    assert torch.equal(out[:, 3], rgba[:, 3])
    torch.testing.assert_close(out[:, :3], rgba[:, :3].flip(1), atol=1e-6, rtol=0)


def test_write_read_exact_to_printed_precision(tmp_path):
    gen = torch.Generator().manual_seed(4)
    lut = torch.rand(1, 3, 5, 5, 5, generator=gen, dtype=torch.float64) * 1.2 - 0.1
    path = tmp_path / "random.cube"
    write_cube(path, lut, title="random", decimals=6)
    text = path.read_text()
    assert text.splitlines()[:4] == [
        'TITLE "random"', "LUT_3D_SIZE 5", "DOMAIN_MIN 0.000000 0.000000 0.000000", "DOMAIN_MAX 1.000000 1.000000 1.000000"
    ]
    back = read_cube(path, dtype=torch.float64)
    printed = torch.tensor([[float(f"{v:.6f}") for v in c] for c in lut.reshape(3, -1).tolist()], dtype=torch.float64)
    assert torch.equal(back.reshape(3, -1), printed)
    assert (back - lut).abs().max() <= 0.5e-6 + 1e-15
    # Data line k + 1 (after the header) is entry (r, g, b) = (k % 5, k // 5 % 5, k // 25).
    first_data = text.splitlines()[4:]
    assert first_data[1].split() == [f"{lut[0, c, 0, 0, 1].item():.6f}" for c in range(3)]
    assert first_data[5].split() == [f"{lut[0, c, 0, 1, 0].item():.6f}" for c in range(3)]
    assert first_data[25].split() == [f"{lut[0, c, 1, 0, 0].item():.6f}" for c in range(3)]


def test_comments_blank_lines_crlf_bom_and_resolve_range():
    text = "\ufeff# c\r\nTITLE \"a # b\"\r\n\r\nLUT_3D_INPUT_RANGE 0 2\r\nLUT_3D_SIZE 2\r\n" + "\r\n".join(
        f"{r * 2} {g * 2} {b * 2}  # node" for b in (0, 1) for g in (0, 1) for r in (0, 1)
    )
    cube = parse_cube(text)
    assert cube.title == "a # b" and cube.domain_min == (0.0,) * 3 and cube.domain_max == (2.0,) * 3
    image = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(5)) * 2
    out = apply_lut(image, cube.lut, domain_min=cube.domain_min, domain_max=cube.domain_max)
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


def test_non_unit_domain(tmp_path):
    path = tmp_path / "wide.cube"
    write_cube(path, identity_lattice(3) * 2 - 0.5, domain_min=(-0.5,) * 3, domain_max=(1.5,) * 3)
    with pytest.raises(CubeFormatError, match="load_cube"):
        read_cube(path)
    cube = load_cube(path)
    assert cube.domain_min == (-0.5,) * 3 and cube.domain_max == (1.5,) * 3
    image = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(6)) * 2 - 0.5
    out = apply_lut(image, cube.lut, domain_min=cube.domain_min, domain_max=cube.domain_max)
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)


HEADER = "LUT_3D_SIZE 2\n"
ROWS = [f"{r} {g} {b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]


@pytest.mark.parametrize(
    "text, match",
    [
        (HEADER + "\n".join(ROWS[:3] + ["0 1"] + ROWS[4:]), r"<string>:5: expected 3 values"),
        (HEADER + "\n".join(ROWS[:2] + ["0 x 1"] + ROWS[3:]), r"<string>:4: not a number"),
        (HEADER + "\n".join(ROWS[:2] + ["0 nan 1"] + ROWS[3:]), r"<string>:4: values must be finite"),
        (HEADER + "\n".join(ROWS[:7]), r"<string>:8: LUT_3D_SIZE 2 needs 8 data lines, found 7"),
        (HEADER + "\n".join(ROWS + ["1 1 1"]), r"<string>:10: LUT_3D_SIZE 2 needs 8 data lines, found 9"),
        ("\n".join(ROWS), r"no LUT_3D_SIZE or LUT_1D_SIZE"),
        ("LUT_1D_SIZE 3\nLUT_3D_SIZE 2\n" + "\n".join(ROWS), r"<string>:10: LUT_1D_SIZE 3 and LUT_3D_SIZE 2 needs 11"),
        ("LUT_1D_SIZE 70000\n", r"<string>:1: LUT_1D_SIZE must be in 2..65536"),
        ("LUT_1D_SIZE 2\nLUT_1D_INPUT_RANGE 1 0\n0 0 0\n1 1 1", r"1D input range max"),
        ("# empty\n", r"no LUT_3D_SIZE or LUT_1D_SIZE"),
        ("LUT_3D_SIZE 1\n0 0 0", r"<string>:1: LUT_3D_SIZE must be in 2..256"),
        ("LUT_3D_SIZE 2.5\n", r"<string>:1: expected LUT_3D_SIZE <integer>"),
        (HEADER + HEADER + "\n".join(ROWS), r"<string>:2: LUT_3D_SIZE given twice"),
        (HEADER + "DOMAIN_MIN 0 0\n" + "\n".join(ROWS), r"<string>:2: DOMAIN_MIN needs 3 values"),
        (HEADER + "DOMAIN_MAX 0 0 0\n" + "\n".join(ROWS), r"3D input range max .* must exceed min"),
    ],
)
def test_malformed_files_name_the_line(text, match):
    with pytest.raises(CubeFormatError, match=match):
        parse_cube(text)


def test_file_errors_name_the_path(tmp_path):
    path = tmp_path / "bad.cube"
    path.write_text("LUT_3D_SIZE 2\n0 0\n")
    with pytest.raises(CubeFormatError, match=r"bad\.cube:2: expected 3 values"):
        read_cube(path)


def test_bad_luts_for_writing():
    with pytest.raises(ValueError, match="one LUT"):
        format_cube(torch.rand(2, 3, 2, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        format_cube(torch.rand(1, 3, 2, 2, 3))
    with pytest.raises(ValueError, match="title"):
        format_cube(identity_lattice(2), title='a "b"')


# ----------------------------------------------------------------------------- grids <-> LUTs
def test_spatially_constant_grid_lut_equals_slicing_within_one_level(astronaut):
    # A grid that varies along the guide only (a tone curve with a colour cast), constant in x, y.
    depth = 8
    z = (torch.arange(depth) + 0.5) / depth
    affine = torch.zeros(depth, 3, 4)
    affine[:, :, :3] = torch.eye(3) * (1.6 - 0.8 * z).view(-1, 1, 1)
    affine[:, :, 3] = torch.tensor([0.02, 0.0, -0.03]) * (1 + z.view(-1, 1))
    grid = affine.reshape(depth, 12).T.reshape(1, 12, depth, 1, 1).expand(1, 12, depth, 4, 6).contiguous()
    lut = grid_to_lut(grid)
    assert lut.shape == (1, 3, 33, 33, 33)
    diff = (apply_lut(astronaut, lut) - slice_and_apply(astronaut, grid)).abs().max()
    assert diff <= 1 / 255, diff


def test_global_part_of_a_fitted_grid(astronaut):
    grid = fit_grid_to_edit(astronaut, gamma)
    lut = grid_to_lut(grid)
    diff = (apply_lut(astronaut, lut) - slice_and_apply(astronaut, spatial_mean_grid(grid))).abs().max()
    assert diff <= 1 / 255, diff
    assert psnr(apply_lut(astronaut, lut), gamma(astronaut)) >= 33  # the edit, from its global part


def test_spatial_mean_is_the_average_over_image_positions():
    # For W a multiple of 2 W_g (H likewise), every spatial cell gets the same total slicing
    # weight, so a flat colour's mean output over the image is the mean grid's output.
    gen = torch.Generator().manual_seed(7)
    grid = identity_grid(depth=4, height=3, width=5) + 0.2 * torch.randn(1, 12, 4, 3, 5, generator=gen)
    colours = torch.rand(6, 3, 1, 1, generator=gen, dtype=torch.float64)
    flat = colours.expand(-1, -1, 30, 40)
    per_pixel = slice_and_apply(flat, grid.double(), backend="grid_sample").mean(dim=(2, 3), keepdim=True)
    mean_grid = slice_and_apply(colours, spatial_mean_grid(grid.double()), backend="grid_sample")
    torch.testing.assert_close(per_pixel, mean_grid, atol=1e-12, rtol=0)


def test_cube_file_round_trip_of_a_grid(tmp_path, astronaut):
    grid = grid_from_affine(MATRIX, 4, 2, 2)
    lut = grid_to_lut(grid, size=17)
    write_cube(tmp_path / "m.cube", lut)
    back = read_cube(tmp_path / "m.cube")
    image = downsample(astronaut, 64 * 64)
    torch.testing.assert_close(apply_lut(image, back), colour_matrix(image), atol=2e-6, rtol=0)


def test_lut_to_grid_recovers_a_colour_matrix(astronaut):
    grid = lut_to_grid(edit_to_lut(colour_matrix), depth=8, height=4, width=4)
    assert grid.shape == (1, 12, 8, 4, 4)
    assert torch.equal(grid, grid[..., :1, :1].expand_as(grid))  # spatially constant
    np.testing.assert_allclose(grid[0, :, 3, 0, 0].reshape(3, 4).numpy(), MATRIX.numpy(), atol=1e-4)
    assert (slice_and_apply(astronaut, grid) - colour_matrix(astronaut)).abs().max() < 1e-3


def test_lut_to_grid_of_a_tone_curve(astronaut):
    # A per-channel curve is not affine within a brightness bin over the whole colour cube,
    # so the import is a least-squares compromise (~29 dB here, against ~48 dB for the LUT itself).
    lut = edit_to_lut(gamma)
    assert psnr(apply_lut(astronaut, lut), gamma(astronaut)) >= 45
    assert psnr(slice_and_apply(astronaut, lut_to_grid(lut)), gamma(astronaut)) >= 27


def test_params_to_lut(astronaut):
    render = pytest.importorskip("retouch_core.language.render").render
    params_mod = pytest.importorskip("retouch_core.language.params")
    params = params_mod.RetouchParams(temperature=25, tint=-10, vibrance=30, saturation=15, contrast=20)
    image = downsample(astronaut, 128 * 128)
    assert psnr(apply_lut(image, params_to_lut(params)), render(image, params)) >= 40
    with pytest.raises(ValueError, match="clarity"):
        params_to_lut(params_mod.RetouchParams(clarity=10))


def test_lut_to_grid_arguments():
    with pytest.raises(ValueError, match="grid size"):
        lut_to_grid(identity_lattice(3), depth=0)
    with pytest.raises(ValueError, match="samples"):
        lut_to_grid(identity_lattice(3), samples=1)


def test_guide_maps_are_rejected():
    with pytest.raises(TypeError, match="guide map"):
        grid_to_lut(identity_grid(depth=2, height=2, width=2), guide=torch.rand(1, 1, 4, 4))

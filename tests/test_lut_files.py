"""LUT files as people have them: a corpus of .cube variants and Hald CLUTs written here, read
leniently and applied exactly, checked against naive per-colour references (np.interp, the
six-case tetrahedral formula, a trilinear loop) and, when installed, colour-science."""

import math
import warnings

import numpy as np
import png
import pytest
import torch
from PIL import Image

from retouch_core.engine.lut import CubeFormatError, CubeWarning, apply_lut, identity_lattice, parse_cube
from retouch_core.engine.lut_interp import VIDEO_HIGH, VIDEO_LOW, apply_1d, apply_cube, apply_lut_tetrahedral, bake_cube
from retouch_core.formats.lut_files import HaldFormatError, read_hald, read_lut_file
from test_lut import naive_lookup

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- references
def naive_tetrahedral(lut, rgb):
    """The six-case tetrahedral formula, one colour at a time: lut (3, N, N, N) [c, b, g, r]."""
    n = lut.shape[-1]
    pos = [min(max(v, 0.0), 1.0) * (n - 1) for v in rgb]
    lo = [min(int(math.floor(p)), n - 2) for p in pos]
    fr, fg, fb = (p - l for p, l in zip(pos, lo))

    def c(r, g, b):
        return lut[:, lo[2] + b, lo[1] + g, lo[0] + r]

    if fr > fg:
        if fg > fb:
            return (1 - fr) * c(0, 0, 0) + (fr - fg) * c(1, 0, 0) + (fg - fb) * c(1, 1, 0) + fb * c(1, 1, 1)
        if fr > fb:
            return (1 - fr) * c(0, 0, 0) + (fr - fb) * c(1, 0, 0) + (fb - fg) * c(1, 0, 1) + fg * c(1, 1, 1)
        return (1 - fb) * c(0, 0, 0) + (fb - fr) * c(0, 0, 1) + (fr - fg) * c(1, 0, 1) + fg * c(1, 1, 1)
    if fb > fg:
        return (1 - fb) * c(0, 0, 0) + (fb - fg) * c(0, 0, 1) + (fg - fr) * c(0, 1, 1) + fr * c(1, 1, 1)
    if fb > fr:
        return (1 - fg) * c(0, 0, 0) + (fg - fb) * c(0, 1, 0) + (fb - fr) * c(0, 1, 1) + fr * c(1, 1, 1)
    return (1 - fg) * c(0, 0, 0) + (fg - fr) * c(0, 1, 0) + (fr - fb) * c(1, 1, 0) + fb * c(1, 1, 1)


def per_colour(fn, table, colours):
    """Apply a per-colour reference to (K, 3) colours."""
    return np.stack([fn(table, c) for c in colours])


def naive_1d(table, colours, low, high):
    """np.interp per channel on (K, 3) colours; table (3, M) on [low, high]."""
    m = table.shape[1]
    return np.stack([np.interp(colours[:, c], np.linspace(low[c], high[c], m), table[c]) for c in range(3)], 1)


def grade(rgb):
    """A nonlinear colour grade with outputs outside [0, 1] (as film LUTs have)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([1.15 * r**0.8 - 0.1 * b, g**1.3 + 0.05 * r * b, 0.9 * b + 0.2 * (r - g) ** 2 + 0.08], -1) - 0.03


def lattice(n):
    """(n^3, 3) lattice colours in .cube order (red fastest)."""
    axis = np.linspace(0, 1, n)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], -1).reshape(-1, 3)


def rows(values):
    return [" ".join(f"{v:.8f}" for v in row) for row in values]


def to_lut(values, n):
    """(n^3, 3) rows in .cube order -> (3, n, n, n) [c, b, g, r]."""
    return values.reshape(n, n, n, 3).transpose(3, 0, 1, 2)


COLOURS = np.random.default_rng(0).uniform(-0.15, 1.15, size=(200, 3))  # some out of the domain
IMAGE = torch.from_numpy(COLOURS.T.reshape(1, 3, 10, 20).copy())


def image_to_rows(out):
    return out[0].reshape(3, -1).T.numpy()


# ----------------------------------------------------------------------------- the corpus
def corpus():
    """name -> (text, reference: (K, 3) colours -> (K, 3), warnings expected)."""
    n = 5
    table3 = grade(lattice(n))
    lut3 = to_lut(table3, n)
    shaper = np.stack([np.linspace(0, 1, 9) ** (1 / g) for g in (2.2, 2.0, 1.8)])
    files = {}
    body = rows(table3)
    # Resolve 3D: CRLF, comments on data lines and between them, values outside [0, 1].
    text = '# exported by Resolve\r\nTITLE "grade"\r\nLUT_3D_SIZE 5\r\nLUT_3D_INPUT_RANGE 0.0 1.0\r\n\r\n'
    text += "\r\n".join(r + ("  # node" if i % 7 == 0 else "") + ("\r\n# block" if i % 25 == 24 else "") for i, r in enumerate(body))
    files["resolve_crlf.cube"] = (text, lambda c: per_colour(naive_tetrahedral, lut3, c), 0)
    # Adobe-style with an unquoted title, unknown keywords, a domain and a keyword after the data.
    text = "TITLE film grade v2\nLUT_3D_SIZE 5\nDEVICE_ID 7\nCREATOR some tool\nDOMAIN_MIN -0.1 -0.1 -0.1\n"
    text += "\n".join(body) + "\nDOMAIN_MAX 1.2 1.2 1.2\n"

    def wide(c):
        return per_colour(naive_tetrahedral, lut3, (c + 0.1) / 1.3)

    files["adobe_lenient.cube"] = (text, wide, 2)
    # 1D only, with a domain.
    text = "LUT_1D_SIZE 9\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n" + "\n".join(rows(shaper.T))
    files["curve_1d.cube"] = (text, lambda c: naive_1d(shaper, c, (0,) * 3, (1,) * 3), 0)
    # Resolve shaper + 3D: the 1D table on [-0.1, 1.2], its output into the 3D table.
    text = "LUT_1D_SIZE 9\nLUT_1D_INPUT_RANGE -0.1 1.2\nLUT_3D_SIZE 5\nLUT_3D_INPUT_RANGE 0 1\n"
    text += "\n".join(rows(shaper.T) + body)

    def shaped(c):
        return per_colour(naive_tetrahedral, lut3, naive_1d(shaper, c, (-0.1,) * 3, (1.2,) * 3))

    files["shaper_3d.cube"] = (text, shaped, 0)
    # Video range in and out.
    text = "LUT_3D_SIZE 5\nLUT_IN_VIDEO_RANGE\nLUT_OUT_VIDEO_RANGE\n" + "\n".join(body)

    def video(c):
        inside = VIDEO_LOW + c * (VIDEO_HIGH - VIDEO_LOW)
        return (per_colour(naive_tetrahedral, lut3, inside) - VIDEO_LOW) / (VIDEO_HIGH - VIDEO_LOW)

    files["video_range.cube"] = (text, video, 0)
    return files


@pytest.mark.parametrize("name", list(corpus()))
def test_corpus_reads_and_applies_exactly(tmp_path, name):
    text, reference, expected_warnings = corpus()[name]
    path = tmp_path / name
    path.write_bytes(text.encode())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = read_lut_file(path, dtype=torch.float64)
    assert len([w for w in caught if issubclass(w.category, CubeWarning)]) == expected_warnings
    got = image_to_rows(apply_cube(IMAGE, cube, "tetrahedral"))
    np.testing.assert_allclose(got, reference(COLOURS), atol=1e-7)


def test_unknown_keywords_warn_with_the_line():
    with pytest.warns(CubeWarning, match=r"<string>:2: unknown keyword 'LUT_3D_SHAPE'"):
        cube = parse_cube("LUT_3D_SIZE 2\nLUT_3D_SHAPE foo\n" + "\n".join(rows(lattice(2))))
    assert torch.equal(cube.lut, identity_lattice(2))


def test_tetrahedral_and_trilinear_match_naive_loops():
    gen = torch.Generator().manual_seed(0)
    lut = torch.rand(1, 3, 6, 6, 6, generator=gen, dtype=torch.float64)
    tetra = image_to_rows(apply_lut_tetrahedral(IMAGE, lut))
    tri = image_to_rows(apply_lut(IMAGE, lut))
    np.testing.assert_allclose(tetra, per_colour(naive_tetrahedral, lut[0].numpy(), COLOURS), atol=1e-12)
    np.testing.assert_allclose(tri, per_colour(naive_lookup, lut[0].numpy(), COLOURS), atol=1e-12)
    assert np.abs(tetra - tri).max() > 1e-3  # the two interpolations really differ on a random LUT


def test_tetrahedral_is_exact_on_greys_and_affine_luts():
    # A channel-mixing LUT with a nonlinear grey axis: tetrahedral maps greys exactly along the
    # diagonal; an affine LUT is reproduced exactly everywhere.
    matrix = torch.tensor([[0.9, 0.2, -0.1], [0.05, 1.1, -0.15], [0.1, -0.2, 1.1]], dtype=torch.float64)
    lut = torch.einsum("ij,bjklm->biklm", matrix, identity_lattice(4, dtype=torch.float64)) + 0.02
    out = apply_lut_tetrahedral(IMAGE, lut)
    expected = torch.einsum("ij,bjhw->bihw", matrix, IMAGE.clamp(0, 1)) + 0.02
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_1d_matches_np_interp_and_alpha_passes():
    table = torch.tensor(np.stack([np.linspace(0, 1, 7) ** 2, np.linspace(1, 0, 7), np.sqrt(np.linspace(0, 1, 7))]))
    rgba = torch.cat([IMAGE, torch.rand(1, 1, 10, 20, dtype=torch.float64)], 1)
    out = apply_1d(rgba, table, domain_min=(-0.1,) * 3, domain_max=(1.1,) * 3)
    assert torch.equal(out[:, 3], rgba[:, 3])
    np.testing.assert_allclose(image_to_rows(out[:, :3]), naive_1d(table.numpy(), COLOURS, (-0.1,) * 3, (1.1,) * 3), atol=1e-12)


def write_hald(path, lut, bits):
    """A Hald CLUT image from a (3, N, N, N) LUT, N = L^2 (rows of the .cube order, row-major)."""
    n = lut.shape[-1]
    side = round(n ** 1.5)
    pixels = lut.reshape(3, -1).T.reshape(side, side, 3)
    scale = 2**bits - 1
    values = np.round(np.clip(pixels, 0, 1) * scale)
    if bits == 8:
        Image.fromarray(values.astype(np.uint8)).save(path)
    else:
        with open(path, "wb") as f:
            png.Writer(side, side, greyscale=False, bitdepth=16).write(f, values.astype(np.uint16).reshape(side, -1))
    return values / scale


@pytest.mark.parametrize("level, bits", [(2, 8), (3, 16), (4, 8)])
def test_hald_clut_round_trip(tmp_path, level, bits):
    n = level * level
    lut = to_lut(np.clip(grade(lattice(n)), 0, 1), n)
    stored = write_hald(tmp_path / "film.png", lut, bits).reshape(-1, 3).T.reshape(3, n, n, n)
    cube = read_hald(tmp_path / "film.png", dtype=torch.float64)
    assert cube.lut.shape == (1, 3, n, n, n) and cube.title == "film"
    np.testing.assert_allclose(cube.lut[0].numpy(), stored, atol=1e-6)
    # The identity Hald image reads as the identity LUT: pins the pixel order (red fastest).
    write_hald(tmp_path / "identity.png", identity_lattice(n, dtype=torch.float64)[0].numpy(), 16)
    torch.testing.assert_close(read_hald(tmp_path / "identity.png", dtype=torch.float64).lut,
                               identity_lattice(n, dtype=torch.float64), atol=1 / 65535, rtol=0)


def test_not_a_hald_clut(tmp_path):
    Image.new("RGB", (30, 30)).save(tmp_path / "photo.png")
    with pytest.raises(HaldFormatError, match=r"photo\.png: a Hald CLUT is an RGB square of side L\^3"):
        read_hald(tmp_path / "photo.png")
    with pytest.raises(ValueError, match="not a LUT file"):
        read_lut_file(tmp_path / "photo.jpg")


def test_bake_reproduces_the_chain_at_the_nodes(tmp_path):
    text, reference, _ = corpus()["shaper_3d.cube"]
    cube = parse_cube(text, dtype=torch.float64)
    baked = bake_cube(cube, 9)
    np.testing.assert_allclose(baked[0].reshape(3, -1).T.numpy(), reference(lattice(9)), atol=1e-7)


def test_data_line_errors_still_name_the_line():
    with pytest.raises(CubeFormatError, match=r"<string>:3: expected 3 values"):
        parse_cube("LUT_1D_SIZE 2\n0 0 0\n1 1\n")


# ----------------------------------------------------------------------------- colour-science
@pytest.mark.parametrize("name", ["resolve_crlf.cube", "curve_1d.cube", "shaper_3d.cube"])
@pytest.mark.parametrize("interpolation", ["tetrahedral", "trilinear"])
def test_values_agree_with_colour_science(tmp_path, name, interpolation):
    colour = pytest.importorskip("colour")
    from colour.algebra import table_interpolation_tetrahedral, table_interpolation_trilinear

    text, _, _ = corpus()[name]
    path = tmp_path / name
    # colour-science's reader is strict (no comments after data): give it the plain form.
    plain = [line.split("#")[0].rstrip() for line in text.splitlines()]
    path.write_text("\n".join(line for line in plain if line) + "\n")
    theirs = colour.read_LUT(str(path))
    interpolator = table_interpolation_tetrahedral if interpolation == "tetrahedral" else table_interpolation_trilinear
    inside = np.clip(COLOURS, 0, 1)  # colour-science extrapolates outside the domain; we clamp
    if isinstance(theirs, colour.LUTSequence):
        expected = inside
        for step in theirs:
            kwargs = {"interpolator": interpolator} if isinstance(step, colour.LUT3D) else {}
            expected = step.apply(expected, **kwargs)
    elif isinstance(theirs, colour.LUT3D):
        expected = theirs.apply(inside, interpolator=interpolator)
    else:
        expected = theirs.apply(inside)
    cube = read_lut_file(path, dtype=torch.float64)
    got = image_to_rows(apply_cube(torch.from_numpy(inside.T.reshape(1, 3, 10, 20).copy()), cube, interpolation))
    np.testing.assert_allclose(got, expected, atol=1e-6)

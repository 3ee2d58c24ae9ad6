"""Band-by-band editing (retouch_core.apps.banded and the CLI path that uses it) against the
whole-image computation: same bytes for the same grid."""

import numpy as np
import png
import pytest
import torch
import torch.nn.functional as F

from retouch_core.apps.banded import edit_in_place, small_copy, to_bit_depth
from retouch_core.apps.cli import main
from retouch_core.engine.grid import identity_grid
from retouch_core.engine.guide import GuideParams
from retouch_core.engine.slicing import slice_and_apply
from retouch_core.formats.grid_files import RetouchGrid
from retouch_core.formats.image_files import read_image, read_pixels, write_image

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def random_grid(rng, batch=1):
    return identity_grid(depth=8, height=5, width=4) + 0.2 * torch.randn(batch, 12, 8, 5, 4, generator=rng)


def learned(rng):
    base = GuideParams.identity()
    return GuideParams(base.ccm + 0.2 * torch.randn(1, 3, 3, generator=rng), base.ccm_bias,
                       0.5 + torch.rand(1, 3, 16, generator=rng), base.mix, base.mix_bias)


@pytest.mark.parametrize("backend", ["grid_sample", "gather", "cpu_kernel"])
def test_bands_slice_like_the_whole_image(backend, rng):
    image = torch.rand(1, 3, 37, 23, generator=rng)
    grid, guide = random_grid(rng), learned(rng)
    whole = slice_and_apply(image, grid, guide, backend=backend)
    for top, bottom in ((0, 5), (5, 19), (19, 37), (36, 37)):
        band = slice_and_apply(image[:, :, top:bottom], grid, guide, backend=backend, band=(top, 37))
        torch.testing.assert_close(band, whole[:, :, top:bottom], atol=1e-6, rtol=0)


def test_band_outside_the_image_is_refused(rng):
    with pytest.raises(ValueError, match="band"):
        slice_and_apply(torch.rand(1, 3, 8, 8), random_grid(rng), band=(4, 10))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_edit_in_place_equals_whole_image_write(dtype, rng, tmp_path):
    """Quantised in place band by band == the float image edited whole and quantised by write_image."""
    top = np.iinfo(dtype).max
    pixels = np.random.default_rng(0).integers(0, top + 1, (29, 17, 3)).astype(dtype)
    grid = random_grid(rng)
    write_image(tmp_path / "whole.png", slice_and_apply(torch.from_numpy(pixels.astype(np.float64) / top)
                                                       .permute(2, 0, 1)[None].float(), grid), bit_depth=8 * dtype().itemsize)
    expected, _ = read_pixels(tmp_path / "whole.png")
    edited = pixels.copy()
    edit_in_place(edited, lambda band, rows: slice_and_apply(band, grid, band=rows), band_pixels=17 * 4)
    np.testing.assert_array_equal(edited, expected)


def test_small_copy_is_the_box_filtered_image(rng):
    pixels = np.random.default_rng(1).integers(0, 256, (103, 61, 4)).astype(np.uint8)
    full = torch.from_numpy(pixels).permute(2, 0, 1)[None].double() / 255
    small = small_copy(pixels, max_side=20, band_pixels=61 * 7)
    factor = 6  # ceil(103 / 20)
    expected = F.avg_pool2d(full, factor, ceil_mode=True)
    assert small.shape == (1, 4, 18, 11)
    torch.testing.assert_close(small.double(), expected, atol=1e-6, rtol=0)
    assert small_copy(pixels, max_side=200).shape == (1, 4, 103, 61)


def test_to_bit_depth_rounds_like_write_image():
    wide = np.arange(0, 65536, 7, dtype=np.uint16).reshape(-1, 1, 1)[:9000].reshape(100, 30, 3)
    narrow = to_bit_depth(wide, 8, band_pixels=90)
    np.testing.assert_array_equal(narrow, np.round(wide / 65535 * 255).astype(np.uint8))
    assert to_bit_depth(narrow, 8) is narrow


@pytest.mark.parametrize("mode", ["RGB", "LA", "RGB16"])
def test_cli_bands_equal_the_whole_image_edit(mode, rng, tmp_path, monkeypatch):
    """The CLI (banded, forced to many bands) writes what the whole-image path computes."""
    import retouch_core.apps.banded as banded

    channels, bits = {"RGB": (3, 8), "LA": (2, 8), "RGB16": (3, 16)}[mode]
    values = np.random.default_rng(2).integers(0, 2**bits, (41, 27, channels))
    src = tmp_path / "in.png"
    writer = png.Writer(27, 41, greyscale=channels < 3, alpha=channels in (2, 4), bitdepth=bits)
    with open(src, "wb") as f:
        writer.write(f, values.reshape(41, -1).tolist())
    RetouchGrid(random_grid(rng), learned(rng), None, "test").save(tmp_path / "g.safetensors")
    monkeypatch.setattr(banded.edit_in_place, "__defaults__", (27 * 3,))
    assert main([str(src), "-o", str(tmp_path / "out.png"), "--grid", str(tmp_path / "g.safetensors")]) == 0

    image, info = read_image(src)
    grid = RetouchGrid.load(tmp_path / "g.safetensors")
    colour = image[:, :3] if channels >= 3 else image[:, :1].expand(-1, 3, -1, -1)
    edited = grid.apply(colour)
    if channels < 3:
        weights = torch.tensor((0.299, 0.587, 0.114)).view(1, 3, 1, 1)
        edited = (edited * weights).sum(1, keepdim=True).clamp(0, 1)
    if channels in (2, 4):
        edited = torch.cat([edited, image[:, -1:]], dim=1)
    write_image(tmp_path / "whole.png", edited, info)
    got, got_info = read_pixels(tmp_path / "out.png")
    want, _ = read_pixels(tmp_path / "whole.png")
    assert got_info.mode == info.mode and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["P+transparency", "RGB+colour key", "L", "RGBA"])
def test_read_pixels_in_bands_equals_pillows_whole_conversion(kind, tmp_path, monkeypatch):
    """Decoded pixels are copied out of Pillow a few rows at a time; each band must convert as
    the whole image does (palette and colour-key transparency travel with the crop)."""
    from PIL import Image

    from retouch_core.formats import image_files

    values = np.random.default_rng(3).integers(0, 256, (37, 23, 4), dtype=np.uint8)
    if kind == "P+transparency":
        image = Image.fromarray(values[..., :3]).quantize(16)
        image.info["transparency"] = 3
        mode = "RGBA"
    elif kind == "RGB+colour key":
        image = Image.fromarray(values[..., :3] // 64 * 64)
        image.info["transparency"] = (64, 128, 0)
        mode = "RGBA"
    else:
        image = Image.fromarray(values if kind == "RGBA" else values[..., 0])
        mode = kind
    image.save(tmp_path / "in.png", **({"transparency": image.info["transparency"]} if "transparency" in image.info
                                        else {}))
    monkeypatch.setattr(image_files, "COPY_BAND_BYTES", 23 * 4 * 5)  # 5 rows per band, 8 bands
    got, info = read_pixels(tmp_path / "in.png")
    with Image.open(tmp_path / "in.png") as reference:
        want = np.array(reference.convert(mode)).reshape(37, 23, len(mode))
    assert info.mode == mode
    np.testing.assert_array_equal(got, want)
    if "+" in kind:  # the transparent colour occurs, so the alpha channel is exercised
        assert (got[..., 3] == 0).any() and (got[..., 3] == 255).any()


@pytest.mark.parametrize("significant", [16, 12])
def test_16_bit_png_rows_read_exactly(significant, tmp_path):
    """16-bit PNGs are read row by row into one array; with an sBIT chunk (12 significant bits)
    the samples are scaled down by the decoder and stretched back to the full 16-bit range."""
    values = np.random.default_rng(4).integers(0, 2**16, (9, 7, 2), dtype=np.uint16)
    writer = png.Writer(7, 9, greyscale=True, alpha=True, bitdepth=16)
    with open(tmp_path / "in.png", "wb") as f:
        writer.write(f, values.reshape(9, -1).tolist())
    if significant != 16:  # add sBIT before IDAT, as a 12-bit camera export would
        chunks = list(png.Reader(filename=str(tmp_path / "in.png")).chunks())
        chunks.insert(1, (b"sBIT", bytes([significant, significant])))
        with open(tmp_path / "in.png", "wb") as f:
            png.write_chunks(f, chunks)
    got, info = read_pixels(tmp_path / "in.png")
    top = values.astype(np.int64) >> (16 - significant)  # what the significant bits hold
    want = (top * 65535 + (2**significant - 1) // 2) // (2**significant - 1)
    assert info.bit_depth == 16 and info.mode == "LA"
    np.testing.assert_array_equal(got, want)

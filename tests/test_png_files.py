"""The streamed PNG writer: files that independent decoders (Pillow, pypng) read back exactly."""

import zlib

import numpy as np
import png
import pytest
from PIL import Image

from retouch_core.formats import png_files
from retouch_core.formats.png_files import write_png


def _pypng_pixels(path):
    width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
    return np.vstack(list(rows)).reshape(height, width, meta["planes"]), meta


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pixels_read_back_exactly_in_several_bands(channels, dtype, tmp_path, monkeypatch):
    monkeypatch.setattr(png_files, "BAND_BYTES", 200)  # many IDAT chunks, bands of a few rows
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, (37, 23, channels), dtype=dtype)
    path = tmp_path / "out.png"
    write_png(path, pixels)
    decoded, meta = _pypng_pixels(path)
    assert meta["bitdepth"] == (16 if dtype == np.uint16 else 8)
    np.testing.assert_array_equal(decoded, pixels)
    if dtype == np.uint8:  # and a second decoder (Pillow has no 16-bit colour modes)
        with Image.open(path) as image:
            image.verify()  # chunk CRCs
        np.testing.assert_array_equal(np.asarray(Image.open(path)).reshape(pixels.shape), pixels)


def test_standard_zlib_fallback_gives_the_same_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(png_files, "_deflate", zlib)
    monkeypatch.setattr(png_files, "_LEVEL", 6)
    pixels = np.random.default_rng(0).integers(0, 256, (16, 9, 3), dtype=np.uint8)
    write_png(tmp_path / "z.png", pixels)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "z.png")), pixels)


def test_photo_compresses_like_pillow(tmp_path):
    """Sub-filtered rows deflate to about Pillow's size on a photo-like image (not raw-sized)."""
    from retouch_core.apps.bench_files import synthetic_photo

    pixels = synthetic_photo(256, 384)
    write_png(tmp_path / "ours.png", pixels)
    Image.fromarray(pixels).save(tmp_path / "pillow.png")
    ours, pillow = (tmp_path / "ours.png").stat().st_size, (tmp_path / "pillow.png").stat().st_size
    assert ours < 1.15 * pillow < 1.15 * pixels.nbytes


def test_icc_profile_and_exif_chunks(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "InstantRetouch test camera"  # Make
    pixels = np.zeros((4, 5, 3), np.uint8)
    write_png(tmp_path / "meta.png", pixels, icc=b"not really a profile", exif=exif.tobytes().removeprefix(b"Exif\x00\x00"))
    with Image.open(tmp_path / "meta.png") as image:
        assert image.info["icc_profile"] == b"not really a profile"
        assert image.getexif()[0x010F] == "InstantRetouch test camera"


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_refuses_what_png_cannot_hold(bad, tmp_path):
    with pytest.raises(ValueError, match="write_png takes"):
        write_png(tmp_path / "bad.png", bad)

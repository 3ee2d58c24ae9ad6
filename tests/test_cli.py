"""The ``retouch`` command and the image I/O under it (retouch_core.apps.cli, retouch_core.formats.image_files).

Predicting or fitting a grid costs seconds on CPU, so only two tests do it (one instruction
run, one --params run); every other CLI test applies the grid the instruction run saved.
"""

import contextlib
import io
import json

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image, ImageOps

from retouch_core.apps.cli import load_params, main
from retouch_core.formats.image_files import ImageInfo, read_image, write_image

pytestmark = pytest.mark.usefixtures("one_thread")

skdata = pytest.importorskip("skimage.data")

EXIF_MAKE = 0x010F
ORIENTATION = 0x0112


# --------------------------------------------------------------------------------- helpers
def run(argv):
    """main(argv) in-process -> (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def pixels(path):
    """File -> (H, W, C) float64 in [0, 1] via our reader."""
    tensor, _ = read_image(path)
    return tensor[0].permute(1, 2, 0).double().numpy()


def gradient16(height=24, width=40, channels=3):
    """(H, W, C) uint16 whose values are almost never multiples of 257 (not 8-bit values)."""
    ramp = np.linspace(0, 65535, height * width * channels).round().astype(np.uint16)
    return ramp.reshape(height, width, channels)[:, ::-1] if channels > 1 else ramp.reshape(height, width, 1)


def to_tensor16(array):
    return torch.from_numpy(array.astype(np.int32)).permute(2, 0, 1)[None].float() / 65535


@pytest.fixture(scope="module")
def astro(tmp_path_factory):
    """skimage's astronaut as an 8-bit PNG in a temporary folder."""
    folder = tmp_path_factory.mktemp("astro")
    Image.fromarray(skdata.astronaut()).save(folder / "astro.png")
    return folder / "astro.png"


@pytest.fixture(scope="module")
def brighter(astro):
    """One instruction run ("brighter") that also saves its grid; the other tests reuse the grid."""
    folder = astro.parent
    argv = [astro, "-o", folder / "brighter.png", "-i", "brighter", "--save-grid", folder / "g.safetensors"]
    status, out, err = run(argv)
    assert status == 0, err
    return {"output": folder / "brighter.png", "grid": folder / "g.safetensors", "stdout": out}


# --------------------------------------------------------------------------------- imageio
@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_round_trip_is_exact(tmp_path, suffix, channels):
    array = gradient16(channels=channels)
    assert (array % 257 != 0).mean() > 0.9  # the test means something only beyond 8 bit
    path = tmp_path / f"g{suffix}"
    write_image(path, to_tensor16(array), ImageInfo("PNG", 16, "RGB"))
    tensor, info = read_image(path)
    assert info.bit_depth == 16 and info.mode == {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    assert np.array_equal((tensor[0].permute(1, 2, 0) * 65535).round().numpy().astype(np.uint16), array)
    # An independent decoder sees 16-bit samples too (not only our own reader).
    if suffix == ".tif":
        other = tifffile.imread(path).reshape(array.shape)
    else:
        width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
        assert meta["bitdepth"] == 16
        other = np.vstack([np.asarray(r) for r in rows]).reshape(array.shape)
    assert np.array_equal(other, array)


def test_icc_profile_kept_in_16bit_png_and_tiff(tmp_path):
    profile = b"fake icc profile " * 20
    for suffix in (".png", ".tif"):
        info = ImageInfo("PNG", 16, "RGB", icc_profile=profile)
        write_image(tmp_path / f"p{suffix}", to_tensor16(gradient16()), info)
        assert read_image(tmp_path / f"p{suffix}")[1].icc_profile == profile


def test_jpeg_output_is_8bit_and_refuses_explicit_16(tmp_path):
    write_image(tmp_path / "a.jpg", to_tensor16(gradient16()), ImageInfo("PNG", 16, "RGB"))
    assert read_image(tmp_path / "a.jpg")[1].bit_depth == 8
    with pytest.raises(ValueError, match="8-bit"):
        write_image(tmp_path / "b.jpg", to_tensor16(gradient16()), bit_depth=16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow_and_reset(tmp_path, orientation):
    array = np.random.default_rng(orientation).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION], exif[EXIF_MAKE] = orientation, "TestCam"
    Image.fromarray(array).save(tmp_path / "o.jpg", exif=exif, quality=95)
    tensor, info = read_image(tmp_path / "o.jpg")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")))
    assert info.orientation == orientation
    assert np.array_equal((tensor[0].permute(1, 2, 0) * 255).round().byte().numpy(), expected)
    write_image(tmp_path / "out.jpg", tensor, info)
    written = Image.open(tmp_path / "out.jpg").getexif()
    assert written[ORIENTATION] == 1 and written[EXIF_MAKE] == "TestCam"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_orientation_applied_to_16bit_files(tmp_path, suffix):
    """The 16-bit readers (pypng, tifffile) bypass Pillow's decoder; orientation 6 still applies."""
    array = gradient16()
    path = tmp_path / f"o{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, array, photometric="rgb", extratags=[(ORIENTATION, "H", 1, 6, True)])
    else:
        exif = Image.Exif()
        exif[ORIENTATION] = 6
        buffer = io.BytesIO()
        png.Writer(40, 24, greyscale=False, bitdepth=16).write(buffer, array.reshape(24, -1))
        chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
        chunks.insert(1, (b"eXIf", exif.tobytes()[6:]))  # without the "Exif\0\0" header
        with open(path, "wb") as f:
            png.write_chunks(f, chunks)
    tensor, info = read_image(path)
    assert info.orientation == 6 and info.bit_depth == 16
    assert np.array_equal((tensor[0].permute(1, 2, 0) * 65535).round().numpy(), np.rot90(array, -1))


def test_missing_output_folder_and_unknown_suffix(tmp_path):
    image = torch.rand(1, 3, 4, 4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_image(tmp_path / "nope" / "a.png", image)
    with pytest.raises(ValueError, match="unknown image type"):
        write_image(tmp_path / "a.xyz", image)


# --------------------------------------------------------------------------------- CLI
def test_instruction_brighter_raises_mean(astro, brighter):
    assert pixels(brighter["output"]).mean() > pixels(astro).mean() + 0.02
    assert "brightness" in brighter["stdout"]  # the plan: how "brighter" was read
    assert "predict" in brighter["stdout"] and " ms" in brighter["stdout"]  # timings


def test_saved_grid_reproduces_the_output(astro, brighter, tmp_path):
    status, out, err = run([astro, "-o", tmp_path / "again.png", "--grid", brighter["grid"]])
    assert status == 0, err
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(brighter["output"]))


def test_strength_zero_returns_input_8bit(astro, brighter, tmp_path):
    # OUTPUT may be an existing folder: the file keeps its name there.
    status, _, err = run([astro, "-o", tmp_path, "--grid", brighter["grid"], "--strength", "0"])
    assert status == 0, err
    assert np.abs(pixels(tmp_path / astro.name) - pixels(astro)).max() <= 1 / 255 + 1e-9


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_strength_zero_returns_input_16bit(astro, brighter, tmp_path, suffix):
    # 16-bit astronaut with low bytes that 8 bit cannot hold.
    array = skdata.astronaut().astype(np.uint16) * 257 + np.arange(512, dtype=np.uint16)[:, None, None] % 200
    write_image(tmp_path / f"in{suffix}", to_tensor16(array), ImageInfo("PNG", 16, "RGB"))
    argv = [tmp_path / f"in{suffix}", "-o", tmp_path / f"out{suffix}", "--grid", brighter["grid"], "--strength", "0"]
    status, _, err = run(argv)
    assert status == 0, err
    tensor, info = read_image(tmp_path / f"out{suffix}")
    assert info.bit_depth == 16
    got = (tensor[0].permute(1, 2, 0) * 65535).round().numpy()
    assert np.abs(got - array).max() <= 1


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_8bit_png_and_jpeg_keep_their_format(astro, brighter, tmp_path, suffix):
    exif = Image.Exif()
    exif[EXIF_MAKE] = "TestCam"
    Image.open(astro).save(tmp_path / f"in{suffix}", exif=exif, icc_profile=b"test profile" * 10)
    status, _, err = run([tmp_path / f"in{suffix}", "-o", tmp_path / f"out{suffix}", "--grid", brighter["grid"]])
    assert status == 0, err
    written = Image.open(tmp_path / f"out{suffix}")
    assert written.format == {".png": "PNG", ".jpg": "JPEG"}[suffix] and written.mode == "RGB"
    assert written.info.get("icc_profile") == b"test profile" * 10
    assert written.getexif()[EXIF_MAKE] == "TestCam"
    assert pixels(tmp_path / f"out{suffix}").mean() > pixels(tmp_path / f"in{suffix}").mean() + 0.02


def test_rgba_alpha_untouched(astro, brighter, tmp_path):
    rgba = np.dstack([skdata.astronaut(), np.tile(np.arange(512, dtype=np.uint16) // 2, (512, 1)).astype(np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "in.png")
    status, _, err = run([tmp_path / "in.png", "-o", tmp_path / "out.png", "--grid", brighter["grid"]])
    assert status == 0, err
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == rgba.shape
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert out[..., :3].mean() > rgba[..., :3].mean() + 5


def test_grey_image_stays_grey(astro, brighter, tmp_path):
    Image.open(astro).convert("L").save(tmp_path / "in.png")
    status, _, err = run([tmp_path / "in.png", "-o", tmp_path / "out.png", "--grid", brighter["grid"]])
    assert status == 0, err
    assert Image.open(tmp_path / "out.png").mode == "L"
    assert pixels(tmp_path / "out.png").mean() > pixels(tmp_path / "in.png").mean() + 0.02


def test_params_json(astro, tmp_path):
    status, out, err = run([astro, "-o", tmp_path / "p.png", "--params", '{"exposure": 1.0}'])
    assert status == 0, err
    assert "exposure" in out
    assert pixels(tmp_path / "p.png").mean() > pixels(astro).mean() + 0.05
    (tmp_path / "p.json").write_text(json.dumps({"exposure": 1.0}))
    assert load_params(str(tmp_path / "p.json")) == load_params('{"exposure": 1.0}')


def test_mask_limits_the_edit_to_the_white_half(astro, brighter, tmp_path):
    mask = np.zeros((64, 100), np.uint8)  # another size than the photo: it is resized
    mask[:, :50] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    status, _, err = run([astro, "-o", tmp_path / "m.png", "--grid", brighter["grid"], "--mask", tmp_path / "mask.png"])
    assert status == 0, err
    change = np.abs(pixels(tmp_path / "m.png") - pixels(astro)).mean(axis=(0, 2))  # per column
    assert change[:250].min() > 0.01  # white half edited
    assert change[262:].max() <= 1 / 255  # black half untouched


def test_folder_mode_skips_a_corrupt_file(astro, brighter, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    Image.open(astro).save(source / "a.png")
    Image.open(astro).save(source / "b.jpg", quality=90)
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    (source / "notes.txt").write_text("not an image")
    status, out, err = run([source, "-o", tmp_path / "out", "--grid", brighter["grid"]])
    assert status == 1  # some files were skipped
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.jpg"]
    assert "broken.png" in err and "Traceback" not in err
    assert "2 of 3 images written" in out


# --------------------------------------------------------------------------------- errors
def _bad_cases(tmp):
    """(argv, expected message fragment) pairs; files are made in ``tmp``."""
    Image.new("RGB", (8, 8)).save(tmp / "ok.png")
    Image.new("RGBA", (8, 8)).save(tmp / "alpha.png")
    Image.new("RGB", (8, 8)).save(tmp / "anim.gif")
    (tmp / "text.png").write_text("hello")
    ok = tmp / "ok.png"
    return [
        ([tmp / "missing.png", "-o", tmp / "o.png"], "no such file"),
        ([tmp / "anim.gif", "-o", tmp / "o.png", "--params", "{}"], "GIF images are not supported"),
        ([tmp / "text.png", "-o", tmp / "o.png", "--params", "{}"], "not an image"),
        ([ok, "-o", tmp / "nowhere" / "o.png"], "does not exist"),
        ([ok, "-o", tmp / "o.xyz"], "unknown image type"),
        ([ok, "-o", ok], "is the same file as INPUT"),
        ([ok, "-o", tmp / "o.png", "--params", "{not json"], "not valid JSON"),
        ([ok, "-o", tmp / "o.png", "--params", '{"brightness": 3}'], "unknown parameter"),
        ([ok, "-o", tmp / "o.png", "--params", "nofile.json"], "neither a JSON object nor an existing file"),
        ([ok, "-o", tmp / "o.png", "--params", "{}", "-i", "warmer"], "not allowed with"),
        ([ok, "-o", tmp / "o.png", "--grid", tmp / "g.safetensors"], "no grid file"),
        ([ok, "-o", tmp / "o.png", "--grid", ok], "not a readable safetensors file"),
        ([ok, "-o", tmp / "o.png", "--model", "no-such-model"], "no retouch model"),
        ([ok, "-o", tmp / "o.png", "--quality", "0"], "out of range"),
        ([ok, "-o", tmp / "o.png", "--strength", "nan"], "not a finite number"),
        ([ok, "-o", tmp / "o.png", "--feather", "3"], "give --mask"),
        ([ok, "-o", tmp / "o.png", "--mask", tmp / "nomask.png"], "no such file"),
        ([tmp / "alpha.png", "-o", tmp / "o.jpg", "--params", "{}"], "JPEG has no alpha"),
        ([ok], "required"),
    ]


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    for argv, fragment in _bad_cases(tmp_path):
        status, _, err = run(argv)
        assert status == 2, (argv, err)
        assert err.startswith("retouch: error: ") and err.count("\n") == 1, err
        assert fragment in err, (fragment, err)
        assert "Traceback" not in err


def test_frame_folder_temporal_modes(astro, tmp_path):
    """Video frames: one key-frame grid for every frame; the deflicker evens out an exposure flicker."""
    from retouch_core.engine.temporal import flicker
    from retouch_core.formats.grid_files import RetouchGrid

    photo = np.asarray(Image.open(astro).resize((128, 128)), dtype=np.float64) / 255
    gains = [1.0, 1.06, 0.95, 1.04, 0.94, 1.0]
    source = tmp_path / "frames"
    source.mkdir()
    for t, gain in enumerate(gains):
        Image.fromarray(np.uint8(np.clip(photo * gain, 0, 1) * 255 + 0.5)).save(source / f"f{t:03d}.png")
    common = ["-i", "brighter", "--model", "rule-based"]
    status, _, err = run([source, "-o", tmp_path / "key", *common, "--temporal", "key frame", "--key-frame", "2",
                          "--save-grid", tmp_path / "grids"])
    assert status == 0, err
    grids = [RetouchGrid.load(p).grid for p in sorted((tmp_path / "grids").iterdir())]
    assert len(grids) == len(gains) and all(torch.equal(g, grids[0]) for g in grids)

    def clip(folder):
        return torch.stack([torch.from_numpy(pixels(folder / f"f{t:03d}.png")).permute(2, 0, 1) for t in range(len(gains))])

    stable = torch.from_numpy(photo).permute(2, 0, 1).expand(len(gains), -1, -1, -1)
    status, _, err = run([source, "-o", tmp_path / "steady", *common, "--temporal", "smoothed + deflicker"])
    assert status == 0, err
    assert flicker(clip(tmp_path / "steady"), stable) < 0.3 * flicker(clip(source), stable)
    status, _, err = run([source, "-o", tmp_path / "x", "--params", '{"exposure": 0.3}', "--temporal", "smoothed"])
    assert status == 2 and "--temporal smooths a model's per-frame predictions" in err

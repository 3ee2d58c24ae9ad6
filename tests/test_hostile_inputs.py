"""Hostile and careless inputs (issue 16): nothing lost, nothing run, nothing unbounded.

Every case is generated here and checked for: a clear message naming the file and the problem,
a non-zero exit for the CLI, no file changed that the user did not ask to write (a snapshot of
the folder before and after), and bounded memory, shown by the refusal happening before the
decoder or the allocation (the decoder is replaced by one that fails the test if it runs).
"""

import contextlib
import hashlib
import importlib
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from retouch_core.apps.cli import main
from retouch_core.engine.grid import grid_from_affine, identity_grid
from retouch_core.engine.lut import grid_to_lut, identity_lattice
from retouch_core.formats import image_files
from retouch_core.formats.grid_files import RetouchGrid
from retouch_core.formats.image_files import ImageFormatError, ImageTooLargeError, read_image, remove_stale_temporaries, write_image
from retouch_core.language.matcher import parse_instruction
from retouch_core.models import DEFAULT_MODEL_FILE, load_retouch_model

pytestmark = pytest.mark.usefixtures("one_thread")

WARM = torch.tensor([[1.1, 0.0, 0.0, 0.02], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.85, 0.0]])


# ------------------------------------------------------------------------------------ helpers
def run(argv):
    """``retouch`` in-process -> (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` (hidden ones included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def assert_refused(argv, folder: Path, *fragments, status=2):
    """The command exits ``status`` with one error line holding ``fragments`` and writes nothing."""
    before = snapshot(folder)
    code, out, err = run(argv)
    assert code == status, (argv, out, err)
    assert err.startswith("retouch: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert str(fragment) in err, (fragment, err)
    assert snapshot(folder) == before, "a file was written or changed"
    return err


def photo(path: Path, size=(48, 32), colour=(120, 90, 60)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture(scope="module")
def warm_grid(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("grid") / "warm.safetensors"
    RetouchGrid(grid_from_affine(WARM, 4, 2, 2), label="warm").save(path)
    return path


# ------------------------------------------------------------------------- data loss: the CLI
def test_no_output_may_replace_an_input_or_another_output(tmp_path, warm_grid):
    a, b = photo(tmp_path / "a.jpg"), tmp_path / "b.jpg"
    mask = photo(tmp_path / "mask.png", colour=(255, 255, 255))
    grid = tmp_path / "g.safetensors"
    grid.write_bytes(warm_grid.read_bytes())
    (tmp_path / "sub").mkdir()
    os.link(a, tmp_path / "hard.jpg")  # one file, two names
    (tmp_path / "soft.jpg").symlink_to(a)
    cases = [
        ([a, "-o", b, "--grid", grid, "--save-grid", a], "--save-grid", "same file as INPUT"),
        ([a, "-o", b, "--grid", grid, "--save-grid", b], "--save-grid", "same file as OUTPUT", "also writes"),
        ([a, "-o", b, "--grid", grid, "--save-grid", tmp_path / "c.jpg"], "must end in .safetensors"),
        ([a, "-o", tmp_path / "o.safetensors.png", "--grid", grid, "--save-grid", grid], "same file as --grid"),
        ([a, "-o", mask, "--grid", grid, "--mask", mask], "OUTPUT", "same file as --mask"),
        ([a, "-o", tmp_path / "hard.jpg", "--grid", grid], "same file as INPUT"),
        ([a, "-o", tmp_path / "soft.jpg", "--grid", grid], "same file as INPUT"),
        ([a, "-o", tmp_path / "sub" / ".." / "a.jpg", "--grid", grid], "same file as INPUT"),
        ([tmp_path / "hard.jpg", "-o", a, "--grid", grid], "same file as INPUT"),
    ]
    for argv, *fragments in cases:
        assert_refused(argv, tmp_path, *fragments)


def test_save_grid_and_output_may_not_be_one_file(tmp_path, warm_grid):
    a = photo(tmp_path / "a.png")
    out = tmp_path / "same.safetensors"
    # a grid file name as OUTPUT is refused by its suffix, so the two can never collide
    assert_refused([a, "-o", out, "--grid", warm_grid, "--save-grid", out], tmp_path, "unknown image type")


def test_model_file_is_never_overwritten_by_save_grid(tmp_path):
    a = photo(tmp_path / "a.png")
    model = tmp_path / "m.safetensors"
    model.write_bytes(DEFAULT_MODEL_FILE.read_bytes())
    assert_refused([a, "-o", tmp_path / "o.png", "--model", model, "--save-grid", model], tmp_path, "same file as --model")


def test_folder_run_refuses_before_any_work_when_an_output_is_an_input(tmp_path, warm_grid):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir(), out.mkdir()
    photo(source / "a.png"), photo(source / "b.png")
    mask = photo(out / "b.png", colour=(255, 255, 255))  # the mask sits where b's output goes
    assert_refused([source, "-o", out, "--grid", warm_grid, "--mask", mask], tmp_path, "OUTPUT", "same file as --mask")
    assert not (out / "a.png").exists()  # refused before the first image, not when reaching b
    (tmp_path / "link").symlink_to(source)
    assert_refused([source, "-o", tmp_path / "link", "--grid", warm_grid], tmp_path, "input folder")


# ----------------------------------------------------------------- numbered files of the nodes
def test_saved_files_are_numbered_like_saveimage_and_never_overwritten(pack, tmp_path):
    luts = importlib.import_module(f"{pack.__name__}.nodes.luts")
    grid = RetouchGrid(grid_from_affine(WARM, 4, 2, 2), label="warm")
    first, second = (luts.export_cube(grid, tmp_path, "look", size=3) for _ in range(2))
    assert (first.name, second.name) == ("look_00001.cube", "look_00002.cube")
    kept = second.read_text()
    first.unlink()  # a gap: the next number is the highest + 1, not the count + 1
    third = luts.export_cube(grid, tmp_path, "look", size=3)
    assert third.name == "look_00003.cube" and second.read_text() == kept
    second.unlink()  # numbers 1 and 2 free: still after the highest, as SaveImage
    assert luts.export_cube(grid, tmp_path, "look", size=3).name == "look_00004.cube"
    # glob characters are a literal name
    names = [luts.export_cube(grid, tmp_path, "look[v2]", size=3).name for _ in range(2)]
    assert names == ["look[v2]_00001.cube", "look[v2]_00002.cube"]
    # other names sharing the prefix do not count; a file in the way is skipped, not replaced
    (tmp_path / "lookalike_00009.cube").write_text("x")
    (tmp_path / "look_00005.cube").mkdir()
    assert luts.export_cube(grid, tmp_path, "look", size=3).name == "look_00006.cube"
    # subfolders in the prefix, as SaveImage
    path = luts.export_cube(grid, tmp_path, "looks/warm", size=3)
    assert path == tmp_path / "looks" / "warm_00001.cube"


@pytest.mark.parametrize("prefix", ["../x", "a/../../x", "/tmp/x", "..", "./"])
def test_a_prefix_never_leads_out_of_its_folder(pack, tmp_path, prefix):
    luts = importlib.import_module(f"{pack.__name__}.nodes.luts")
    output_files = importlib.import_module(f"{pack.__name__}.nodes.output_files")
    folder = tmp_path / "luts"
    folder.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="inside the output folder"):
        luts.export_cube(RetouchGrid(identity_grid()), folder, prefix, size=3)
    with pytest.raises(ValueError, match="inside the output folder"):
        with output_files.new_output_file(folder, prefix, ".safetensors"):
            pass
    assert snapshot(tmp_path) == before and not Path("/tmp/x_00001.cube").exists()


def test_a_failed_write_leaves_no_reserved_file(pack, tmp_path):
    output_files = importlib.import_module(f"{pack.__name__}.nodes.output_files")
    with pytest.raises(RuntimeError), output_files.new_output_file(tmp_path, "g", ".safetensors"):
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------- animations and pages
def _animated(path: Path, fmt: str) -> Path:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return path


def test_animations_and_multi_page_files_are_refused(tmp_path):
    files = {
        "anim.webp": _animated(tmp_path / "anim.webp", "WEBP"),
        "anim.png": _animated(tmp_path / "anim.png", "PNG"),  # APNG
        "pages_pillow.tif": _animated(tmp_path / "pages_pillow.tif", "TIFF"),
    }
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((3, 16, 16), np.uint16), photometric="minisblack",
                     metadata=None)  # three 16-bit pages
    files["pages.tif"] = tmp_path / "pages.tif"
    for name, path in files.items():
        with pytest.raises(ImageFormatError, match=r"(frames|pages)") as err:
            read_image(path)
        assert str(path) in str(err.value)
        assert_refused([path, "-o", tmp_path / f"o_{name}.png", "--params", "{}"], tmp_path, path, "first")


def test_a_tiff_with_a_preview_page_is_one_image(tmp_path):
    path = tmp_path / "with_preview.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.full((16, 16, 3), 200, np.uint8), photometric="rgb", metadata=None)
        tif.write(np.full((4, 4, 3), 200, np.uint8), photometric="rgb", subfiletype=1, metadata=None)  # reduced
    image, _ = read_image(path)
    assert image.shape == (1, 3, 16, 16)


# ---------------------------------------------------------------------------- pixel limit
def _tiff_header(path: Path, width: int, height: int) -> Path:
    """A few hundred bytes claiming a ``width`` x ``height`` 8-bit grey image (data absent)."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 512), (277, 3, 1), (278, 4, height), (279, 4, width * height)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in entries) + b"\0\0\0\0"
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + ifd + b"\0" * 64)
    return path


def _png_header(path: Path, width: int, height: int, depth: int = 8) -> Path:
    """A valid PNG signature and IHDR claiming ``width`` x ``height``, with one tiny IDAT."""
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decoding fails the test: refusals must come from the header alone."""
    def forbidden(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", forbidden)
    monkeypatch.setattr(Image.Image, "load", forbidden)
    monkeypatch.setattr(image_files, "_read_png16", forbidden)


def test_huge_claims_are_refused_before_decoding(tmp_path, no_decoding):
    files = [_tiff_header(tmp_path / "huge.tif", 15000, 15000), _png_header(tmp_path / "huge.png", 20000, 20000),
             _png_header(tmp_path / "huge16.png", 20000, 20000, depth=16)]
    for path in files:
        with pytest.raises(ImageTooLargeError, match="megapixels, more than the limit") as err:
            read_image(path)
        assert str(path) in str(err.value) and "--max-pixels" in str(err.value)
    ok = tmp_path / "ok.png"
    ok.write_bytes(b"\x89PNG\r\n\x1a\n")  # never read: the mask is refused first
    for path in files:
        assert_refused([path, "-o", tmp_path / "o.png", "--params", "{}"], tmp_path, path, "more than the limit")
        assert_refused([ok, "-o", tmp_path / "o.png", "--params", "{}", "--mask", path], tmp_path, path, "more than the limit")


def test_the_pixel_limit_is_configurable(tmp_path, monkeypatch, warm_grid):
    path = photo(tmp_path / "a.png", size=(100, 60))
    with pytest.raises(ImageTooLargeError, match="100x60"):
        read_image(path, max_pixels=5999)
    assert read_image(path, max_pixels=6000)[0].shape == (1, 3, 60, 100)
    assert_refused([path, "-o", tmp_path / "o.png", "--grid", warm_grid, "--max-pixels", "5000"], tmp_path, "100x60")
    # a limit above Pillow's own bomb threshold is honoured (Pillow's check is lifted to match)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    status, _, err = run([path, "-o", tmp_path / "o.png", "--grid", warm_grid, "--max-pixels", "10000"])
    assert status == 0, err
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    assert read_image(path)[0].shape[-1] == 100  # the default is Pillow's default, not its global of the moment


# ------------------------------------------------------------------------------ folder runs
def test_folder_run_tries_every_file_lists_failures_and_resumes(tmp_path, warm_grid):
    source, out, grids = tmp_path / "in", tmp_path / "out", tmp_path / "grids"
    source.mkdir()
    photo(source / "a.png"), photo(source / "c.jpg")
    Image.new("RGB", (16, 16)).save(source / "bad_exif.jpg", exif=b"Exif\0\0" + b"\xff" * 40)  # kept, EXIF dropped
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    _animated(source / "anim.webp", "WEBP")
    _tiff_header(source / "huge.tif", 15000, 15000)
    photo(source / "d.png")
    grids.mkdir()
    (grids / "d.png.safetensors").mkdir()  # an unwritable grid file: a folder is in the way
    status, stdout, err = run([source, "-o", out, "--grid", warm_grid, "--save-grid", grids])
    assert status == 1 and "Traceback" not in err
    summary = err[err.index("images failed"):]
    for bad in ("broken.png", "anim.webp", "huge.tif", "d.png"):
        assert bad in summary, (bad, summary)
    for good in ("a.png", "c.jpg", "bad_exif.jpg"):
        assert good not in summary
        assert read_image(out / good)[0].shape[-2:] == read_image(source / good)[0].shape[-2:]
    assert "damaged EXIF block" in err
    assert "3 of 7 images written" in stdout or "4 of 7 images written" in stdout
    # resume: finished images are left alone, the failed one is tried again
    (grids / "d.png.safetensors").rmdir()
    done = {name: (out / name).stat().st_mtime_ns for name in ("a.png", "c.jpg")}
    status, stdout, err = run([source, "-o", out, "--grid", warm_grid, "--save-grid", grids, "--skip-existing"])
    assert "already done" in stdout and status == 1  # the three bad files still fail
    assert {name: (out / name).stat().st_mtime_ns for name in done} == done
    assert (grids / "d.png.safetensors").is_file() and (out / "d.png").is_file()


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path, warm_grid):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid is now free: a temporary it left is stale
    stale = [tmp_path / f".ir{child.pid}-0a1b2c3d.part", tmp_path / f".a.png.{child.pid}.part"]
    live = [tmp_path / f".ir{os.getpid()}-0a1b2c3d.part", tmp_path / ".download.part", tmp_path / "x.part"]
    for path in stale + live:
        path.write_bytes(b"half")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in live)
    # the CLI cleans the output folder on its next run
    stale[0].write_bytes(b"half")
    assert run([photo(tmp_path / "a.png"), "-o", tmp_path / "b.png", "--grid", warm_grid])[0] == 0
    assert not stale[0].exists()


def test_a_long_valid_output_name_still_works(tmp_path):
    name = "x" * 251 + ".png"  # 255 bytes: the longest name most file systems allow
    write_image(tmp_path / name, torch.rand(1, 3, 8, 8))
    assert [p.name for p in tmp_path.iterdir()] == [name]


# ----------------------------------------------------------------------------- model inputs
@pytest.mark.parametrize("name", ["rule-based", "default"])
def test_every_model_entry_point_refuses_integer_images(name):
    model = load_retouch_model(name)
    uint8 = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    for call in (lambda: model.predict(uint8, "warmer"), lambda: model(uint8, "warmer")):
        with pytest.raises(TypeError, match="floating-point"):
            call()
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        model.predict(torch.rand(2, 3, 16, 16), "warmer")


def test_student_refuses_integer_images(tmp_path):
    from distill_helpers import tiny_student

    model = load_retouch_model(tiny_student()[1].save(tmp_path / "s.safetensors"))
    with pytest.raises(TypeError, match="floating-point"):
        model.predict(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "warmer")


# ---------------------------------------------------------------------- code from model files
def _rewrite(src: Path, dst: Path, edit_metadata=None, edit_tensors=None) -> Path:
    with safe_open(str(src), framework="pt") as f:
        metadata, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    if edit_metadata:
        edit_metadata(metadata)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


@pytest.fixture(scope="module")
def student_file(tmp_path_factory):
    from distill_helpers import tiny_student

    return tiny_student()[1].save(tmp_path_factory.mktemp("student") / "student.safetensors")


def _with_json(key, edit):
    """A metadata mutation that edits the JSON entry ``key`` in place."""
    def apply(metadata):
        value = json.loads(metadata[key])
        edit(value)
        metadata[key] = json.dumps(value)
    return apply


def test_a_model_file_can_never_run_code(student_file, tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dynamic

    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import CLIPTokenizer as EvilTokenizer\n"
    imported = []
    monkeypatch.setattr(dynamic, "get_class_from_dynamic_module", lambda *a, **k: imported.append(a) or 1 / 0)

    def auto_map(files):
        config = json.loads(files["tokenizer_config.json"])
        config["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
        config["tokenizer_class"] = "EvilTokenizer"
        files["tokenizer_config.json"] = json.dumps(config)
        files["tokenization_evil.py"] = code

    def auto_map_only(files):
        config = json.loads(files["tokenizer_config.json"])
        config["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
        files["tokenizer_config.json"] = json.dumps(config)

    def foreign_class(files):
        config = json.loads(files["tokenizer_config.json"])
        config["tokenizer_class"] = "EvilTokenizer"
        files["tokenizer_config.json"] = json.dumps(config)

    cases = {
        "with_code": (_with_json("tokenizer", auto_map), "tokenization_evil.py"),
        "auto_map": (_with_json("tokenizer", auto_map_only), "auto_map"),
        "class": (_with_json("tokenizer", foreign_class), "EvilTokenizer"),
        "config_auto_map": (_with_json("config", lambda c: c["text_encoder"].update(
            auto_map={"AutoModel": "modeling_evil.EvilModel"})), "auto_map"),
    }
    for name, (edit, fragment) in cases.items():
        path = _rewrite(student_file, tmp_path / f"{name}.safetensors", edit)
        with pytest.raises(ValueError, match=fragment) as err:
            load_retouch_model(path)
        assert str(path) in str(err.value)
        ok = photo(tmp_path / "ok.png")
        assert_refused([ok, "-o", tmp_path / "o.png", "--model", path], tmp_path, path, fragment)
    assert not marker.exists() and not imported


# ------------------------------------------------------------------------- sizes from files
def _lite_with(tmp_path, name, **changes):
    def edit(metadata):
        config = json.loads(metadata["config"])
        config.update(changes)
        metadata["config"] = json.dumps(config)
    return _rewrite(DEFAULT_MODEL_FILE, tmp_path / f"{name}.safetensors", edit)


@pytest.fixture
def no_allocation(monkeypatch):
    """Building a model for real fails the test: only meta-device (shape) builds may run."""
    real_init = torch.nn.Conv2d.__init__

    def guarded(self, *args, **kwargs):
        if torch.empty(0).device.type != "meta" and kwargs.get("device") is None:
            raise AssertionError("a layer was allocated before the config was checked")
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Conv2d, "__init__", guarded)


@pytest.mark.parametrize("changes, fragment", [
    ({"input_size": 100000}, "input_size must be an integer from 16 to 2048"),
    ({"width": 0}, "width must be an integer from 1"),
    ({"width": -8}, "width must be an integer from 1"),
    ({"width": "8"}, "width must be an integer"),
    ({"grid_depth": 2.5}, "grid_depth must be an integer"),
    ({"input_size": 250}, "multiple of 16"),
    ({"attributes": "warm"}, "attributes must be a list"),
    ({"layers": 3}, "unknown lite config entries"),
    ({"width": 64}, "weights do not fit"),  # in bounds, but not what the weights are
    ({"auto_map": {"x": "y"}}, "names code to import"),
])
def test_lite_configs_are_checked_before_allocating(tmp_path, no_allocation, changes, fragment):
    path = _lite_with(tmp_path, "bad", **changes)
    with pytest.raises(ValueError, match=fragment) as err:
        load_retouch_model(path)
    assert str(path) in str(err.value)


def test_lite_config_missing_or_not_json(tmp_path):
    cases = {"missing": lambda m: m.pop("config"), "not_json": lambda m: m.update(config="{"),
             "list": lambda m: m.update(config="[1]"), "deep": lambda m: m.update(config="[" * 5000 + "]" * 5000)}
    for name, edit in cases.items():
        path = _rewrite(DEFAULT_MODEL_FILE, tmp_path / f"{name}.safetensors", edit)
        with pytest.raises(ValueError, match="config") as err:
            load_retouch_model(path)
        assert str(path) in str(err.value)


@pytest.mark.parametrize("edit, fragment", [
    (_with_json("config", lambda c: c["unet"].update(block_out_channels=[40000, 40000])), "weights do not fit"),
    (_with_json("config", lambda c: c["student"].update(resolution=100000)), "resolution must be an integer"),
    (_with_json("config", lambda c: c["student"]["adapter"].update(grid_height=0)), "grid_height must be an integer"),
    (_with_json("config", lambda c: c["unet"].update(layers_per_block=10**6)), "layers_per_block"),
    (_with_json("config", lambda c: c["codec"].update(factor=0)), "not a valid student file"),
    (_with_json("config", lambda c: c.pop("unet")), "lacks the entry 'unet'"),
    (_with_json("config", lambda c: c["student"].update(colour="red")), "unexpected keyword"),
    (lambda m: m.pop("tokenizer"), "lacks tokenizer"),
])
def test_student_configs_are_checked_before_allocating(student_file, tmp_path, edit, fragment):
    path = _rewrite(student_file, tmp_path / "bad.safetensors", edit)
    with pytest.raises(ValueError, match=fragment) as err:
        load_retouch_model(path)
    assert str(path) in str(err.value)


def test_lut_and_grid_sizes_are_bounded(pack, tmp_path):
    for size in (1000, 1, 257):
        with pytest.raises(ValueError, match="LUT size must be an integer from 2 to 256"):
            grid_to_lut(identity_grid(), size=size)
        with pytest.raises(ValueError, match="LUT size"):
            identity_lattice(size)
    luts = importlib.import_module(f"{pack.__name__}.nodes.luts")
    with pytest.raises(ValueError, match="LUT size"):
        luts.export_cube(RetouchGrid(identity_grid()), tmp_path, "big", size=1000)
    assert list(tmp_path.iterdir()) == []
    cube = tmp_path / "huge.cube"
    cube.write_text("LUT_3D_SIZE 100000\n0 0 0\n")
    with pytest.raises(ValueError, match="LUT_3D_SIZE"):
        luts.import_cube(cube)


# ------------------------------------------------------------------- damaged grid files (CLI)
def _grid_file(path: Path, tensors: dict, **metadata) -> Path:
    save_file(tensors, str(path), metadata={"format": "instantretouch-grid", **metadata})
    return path


def _damaged_grids(tmp: Path) -> list[tuple[Path, str]]:
    ok = identity_grid(depth=2, height=2, width=2)
    guide_part = {"guide.ccm": torch.eye(3)[None]}
    return [
        (_grid_file(tmp / "int.safetensors", {"grid": ok.to(torch.int32)}), "I32 values, not floats"),
        (_grid_file(tmp / "bool.safetensors", {"grid": ok.bool()}), "BOOL values, not floats"),
        (_grid_file(tmp / "guide.safetensors", {"grid": ok, **guide_part}), "guide lacks ccm_bias"),
        (_grid_file(tmp / "zero.safetensors", {"grid": ok}, source_size="[0, 5]"), "source_size must be"),
        (_grid_file(tmp / "text.safetensors", {"grid": ok}, source_size='["a", "b"]'), "source_size must be"),
        (_grid_file(tmp / "notjson.safetensors", {"grid": ok}, source_size="[1,"), "source_size is not JSON"),
        (_grid_file(tmp / "deep.safetensors", {"grid": ok}, source_size="[" * 5000), "source_size is not JSON"),
        (_grid_file(tmp / "shape.safetensors", {"grid": torch.zeros(1, 12, 2, 2)}), "(B, 12, D, H_g, W_g)"),
        (_grid_file(tmp / "wide.safetensors", {"grid": torch.zeros(1, 12, 1, 1, 2000)}), "exceeds 1024"),
        (_grid_file(tmp / "nan.safetensors", {"grid": ok * float("nan")}), "NaN"),
        (_grid_file(tmp / "nogrid.safetensors", {"other": ok}), "not an InstantRetouch grid file"),
    ]


def test_damaged_grid_files_are_one_line_messages(tmp_path):
    files = tmp_path / "grids"
    files.mkdir()
    ok = photo(tmp_path / "ok.png")
    for path, fragment in _damaged_grids(files):
        with pytest.raises(ValueError, match=None) as err:
            RetouchGrid.load(path)
        assert str(path) in str(err.value) and fragment in str(err.value), (fragment, err.value)
        assert_refused([ok, "-o", tmp_path / "o.png", "--grid", path], tmp_path, path, fragment)


# ----------------------------------------------------------------- other CLI input, messages
def test_numbers_and_json_out_of_range_are_messages(tmp_path, warm_grid):
    ok = photo(tmp_path / "ok.png")
    mask = photo(tmp_path / "mask.png", colour=(255, 255, 255))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    out = tmp_path / "o.png"
    cases = [
        (["--grid", warm_grid, "--strength", "3e38"], "must be between -1 and 3"),
        (["--grid", warm_grid, "--strength", "-5"], "must be between -1 and 3"),
        (["--grid", warm_grid, "--mask", mask, "--feather", "1e300"], "must be between 0 and 256"),
        (["--params", "{" * 5000], "not valid JSON"),
        (["--params", '{"a":' * 5000 + "1" + "}" * 5000], "nested too deeply"),
        (["--params", deep], "nested too deeply"),
        (["--grid", warm_grid, "--max-pixels", "0"], "out of range"),
    ]
    for extra, fragment in cases:
        assert_refused([ok, "-o", out, *extra], tmp_path, fragment)
    status, _, err = run([ok, "-o", out, "--grid", warm_grid, "--mask", mask, "--feather", "1e-300"])
    assert status == 0, err  # a vanishing feather is no feather, not a crash


def test_echoed_labels_and_instructions_are_made_safe(tmp_path):
    ok = photo(tmp_path / "ok.png")
    label = "\x1b]0;pwned\x07\x1b[2J" + "L" * 10000
    grid = tmp_path / "g.safetensors"
    RetouchGrid(identity_grid(), label=label).save(grid)
    status, out, err = run([ok, "-o", tmp_path / "o.png", "--grid", grid])
    assert status == 0, err
    assert "\x1b" not in out and "\x07" not in out and max(map(len, out.splitlines())) < 1000
    status, out, err = run([ok, "-o", tmp_path / "o2.png", "--model", "rule-based", "-i", "warmer \x1b[31m" + "x" * 5000])
    assert status == 0, err
    assert "\x1b" not in out and max(map(len, out.splitlines())) < 2000


def test_plan_notes_name_the_direction_applied():
    for text, way in [("no contrast", "down"), ("too much contrast", "down"), ("contrast", "up")]:
        plan = parse_instruction(text)
        applied = plan.to_params()["contrast"]
        assert f"read as 'contrast {way}'" in plan.describe(), plan.describe()
        assert (applied > 0) == (way == "up")


def test_the_reported_bit_depth_is_the_written_one(tmp_path, warm_grid):
    import png

    source = tmp_path / "deep.png"
    png.Writer(8, 8, greyscale=False, bitdepth=16).write(source.open("wb"), np.full((8, 24), 40000, np.uint16).tolist())
    status, out, _ = run([source, "-o", tmp_path / "o.jpg", "--grid", warm_grid])
    assert status == 0 and "RGB 8-bit" in out and "16-bit" not in out
    status, out, _ = run([source, "-o", tmp_path / "o.png", "--grid", warm_grid])
    assert status == 0 and "RGB 16-bit" in out


# -------------------------------------------------------------------------- retouch-train
def test_training_commands_fail_with_messages_and_write_nothing(tmp_path, capsys):
    from retouch_training.cli import main as train_main

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("lr: [1\n")
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text("lr: abc\n")
    cases = [
        (["make-dataset", "--photos", tmp_path / "nope", "--out", tmp_path / "ds"], "no such folder"),
        (["train-lite", "--dataset", tmp_path / "nope", "--run", tmp_path / "run"], "manifest.jsonl not found"),
        (["train-lite", "--dataset", tmp_path / "nope", "--run", tmp_path / "run", "--config", bad_yaml], "not valid YAML"),
        (["train-lite", "--dataset", tmp_path / "nope", "--run", tmp_path / "run", "--config", wrong_type], "lr must be a float"),
    ]
    for argv, fragment in cases:
        before = snapshot(tmp_path)
        assert train_main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err, err
        assert snapshot(tmp_path) == before and not (tmp_path / "ds").exists() and not (tmp_path / "run").exists()

"""``retouch``: retouch photos from the command line.

    retouch photo.jpg -o out.jpg -i "warmer, lift the shadows a bit"
    retouch photo.png -o out.png                                  # auto mode
    retouch scan.tif -o out.tif --params '{"exposure": 0.5, "contrast": 10}'
    retouch photo.jpg -o out.jpg -i "cooler" --mask sky.png --feather 8
    retouch a.jpg -o a2.jpg -i "cinematic" --save-grid look.safetensors
    retouch b.jpg -o b2.jpg --grid look.safetensors --strength 0.5
    retouch shoot/ -o edited/ -i "brighter"                       # every image of a folder
    retouch shoot/ -o edited/ -i "brighter" --skip-existing       # resume an interrupted run
    retouch frames/ -o out/ -i "warmer" --temporal "smoothed + deflicker"   # video frames

The edit is one bilateral grid: an instruction (or none: auto mode) goes to a retouch model,
which predicts the grid on a low-resolution copy; ``--params`` fits the grid to a renderer
edit; ``--grid`` loads a saved one. The grid is then applied once at full resolution, and
the output keeps the input's bit depth, channels (grey, alpha) and colour profile.

Files written: OUTPUT (and --save-grid) only, never a file the command reads (checked before
any work, hard links included); a temporary ``.ir*.part`` file beside each output until it is
complete.

Exit status: 0 done, 1 some images of a folder failed (listed at the end), 2 usage or input
error (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from ..engine.blend import MAX_FEATHER
from ..engine.fit import downsample
from ..engine.guide import LUMA_WEIGHTS
from ..engine.retouch_grid import RetouchGrid
from ..engine.slicing import load_cpu_kernel_in_background
from ..engine.temporal import DEFAULT_SIGMA, TEMPORAL_MODES, THUMBNAIL_PIXELS, temporal_grid
from ..formats.image_files import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_QUALITY,
    SUFFIXES,
    ImageInfo,
    check_writable,
    format_for_path,
    output_bit_depth,
    read_image,
    read_pixels,
    remove_stale_temporaries,
    write_image,
    write_pixels,
)
from ..language.matcher import Plan
from ..language.params import RetouchParams
from ..models import BUILTIN_MODELS, RetouchModel, load_retouch_model
from ..models.predictors.rule_based import grid_from_params
from .banded import edit_in_place, small_copy, to_bit_depth

DEFAULT_MODEL = next(iter(BUILTIN_MODELS))  # the embedded learned model when the package ships one
IMAGE_SUFFIXES = frozenset(s for suffixes in SUFFIXES.values() for s in suffixes)
GRID_SUFFIX = ".safetensors"
STRENGTH_RANGE = (-1.0, 3.0)  # as the ComfyUI Grid Strength node: beyond it colours only clip
ECHO_LIMIT = 300  # characters of a label or instruction printed back
# Exceptions that mean "bad input", reported as one line; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (ValueError, OSError, MemoryError)


class UsageError(Exception):
    """A mistake in the command line; reported as one line, exit status 2.

    Example:
        >>> try:
        ...     build_parser().parse_args(["photo.jpg"])  # no -o
        ... except UsageError as err:
        ...     print(f"retouch: error: {err}")
        retouch: error: the following arguments are required: -o/--output
    """


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, for one-line errors."""

    def error(self, message):
        raise UsageError(message)


def _number(minimum: float | None = None, maximum: float | None = None, kind=float):
    """argparse type: a finite number (``kind``) in [minimum, maximum]; a maximum needs a minimum."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f">= {minimum:g}" if maximum is None else f"between {minimum:g} and {maximum:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bounds}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``retouch`` arguments; a mistake raises :class:`UsageError` instead of exiting.

    Example:
        >>> args = build_parser().parse_args(["photo.jpg", "-o", "out.jpg", "-i", "warmer"])
        >>> args.input.name, args.instruction, args.strength, args.quality == DEFAULT_QUALITY, args.temporal
        ('photo.jpg', 'warmer', 1.0, True, 'per-frame')
        >>> build_parser().parse_args(["photo.jpg", "-o", "out.jpg", "--strength", "5"])
        Traceback (most recent call last):
        ...
        retouch_core.apps.cli.UsageError: argument --strength: 5 is out of range: must be between -1 and 3
        >>> build_parser().parse_args(["photo.jpg", "-o", "out.jpg", "-i", "warmer", "--params", "{}"])
        Traceback (most recent call last):
        ...
        retouch_core.apps.cli.UsageError: argument --params: not allowed with argument -i/--instruction
    """
    parser = _Parser(
        prog="retouch",
        description="Retouch photos with an instruction, renderer parameters or a saved grid.",
        epilog="Without -i, --params or --grid the model edits automatically (auto mode).",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="image file, or a folder of images")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT",
                        help="output file (its suffix sets the format), or a folder when INPUT is one")
    edit = parser.add_mutually_exclusive_group()
    edit.add_argument("-i", "--instruction", metavar="TEXT", help='what to do, e.g. "warmer, less contrast"')
    edit.add_argument("--params", metavar="JSON_OR_FILE",
                      help='renderer parameters: a JSON object such as \'{"exposure": 0.5}\' or a .json file')
    edit.add_argument("--grid", type=Path, metavar="G.safetensors", help="apply a saved grid instead of predicting one")
    parser.add_argument("--strength", type=_number(*STRENGTH_RANGE), default=1.0, metavar="S",
                        help="0 = input unchanged, 1 = the edit (default), >1 exaggerates, <0 inverts "
                        f"({STRENGTH_RANGE[0]:g} to {STRENGTH_RANGE[1]:g})")
    parser.add_argument("--mask", type=Path, metavar="MASK_IMAGE",
                        help="greyscale image of any size: white = edit, black = keep")
    parser.add_argument("--feather", type=_number(0.0, MAX_FEATHER), default=0.0, metavar="PX",
                        help=f"soften the mask edge (Gaussian sigma in pixels, 0 to {MAX_FEATHER:g}; default 0)")
    parser.add_argument("--model", metavar="NAME_OR_PATH",
                        help=f"retouch model for instructions and auto mode (default: {DEFAULT_MODEL})")
    parser.add_argument("--save-grid", type=Path, metavar="G.safetensors",
                        help="also save the grid that made the output (a folder when INPUT is one)")
    parser.add_argument("--temporal", choices=TEMPORAL_MODES, default="per-frame",
                        help="INPUT is a folder of video frames (in name order): 'key frame' edits all frames "
                        "like --key-frame, 'smoothed' low-passes the per-frame grids over time, 'smoothed + "
                        "deflicker' also evens out the brightness (default: per-frame, each image on its own)")
    parser.add_argument("--temporal-sigma", type=_number(0.0), default=DEFAULT_SIGMA, metavar="FRAMES",
                        help=f"smoothing: Gaussian sigma in frames (default {DEFAULT_SIGMA:g})")
    parser.add_argument("--key-frame", type=_number(0, None, int), default=0, metavar="N",
                        help="'key frame': index of the frame in name order (default 0)")
    parser.add_argument("--quality", type=_number(1, 100, int), default=DEFAULT_QUALITY, metavar="Q",
                        help=f"JPEG/WebP quality 1-100 (default {DEFAULT_QUALITY})")
    parser.add_argument("--max-pixels", type=_number(1, None, int), default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"refuse images (and masks) larger than N pixels before decoding them (default "
                        f"{DEFAULT_MAX_PIXELS}, Pillow's limit); raise it only for files you trust")
    parser.add_argument("--skip-existing", action="store_true",
                        help="folder mode: leave images whose output already exists (resume a run)")
    return parser


# ------------------------------------------------------------------------------ the edit
@dataclass(frozen=True)
class Recipe:
    """How every image is edited, resolved once from the arguments.

    Exactly one of ``model`` (instruction or auto mode), ``params`` and ``grid`` is set.
    ``mask`` is (1, 1, h, w) in [0, 1] at the mask file's own size.

    Example:
        >>> recipe = Recipe(params=load_params('{"exposure": 0.5}'), strength=0.5)
        >>> recipe.model is None and recipe.grid is None, recipe.params.exposure, recipe.strength, recipe.mask
        (True, 0.5, 0.5, None)
    """

    model: RetouchModel | None = None
    instruction: str = ""
    params: RetouchParams | None = None
    grid: RetouchGrid | None = None
    strength: float = 1.0
    mask: torch.Tensor | None = None
    feather: float = 0.0


@dataclass
class Result:
    """What happened to one image: the plan (model mode), the grid used and stage timings in ms.

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> result = Result(ImageInfo("PNG", 8, "RGB"), (8, 12), RetouchGrid(identity_grid(), label="identity"))
        >>> result.size, result.plan, result.timings  # (H, W); no model, no plan; retouch_file fills the timings
        ((8, 12), None, {})
    """

    info: ImageInfo
    size: tuple[int, int]
    grid: RetouchGrid
    plan: Plan | None = None
    timings: dict[str, float] = field(default_factory=dict)


def load_params(text: str) -> RetouchParams:
    """``--params``: an inline JSON object, or the path of a JSON file.

    Example:
        >>> load_params('{"exposure": 0.5, "contrast": 10}').to_json()  # the sliders left at 0 are implied
        '{"contrast": 10.0, "exposure": 0.5}'
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     look = Path(tmp, "look.json")
        ...     _ = look.write_text('{"temperature": 20}', encoding="utf-8")
        ...     load_params(str(look)).temperature
        20.0
        >>> load_params('{"exposure": 99}')
        Traceback (most recent call last):
        ...
        retouch_core.apps.cli.UsageError: --params: invalid RetouchParams: exposure=99.0 outside [-5, 5]
    """
    if text.lstrip().startswith("{"):
        source = text
    else:
        path = Path(text)
        if not path.is_file():
            raise UsageError(f"--params: {text!r} is neither a JSON object nor an existing file")
        source = path.read_text(encoding="utf-8")
    try:
        return RetouchParams.from_json(source)
    except ValueError as err:
        raise UsageError(f"--params: {err}") from None


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) -> (1, 1, H, W) grey.

    Example:
        >>> luma(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten()  # pure red: its weight, 0.299
        tensor([0.2990])
        >>> luma(torch.rand(1, 3, 8, 12)).shape
        torch.Size([1, 1, 8, 12])
    """
    weights = torch.tensor(LUMA_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True).clamp(0, 1)


def split_channels(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(1, C, H, W), C in 1-4 -> RGB (1, 3, H, W) (grey repeated) and alpha (1, 1, H, W) or None.

    Example:
        >>> grey_alpha = torch.rand(1, 2, 8, 12)  # an LA file
        >>> rgb, alpha = split_channels(grey_alpha)
        >>> rgb.shape, alpha.shape, torch.equal(rgb[:, 2], grey_alpha[:, 0]), torch.equal(alpha, grey_alpha[:, 1:])
        (torch.Size([1, 3, 8, 12]), torch.Size([1, 1, 8, 12]), True, True)
        >>> split_channels(torch.rand(1, 3, 8, 12))[1] is None  # RGB: no alpha
        True
    """
    channels = image.shape[1]
    colour = image[:, :3] if channels >= 3 else image[:, :1]
    alpha = image[:, -1:] if channels in (2, 4) else None
    return colour.expand(-1, 3, -1, -1) if colour.shape[1] == 1 else colour, alpha


def join_channels(rgb: torch.Tensor, alpha: torch.Tensor | None, grey: bool) -> torch.Tensor:
    """Inverse of :func:`split_channels`: back to the file's layout, the alpha untouched.

    A grey file stays grey: the edit's tone applies, any colour it adds is folded into grey
    (writing RGB would silently change the kind of file the user has).

    Example:
        >>> rgba = torch.rand(1, 4, 8, 12)
        >>> torch.equal(join_channels(*split_channels(rgba), grey=False), rgba)  # split, join: the same image
        True
        >>> grey_alpha = torch.rand(1, 2, 8, 12)
        >>> torch.allclose(join_channels(*split_channels(grey_alpha), grey=True), grey_alpha, atol=1e-6)
        True
        >>> join_channels(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1), None, grey=True).flatten()  # red, in grey
        tensor([0.2990])
    """
    colour = luma(rgb) if grey else rgb
    return colour if alpha is None else torch.cat([colour, alpha.to(colour.dtype)], dim=1)


def load_mask(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Mask file -> (1, 1, h, w) in [0, 1]; colour masks count by their grey, their alpha is ignored.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> rgba = np.zeros((4, 6, 4), dtype=np.uint8)
        >>> rgba[:, :3] = (255, 255, 255, 0)  # left: white, fully transparent
        >>> rgba[:, 3:] = (255, 0, 0, 255)  # right: opaque red
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Image.fromarray(rgba).save(Path(tmp, "mask.png"))
        ...     mask = load_mask(Path(tmp, "mask.png"))
        >>> mask.shape, mask[0, 0, 0]  # white = 1 despite alpha 0; red = its luma
        (torch.Size([1, 1, 4, 6]), tensor([1.0000, 1.0000, 1.0000, 0.2990, 0.2990, 0.2990]))
    """
    image, _ = read_image(path, max_pixels)
    return luma(split_channels(image)[0])


def make_grid(recipe: Recipe, rgb: torch.Tensor) -> tuple[RetouchGrid, Plan | None]:
    """The grid for a (1, 3, H, W) image, strength included, and the plan when a model made it
    (instruction or auto mode; None for --params and --grid).

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> half = RetouchGrid(grid_from_affine(0.5 * torch.eye(3, 4)), label="half")  # every value x 0.5
        >>> image = torch.ones(1, 3, 8, 12)
        >>> grid, plan = make_grid(Recipe(grid=half, strength=0.5), image)  # halfway from x1 to x0.5
        >>> grid.label, plan, grid.apply(image)[0, :, 0, 0]
        ('half x0.5', None, tensor([0.7500, 0.7500, 0.7500]))
        >>> grid, plan = make_grid(Recipe(model=load_retouch_model("rule-based"), instruction="brighter"), image / 2)
        >>> grid.label, plan.mode
        ('rule-based: exposure +0.6', 'style')
    """
    plan = None
    if recipe.grid is not None:
        grid = recipe.grid
    elif recipe.params is not None:
        grid = grid_from_params(rgb, recipe.params)
    else:
        grid, plan = recipe.model.predict(rgb, recipe.instruction)
    return (grid.scaled(recipe.strength) if recipe.strength != 1 else grid), plan


def apply_edit(rgb: torch.Tensor, grid: RetouchGrid, recipe: Recipe) -> torch.Tensor:
    """(1, 3, H, W) -> (1, 3, H, W) edited at full resolution, only under the mask if one is set.

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> half = RetouchGrid(grid_from_affine(0.5 * torch.eye(3, 4)))  # every value x 0.5
        >>> image = torch.ones(1, 3, 1, 2)
        >>> apply_edit(image, half, Recipe(grid=half))[0, 0]
        tensor([[0.5000, 0.5000]])
        >>> left = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)  # edit the left pixel, keep the right one
        >>> apply_edit(image, half, Recipe(grid=half, mask=left))[0, 0]
        tensor([[0.5000, 1.0000]])
    """
    if recipe.mask is None:
        return grid.apply(rgb)
    return grid.blend(rgb, recipe.mask, feather=recipe.feather)


@torch.no_grad()
def retouch_file(src: Path, dst: Path, recipe: Recipe, quality: int, grid_path: Path | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Result:
    """Read ``src``, edit it, write ``dst`` (and the grid to ``grid_path``); timings per stage.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> recipe = Recipe(model=load_retouch_model("rule-based"), instruction="brighter")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Image.new("RGB", (12, 8), (128, 128, 128)).save(Path(tmp, "a.png"))
        ...     result = retouch_file(Path(tmp, "a.png"), Path(tmp, "b.png"), recipe, 95, Path(tmp, "b.safetensors"))
        ...     with Image.open(Path(tmp, "b.png")) as out:
        ...         print(out.size, out.mode, out.getpixel((0, 0)), Path(tmp, "b.safetensors").is_file())
        (12, 8) RGB (155, 155, 155) True
        >>> result.size, result.grid.label, result.plan.mode, sorted(result.timings)
        ((8, 12), 'rule-based: exposure +0.6', 'style', ['apply', 'predict', 'read', 'write'])

        +0.6 EV in linear light: sRGB 128 is 0.216 linear, x 2 ** 0.6 = 0.327, which is sRGB 155.
    """
    clock = time.perf_counter()
    timings = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = 1000 * (now - clock)
        clock = now

    if recipe.mask is None:  # a per-pixel edit: done in bands, memory bounded at any size
        return retouch_file_in_bands(src, dst, recipe, quality, grid_path, max_pixels)
    image, info = read_image(src, max_pixels)
    check_writable(dst, info.mode)  # before the slow part
    rgb, alpha = split_channels(image)
    lap("read")
    grid, plan = make_grid(recipe, rgb)
    lap("load" if recipe.grid is not None else "fit" if recipe.params is not None else "predict")
    out = join_channels(apply_edit(rgb, grid, recipe), alpha, grey=info.mode in ("L", "LA"))
    lap("apply")
    write_image(dst, out, info, quality=quality)
    if grid_path is not None:
        grid.save(grid_path)
    lap("write")
    return Result(info, tuple(image.shape[-2:]), grid, plan, timings)


def retouch_file_in_bands(
    src: Path, dst: Path, recipe: Recipe, quality: int, grid_path: Path | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Result:
    """:func:`retouch_file` for edits without a mask, with the file's 8/16-bit pixels as the only
    full-size buffer (see :mod:`retouch_core.apps.banded`): same output, a fraction of the memory.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> recipe = Recipe(grid=RetouchGrid(grid_from_affine(0.5 * torch.eye(3, 4)), label="half"))
        >>> pixels = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Image.fromarray(pixels).save(Path(tmp, "a.png"))
        ...     result = retouch_file_in_bands(Path(tmp, "a.png"), Path(tmp, "bands.png"), recipe, 95)
        ...     image, info = read_image(Path(tmp, "a.png"))  # the whole-image path: one float image
        ...     write_image(Path(tmp, "whole.png"), recipe.grid.apply(image), info)
        ...     bands, whole = (np.asarray(Image.open(Path(tmp, name))) for name in ("bands.png", "whole.png"))
        >>> bands.shape, np.array_equal(bands, whole), bool(np.abs(bands - pixels / 2).max() <= 0.5)  # halved, rounded
        ((8, 12, 3), True, True)
    """
    clock, timings = time.perf_counter(), {}

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage], clock = 1000 * (time.perf_counter() - clock), time.perf_counter()

    pixels, info = read_pixels(src, max_pixels)
    check_writable(dst, info.mode)  # before the slow part
    size = pixels.shape[:2]
    lap("read")
    grid, plan = make_grid(recipe, split_channels(small_copy(pixels))[0])
    if recipe.grid is None:  # predicted on the small copy, made for the full image
        grid = replace(grid, source_size=size)
    grid.check_image(1, *size)
    lap("load" if recipe.grid is not None else "fit" if recipe.params is not None else "predict")

    def edit(band: torch.Tensor, rows: tuple[int, int]) -> torch.Tensor:
        rgb, alpha = split_channels(band)
        return join_channels(grid.apply(rgb, band=rows), alpha, grey=info.mode in ("L", "LA"))

    edit_in_place(pixels, edit)
    lap("apply")
    write_pixels(dst, to_bit_depth(pixels, output_bit_depth(dst, info)), info, quality=quality)
    if grid_path is not None:
        grid.save(grid_path)
    lap("write")
    return Result(info, size, grid, plan, timings)


# ------------------------------------------------------------------------------ reporting
def describe_recipe(recipe: Recipe, args: argparse.Namespace) -> str | None:
    """What the arguments set, printed first (a model's plan follows once it has read the text).

    Example:
        >>> parse = build_parser().parse_args
        >>> args = parse(["a.png", "-o", "b.png", "--params", '{"exposure": 0.5}', "--strength", "0.5"])
        >>> print(describe_recipe(build_recipe(args), args))
        params: {"exposure": 0.5}
        strength: 0.5
        >>> args = parse(["a.png", "-o", "b.png", "-i", "warmer", "--model", "rule-based"])
        >>> describe_recipe(build_recipe(args), args) is None  # nothing yet: the model's plan comes later
        True
    """
    lines = []
    if recipe.params is not None:
        lines.append(f"params: {recipe.params.to_json()}")
    elif recipe.grid is not None:
        lines.append(f"grid: {args.grid}" + (f" ({printable(recipe.grid.label)})" if recipe.grid.label else ""))
    if recipe.strength != 1:
        lines.append(f"strength: {recipe.strength:g}")
    if recipe.mask is not None:
        height, width = recipe.mask.shape[-2:]
        lines.append(f"mask: {args.mask} ({width}x{height}), feather {recipe.feather:g} px")
    return "\n".join(lines) or None


def describe_result(src: Path, dst: Path, result: Result) -> str:
    """One line: what was written (at the output's bit depth) and how long each stage took.

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> result = Result(ImageInfo("PNG", 16, "RGB"), (8, 12), RetouchGrid(identity_grid(), label="identity"),
        ...                 timings={"read": 1.2, "apply": 3.4})
        >>> describe_result(Path("a.png"), Path("b.jpg"), result)  # a 16-bit PNG written as JPEG: 8 bits
        'a.png -> b.jpg: 12x8 RGB 8-bit | edit: identity | read 1 ms, apply 3 ms (total 5 ms)'
    """
    height, width = result.size
    depth = output_bit_depth(dst, result.info)
    stages = ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in result.timings.items())
    total = sum(result.timings.values())
    return (f"{src.name} -> {dst}: {width}x{height} {result.info.mode} {depth}-bit"
            f" | edit: {printable(result.grid.label) or '?'} | {stages} (total {total:.0f} ms)")


def printable(text: str, limit: int = ECHO_LIMIT) -> str:
    """Text from files or the command line made safe to echo: control characters (terminal
    escape sequences) become spaces, and it is cut to ``limit`` characters; newlines are kept.

    Example:
        >>> print(printable("warmer" + chr(27) + "[2J" + chr(10) + "next line"))  # ESC [2J would clear the screen
        warmer [2J
        next line
        >>> printable("x" * 500, limit=10)
        'xxxxxxx...'
    """
    text = "".join(c if c == "\n" or unicodedata.category(c)[0] != "C" else " " for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------ running
def check_paths(args: argparse.Namespace) -> None:
    """Fail before any slow work: missing input, missing output folder, unknown output type,
    and any output that would overwrite a file the command reads or another of its outputs
    (for a folder INPUT, only that OUTPUT is another folder: :func:`plan_folder` checks each image's files).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     src = Path(tmp, "a.png")
        ...     Image.new("RGB", (12, 8)).save(src)
        ...     for output in ("b.png", "a.png", "b.txt", "no-folder/b.png"):
        ...         args = build_parser().parse_args([str(src), "-o", str(Path(tmp, output))])
        ...         try:
        ...             print(check_paths(args))
        ...         except (UsageError, ValueError) as err:
        ...             print(str(err).replace(tmp + os.sep, "").split(";")[0])
        None
        OUTPUT a.png is the same file as INPUT a.png, which this command reads
        cannot write b.txt: unknown image type '.txt'
        output folder no-folder does not exist
    """
    if not args.input.exists():
        raise UsageError(f"no such file or folder: {args.input}")
    if args.mask is not None and not args.mask.is_file():
        raise UsageError(f"--mask: no such file: {args.mask}")
    if args.input.is_dir():
        if same_file(args.output, args.input):
            raise UsageError("OUTPUT is the input folder: choose another folder so the originals are kept")
        for name, folder in (("OUTPUT", args.output), ("--save-grid", args.save_grid)):
            if folder is not None and (folder.is_file() or not folder.parent.is_dir()):
                raise UsageError(f"INPUT is a folder, so {name} must be a folder in an existing folder: {folder}")
        return
    output = output_path(args.input, args.output)
    format_for_path(output)
    if not output.parent.is_dir():
        raise UsageError(f"output folder {output.parent} does not exist")
    check_no_clobber([("OUTPUT", output), ("--save-grid", args.save_grid)], read_files(args))
    if args.save_grid is not None:
        if args.save_grid.is_dir() or not args.save_grid.parent.is_dir():
            raise UsageError(f"--save-grid: {args.save_grid} must be a file in an existing folder")
        if args.save_grid.suffix.lower() != GRID_SUFFIX:
            raise UsageError(f"--save-grid: {args.save_grid} must end in {GRID_SUFFIX} (grid files are safetensors)")


def read_files(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(option, path) of every file the command reads: no output may replace one.

    A built-in model name such as ``rule-based`` is not a file, nor is inline JSON.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     src, look = Path(tmp, "a.png"), Path(tmp, "look.json")
        ...     src.touch()
        ...     _ = look.write_text('{"exposure": 0.5}', encoding="utf-8")
        ...     argv = [str(src), "-o", "b.png", "--params", str(look), "--model", "rule-based"]
        ...     print([(option, path.name) for option, path in read_files(build_parser().parse_args(argv))])
        [('INPUT', 'a.png'), ('--params', 'look.json')]
    """
    named = [("INPUT", args.input), ("--mask", args.mask), ("--grid", args.grid)]
    if args.params is not None and not args.params.lstrip().startswith("{"):
        named.append(("--params", Path(args.params)))
    if args.model is not None:
        named.append(("--model", Path(args.model)))
    return [(name, path) for name, path in named if path is not None and path.is_file()]


def check_no_clobber(outputs: list[tuple[str, Path | None]], inputs: list[tuple[str, Path]]) -> None:
    """UsageError when an output is an input, or two outputs are one file.

    Example:
        >>> check_no_clobber([("OUTPUT", Path("b.png")), ("--save-grid", None)], [("INPUT", Path("a.png"))])  # fine
        >>> for outputs, inputs in [([("OUTPUT", Path("b.png"))], [("--mask", Path("masks/../b.png"))]),
        ...                         ([("OUTPUT", Path("g.png")), ("--save-grid", Path("g.png"))], [])]:
        ...     try:
        ...         check_no_clobber(outputs, inputs)
        ...     except UsageError as err:
        ...         print(str(err).split(";")[0])
        OUTPUT b.png is the same file as --mask masks/../b.png, which this command reads
        --save-grid g.png is the same file as OUTPUT g.png, which this command also writes
    """
    outputs = [(name, path) for name, path in outputs if path is not None]
    for index, (name, path) in enumerate(outputs):
        for other, used in inputs + outputs[:index]:
            if same_file(path, used):
                role = "reads" if (other, used) in inputs else "also writes"
                raise UsageError(
                    f"{name} {path} is the same file as {other} {used}, which this command {role}; "
                    "nothing was written: choose another output name"
                )


def same_file(a: Path, b: Path) -> bool:
    """The same path after resolving symlinks and ``..``, or one file under two names (hard link).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     photo = Path(tmp, "a.png")
        ...     photo.touch()
        ...     os.link(photo, Path(tmp, "hard-link.png"))
        ...     print(same_file(photo, Path(tmp, "sub", "..", "a.png")), same_file(photo, Path(tmp, "hard-link.png")),
        ...           same_file(photo, Path(tmp, "new.png")))
        True True False
    """
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def output_path(src: Path, output: Path) -> Path:
    """OUTPUT may name an existing folder: the file then keeps its name there.

    Example:
        >>> print(output_path(Path("shoot", "a.jpg"), Path("edited.png")))  # not a folder: the output file
        edited.png
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     output_path(Path("shoot", "a.jpg"), Path(tmp)) == Path(tmp, "a.jpg")
        True
    """
    return output / src.name if output.is_dir() else output


def build_recipe(args: argparse.Namespace) -> Recipe:
    """Load what the arguments name: model, params, grid and mask.

    Example:
        >>> parse = build_parser().parse_args
        >>> recipe = build_recipe(parse(["a.png", "-o", "b.png", "-i", "warmer", "--model", "rule-based"]))
        >>> type(recipe.model).__name__, recipe.instruction, recipe.params, recipe.grid
        ('RuleBasedModel', 'warmer', None, None)
        >>> build_recipe(parse(["a.png", "-o", "b.png", "--params", '{"exposure": 0.5}', "--strength", "2"])).strength
        2.0
        >>> build_recipe(parse(["a.png", "-o", "b.png", "--feather", "4"]))
        Traceback (most recent call last):
        ...
        retouch_core.apps.cli.UsageError: --feather softens a mask: give --mask too
    """
    if args.feather and args.mask is None:
        raise UsageError("--feather softens a mask: give --mask too")
    if args.model is not None and (args.grid is not None or args.params is not None):
        raise UsageError("--model predicts from an instruction; it is not used with --grid or --params")
    common = {"strength": args.strength, "feather": args.feather,
              "mask": load_mask(args.mask, args.max_pixels) if args.mask is not None else None}
    if args.grid is not None:
        return Recipe(grid=RetouchGrid.load(args.grid), **common)
    if args.params is not None:
        return Recipe(params=load_params(args.params), **common)
    name = args.model or DEFAULT_MODEL
    try:
        model = load_retouch_model(name)
    except ImportError as err:  # learned models need optional packages (e.g. the train extra)
        raise UsageError(f"model {name!r} needs a package that is not installed: {err}") from None
    return Recipe(model=model, instruction=args.instruction or "", **common)


def run_single(args: argparse.Namespace, recipe: Recipe) -> int:
    """One image file: INPUT to OUTPUT (or into OUTPUT when it is a folder), with the plan and a
    summary printed; returns 0 (errors raise).

    Example:
        >>> import contextlib, io, tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Image.new("RGB", (12, 8), (128, 128, 128)).save(Path(tmp, "a.png"))
        ...     Path(tmp, "out").mkdir()
        ...     args = build_parser().parse_args([str(Path(tmp, "a.png")), "-o", str(Path(tmp, "out")),
        ...                                       "--params", '{"exposure": 0.5}'])
        ...     with contextlib.redirect_stdout(io.StringIO()) as out:
        ...         status = run_single(args, build_recipe(args))
        ...     print(status, [path.name for path in Path(tmp, "out").iterdir()])
        ...     print(out.getvalue().replace(tmp + os.sep, "").split(" | ")[:2])
        0 ['a.png']
        ['a.png -> out/a.png: 12x8 RGB 8-bit', 'edit: exposure +0.5']
    """
    dst = output_path(args.input, args.output)
    remove_stale_temporaries(dst.parent)
    result = retouch_file(args.input, dst, recipe, args.quality, args.save_grid, args.max_pixels)
    if result.plan is not None:
        print(printable(result.plan.describe(), limit=4 * ECHO_LIMIT))
    print(describe_result(args.input, dst, result))
    if args.save_grid is not None:
        print(f"grid saved to {args.save_grid}")
    return 0


def list_images(folder: Path) -> list[Path]:
    """Image files (by suffix) directly inside ``folder``, sorted; hidden files skipped.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     for name in ("b.JPG", "a.png", ".a.png", "notes.txt"):
        ...         Path(tmp, name).touch()
        ...     Path(tmp, "folder.png").mkdir()
        ...     print([path.name for path in list_images(Path(tmp))])
        ['a.png', 'b.JPG']
    """
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def plan_folder(args: argparse.Namespace) -> list[tuple[Path, Path, Path | None]]:
    """(source, output, grid file or None) for every image of INPUT; refuses before any work
    when one of them would overwrite a file the command reads or another output.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Path(tmp, "shoot").mkdir()
        ...     for name in ("b.jpg", "a.png"):
        ...         Path(tmp, "shoot", name).touch()
        ...     argv = [str(Path(tmp, "shoot")), "-o", str(Path(tmp, "edited")), "--save-grid", str(Path(tmp, "grids"))]
        ...     for job in plan_folder(build_parser().parse_args(argv)):
        ...         print(*(path.relative_to(tmp).as_posix() for path in job))
        ...     Path(tmp, "empty").mkdir()
        ...     try:
        ...         plan_folder(build_parser().parse_args([str(Path(tmp, "empty")), "-o", str(Path(tmp, "edited"))]))
        ...     except UsageError as err:
        ...         print(str(err).replace(tmp + os.sep, "").split(" (")[0])
        shoot/a.png edited/a.png grids/a.png.safetensors
        shoot/b.jpg edited/b.jpg grids/b.jpg.safetensors
        no images in empty
    """
    sources = list_images(args.input)
    if not sources:
        raise UsageError(f"no images in {args.input} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    # The full name: a.png and a.jpg must not share a grid file.
    jobs = [(src, args.output / src.name,
             args.save_grid / f"{src.name}{GRID_SUFFIX}" if args.save_grid is not None else None) for src in sources]
    inputs = read_files(args)  # INPUT is a folder, so not among them: its images are added one by one
    for src, dst, grid_path in jobs:
        check_no_clobber([("OUTPUT", dst), ("--save-grid", grid_path)], inputs + [("INPUT", src)])
    return jobs


def run_folder(args: argparse.Namespace, recipe: Recipe) -> int:
    """Every image of INPUT into OUTPUT under the same name. Every file is tried: a failing one
    is reported, the others are still written, and the failures are listed at the end.

    Example:
        >>> import contextlib, io, tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     shoot, edited = Path(tmp, "shoot"), Path(tmp, "edited")
        ...     shoot.mkdir()
        ...     for name in ("a.png", "b.png"):
        ...         Image.new("RGB", (12, 8), (128, 128, 128)).save(shoot / name)
        ...     _ = (shoot / "c.png").write_bytes(b"not a PNG")
        ...     args = build_parser().parse_args([str(shoot), "-o", str(edited), "--params", '{"exposure": 0.5}'])
        ...     with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        ...         status = run_folder(args, build_recipe(args))
        ...     print(status, sorted(path.name for path in edited.iterdir()), "2 of 3 images written" in out.getvalue())
        ...     print(err.getvalue().splitlines()[-2])
        1 ['a.png', 'b.png'] True
        retouch: 1 of 3 images failed (the others were written):
    """
    jobs = plan_folder(args)
    args.output.mkdir(exist_ok=True)
    remove_stale_temporaries(args.output)
    if args.save_grid is not None:
        args.save_grid.mkdir(exist_ok=True)
    frame_grids = {}
    if args.temporal != "per-frame":  # every frame, done or not: the smoothing needs its neighbours
        frame_grids = temporal_grids([src for src, _, _ in jobs], recipe, args.temporal, args.temporal_sigma,
                                     args.key_frame, args.max_pixels)
    if args.skip_existing:
        done = [job for job in jobs if job[1].exists() and (job[2] is None or job[2].exists())]
        jobs = [job for job in jobs if job not in done]
        if done:
            print(f"{len(done)} images already done in {args.output}: skipped (--skip-existing)")
    start, failed, plan_shown = time.perf_counter(), [], False
    for src, dst, grid_path in tqdm(jobs, desc="retouch", unit="image", file=sys.stderr, disable=None):
        try:
            frame_recipe = replace(recipe, model=None, grid=frame_grids[src.name]) if frame_grids else recipe
            result = retouch_file(src, dst, frame_recipe, args.quality, grid_path, args.max_pixels)
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the others
            failed.append((src.name, err))
            tqdm.write(f"failed {src.name}: {describe_error(err)}", file=sys.stderr)
            continue
        if result.plan is not None and not plan_shown:  # the text reads the same for every image
            tqdm.write(printable(result.plan.describe(), limit=4 * ECHO_LIMIT))
            plan_shown = True
        tqdm.write(describe_result(src, dst, result))
    print(f"{len(jobs) - len(failed)} of {len(jobs)} images written to {args.output} in "
          f"{time.perf_counter() - start:.1f} s")
    if failed:
        lines = "".join(f"\n  {name}: {describe_error(err)}" for name, err in failed)
        print(f"retouch: {len(failed)} of {len(jobs)} images failed (the others were written):{lines}", file=sys.stderr)
    return 1 if failed else 0


def describe_error(err: BaseException) -> str:
    """One line for a failed file; an unexpected exception type is named (it may be a bug).

    Example:
        >>> describe_error(OSError("c.png: not an image file"))  # bad input: the message alone
        'c.png: not an image file'
        >>> describe_error(KeyError("exposure"))
        "KeyError: 'exposure'"
    """
    text = one_line(err)
    return text if isinstance(err, (UsageError, *USER_ERRORS)) else f"{type(err).__name__}: {text}"


@torch.no_grad()
def temporal_grids(
    sources: list[Path], recipe: Recipe, mode: str, sigma: float, key_frame: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[str, RetouchGrid]:
    """Frames of a video (a folder, in name order): every frame's grid first, then made
    consistent over time (:func:`~retouch_core.engine.temporal.temporal_grid`); name -> grid.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> recipe = Recipe(model=load_retouch_model("rule-based"), instruction="brighter")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     frames = [Path(tmp, f"frame{t}.png") for t in range(3)]
        ...     for t, frame in enumerate(frames):
        ...         Image.new("RGB", (12, 8), (100 + 20 * t,) * 3).save(frame)
        ...     grids = temporal_grids(frames, recipe, "key frame", sigma=2.0, key_frame=1)
        >>> list(grids), [grid.batch for grid in grids.values()]
        (['frame0.png', 'frame1.png', 'frame2.png'], [1, 1, 1])
        >>> grids["frame0.png"] is grids["frame2.png"]  # the key frame's edit for every frame
        True
        >>> try:  # no model, nothing to smooth
        ...     temporal_grids(frames, Recipe(params=load_params("{}")), "smoothed", sigma=2.0, key_frame=0)
        ... except UsageError as err:
        ...     print(err)
        --temporal smooths a model's per-frame predictions: use it with -i or auto mode
    """
    if recipe.model is None:
        raise UsageError("--temporal smooths a model's per-frame predictions: use it with -i or auto mode")
    if mode == "key frame" and key_frame >= len(sources):
        raise UsageError(f"--key-frame {key_frame}: the folder has {len(sources)} frames")
    grids, thumbnails = [], []
    for src in tqdm(sources, desc="predict", unit="frame", file=sys.stderr, disable=None):
        rgb = split_channels(read_image(src, max_pixels)[0])[0]
        grids.append(recipe.model.predict(rgb, recipe.instruction)[0])
        thumbnail = downsample(rgb, THUMBNAIL_PIXELS)
        size = thumbnails[0].shape[-2:] if thumbnails else thumbnail.shape[-2:]
        thumbnails.append(torch.nn.functional.interpolate(thumbnail, size=tuple(size), mode="area"))
    grid = temporal_grid(RetouchGrid.stack(grids), torch.cat(thumbnails), mode, sigma, key_frame)
    return {src.name: grid.for_image(t) for t, src in enumerate(sources)}


def one_line(err: BaseException) -> str:
    """An exception's message on one line, made printable; out of memory says so.

    Example:
        >>> one_line(ValueError("truncated file:" + chr(10) + "  8 of 12 rows"))
        'truncated file: 8 of 12 rows'
        >>> one_line(MemoryError())
        'not enough memory (MemoryError)'
    """
    text = printable(" ".join(str(err).split()), limit=4 * ECHO_LIMIT) or type(err).__name__
    return text if not isinstance(err, MemoryError) else f"not enough memory ({text})"


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a damaged EXIF block dropped, ...) as one line, like errors.

    Example:
        >>> import contextlib
        >>> with contextlib.redirect_stderr(sys.stdout):
        ...     show_warning(UserWarning("damaged EXIF block" + chr(10) + "dropped"), UserWarning, "a.jpg", 0)
        retouch: warning: damaged EXIF block dropped
    """
    tqdm.write(f"retouch: warning: {one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (see the module docstring).

    Example:
        >>> import contextlib, io, tempfile
        >>> from PIL import Image
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     status = main(["a.png"])  # no -o
        >>> print(status, err.getvalue(), end="")
        2 retouch: error: the following arguments are required: -o/--output
        >>> with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()) as err:
        ...     status = main([str(Path(tmp, "missing.png")), "-o", str(Path(tmp, "out.png"))])
        >>> status, err.getvalue().startswith("retouch: error: no such file or folder:")
        (2, True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Image.new("RGB", (12, 8), (128, 128, 128)).save(Path(tmp, "a.png"))
        ...     argv = [str(Path(tmp, "a.png")), "-o", str(Path(tmp, "b.png")), "--params", '{"exposure": 0.5}']
        ...     with contextlib.redirect_stdout(io.StringIO()) as out:
        ...         status = main(argv)
        ...     with Image.open(Path(tmp, "b.png")) as image:
        ...         print(status, image.size, out.getvalue().splitlines()[0])
        0 (12, 8) params: {"exposure": 0.5}
        >>> with contextlib.redirect_stdout(io.StringIO()) as out:
        ...     try:
        ...         main(["--help"])  # like argparse: usage on stdout, then SystemExit
        ...     except SystemExit as stop:
        ...         code = stop.code
        >>> code, out.getvalue().startswith("usage: retouch")
        (0, True)
    """
    with warnings.catch_warnings():  # restores the warning display on return
        warnings.showwarning = show_warning
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check_paths(args)
        load_cpu_kernel_in_background()  # ready by the time the model and the image are loaded
        recipe = build_recipe(args)
        summary = describe_recipe(recipe, args)
        if summary:
            print(summary)
        return run_folder(args, recipe) if args.input.is_dir() else run_single(args, recipe)
    except (UsageError, *USER_ERRORS) as err:
        print(f"retouch: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retouch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

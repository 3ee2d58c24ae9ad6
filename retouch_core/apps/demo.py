"""Demo: retouch a photo with the default model and a few instructions; write a before/after sheet.

    retouch-demo [--image PHOTO] [--out DIR] [--model default] [--instructions "" "warmer" ...]

Each instruction is read by the matcher, the model predicts a bilateral grid on a
low-resolution copy, and the grid is applied at full resolution. Without ``--image`` it uses
NASA's public-domain astronaut portrait that ships inside scikit-image.
:func:`warm_shadow_lift_grid` is a hand-built grid kept for the README's grid illustration.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..engine.grid import grid_from_affine
from ..engine.slicing import slice_and_apply
from ..models import BUILTIN_MODELS, load_retouch_model

WARM_GAINS = (1.06, 1.0, 0.88)  # R, G, B white-balance gains of the warm look
INSTRUCTIONS = ("", "warmer, lift the shadows", "a bit cinematic", "black and white, moody")


def warm_shadow_lift_grid(depth: int = 8, lift: float = 0.45) -> torch.Tensor:
    """(1, 12, depth, 1, 1) grid: warm white balance and a gain that fades from shadows to highlights.

    The gain of the cell centred at luminance ``c`` is ``1 + lift (1 - c)^2``.

    Example:
        >>> grid = warm_shadow_lift_grid()
        >>> grid.shape
        torch.Size([1, 12, 8, 1, 1])
        >>> grid[0, 0, :, 0, 0]  # red gain per luminance cell: 1.06 * (1 + 0.45 * (1 - c)^2), c = 1/16 ... 15/16
        tensor([1.4792, 1.3749, 1.2855, 1.2109, 1.1513, 1.1066, 1.0768, 1.0619])
        >>> black_grey_white = torch.tensor([0.0, 0.5, 1.0]).expand(1, 3, 1, 3)
        >>> slice_and_apply(black_grey_white, grid)[0, :, 0]  # grey: mean gain of cells 3 and 4, 1.1143 x 0.5 x WB
        tensor([[0.0000, 0.5906, 1.0619],
                [0.0000, 0.5571, 1.0018],
                [0.0000, 0.4903, 0.8815]])
    """
    centres = (torch.arange(depth) + 0.5) / depth
    gains = 1 + lift * (1 - centres) ** 2  # strongest in the darkest cells, 1 at the top
    affines = torch.zeros(depth, 3, 4)
    for i, wb in enumerate(WARM_GAINS):
        affines[:, i, i] = wb * gains
    grid = grid_from_affine(affines, depth=1, height=1, width=1)  # (depth, 12, 1, 1, 1)
    return grid.permute(2, 1, 0, 3, 4).contiguous()


def load_photo(path: Path | None) -> tuple[torch.Tensor, str]:
    """(1, 3, H, W) float photo in [0, 1] and its name.

    Example:
        >>> photo, name = load_photo(None)  # scikit-image's astronaut
        >>> photo.shape, photo.dtype, name
        (torch.Size([1, 3, 512, 512]), torch.float32, 'astronaut (NASA, public domain, from scikit-image)')
        >>> load_photo(Path("missing.png"))
        Traceback (most recent call last):
        ...
        SystemExit: no such image: missing.png
    """
    if path is None:
        try:
            from skimage import data
        except ImportError as err:
            raise SystemExit("the default photo ships with scikit-image: pip install scikit-image, "
                             "or pass --image") from err
        array, name = data.astronaut(), "astronaut (NASA, public domain, from scikit-image)"
    else:
        if not path.is_file():
            raise SystemExit(f"no such image: {path}")
        array, name = np.asarray(Image.open(path).convert("RGB")), str(path)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255, name


def to_pil(image: torch.Tensor) -> Image.Image:
    """The first image of a (B, 3, H, W) float batch as an 8-bit RGB PIL image (clipped, rounded).

    Example:
        >>> image = to_pil(torch.tensor([-0.1, 0.5, 1.2]).view(1, 3, 1, 1).expand(1, 3, 2, 4))
        >>> image.size, image.mode, image.getpixel((0, 0))  # (W, H); 0.5 * 255 = 127.5 rounds up
        ((4, 2), 'RGB', (0, 128, 255))
    """
    array = (image[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(array)


def contact_sheet(panels: list[tuple[str, Image.Image]], height: int = 320) -> Image.Image:
    """Side-by-side panels scaled to one height, each with a caption.

    Example:
        >>> panels = [("before", Image.new("RGB", (60, 40))), ("after", Image.new("RGB", (30, 40)))]
        >>> sheet = contact_sheet(panels, height=20)  # panels 30 and 15 px wide, 8 px apart and at the edges
        >>> sheet.size, sheet.getpixel((0, 0)), sheet.getpixel((8, 8))  # (30 + 15 + 3 * 8, 20 + 36)
        ((69, 56), (255, 255, 255), (0, 0, 0))
    """
    scaled = [(label, im.resize((round(im.width * height / im.height), height), Image.LANCZOS)) for label, im in panels]
    sheet = Image.new("RGB", (sum(im.width for _, im in scaled) + 8 * (len(scaled) + 1), height + 36), "white")
    draw, x = ImageDraw.Draw(sheet), 8
    for label, im in scaled:
        sheet.paste(im, (x, 8))
        draw.text((x, height + 14), label, fill="black")
        x += im.width + 8
    return sheet


def main(argv=None) -> int:
    """The command line (module docstring): writes the sheet and the outputs to ``--out``, returns 0.

    Example:
        A run loads the model and retouches the photo once per instruction; the photo is read first:

        >>> try:
        ...     main(["--image", "missing.png"])
        ... except SystemExit as error:
        ...     print(error.code)
        no such image: missing.png
    """
    parser = argparse.ArgumentParser(
        description="Retouch a photo with a few instructions and write a before/after sheet.")
    parser.add_argument("--image", type=Path, help="photo to retouch (default: scikit-image's astronaut)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--model", default=next(iter(BUILTIN_MODELS)), help="model name or file (default: %(default)s)")
    parser.add_argument("--instructions", nargs="+", default=list(INSTRUCTIONS), help='"" is auto mode')
    args = parser.parse_args(argv)

    image, name = load_photo(args.image)
    model = load_retouch_model(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    slice_and_apply(image[..., :8, :8], warm_shadow_lift_grid())  # load the CPU kernel before timing
    panels = [("before", to_pil(image))]
    for index, instruction in enumerate(args.instructions):
        start = time.perf_counter()
        grid, plan = model.predict(image, instruction)
        out = grid.apply(image)
        ms = 1000 * (time.perf_counter() - start)
        label = instruction or "(auto)"
        to_pil(out).save(args.out / f"after_{index}.png")
        panels.append((label, to_pil(out)))
        print(f"{label!r}: read as {plan.mode} {dict(plan.attributes) or plan.params or ''}; "
              f"{tuple(out.shape[-2:])} in {ms:.0f} ms")
    to_pil(image).save(args.out / "before.png")
    contact_sheet(panels).save(args.out / "before_after.png")
    print(f"model: {args.model}; photo: {name}\nwrote {args.out / 'before_after.png'} and the full-resolution outputs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Repair of a simulated AI edit at full resolution: plain vs robust grid fitting.

    python -m retouch_core.apps.bench_repair ../shared/data/kodak24/kodim23.png \
        ../shared/data/kodak24/kodim05.png --picture docs/images/ai_edit_repair.jpg

The "AI edit" is made from the photo the way image editors change it: a colour grade (the
renderer: exposure +0.3, contrast 20, temperature 25, saturation 15, shadows 30), a crop that
also shifts the frame (6, 4, 3, 9 px from top, bottom, left, right), a rescale to 66 % with sides
rounded to multiples of 16 (the aspect ratio changes), a Gaussian blur (sigma 1 px), correlated
noise (unit Gaussian noise blurred with sigma 0.7 px, times 0.02: a standard deviation of about
0.008) and a pasted object (a patch of the second photo). A grid is fitted from
(original at the edit's size, edit) and applied to the full-resolution original; PSNR is to the
grade applied to the original, over the part the edit covers, leaving out the object and 12 px
around it.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import kornia
import torch
import torch.nn.functional as F

from ..engine.fit import fit_grid
from ..engine.robust_fit import fit_grid_robust
from ..engine.slicing import slice_and_apply
from ..formats.image_files import read_image
from ..language.render import render

GRADE = {"exposure": 0.3, "contrast": 20, "temperature": 25, "saturation": 15, "shadows": 30}
CROP = (6, 4, 3, 9)  # top, bottom, left, right pixels the editor lost: a crop and a shift
MARGIN = 12  # full-resolution pixels around the pasted object left out of the comparison


def grade(x: torch.Tensor) -> torch.Tensor:
    """The simulated editor's colour grade: the renderer with :data:`GRADE`, clipped to [0, 1].

    Example:
        >>> grade(torch.full((1, 3, 1, 1), 0.5)).flatten()  # brighter and warmer: red above blue
        tensor([0.6083, 0.5806, 0.5344])
        >>> grade(torch.tensor([0.0, 1.0]).expand(1, 3, 1, 2))[0, :, 0].round(decimals=4)  # black and white stay
        tensor([[0., 1.],
                [0., 1.],
                [0., 1.]])
    """
    return render(x, GRADE).clamp(0, 1)


def simulate_edit(original: torch.Tensor, other: torch.Tensor, seed: int = 0):
    """(1, 3, H, W) photo -> (edit, pasted object's box (y0, y1, x0, x1) and the edit's coverage
    (top, bottom, left, right), both in the original's pixels).

    Example:
        >>> original = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
        >>> edit, box, covered = simulate_edit(original, other=torch.full((1, 3, 50, 50), 0.25))
        >>> edit.shape  # the 86 x 116 crop at 66 %, sides rounded to multiples of 16
        torch.Size([1, 3, 64, 80])
        >>> covered  # rows 6 to 96 - 4, columns 3 to 128 - 9 (CROP)
        (6, 92, 3, 119)
        >>> [round(v, 2) for v in box]  # rows 21:33, columns 16:32 of the edit, in the original's pixels
        [34.22, 50.34, 26.2, 49.4]
        >>> bool((edit[..., 21:33, 16:32] == 0.25).all())  # the pasted object: the other photo, shrunk
        True
    """
    height, width = original.shape[-2:]
    top, bottom, left, right = CROP
    window = grade(original)[:, :, top : height - bottom, left : width - right]
    ch, cw = window.shape[-2:]
    eh, ew = 16 * round(ch * 0.66 / 16), 16 * round(cw * 0.66 / 16)
    edit = F.interpolate(window, size=(eh, ew), mode="bilinear", antialias=True, align_corners=False)
    edit = kornia.filters.gaussian_blur2d(edit, (7, 7), (1.0, 1.0))
    noise = torch.randn(edit.shape, generator=torch.Generator().manual_seed(seed))
    edit = (edit + 0.02 * kornia.filters.gaussian_blur2d(noise, (5, 5), (0.7, 0.7))).clamp(0, 1)
    y0, x0, oh, ow = eh // 3, ew // 5, eh // 5, ew // 5
    edit[:, :, y0 : y0 + oh, x0 : x0 + ow] = F.interpolate(other[:, :3, :200, :200], size=(oh, ow), mode="area")
    sy, sx = ch / eh, cw / ew
    box = (top + y0 * sy, top + (y0 + oh) * sy, left + x0 * sx, left + (x0 + ow) * sx)
    return edit, box, (top, height - bottom, left, width - right)


def regions(shape, box, covered) -> tuple[torch.Tensor, torch.Tensor]:
    """(compared pixels: covered and away from the object, the object) as (1, 1, H, W) bool masks.

    Example:
        >>> keep, obj = regions((40, 40), box=(18, 22, 18, 22), covered=(2, 40, 0, 40))
        >>> keep.shape, keep.dtype, int(obj.sum())  # a 4 x 4 object
        (torch.Size([1, 1, 40, 40]), torch.bool, 16)
        >>> int(keep.sum()) == 38 * 40 - (4 + 2 * MARGIN) ** 2  # rows 2 to 40, less the object and MARGIN px around
        True
    """
    keep = torch.zeros(1, 1, *shape, dtype=torch.bool)
    keep[..., covered[0] : covered[1], covered[2] : covered[3]] = True
    obj = torch.zeros_like(keep)
    obj[..., int(box[0]) : math.ceil(box[1]), int(box[2]) : math.ceil(box[3])] = True
    near = F.max_pool2d(obj.float(), 2 * MARGIN + 1, stride=1, padding=MARGIN) > 0
    return keep & ~near, obj


def psnr(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of ``a`` against ``b`` over the pixels where the (1, 1, H, W) ``keep`` is True.

    Example:
        >>> a = torch.zeros(1, 3, 2, 2)
        >>> b = torch.tensor([[0.1, 1.0], [0.1, 1.0]]).expand(1, 3, 2, 2)  # off by 0.1 on the left, 1 on the right
        >>> keep = torch.tensor([[True, False], [True, False]]).view(1, 1, 2, 2)
        >>> round(psnr(a, b, keep), 4)  # MSE 0.01 where kept
        20.0
    """
    mse = ((a - b) ** 2).mean(1, keepdim=True)[keep].mean()
    return -10 * math.log10(float(mse))


@torch.no_grad()
def repair(original: torch.Tensor, other: torch.Tensor) -> dict:
    """Everything the benchmark and its test look at.

    Example:
        Real photos take seconds (16x16x8 grids, robust iterations); a 4x4x4 grid runs the same steps:

        >>> from functools import partial
        >>> from unittest import mock
        >>> from retouch_core.engine.fit import fit_grid
        >>> colours = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
        >>> original = F.interpolate(colours, size=(48, 64), mode="bilinear")
        >>> small = {"depth": 4, "height": 4, "width": 4}
        >>> robust = mock.patch("retouch_core.apps.bench_repair.fit_grid_robust", partial(fit_grid_robust, **small))
        >>> plain = mock.patch("retouch_core.apps.bench_repair.fit_grid", partial(fit_grid, **small))
        >>> with robust, plain:
        ...     result = repair(original, other=torch.full((1, 3, 50, 50), 0.25))
        >>> sorted(result)
        ['edit', 'expected', 'fit', 'keep', 'object', 'original', 'plain', 'robust', 'upsampled']
        >>> result["edit"].shape, result["fit"].grid.shape  # the editor's size; the grid fitted to it
        (torch.Size([1, 3, 32, 32]), torch.Size([1, 12, 4, 4, 4]))
        >>> {name: tuple(result[name].shape) for name in ("upsampled", "plain", "robust", "expected", "keep")}
        {'upsampled': (1, 3, 48, 64), 'plain': (1, 3, 48, 64), 'robust': (1, 3, 48, 64), 'expected': (1, 3, 48, 64),
         'keep': (1, 1, 48, 64)}
        >>> torch.equal(result["expected"], grade(original))
        True
    """
    edit, box, covered = simulate_edit(original, other)
    small = F.interpolate(original, size=edit.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
    keep, obj = regions(original.shape[-2:], box, covered)
    fit = fit_grid_robust(small, edit)
    expected = grade(original)
    return {
        "original": original, "edit": edit, "fit": fit, "keep": keep, "object": obj, "expected": expected,
        "robust": slice_and_apply(original, fit.grid).clamp(0, 1),
        "plain": slice_and_apply(original, fit_grid(small, edit)).clamp(0, 1),
        "upsampled": F.interpolate(edit, size=original.shape[-2:], mode="bilinear", align_corners=False),
    }


def picture(result: dict, path: Path, crop: int = 192) -> None:
    """Crops of: the edit upsampled, the robust repair, the grade of the original, the residual map.

    Example:
        >>> import tempfile
        >>> from types import SimpleNamespace
        >>> from PIL import Image
        >>> grey = torch.full((1, 3, 40, 40), 0.5)
        >>> result = {"original": grey, "upsampled": grey, "robust": grey, "expected": grey,
        ...           "fit": SimpleNamespace(residual=torch.zeros(1, 1, 20, 20))}  # all explained: black
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     picture(result, Path(folder) / "crops.jpg", crop=16)
        ...     row = Image.open(Path(folder) / "crops.jpg").convert("L")
        >>> row.size  # four 16 px crops, each in a 4 px white frame
        (96, 24)
        >>> row.getpixel((0, 0)) > 250, abs(row.getpixel((12, 12)) - 128) < 3, row.getpixel((84, 12)) < 5
        (True, True, True)
    """
    from PIL import Image

    height, width = result["original"].shape[-2:]
    y, x = (height - crop) // 2, (width - crop) // 2
    residual = F.interpolate(result["fit"].residual.float(), size=(height, width), mode="bilinear")
    panels = [result["upsampled"], result["robust"], result["expected"], residual.expand(-1, 3, -1, -1)]
    tiles = [p[0, :, y : y + crop, x : x + crop] for p in panels]
    row = torch.cat([F.pad(t, (4, 4, 4, 4), value=1.0) for t in tiles], dim=2)
    array = (row.clamp(0, 1).permute(1, 2, 0) * 255 + 0.5).byte().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=92)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring): prints the PSNR table (and writes the picture), returns 0.

    Example:
        A run fits grids on two photos; arguments are checked first:

        >>> try:
        ...     main(["photo.png"])  # no object_photo: argparse prints the usage and exits
        ... except SystemExit as error:
        ...     print(error.code)
        2
    """
    parser = argparse.ArgumentParser(prog="python -m retouch_core.apps.bench_repair",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("object_photo", type=Path, help="where the pasted object comes from")
    parser.add_argument("--picture", type=Path,
                        help="write crops (edit upsampled | repaired | graded original | residual)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = repair(read_image(args.photo)[0][:, :3], read_image(args.object_photo)[0][:, :3])
    fit, keep = result["fit"], result["keep"]
    print(f"edit {tuple(result['edit'].shape[-2:])} -> original {tuple(result['original'].shape[-2:])}; alignment "
          f"scale {fit.scale[0].tolist()}, shift {fit.shift[0].tolist()}, matched blur {float(fit.blur[0])} px")
    print(f"{'method':<26}{'PSNR dB outside the object':>28}")
    for name in ("upsampled", "plain", "robust"):
        label = {"upsampled": "edit upsampled (no grid)", "plain": "plain least-squares fit",
                 "robust": "robust fit"}[name]
        print(f"{label:<26}{psnr(result[name], result['expected'], keep):>28.2f}")
    residual = F.interpolate(fit.residual.float(), size=result["original"].shape[-2:], mode="bilinear")
    print(f"confidence {float(fit.confidence[0]):.3f} "
          f"(object: {float(result['object'].float().mean()):.3f} of the frame); "
          f"residual map mean: object {float(residual[result['object']].mean()):.2f}, "
          f"elsewhere {float(residual[keep].mean()):.2f}")
    if args.picture:
        picture(result, args.picture)
        print(f"picture written to {args.picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Repair of a simulated AI edit at full resolution: plain vs robust grid fitting.

    python -m retouch_core.apps.bench_repair ../shared/data/kodak24/kodim23.png \
        ../shared/data/kodak24/kodim05.png --picture docs/images/ai_edit_repair.jpg

The "AI edit" is made from the photo the way image editors change it: a colour grade (the
renderer: exposure +0.3, contrast 20, temperature 25, saturation 15, shadows 30), a crop that
also shifts the frame (6, 4, 3, 9 px from top, bottom, left, right), a rescale to 66 % with sides
rounded to multiples of 16 (the aspect ratio changes), a Gaussian blur (sigma 1 px), correlated
noise (sigma 0.02) and a pasted object (a patch of the second photo). A grid is fitted from
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
    return render(x, GRADE).clamp(0, 1)


def simulate_edit(original: torch.Tensor, other: torch.Tensor, seed: int = 0):
    """(1, 3, H, W) photo -> (edit, pasted object's box (y0, y1, x0, x1) and the edit's coverage
    (top, bottom, left, right), both in the original's pixels)."""
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
    """(compared pixels: covered and away from the object, the object) as (1, 1, H, W) bool masks."""
    keep = torch.zeros(1, 1, *shape, dtype=torch.bool)
    keep[..., covered[0] : covered[1], covered[2] : covered[3]] = True
    obj = torch.zeros_like(keep)
    obj[..., int(box[0]) : math.ceil(box[1]), int(box[2]) : math.ceil(box[3])] = True
    near = F.max_pool2d(obj.float(), 2 * MARGIN + 1, stride=1, padding=MARGIN) > 0
    return keep & ~near, obj


def psnr(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor) -> float:
    mse = ((a - b) ** 2).mean(1, keepdim=True)[keep].mean()
    return -10 * math.log10(float(mse))


@torch.no_grad()
def repair(original: torch.Tensor, other: torch.Tensor) -> dict:
    """Everything the benchmark and its test look at."""
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
    """Crops of: the edit upsampled, the robust repair, the grade of the original, the residual map."""
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
    parser = argparse.ArgumentParser(prog="python -m retouch_core.apps.bench_repair", description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("object_photo", type=Path, help="where the pasted object comes from")
    parser.add_argument("--picture", type=Path, help="write crops (edit upsampled | repaired | graded original | residual)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = repair(read_image(args.photo)[0][:, :3], read_image(args.object_photo)[0][:, :3])
    fit, keep = result["fit"], result["keep"]
    print(f"edit {tuple(result['edit'].shape[-2:])} -> original {tuple(result['original'].shape[-2:])}; alignment "
          f"scale {fit.scale[0].tolist()}, shift {fit.shift[0].tolist()}, matched blur {float(fit.blur[0])} px")
    print(f"{'method':<26}{'PSNR dB outside the object':>28}")
    for name in ("upsampled", "plain", "robust"):
        label = {"upsampled": "edit upsampled (no grid)", "plain": "plain least-squares fit", "robust": "robust fit"}[name]
        print(f"{label:<26}{psnr(result[name], result['expected'], keep):>28.2f}")
    residual = F.interpolate(fit.residual.float(), size=result["original"].shape[-2:], mode="bilinear")
    print(f"confidence {float(fit.confidence[0]):.3f} (object: {float(result['object'].float().mean()):.3f} of the frame); "
          f"residual map mean: object {float(residual[result['object']].mean()):.2f}, elsewhere {float(residual[keep].mean()):.2f}")
    if args.picture:
        picture(result, args.picture)
        print(f"picture written to {args.picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

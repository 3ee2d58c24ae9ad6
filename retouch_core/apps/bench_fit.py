"""Benchmark grid fitting (bilateral guided upsampling): time and accuracy on real photos.

    python -m retouch_core.apps.bench_fit [--size 512] [--repeats 5] [--threads 1] [--kodak DIR]
                                     [--limit N] [--resample antialias|nearest] [--json out.json]

For every photo (scikit-image's astronaut and coffee always; the Kodak set too when its folder
exists: ``--kodak``, else ``$KODAK24_DIR``, else ``../shared/data/kodak24``) and every edit
below, the edit is run on the photo shrunk to ``--size`` px on its long side, a 16x16x8 grid is
fitted to that pair with the default settings of :func:`~retouch_core.engine.fit.fit_grid`
(which shrinks the pair to at most 256 x 256 px, antialiased unless ``--resample nearest``), and
the grid is applied to the photo at its native resolution. Reported per edit: the median fit time (the
median over photos of each photo's median over ``--repeats`` runs), the PSNR of the
full-resolution result against the edit run at full resolution (minimum and mean over photos),
and the same PSNR when the edit is only ever run at 256 x 256 px
(:func:`~retouch_core.engine.fit.fit_grid_to_edit`, the slow-editor path).

Edits: ``global`` ones act on colour only (colour matrix, tone curve, gamma, white balance in
linear light, saturation, and two :func:`retouch_core.language.render.render` edits when the renderer is
present); ``masked`` ones are an edit blended in with a soft mask (a sky band, a radial spot),
which a LUT cannot express but a grid can.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from ..engine.fit import RESAMPLE, fit_grid, fit_grid_to_edit
from ..engine.guide import luminance_guide
from ..engine.psnr import psnr
from ..engine.resize import resize_long_side
from ..engine.slicing import slice_and_apply
from ..formats.image_files import read_image
from .shared_data import shared_data

Edit = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_KODAK = shared_data("kodak24")

_MATRIX = torch.tensor([[1.1, 0.1, -0.05, 0.02], [0.05, 0.9, 0.08, -0.01], [-0.1, 0.05, 1.2, 0.03]])
_CURVE_X = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
_CURVE_Y = torch.tensor([0.0, 0.18, 0.5, 0.84, 1.0])


# ----------------------------------------------------------------------------- edits
def colour_matrix(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, H, W): a fixed 3x4 colour matrix.

    Example:
        >>> colour_matrix(torch.full((1, 3, 1, 1), 0.5)).flatten()  # 0.5 * row sum + offset
        tensor([0.5950, 0.5050, 0.6050])
    """
    return torch.einsum("ij,bjhw->bihw", _MATRIX[:, :3], x) + _MATRIX[:, 3].view(1, 3, 1, 1)


def tone_curve(x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear S-curve per channel (np.interp semantics), (B, 3, H, W).

    Example:
        >>> import numpy as np
        >>> x = torch.tensor([0.0, 0.125, 0.5, 0.75, 1.2]).expand(1, 3, 1, 5)
        >>> tone_curve(x)[0, 0, 0]  # knots (0.25, 0.18), (0.5, 0.5), (0.75, 0.84); above 1: the last value
        tensor([0.0000, 0.0900, 0.5000, 0.8400, 1.0000])
        >>> np.allclose(tone_curve(x)[0, 0, 0], np.interp(x[0, 0, 0], [0, 0.25, 0.5, 0.75, 1], [0, 0.18, 0.5, 0.84, 1]))
        True
    """
    seg = torch.bucketize(x.clamp(0, 1).contiguous(), _CURVE_X[1:-1].contiguous())
    x0, x1, y0, y1 = _CURVE_X[seg], _CURVE_X[seg + 1], _CURVE_Y[seg], _CURVE_Y[seg + 1]
    return y0 + (x.clamp(0, 1) - x0) * (y1 - y0) / (x1 - x0)


def gamma(x: torch.Tensor) -> torch.Tensor:
    """``x ** (1 / 1.6)`` on ``x`` clipped to [0, 1]: brighter mid-tones, black and white kept.

    Example:
        >>> gamma(torch.tensor([-0.1, 0.25, 1.0, 1.5]))  # 0.25 ** 0.625
        tensor([0.0000, 0.4204, 1.0000, 1.0000])
    """
    return x.clamp(0, 1) ** (1 / 1.6)


def _to_linear(v):
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _to_srgb(v):
    v = v.clamp(0, 1)
    return torch.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


def white_balance(x: torch.Tensor) -> torch.Tensor:
    """Warmer: per-channel gains (1.15, 1, 0.8) in linear light.

    Example:
        >>> white_balance(torch.tensor([0.0, 0.5, 1.0]).expand(1, 3, 1, 3))[0, :, 0]  # black, grey, white
        tensor([[0.0000, 0.5333, 1.0000],
                [0.0000, 0.5000, 1.0000],
                [0.0000, 0.4507, 0.9063]])
    """
    return _to_srgb(_to_linear(x) * torch.tensor([1.15, 1.0, 0.8]).view(1, 3, 1, 1))


def saturation(x: torch.Tensor) -> torch.Tensor:
    """Saturation x1.4 around Rec.601 luma, clipped.

    Example:
        >>> x = torch.tensor([0.6, 0.5, 0.4]).view(1, 3, 1, 1)  # luma 0.299 * 0.6 + 0.587 * 0.5 + 0.114 * 0.4
        >>> saturation(x).flatten()  # 0.5185 + 1.4 * (x - 0.5185)
        tensor([0.6326, 0.4926, 0.3526])
        >>> torch.equal(saturation(torch.full((1, 3, 2, 2), 0.3)), torch.full((1, 3, 2, 2), 0.3))  # grey stays
        True
    """
    y = luminance_guide(x)
    return (y + 1.4 * (x - y)).clamp(0, 1)


def sky_band(height: int, width: int) -> torch.Tensor:
    """(1, 1, H, W) soft band: 1 at the top, fading out around 40 % of the height.

    Example:
        >>> band = sky_band(10, 2)  # row centres at 0.05, 0.15, ..., 0.95 of the height
        >>> band.shape
        torch.Size([1, 1, 10, 2])
        >>> band[0, 0, :, 0].round(decimals=2)  # 0.5 at 40 %: between rows 3 and 4, symmetric around it
        tensor([1.0000, 0.9800, 0.9200, 0.7000, 0.3000, 0.0800, 0.0200, 0.0000, 0.0000, 0.0000])
    """
    y = (torch.arange(height) + 0.5) / height
    return torch.sigmoid((0.4 - y) / 0.06).view(1, 1, height, 1).expand(1, 1, height, width)


def radial(height: int, width: int) -> torch.Tensor:
    """(1, 1, H, W) Gaussian spot off the image centre.

    Example:
        >>> spot = radial(21, 11)  # x and y from -1 to 1 in steps of 0.2 and 0.1
        >>> spot.shape, divmod(int(spot.argmax()), 11), round(float(spot.max()), 4)  # peak at x = 0.2, y = -0.1
        (torch.Size([1, 1, 21, 11]), (9, 6), 1.0)
    """
    y = torch.linspace(-1, 1, height).view(height, 1)
    x = torch.linspace(-1, 1, width).view(1, width)
    return torch.exp(-((x - 0.2) ** 2 + (y + 0.1) ** 2) / (2 * 0.35**2)).view(1, 1, height, width)


def masked(edit: Edit, mask: Callable[[int, int], torch.Tensor]) -> Edit:
    """``x + m (edit(x) - x)`` with the mask drawn at the image's size.

    Example:
        >>> half = masked(lambda x: 2 * x, lambda height, width: torch.full((1, 1, height, width), 0.5))
        >>> half(torch.full((1, 3, 2, 2), 0.2))[0, :, 0, 0]  # 0.2 + 0.5 * (0.4 - 0.2)
        tensor([0.3000, 0.3000, 0.3000])
    """
    return lambda x: x + mask(*x.shape[-2:]) * (edit(x) - x)


def edits() -> dict[str, tuple[str, Edit]]:
    """name -> (kind, edit); render() edits only when the renderer can be imported.

    Example:
        >>> table = edits()
        >>> list(table)[:3], [name for name, (kind, _) in table.items() if kind == "masked"]
        (['colour matrix', 'tone curve', 'gamma 1/1.6'], ['sky band: warm + curve', 'radial: exposure x1.5'])
        >>> image = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(0))
        >>> all(edit(image).shape == image.shape for _, edit in table.values())
        True
    """
    table: dict[str, tuple[str, Edit]] = {
        "colour matrix": ("global", colour_matrix),
        "tone curve": ("global", tone_curve),
        "gamma 1/1.6": ("global", gamma),
        "white balance": ("global", white_balance),
        "saturation x1.4": ("global", saturation),
    }
    try:
        from ..language.params import RetouchParams
        from ..language.render import render
    except ImportError:
        pass
    else:
        for name, params in (
            ("render: exposure/contrast/HL/shadows",
             RetouchParams(exposure=0.4, contrast=30, highlights=-40, shadows=30)),
            ("render: temp/tint/vibrance/sat", RetouchParams(temperature=25, tint=-10, vibrance=30, saturation=15)),
        ):
            table[name] = ("global", lambda x, p=params: render(x, p))
    table["sky band: warm + curve"] = ("masked", masked(lambda x: tone_curve(white_balance(x)), sky_band))
    table["radial: exposure x1.5"] = ("masked", masked(lambda x: (1.5 * x).clamp(0, 1), radial))
    return table


# ----------------------------------------------------------------------------- photos
def skimage_photos() -> dict[str, torch.Tensor]:
    """astronaut and coffee as (1, 3, H, W) float32 (scikit-image is the demo extra).

    Example:
        >>> {name: (tuple(photo.shape), photo.dtype) for name, photo in skimage_photos().items()}
        {'astronaut': ((1, 3, 512, 512), torch.float32), 'coffee': ((1, 3, 400, 600), torch.float32)}
    """
    from skimage import data

    return {name: _to_tensor(getattr(data, name)()) for name in ("astronaut", "coffee")}


def folder_photos(folder: Path, limit: int | None) -> dict[str, torch.Tensor]:
    """The folder's PNGs (first ``limit``) as (1, 3, H, W) float32, read by the library's image I/O.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for name in ("b", "a"):
        ...         Image.new("RGBA", (6, 4), (255, 0, 0, 128)).save(Path(folder) / f"{name}.png")
        ...     Image.new("RGB", (6, 4)).save(Path(folder) / "c.jpg")  # not a PNG: left out
        ...     photos, first = folder_photos(Path(folder), None), folder_photos(Path(folder), limit=1)
        >>> {name: tuple(photo.shape) for name, photo in photos.items()}, list(first)  # sorted; alpha dropped
        ({'a': (1, 3, 4, 6), 'b': (1, 3, 4, 6)}, ['a'])
        >>> photos["a"][0, :, 0, 0]
        tensor([1., 0., 0.])
    """
    paths = sorted(folder.glob("*.png"))[:limit]
    return {p.stem: read_image(p)[0][:, :3] for p in paths}


def _to_tensor(array) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255


# ----------------------------------------------------------------------------- benchmark
def bench_photo(image: torch.Tensor, edit: Edit, size: int, repeats: int, resample: str) -> tuple[float, float, float]:
    """(median fit ms, PSNR of the pair fit, PSNR of the low-res-edit fit) for one photo and edit.

    Example:
        >>> import torch.nn.functional as F
        >>> colours = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
        >>> photo = F.interpolate(colours, size=(48, 64), mode="bilinear")
        >>> ms, pair, low_res = bench_photo(photo, colour_matrix, size=32, repeats=1, resample="antialias")
        >>> ms > 0, pair > 100, low_res > 100  # an affine colour edit: both fits exact to float rounding
        (True, True, True)
    """
    small = resize_long_side(image, size, enlarge=True)
    with torch.inference_mode():
        edited = edit(small)
        fit_grid(small, edited, resample=resample)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            grid = fit_grid(small, edited, resample=resample)
            times.append(1000 * (time.perf_counter() - start))
        reference = edit(image)
        from_pair = float(psnr(slice_and_apply(image, grid), reference)[0])
        from_low_res = float(psnr(slice_and_apply(image, fit_grid_to_edit(image, edit)), reference)[0])
        return statistics.median(times), from_pair, from_low_res


def bench_set(photos: dict[str, torch.Tensor], size: int, repeats: int, resample: str = "antialias") -> dict[str, dict]:
    """name -> {kind, fit_ms, psnr_min, psnr_mean, low_res_min, low_res_mean, per_photo} per edit.

    Example:
        With one quick edit in place of :func:`edits` (the full table takes seconds per photo):

        >>> from unittest import mock
        >>> photos = {name: torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(seed))
        ...           for seed, name in enumerate(("a", "b"))}
        >>> one_edit = {"matte": ("global", lambda x: 0.8 * x + 0.1)}
        >>> with mock.patch("retouch_core.apps.bench_fit.edits", return_value=one_edit):
        ...     results = bench_set(photos, size=16, repeats=1)
        >>> row = results["matte"]
        >>> list(row)
        ['kind', 'fit_ms', 'psnr_min', 'psnr_mean', 'low_res_min', 'low_res_mean', 'per_photo']
        >>> row["kind"], list(row["per_photo"]), row["psnr_min"] == min(p["psnr"] for p in row["per_photo"].values())
        ('global', ['a', 'b'], True)
        >>> row["psnr_min"] <= row["psnr_mean"], row["psnr_min"] > 100  # an affine edit: fitted exactly
        (True, True)
    """
    results = {}
    for name, (kind, edit) in edits().items():
        rows = [bench_photo(image, edit, size, repeats, resample) for image in photos.values()]
        pair, low = [r[1] for r in rows], [r[2] for r in rows]
        results[name] = {
            "kind": kind,
            "fit_ms": statistics.median(r[0] for r in rows),
            "psnr_min": min(pair),
            "psnr_mean": statistics.fmean(pair),
            "low_res_min": min(low),
            "low_res_mean": statistics.fmean(low),
            "per_photo": {p: {"psnr": a, "low_res_psnr": c} for p, a, c in zip(photos, pair, low)},
        }
    return results


def format_table(results: dict[str, dict]) -> str:
    """A Markdown table of :func:`bench_set`'s results, one row per edit.

    Example:
        >>> row = {"kind": "global", "fit_ms": 41.7, "psnr_min": 45.26, "psnr_mean": 48.03, "low_res_min": 39.5,
        ...        "low_res_mean": 41.04}
        >>> print(format_table({"gamma 1/1.6": row}))
        | edit | kind | fit ms (median) | PSNR dB min / mean | edit at 256 px: PSNR dB min / mean |
        |---|---|---|---|---|
        | gamma 1/1.6 | global | 42 | 45.3 / 48.0 | 39.5 / 41.0 |
    """
    lines = [
        "| edit | kind | fit ms (median) | PSNR dB min / mean | edit at 256 px: PSNR dB min / mean |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['kind']} | {r['fit_ms']:.0f} | {r['psnr_min']:.1f} / {r['psnr_mean']:.1f} "
            f"| {r['low_res_min']:.1f} / {r['low_res_mean']:.1f} |"
        )
    return "\n".join(lines)


def set_threads(threads: int) -> None:
    """Pin torch (and numba, whose OpenMP layer shares and resets torch's count) to ``threads``.

    Example:
        >>> import numba
        >>> saved = torch.get_num_threads(), numba.get_num_threads()
        >>> set_threads(1)
        >>> torch.get_num_threads(), numba.get_num_threads()
        (1, 1)
        >>> numba.set_num_threads(saved[1]); torch.set_num_threads(saved[0])  # as they were
    """
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    torch.set_num_threads(threads)  # after numba: importing it can reset the shared count


def main(argv=None) -> int:
    """The command line (module docstring): prints a table per photo set, returns 0.

    Example:
        A run fits hundreds of grids; arguments are checked first:

        >>> try:
        ...     main(["--resample", "bicubic"])  # not one of RESAMPLE: argparse prints the usage and exits
        ... except SystemExit as error:
        ...     print(error.code)
        2
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="long side of the fitted pair, px")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = leave torch's default)")
    parser.add_argument("--kodak", type=Path, default=Path(os.environ.get("KODAK24_DIR", DEFAULT_KODAK)))
    parser.add_argument("--limit", type=int, default=None, help="use only the first N Kodak photos")
    parser.add_argument("--resample", choices=RESAMPLE, default="antialias", help="how fit_grid shrinks the pair")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    if args.threads > 0:
        set_threads(args.threads)

    sets = {"scikit-image (astronaut, coffee)": skimage_photos()}
    if args.kodak.is_dir():
        kodak = folder_photos(args.kodak, args.limit)
        if kodak:
            sets[f"Kodak ({len(kodak)} photos)"] = kodak
    print(
        f"fit_grid defaults (16x16x8 grid, pair shrunk to <= 256x256 px, resample={args.resample}) on a "
        f"{args.size} px pair, applied at native resolution; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), median of {args.repeats}\n"
    )
    report = {}
    for title, photos in sets.items():
        results = bench_set(photos, args.size, args.repeats, args.resample)
        report[title] = results
        print(f"{title}\n\n{format_table(results)}\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

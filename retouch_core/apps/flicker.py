"""Measure flicker on a synthetic video: per-frame vs key-frame vs temporally smoothed grids.

    python -m retouch_core.apps.flicker ../shared/data/kodak24/kodim23.png -i "brighter, warmer" \
        --plot docs/images/flicker.png

The clip is a slow pan over a real photo (``--frames`` crops of 192 x 256 px moving 3 pixels
per frame) with a small exposure flicker (each frame's gain drawn from N(1, ``--gain``)).
The stable reference is the same pan without the flicker. For each temporal mode the clip is
retouched by the model and :func:`~retouch_core.engine.temporal.flicker` compares the output's
frame-to-frame brightness change with the reference's; ``grid jitter`` is the mean absolute
change of the grid values between consecutive frames.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..engine.retouch_grid import RetouchGrid
from ..engine.temporal import DEFAULT_SIGMA, TEMPORAL_MODES, flicker, frame_brightness, temporal_grid
from ..formats.image_files import read_image
from ..models import BUILTIN_MODELS, load_retouch_model


def make_pan_clip(
    photo: torch.Tensor, frames: int = 24, size: tuple[int, int] = (192, 256), step: int = 3, gain: float = 0.03,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A slow horizontal pan over ``photo`` (1, 3, H, W), with and without an exposure flicker.

    Returns:
        (flickering, stable): (T, 3, h, w) clips; frame t of the first is frame t of the second
        times a gain drawn from N(1, gain), clipped to [0, 1].

    Example:
        >>> photo = 0.25 + 0.5 * torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
        >>> flickering, stable = make_pan_clip(photo, frames=3, size=(8, 8), step=2)
        >>> stable.shape  # (T, 3, h, w): centred vertically, moving 2 px to the right per frame
        torch.Size([3, 3, 8, 8])
        >>> torch.equal(stable[0], photo[0, :, 4:12, 0:8]), torch.equal(stable[1], photo[0, :, 4:12, 2:10])
        (True, True)
        >>> gains = 1 + 0.03 * torch.randn(3, generator=torch.Generator().manual_seed(0))  # seed=0, gain=0.03
        >>> torch.allclose(flickering, stable * gains.view(3, 1, 1, 1)), gains
        (True, tensor([1.0462, 0.9912, 0.9346]))
        >>> make_pan_clip(photo, frames=10, size=(8, 8), step=2)  # 8 + 2 * 9 = 26 columns > 24
        Traceback (most recent call last):
        ...
        ValueError: photo (16, 24) too small for 10 frames of (8, 8) moving 2 px
    """
    height, width = size
    if photo.shape[-2] < height or photo.shape[-1] < width + step * (frames - 1):
        raise ValueError(f"photo {tuple(photo.shape[-2:])} too small for {frames} frames of {size} moving {step} px")
    top = (photo.shape[-2] - height) // 2
    stable = torch.cat([photo[:, :3, top : top + height, t * step : t * step + width] for t in range(frames)])
    gains = 1 + gain * torch.randn(frames, generator=torch.Generator().manual_seed(seed))
    return (stable * gains.view(-1, 1, 1, 1)).clamp(0, 1), stable


@torch.no_grad()
def predict_frames(model, clip: torch.Tensor, instruction: str):
    """One grid per frame of a (T, 3, h, w) clip, as a RetouchGrid of batch T.

    Example:
        >>> from retouch_core.models import load_retouch_model
        >>> model = load_retouch_model("rule-based")
        >>> clip = torch.tensor([0.3, 0.6]).view(2, 1, 1, 1).expand(2, 3, 16, 24)  # a dark and a bright frame
        >>> grids = predict_frames(model, clip, "brighter")
        >>> grids.batch, torch.equal(grids.select(1).grid, model.predict(clip[1:2], "brighter")[0].grid)
        (2, True)
        >>> torch.equal(grids.select(0).grid, grids.select(1).grid)  # each frame its own edit
        False
    """
    return RetouchGrid.stack([model.predict(clip[t : t + 1], instruction)[0] for t in range(clip.shape[0])])


@torch.no_grad()
def apply_frames(grid, clip: torch.Tensor) -> torch.Tensor:
    """Frame t through grid t (or the one grid of a batch-1 RetouchGrid), clipped to [0, 1].

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> clip = torch.full((2, 3, 4, 4), 0.4)  # (T, 3, h, w)
        >>> gains = RetouchGrid(identity_grid(2) * torch.tensor([0.5, 3.0]).view(2, 1, 1, 1, 1))  # one per frame
        >>> apply_frames(gains, clip)[:, 0, 0, 0]  # 0.4 * 0.5, and 0.4 * 3 clipped
        tensor([0.2000, 1.0000])
        >>> torch.equal(apply_frames(RetouchGrid(identity_grid()), clip), clip)  # batch 1: the same for all
        True
    """
    return torch.cat([grid.for_image(t).apply(clip[t : t + 1]).clamp(0, 1) for t in range(clip.shape[0])])


def measure(photo: torch.Tensor, model, instruction: str, sigma: float = DEFAULT_SIGMA, **clip_options) -> dict:
    """Flicker (1/255) and grid jitter per temporal mode, plus the input's, and the brightness curves.

    The model predicts every frame once; the key frame (frame 0) and smoothed edits are made
    from those predictions, as the node makes them.

    Example:
        >>> from retouch_core.models import load_retouch_model
        >>> y, x = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 40), indexing="ij")
        >>> photo = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * torch.sin(8 * x + 5 * y)])[None]  # smooth
        >>> results = measure(photo, load_retouch_model("rule-based"), "brighter", frames=6, size=(16, 24), step=2)
        >>> {name: round(r["flicker"], 1) for name, r in results.items()}  # 1/255; only the deflicker removes it
        {'input': 6.2, 'stable reference': 0.0, 'per-frame': 7.1, 'key frame': 7.1, 'smoothed': 7.1,
         'smoothed + deflicker': 1.9}
        >>> results["key frame"]["jitter"], results["smoothed"]["brightness"].shape  # one grid: no jitter
        (0.0, torch.Size([6]))
    """
    flickering, stable = make_pan_clip(photo, **clip_options)
    results = {"input": {"flicker": flicker(flickering, stable), "brightness": frame_brightness(flickering)}}
    results["stable reference"] = {"flicker": 0.0, "brightness": frame_brightness(stable)}
    per_frame = predict_frames(model, flickering, instruction)
    for mode in TEMPORAL_MODES:
        grid = temporal_grid(per_frame, flickering, mode, sigma)
        out = apply_frames(grid, flickering)
        results[mode] = {
            "flicker": flicker(out, stable),
            "jitter": float(grid.grid.diff(dim=0).abs().mean()) if grid.batch > 1 else 0.0,
            "brightness": frame_brightness(out),
        }
    return results


def plot(results: dict, path: Path, size: tuple[int, int] = (720, 300)) -> None:
    """Frame brightness over time for each clip, as a PNG line chart (Pillow only).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> results = {"input": {"brightness": torch.tensor([0.50, 0.56, 0.47, 0.53])},
        ...            "smoothed + deflicker": {"brightness": torch.tensor([0.51, 0.52, 0.51, 0.52])}}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     plot(results, Path(folder) / "plots" / "flicker.png")  # makes the missing folder
        ...     chart = Image.open(Path(folder) / "plots" / "flicker.png").convert("RGB")
        >>> colours = {colour for _, colour in chart.getcolors(720 * 300)}
        >>> chart.size, (150, 150, 150) in colours, (150, 40, 170) in colours  # a line per clip, in its colour
        ((720, 300), True, True)
    """
    from PIL import Image, ImageDraw

    colours = {"input": (150, 150, 150), "stable reference": (0, 0, 0), "per-frame": (220, 50, 40),
               "key frame": (40, 120, 220), "smoothed": (30, 160, 70), "smoothed + deflicker": (150, 40, 170)}
    width, height = size
    curves = {name: r["brightness"] for name, r in results.items()}
    low = min(float(c.min()) for c in curves.values())
    high = max(float(c.max()) for c in curves.values())
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 50, width - 150, 20, height - 30
    for name, curve in curves.items():
        frames = len(curve)
        points = [(left + (right - left) * t / (frames - 1), bottom - (bottom - top) * (float(v) - low) / (high - low))
                  for t, v in enumerate(curve)]
        draw.line(points, fill=colours[name], width=2)
    for row, name in enumerate(curves):
        draw.line([(right + 10, top + 18 * row + 6), (right + 30, top + 18 * row + 6)], fill=colours[name], width=3)
        draw.text((right + 35, top + 18 * row), name, fill=(0, 0, 0))
    draw.text((left, bottom + 8), "frame ->   (mean luminance of each frame)", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring): prints the table (and writes the plot), returns 0.

    Example:
        A run predicts every frame with the model; arguments are checked first:

        >>> try:
        ...     main(["photo.png", "--frames", "many"])  # not an integer: argparse prints the usage and exits
        ... except SystemExit as error:
        ...     print(error.code)
        2
    """
    parser = argparse.ArgumentParser(prog="python -m retouch_core.apps.flicker", description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("-i", "--instruction", default="brighter, warmer")
    parser.add_argument("--model", default=next(iter(BUILTIN_MODELS)))
    parser.add_argument("--sigma", type=float, default=DEFAULT_SIGMA, help="smoothing, Gaussian sigma in frames")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--gain", type=float, default=0.03, help="exposure flicker: std of the per-frame gain")
    parser.add_argument("--plot", type=Path, help="write the brightness curves as a PNG")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    photo, _ = read_image(args.photo)
    model = load_retouch_model(args.model)
    results = measure(photo[:, :3], model, args.instruction, args.sigma, frames=args.frames, gain=args.gain)
    print(f"model {model.name}, instruction {args.instruction!r}, {args.frames} frames, gain std {args.gain}, "
          f"sigma {args.sigma} frames")
    print(f"{'clip':<22}{'flicker (1/255)':>16}{'grid jitter':>14}")
    for name, r in results.items():
        jitter = f"{r['jitter']:.4f}" if "jitter" in r else "-"
        print(f"{name:<22}{r['flicker']:>16.2f}{jitter:>14}")
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark slice-and-apply against the cheapest global colour operations.

    python -m retouch_core.apps.bench [--sizes 720p 1080p 1440p 4K 8K] [--repeats 5] [--json out.json]

For each resolution it times, on the same random image (random guide values are the worst
case for the cache), the median of ``--repeats`` runs of:

- ``slice``: :func:`~retouch_core.engine.slicing.slice_and_apply` with the default backend (the fused
  CPU kernel on CPU), a 16x16x8 grid and the luminance guide;
- ``reference``: the same with the differentiable ``grid_sample`` backend;
- ``matrix``: one global 3x4 colour matrix (``einsum`` + offset), the floor for any colour op;
- ``lut``: a 33^3 3D LUT applied with 5-D ``grid_sample`` (how LUTs are applied in torch);

and the peak memory used on top of the inputs while ``slice`` runs (Linux: the process's
resident high-water mark, reset before the call), as MB and as a multiple of the image tensor.

With ``--model NAME`` it also times the whole model end to end (low-resolution prediction
plus full-resolution slice) with ``--instruction``, as ms and as a multiple of the matrix pass.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..engine.grid import identity_grid
from ..engine.slicing import slice_and_apply

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "1440p": (1440, 2560), "4K": (2160, 3840), "8K": (4320, 7680)}


def matrix_pass(image: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Global 3x4 colour matrix, (B, 3, H, W) -> (B, 3, H, W)."""
    return torch.einsum("ij,bjhw->bihw", affine[:, :3], image) + affine[:, 3].view(1, 3, 1, 1)


def lut_pass(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """3D LUT (1, 3, N, N, N) indexed (b, g, r) applied by trilinear 5-D grid_sample."""
    coords = (image.permute(0, 2, 3, 1) * 2 - 1).unsqueeze(1)  # (B, 1, H, W, 3) as (r, g, b) -> (x, y, z)
    return F.grid_sample(lut, coords, mode="bilinear", padding_mode="border", align_corners=True)[:, :, 0]


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: JIT compilation, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _status_bytes(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def peak_extra_bytes(fn) -> int | None:
    """Resident memory high-water mark during ``fn()`` above the resident size before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = _status_bytes("VmRSS")
    fn()
    peak = _status_bytes("VmHWM")
    return None if before is None or peak is None else max(0, peak - before)


def bench_inputs(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (1, 3, H, W) image and a 16x16x8 near-identity grid."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, height, width, generator=gen)
    grid = identity_grid(depth=8, height=16, width=16) + 0.1 * torch.randn(1, 12, 8, 16, 16, generator=gen)
    return image, grid


def measure_memory(size: str) -> int | None:
    """Peak extra bytes of one default slice at ``size``, in a fresh process.

    A fresh process because freed memory that is still resident (from earlier timings) would
    be reused without raising the high-water mark.
    """
    code = f"from retouch_core.apps.bench import _memory_child; print(_memory_child({size!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    value = result.stdout.strip().splitlines()[-1]
    return None if value == "None" else int(value)


def _memory_child(size: str) -> int | None:
    small, small_grid = bench_inputs(8, 8)
    slice_and_apply(small, small_grid)  # JIT compile outside the measurement
    image, grid = bench_inputs(*SIZES[size])
    with torch.inference_mode():
        return peak_extra_bytes(lambda: slice_and_apply(image, grid))


def bench_size(size: str, repeats: int, reference: bool, model=None, instruction: str = "") -> dict:
    height, width = SIZES[size]
    gen = torch.Generator().manual_seed(1)
    image, grid = bench_inputs(height, width)
    affine = torch.eye(3, 4) + 0.1 * torch.randn(3, 4, generator=gen)
    lut = torch.rand(1, 3, 33, 33, 33, generator=gen)
    with torch.inference_mode():
        row = {
            "pixels": height * width,
            "slice_ms": median_ms(lambda: slice_and_apply(image, grid), repeats),
            "matrix_ms": median_ms(lambda: matrix_pass(image, affine), repeats),
            "lut_ms": median_ms(lambda: lut_pass(image, lut), repeats),
        }
        if model is not None:
            row["model_ms"] = median_ms(lambda: model(image, instruction), repeats)
        if reference:
            row["reference_ms"] = median_ms(lambda: slice_and_apply(image, grid, backend="grid_sample"), max(1, repeats // 2))
    extra = measure_memory(size)
    image_bytes = image.numel() * image.element_size()
    row["image_mb"] = image_bytes / 2**20
    row["peak_extra_mb"] = None if extra is None else extra / 2**20
    return row


def format_table(results: dict) -> str:
    header = (
        "| size | slice ms | matrix ms | 3D LUT ms | slice / matrix | slice / LUT | reference ms "
        "| image MB | peak extra MB (x image) |"
    )
    with_model = any("model_ms" in r for r in results.values())
    if with_model:
        header += " model end-to-end ms (x matrix) |"
    lines = [header, "|" + "---|" * (10 if with_model else 9)]
    for name, r in results.items():
        ref = f"{r['reference_ms']:.0f}" if "reference_ms" in r else "-"
        peak = "n/a" if r["peak_extra_mb"] is None else f"{r['peak_extra_mb']:.0f} ({r['peak_extra_mb'] / r['image_mb']:.2f}x)"
        lines.append(
            f"| {name} | {r['slice_ms']:.1f} | {r['matrix_ms']:.1f} | {r['lut_ms']:.1f} | "
            f"{r['slice_ms'] / r['matrix_ms']:.2f} | {r['slice_ms'] / r['lut_ms']:.2f} | {ref} | "
            f"{r['image_mb']:.0f} | {peak} |"
            + (f" {r['model_ms']:.1f} ({r['model_ms'] / r['matrix_ms']:.2f}x) |" if with_model else "")
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the slow grid_sample timing")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--model", help="also time this retouch model end to end (e.g. default)")
    parser.add_argument("--instruction", default="warmer, lift the shadows", help="instruction for --model")
    args = parser.parse_args(argv)
    model = None
    if args.model:
        from ..models import load_retouch_model

        model = load_retouch_model(args.model)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {sys.platform}", flush=True)
    results = {}
    for name in args.sizes:
        results[name] = bench_size(name, args.repeats, not args.no_reference, model, args.instruction)
        print(f"{name}: done", file=sys.stderr, flush=True)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

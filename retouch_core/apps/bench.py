"""Benchmark slice-and-apply against a plain copy and the cheapest global colour operations.

    python -m retouch_core.apps.bench [--sizes 720p 1080p 1440p 4K 8K] [--repeats 5] [--device cpu]
                                      [--threads 1 2] [--first-call 4K] [--json out.json]

For each resolution it times, on the same random image (noise is the worst case of the CPU
kernel: every block of pixels reaches every depth node of the grid), the median of
``--repeats`` runs of:

- ``copy``: a copy of the image into a new tensor allocated as the slice allocates its output
  (on CPU :func:`~retouch_core.engine.slicing.new_cpu_image`, huge pages; ``clone`` elsewhere), the
  memory floor of any per-pixel operation that returns a new image (read it once, write it once);
- ``clone``: torch's ``image.clone()`` for reference: on CPU its allocator takes 4 KB pages, and
  faulting them in can cost more than the copy;
- ``slice``: :func:`~retouch_core.engine.slicing.slice_and_apply` with the default backend (the fused
  CPU kernel on CPU, ``grid_sample`` on CUDA), a 16x16x8 grid and the luminance guide;
- ``learned``: the same with a learned (non-identity) HDRNet guide;
- ``photo`` and ``photo learned``: both slices on a photo-like image of the same size
  (:func:`~retouch_core.apps.bench_files.synthetic_photo`: gradients, texture, grain), where a
  block of neighbouring pixels reaches only the few depth nodes around its tones;
- ``matrix``: one global 3x4 colour matrix (``einsum`` + offset);
- ``lut``: a 33^3 3D LUT applied with 5-D ``grid_sample`` (how LUTs are applied in torch);
- ``pillow_lut``: Pillow's C ``ImageFilter.Color3DLUT`` (33^3) on the 8-bit image, a well-known
  C peer (one thread);
- ``reference``: the differentiable ``grid_sample`` backend; on CUDA also ``cpu_kernel``, the
  fused CPU kernel on a CPU copy, so both paths sit in one table;

and the peak memory used on top of the inputs while ``slice`` runs (Linux: the process's
resident high-water mark, reset before the call), as MB and as a multiple of the image tensor.
On CUDA every timing is synchronised (``torch.cuda.synchronize``) before the clock stops.
``--threads 1 2`` runs the table once per torch thread count: torch's copy and the CPU kernel
both run on that many threads, so the rows show which of them the extra cores speed up.

``--first-call SIZE`` times, in fresh processes, the first edit (default model: prediction
plus slice) of a process against a warm one: with a cold kernel cache (the first run after
installing), with the cache but loading the kernel on first use, and with the cache and the
background load that the CLI and the ComfyUI pack start when they start
(:func:`~retouch_core.engine.slicing.load_cpu_kernel_in_background`).

With ``--model NAME`` it also times the whole model end to end (low-resolution prediction
plus full-resolution slice) with ``--instruction``, as ms and as a multiple of the copy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from ..engine.grid import identity_grid
from ..engine.guide import GuideParams
from ..engine.slicing import new_cpu_image, slice_and_apply
from .bench_files import synthetic_photo

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "1440p": (1440, 2560), "4K": (2160, 3840), "8K": (4320, 7680)}
LUT_SIZE = 33


def new_image_like(image: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor like ``image``, allocated as the slice allocates its output."""
    return new_cpu_image(*image.shape) if image.device.type == "cpu" else torch.empty_like(image)


def matrix_pass(image: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Global 3x4 colour matrix, (B, 3, H, W) -> (B, 3, H, W)."""
    return torch.einsum("ij,bjhw->bihw", affine[:, :3], image) + affine[:, 3].view(1, 3, 1, 1)


def lut_pass(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """3D LUT (1, 3, N, N, N) indexed (b, g, r) applied by trilinear 5-D grid_sample."""
    coords = (image.permute(0, 2, 3, 1) * 2 - 1).unsqueeze(1)  # (B, 1, H, W, 3) as (r, g, b) -> (x, y, z)
    return F.grid_sample(lut, coords, mode="bilinear", padding_mode="border", align_corners=True)[:, :, 0]


def pillow_lut_inputs(image: torch.Tensor, lut: torch.Tensor) -> tuple[Image.Image, ImageFilter.Color3DLUT]:
    """The image as an 8-bit Pillow image and ``lut`` as Pillow's Color3DLUT (same b, g, r order)."""
    pixels = (image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).contiguous().cpu().numpy()
    table = lut[0].permute(1, 2, 3, 0).contiguous().cpu().numpy()  # (b, g, r, channel), r fastest
    return Image.fromarray(pixels), ImageFilter.Color3DLUT(lut.shape[-1], table.reshape(-1).tolist())


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so that a timing covers the work, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_ms(fn, repeats: int, device: torch.device = torch.device("cpu")) -> float:
    fn()  # warm-up: JIT compilation, allocator
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
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


def learned_guide() -> GuideParams:
    """A non-identity HDRNet guide (colour mix, curves, mix), as a trained model holds."""
    gen = torch.Generator().manual_seed(2)
    base = GuideParams.identity()
    return GuideParams(
        ccm=base.ccm + 0.1 * torch.randn(1, 3, 3, generator=gen),
        ccm_bias=0.02 * torch.randn(1, 3, generator=gen),
        slopes=0.5 + torch.rand(1, 3, base.knots, generator=gen),
        mix=base.mix,
        mix_bias=base.mix_bias,
    )


def _run_child(call: str, env: dict | None = None) -> str:
    """Run ``call`` (an expression on this module) in a fresh interpreter; its printed result."""
    code = f"from retouch_core.apps import bench; print(bench.{call})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, **(env or {})})
    return result.stdout.strip().splitlines()[-1]


def measure_memory(size: str) -> int | None:
    """Peak extra bytes of one default slice at ``size``, in a fresh process.

    A fresh process because freed memory that is still resident (from earlier timings) would
    be reused without raising the high-water mark.
    """
    value = _run_child(f"_memory_child({size!r})")
    return None if value == "None" else int(value)


def _memory_child(size: str) -> int | None:
    small, small_grid = bench_inputs(8, 8)
    slice_and_apply(small, small_grid)  # JIT compile outside the measurement
    image, grid = bench_inputs(*SIZES[size])
    with torch.inference_mode():
        return peak_extra_bytes(lambda: slice_and_apply(image, grid))


def bench_size(size: str, repeats: int, reference: bool, device: torch.device, model=None,
               instruction: str = "") -> dict:
    height, width = SIZES[size]
    gen = torch.Generator().manual_seed(1)
    image, grid = bench_inputs(height, width)
    affine = torch.eye(3, 4) + 0.1 * torch.randn(3, 4, generator=gen)
    lut = torch.rand(1, 3, LUT_SIZE, LUT_SIZE, LUT_SIZE, generator=gen)
    pil_image, pil_lut = pillow_lut_inputs(image, lut)
    guide = learned_guide()
    photo = torch.from_numpy(synthetic_photo(height, width)).permute(2, 0, 1)[None].float().div_(255).contiguous()
    on_device = [t.to(device) for t in (image, grid, affine, lut, photo)]
    image_d, grid_d, affine_d, lut_d, photo_d = on_device

    def ms(fn, runs=repeats):
        return median_ms(fn, runs, device)

    with torch.inference_mode():
        row = {
            "pixels": height * width,
            "copy_ms": ms(lambda: new_image_like(image_d).copy_(image_d)),
            "clone_ms": ms(lambda: image_d.clone()),
            "slice_ms": ms(lambda: slice_and_apply(image_d, grid_d)),
            "learned_ms": ms(lambda: slice_and_apply(image_d, grid_d, guide)),
            "photo_ms": ms(lambda: slice_and_apply(photo_d, grid_d)),
            "photo_learned_ms": ms(lambda: slice_and_apply(photo_d, grid_d, guide)),
            "matrix_ms": ms(lambda: matrix_pass(image_d, affine_d)),
            "lut_ms": ms(lambda: lut_pass(image_d, lut_d)),
            "pillow_lut_ms": median_ms(lambda: pil_image.filter(pil_lut), repeats),
        }
        if device.type == "cuda":
            row["cpu_kernel_ms"] = median_ms(lambda: slice_and_apply(image, grid, backend="cpu_kernel"), repeats)
        if model is not None:
            row["model_ms"] = ms(lambda: model(image_d, instruction))
        if reference:
            runs = max(1, repeats // 2)
            row["reference_ms"] = ms(lambda: slice_and_apply(image_d, grid_d, backend="grid_sample"), runs)
    extra = measure_memory(size) if device.type == "cpu" else None
    image_bytes = image.numel() * image.element_size()
    row["image_mb"] = image_bytes / 2**20
    row["peak_extra_mb"] = None if extra is None else extra / 2**20
    return row


def format_table(results: dict) -> str:
    columns = [
        ("size", lambda name, r: name),
        ("copy ms", lambda name, r: f"{r['copy_ms']:.1f}"),
        ("torch clone ms", lambda name, r: f"{r['clone_ms']:.1f}"),
        ("slice ms", lambda name, r: f"{r['slice_ms']:.1f}"),
        ("**slice / copy**", lambda name, r: f"**{r['slice_ms'] / r['copy_ms']:.2f}**"),
        ("learned-guide slice ms", lambda name, r: f"{r['learned_ms']:.1f}"),
        ("**learned / copy**", lambda name, r: f"**{r['learned_ms'] / r['copy_ms']:.2f}**"),
        ("photo slice ms", lambda name, r: f"{r['photo_ms']:.1f}"),
        ("**photo / copy**", lambda name, r: f"**{r['photo_ms'] / r['copy_ms']:.2f}**"),
        ("photo learned ms", lambda name, r: f"{r['photo_learned_ms']:.1f}"),
        ("**photo learned / copy**", lambda name, r: f"**{r['photo_learned_ms'] / r['copy_ms']:.2f}**"),
        ("matrix ms", lambda name, r: f"{r['matrix_ms']:.1f}"),
        ("torch 3D LUT ms", lambda name, r: f"{r['lut_ms']:.1f}"),
        ("Pillow Color3DLUT ms", lambda name, r: f"{r['pillow_lut_ms']:.1f}"),
        ("slice / Pillow LUT", lambda name, r: f"{r['slice_ms'] / r['pillow_lut_ms']:.2f}"),
        ("reference ms", lambda name, r: f"{r['reference_ms']:.0f}" if "reference_ms" in r else "-"),
    ]
    if any("cpu_kernel_ms" in r for r in results.values()):
        columns.append(("CPU kernel ms", lambda name, r: f"{r['cpu_kernel_ms']:.1f}"))
    columns += [
        ("image MB", lambda name, r: f"{r['image_mb']:.0f}"),
        ("peak extra MB (x image)", lambda name, r: "n/a" if r["peak_extra_mb"] is None
         else f"{r['peak_extra_mb']:.0f} ({r['peak_extra_mb'] / r['image_mb']:.2f}x)"),
    ]
    if any("model_ms" in r for r in results.values()):
        columns.append(("model end-to-end ms (x copy)",
                        lambda name, r: f"{r['model_ms']:.1f} ({r['model_ms'] / r['copy_ms']:.2f}x)"))
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for name, r in results.items():
        lines.append("| " + " | ".join(cell(name, r) for _, cell in columns) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ first call
FIRST_CALL_MODES = {
    "cold cache": "the first run after installing: numba compiles the kernel and caches it",
    "cached, loaded on first use": "numba is imported and the cached kernel loaded by the first edit",
    "cached, background load at start-up": "what the CLI and the ComfyUI pack do",
}


def _first_call_child(size: str, background: bool, repeats: int) -> str:
    """First and warm edit times (ms) of this fresh process, as JSON.

    An edit is what a prompt or a CLI run does per image: the default model predicts a grid on
    a low-resolution copy and the grid is sliced at full resolution. Start-up (imports, the
    model load) is not timed, as a user does not wait for it per prompt.
    """
    from ..engine.slicing import load_cpu_kernel_in_background
    from ..models import load_retouch_model

    if background:
        load_cpu_kernel_in_background()
    model = load_retouch_model("default")
    image, _ = bench_inputs(*SIZES[size])  # stands in for reading the photo
    instruction = "warmer, lift the shadows"
    with torch.inference_mode():
        start = time.perf_counter()
        model(image, instruction)
        first = 1000 * (time.perf_counter() - start)
        warm = median_ms(lambda: model(image, instruction), repeats)
    return json.dumps({"first_ms": first, "warm_ms": warm})


def bench_first_call(size: str, repeats: int) -> dict:
    """First vs warm edit at ``size`` for each of :data:`FIRST_CALL_MODES`, in fresh processes."""
    results = {}
    with tempfile.TemporaryDirectory() as empty_cache:
        for mode in FIRST_CALL_MODES:
            # Only the cold run gets an empty cache (it fills it); the others use the user's.
            env = {"XDG_CACHE_HOME": empty_cache} if mode == "cold cache" else None
            if mode == "cached, loaded on first use":
                _run_child(f"_first_call_child({size!r}, False, 1)")  # make sure the user cache is filled
            call = f"_first_call_child({size!r}, {mode.endswith('start-up')}, {repeats})"
            results[mode] = json.loads(_run_child(call, env))
    return results


def format_first_call_table(size: str, results: dict) -> str:
    lines = [f"| {size} edit (default model), fresh process | first ms | warm ms | **first / warm** |",
             "|---|---|---|---|"]
    for mode, r in results.items():
        lines.append(f"| {mode} | {r['first_ms']:.0f} | {r['warm_ms']:.0f} | **{r['first_ms'] / r['warm_ms']:.2f}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="torch device to time on, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow grid_sample timing")
    parser.add_argument("--first-call", choices=list(SIZES), metavar="SIZE",
                        help="also time the first edit of a fresh process against a warm one at SIZE")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--model", help="also time this retouch model end to end (e.g. default)")
    parser.add_argument("--instruction", default="warmer, lift the shadows", help="instruction for --model")
    parser.add_argument("--threads", type=int, nargs="+", metavar="N",
                        help="run the table once per torch thread count N (the slice and the copy both use it; "
                             "default: torch's current count)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    model = None
    if args.model:
        from ..models import load_retouch_model

        model = load_retouch_model(args.model)
    if args.threads and min(args.threads) < 1:
        parser.error("--threads takes counts >= 1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {sys.platform}, device {device}", flush=True)
    results = {}
    before = torch.get_num_threads()
    try:
        for name in args.sizes:
            for threads in dict.fromkeys(args.threads or [before]):
                torch.set_num_threads(threads)
                label = f"{name}, {threads} thread{'s' * (threads > 1)}" if args.threads else name
                results[label] = bench_size(name, args.repeats, not args.no_reference, device, model, args.instruction)
                print(f"{label}: done", file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(before)
    if results:
        print(format_table(results))
    if args.first_call:
        first = bench_first_call(args.first_call, args.repeats)
        results[f"first_call_{args.first_call}"] = first
        print()
        print(format_first_call_table(args.first_call, first))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

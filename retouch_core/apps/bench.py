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
    """An uninitialised tensor like ``image``, allocated as the slice allocates its output
    (on CPU always float32, the dtype the benchmark and the CPU kernel use).

    Example:
        >>> image = torch.rand(1, 3, 4, 5)
        >>> out = new_image_like(image)
        >>> out.shape, out.dtype, out.data_ptr() != image.data_ptr()  # new memory
        (torch.Size([1, 3, 4, 5]), torch.float32, True)
        >>> torch.equal(out.copy_(image), image)  # the "copy" row times exactly this
        True
        >>> new_image_like(image.double()).dtype  # the CPU allocation is float32 whatever the input
        torch.float32
    """
    return new_cpu_image(*image.shape) if image.device.type == "cpu" else torch.empty_like(image)


def matrix_pass(image: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Global 3x4 colour matrix, (B, 3, H, W) -> (B, 3, H, W).

    Example:
        >>> image = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(matrix_pass(image, torch.eye(3, 4)), image)  # the identity affine
        True
        >>> affine = torch.tensor([[2.0, 0, 0, -0.1], [0, 2, 0, -0.1], [0, 0, 2, -0.1]])  # 2 x - 0.1
        >>> pixel = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
        >>> [round(v, 4) for v in matrix_pass(pixel, affine).flatten().tolist()]
        [0.3, 0.7, 1.1]
    """
    return torch.einsum("ij,bjhw->bihw", affine[:, :3], image) + affine[:, 3].view(1, 3, 1, 1)


def lut_pass(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """3D LUT (1, 3, N, N, N) indexed (b, g, r) applied by trilinear 5-D grid_sample.

    Example:
        >>> levels = torch.linspace(0, 1, 5)
        >>> b, g, r = torch.meshgrid(levels, levels, levels, indexing="ij")
        >>> identity = torch.stack([r, g, b])[None]  # lut[0, :, b, g, r] = (r, g, b)
        >>> image = torch.rand(1, 3, 4, 6, generator=torch.Generator().manual_seed(0))
        >>> out = lut_pass(image, identity)
        >>> out.shape, torch.allclose(out, image, atol=1e-5)
        (torch.Size([1, 3, 4, 6]), True)
        >>> torch.allclose(lut_pass(image, identity.flip(1)), image.flip(1), atol=1e-5)  # (b, g, r) out: swapped
        True
    """
    coords = (image.permute(0, 2, 3, 1) * 2 - 1).unsqueeze(1)  # (B, 1, H, W, 3) as (r, g, b) -> (x, y, z)
    return F.grid_sample(lut, coords, mode="bilinear", padding_mode="border", align_corners=True)[:, :, 0]


def pillow_lut_inputs(image: torch.Tensor, lut: torch.Tensor) -> tuple[Image.Image, ImageFilter.Color3DLUT]:
    """The image as an 8-bit Pillow image and ``lut`` as Pillow's Color3DLUT (same b, g, r order).

    Example:
        >>> import numpy as np
        >>> levels = torch.linspace(0, 1, 5)
        >>> b, g, r = torch.meshgrid(levels, levels, levels, indexing="ij")
        >>> identity = torch.stack([r, g, b])[None]  # as in lut_pass: lut[0, :, b, g, r] = (r, g, b)
        >>> image = torch.rand(1, 3, 4, 6, generator=torch.Generator().manual_seed(0))
        >>> pil_image, pil_lut = pillow_lut_inputs(image, identity)
        >>> type(pil_image).__name__, pil_image.mode, pil_image.size, type(pil_lut).__name__, pil_lut.size
        ('Image', 'RGB', (6, 4), 'Color3DLUT', (5, 5, 5))
        >>> pixels = np.asarray(pil_image)  # (H, W, 3) uint8: round(255 x), clamped to [0, 1] first
        >>> pixels.shape, pil_image.getpixel((0, 0)) == tuple((image[0, :, 0, 0] * 255).round().int().tolist())
        ((4, 6, 3), True)
        >>> np.array_equal(np.asarray(pil_image.filter(pil_lut)), pixels)  # the identity LUT in Pillow
        True
        >>> _, swap = pillow_lut_inputs(image, identity.flip(1))  # (b, g, r) out, as lut_pass reads it
        >>> np.array_equal(np.asarray(pil_image.filter(swap)), pixels[..., ::-1])
        True
    """
    pixels = (image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).contiguous().cpu().numpy()
    table = lut[0].permute(1, 2, 3, 0).contiguous().cpu().numpy()  # (b, g, r, channel), r fastest
    return Image.fromarray(pixels), ImageFilter.Color3DLUT(lut.shape[-1], table.reshape(-1).tolist())


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so that a timing covers the work, not its launch.

    Example:
        >>> synchronize(torch.device("cpu")) is None  # CPU ops are done when they return: nothing to wait for
        True
        >>> from unittest import mock
        >>> with mock.patch("torch.cuda.synchronize") as wait:  # stands in for a GPU
        ...     synchronize(torch.device("cuda", 0))
        >>> wait.call_args.args
        (device(type='cuda', index=0),)
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_ms(fn, repeats: int, device: torch.device = torch.device("cpu")) -> float:
    """Median wall time in ms of ``repeats`` calls of ``fn()`` after one untimed warm-up call;
    each timed call includes :func:`synchronize` on ``device``.

    Example:
        >>> calls = []
        >>> ms = median_ms(lambda: calls.append(sum(range(1000))), repeats=3)
        >>> len(calls), type(ms).__name__, ms > 0  # the warm-up call, then 3 timed ones
        (4, 'float', True)
    """
    fn()  # warm-up: JIT compilation, allocator
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def warm_up(fn, device: torch.device = torch.device("cpu"), seconds: float = 1.0) -> int:
    """Call ``fn`` for at least ``seconds`` (at least twice) before anything is timed; return how
    often. On this VM the first few 4K slices of a process, and sometimes of a new thread count,
    ran about twice as slow as later ones: long enough to spoil the median of the first column.

    Example:
        >>> calls = []
        >>> warm_up(lambda: calls.append(1), seconds=0.0), len(calls)
        (2, 2)
    """
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        fn()
        synchronize(device)
        calls += 1
    return calls


def _status_bytes(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def peak_extra_bytes(fn) -> int | None:
    """Resident memory high-water mark during ``fn()`` above the resident size before it, in
    bytes; ``None`` where ``/proc/self/clear_refs`` cannot be written (not Linux).

    Example:
        >>> import numpy as np
        >>> extra = peak_extra_bytes(lambda: np.ones(8 * 2**20))  # 64 MB, filled (so resident), then freed
        >>> extra is None or extra > 60 * 2**20
        True
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = _status_bytes("VmRSS")
    fn()
    peak = _status_bytes("VmHWM")
    return None if before is None or peak is None else max(0, peak - before)


def bench_inputs(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (1, 3, H, W) image and a 16x16x8 near-identity grid.

    Example:
        >>> image, grid = bench_inputs(4, 6)
        >>> image.shape, grid.shape  # grid: (1, 12, depth 8, 16, 16)
        (torch.Size([1, 3, 4, 6]), torch.Size([1, 12, 8, 16, 16]))
        >>> again, _ = bench_inputs(4, 6)
        >>> torch.equal(image, again), bool(0 <= image.min() and image.max() < 1)  # seeded, uniform in [0, 1)
        (True, True)
        >>> round((grid - identity_grid(depth=8, height=16, width=16)).std().item(), 2)  # identity + 0.1 noise
        0.1
    """
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, height, width, generator=gen)
    grid = identity_grid(depth=8, height=16, width=16) + 0.1 * torch.randn(1, 12, 8, 16, 16, generator=gen)
    return image, grid


def learned_guide() -> GuideParams:
    """A non-identity HDRNet guide, as a trained model holds: random colour mix (matrix and bias)
    and curves; the final mix stays the luminance weights.

    Example:
        >>> from retouch_core.engine.guide import apply_guide, luminance_guide
        >>> guide = learned_guide()
        >>> guide.check(batch=1)  # consistent shapes, non-negative slopes: no error
        >>> guide.batch, guide.knots == GuideParams.identity().knots
        (1, True)
        >>> image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(apply_guide(image, guide), luminance_guide(image), atol=1e-3)  # not the identity guide
        False
        >>> torch.equal(guide.slopes, learned_guide().slopes)  # seeded
        True
    """
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

    Example:
        Without starting the child interpreter (it imports torch and slices a full-size image):

        >>> from unittest import mock
        >>> with mock.patch("retouch_core.apps.bench._run_child", return_value="52428800") as child:
        ...     measure_memory("4K")
        52428800
        >>> child.call_args.args  # what the child evaluates; it prints the result
        ("_memory_child('4K')",)
        >>> with mock.patch("retouch_core.apps.bench._run_child", return_value="None"):  # no /proc (not Linux)
        ...     print(measure_memory("4K"))
        None
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
    """One row of the table at ``size`` (a key of :data:`SIZES`): the median ms of each timed
    operation (module docstring), the pixel count, the image's MB and the peak extra MB of a
    slice (``None`` off CPU or where it cannot be measured).

    Example:
        Without timing anything (seconds at 720p, minutes at 8K): a stand-in timer gets the
        functions, and a stand-in for :func:`measure_memory`'s child process reports 3 images.

        >>> from unittest import mock
        >>> timer = mock.patch("retouch_core.apps.bench.median_ms", return_value=2.0)  # replaces the timed runs
        >>> memory = mock.patch("retouch_core.apps.bench.measure_memory", return_value=3 * 720 * 1280 * 3 * 4)
        >>> with timer as timed, memory:
        ...     row = bench_size("720p", repeats=5, reference=True, device=torch.device("cpu"))
        >>> timed.call_count, [call.args[1] for call in timed.call_args_list]  # the reference runs repeats // 2
        (10, [5, 5, 5, 5, 5, 5, 5, 5, 5, 2])
        >>> row["pixels"], row["image_mb"], row["peak_extra_mb"] / row["image_mb"], row["copy_ms"]
        (921600, 10.546875, 3.0, 2.0)
        >>> copy = timed.call_args_list[0].args[0]()  # the first timed function: the copy
        >>> copy.shape
        torch.Size([1, 3, 720, 1280])
    """
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
        warm_up(lambda: slice_and_apply(image_d, grid_d), device)
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
    """A Markdown table, one row per label of ``results`` (rows of :func:`bench_size`).

    Example:
        >>> row = {"copy_ms": 2.0, "clone_ms": 3.0, "slice_ms": 5.0, "learned_ms": 6.0, "photo_ms": 4.0,
        ...        "photo_learned_ms": 5.0, "matrix_ms": 4.0, "lut_ms": 30.0, "pillow_lut_ms": 20.0,
        ...        "image_mb": 24.0, "peak_extra_mb": 12.0}
        >>> header, rule, line = format_table({"4K": row}).splitlines()
        >>> cells = dict(zip(header.strip("| ").split(" | "), line.strip("| ").split(" | ")))
        >>> len(cells), rule == "|" + "---|" * len(cells), cells["size"]
        (18, True, '4K')
        >>> cells["**slice / copy**"], cells["**learned / copy**"], cells["**photo / copy**"]  # 5 / 2, 6 / 2, 4 / 2
        ('**2.50**', '**3.00**', '**2.00**')
        >>> cells["slice / Pillow LUT"], cells["reference ms"], cells["peak extra MB (x image)"]  # 5 / 20, 12 / 24
        ('0.25', '-', '12 (0.50x)')
        >>> more = dict(row, cpu_kernel_ms=7.0, model_ms=50.0, peak_extra_mb=None)  # a CUDA row with --model
        >>> header, _, line = format_table({"4K": more}).splitlines()
        >>> cells = dict(zip(header.strip("| ").split(" | "), line.strip("| ").split(" | ")))
        >>> cells["CPU kernel ms"], cells["peak extra MB (x image)"], cells["model end-to-end ms (x copy)"]
        ('7.0', 'n/a', '50.0 (25.00x)')
    """
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
    """First vs warm edit at ``size`` for each of :data:`FIRST_CALL_MODES`, in fresh processes.

    Example:
        Without starting the child interpreters (each loads torch and the model, and times edits):

        >>> from unittest import mock
        >>> printed = '{"first_ms": 900.0, "warm_ms": 300.0}'  # what _first_call_child prints
        >>> with mock.patch("retouch_core.apps.bench._run_child", return_value=printed) as child:
        ...     results = bench_first_call("4K", repeats=3)
        >>> list(results) == list(FIRST_CALL_MODES), results["cold cache"]
        (True, {'first_ms': 900.0, 'warm_ms': 300.0})
        >>> for call in child.call_args_list:  # (size, background load, repeats); only the first has an empty cache
        ...     print(call.args[0], sorted(call.args[1]) if len(call.args) > 1 and call.args[1] else "user cache")
        _first_call_child('4K', False, 3) ['XDG_CACHE_HOME']
        _first_call_child('4K', False, 1) user cache
        _first_call_child('4K', False, 3) user cache
        _first_call_child('4K', True, 3) user cache
        >>> os.path.exists(child.call_args_list[0].args[1]["XDG_CACHE_HOME"])  # the empty cache is removed after
        False
    """
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
    """A Markdown table of :func:`bench_first_call`'s results: first and warm ms per mode, and
    their ratio.

    Example:
        >>> results = {"cold cache": {"first_ms": 9000.0, "warm_ms": 400.0},
        ...            "cached, background load at start-up": {"first_ms": 500.0, "warm_ms": 400.0}}
        >>> print(format_first_call_table("4K", results))  # 9000 / 400 and 500 / 400
        | 4K edit (default model), fresh process | first ms | warm ms | **first / warm** |
        |---|---|---|---|
        | cold cache | 9000 | 400 | **22.50** |
        | cached, background load at start-up | 500 | 400 | **1.25** |
    """
    lines = [f"| {size} edit (default model), fresh process | first ms | warm ms | **first / warm** |",
             "|---|---|---|---|"]
    for mode, r in results.items():
        lines.append(f"| {mode} | {r['first_ms']:.0f} | {r['warm_ms']:.0f} | **{r['first_ms'] / r['warm_ms']:.2f}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """The command line (module docstring): prints the tables to stdout, returns 0.

    Example:
        A full run takes minutes; arguments are checked first:

        >>> try:
        ...     main(["--sizes", "5K"])  # not one of SIZES: argparse prints the usage and exits
        ... except SystemExit as error:
        ...     print(error.code)
        2
        >>> main(["--sizes"])  # no sizes: only the header line, nothing timed  # doctest: +ELLIPSIS
        torch ..., device cpu
        0
    """
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

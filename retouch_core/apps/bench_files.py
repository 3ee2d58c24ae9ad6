"""Benchmark the ``retouch`` CLI on large files: wall time and peak memory per size.

    python -m retouch_core.apps.bench_files [--sizes 24 50 100] [--formats jpg png] [--json out.json]

For each size (megapixels, 3:2 or the 12000x8400 of a 100 MP medium-format camera) it writes a
synthetic photo-like JPEG (smooth gradients, texture and noise; quality 95), then runs
``retouch in.jpg -o out.<fmt> -i "warmer, lift the shadows"`` with the default model in a fresh
process per run and reports the process's wall time, its own stage timings and its peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at exit, which includes the
interpreter, torch and the model), as MB and as a multiple of the float32 RGB image. The same
run on a 64x64 file gives the start-up floor (interpreter, torch, model); the peak above it is
what the image costs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = {24: (4000, 6000), 50: (5792, 8688), 100: (8400, 12000)}  # megapixels -> (H, W)
INSTRUCTION = "warmer, lift the shadows"
_CHILD = (
    "import resource, sys\n"
    "from retouch_core.apps.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(status)\n"
)


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: gradients, a low-frequency texture and grain, built row band by band.

    Example:
        >>> photo = synthetic_photo(16, 24)
        >>> photo.shape, photo.dtype
        ((16, 24, 3), dtype('uint8'))
        >>> np.array_equal(photo, synthetic_photo(16, 24)), np.array_equal(photo, synthetic_photo(16, 24, seed=1))
        (True, False)
        >>> red = photo[..., 0].mean(0)  # red is 0.2 + 0.6 x: dark on the left, bright on the right
        >>> bool(red[:4].mean() < 100 < 180 < red[-4:].mean())
        True
    """
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), np.uint8)
    x = np.linspace(0, 1, width, dtype=np.float32)
    for top in range(0, height, 512):
        # One y ramp over the whole image, as x: a band's own linspace repeated a row at each seam.
        y = np.arange(top, min(top + 512, height), dtype=np.float32)[:, None] / np.float32(max(height - 1, 1))
        xx, yy = np.broadcast_arrays(x[None, :], y)
        texture = 0.15 * np.sin(40 * xx + 25 * yy) * np.cos(31 * yy - 17 * xx)
        base = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.5 + 0.3 * np.sin(6 * xx + 4 * yy)], -1)
        noise = rng.normal(0, 0.02, (len(y), width, 3)).astype(np.float32)
        out[top : top + len(y)] = np.clip((base + texture[..., None] + noise) * 255, 0, 255).round()
    return out


def run_cli(src: Path, dst: Path) -> dict:
    """One ``retouch`` run in a fresh process: wall s, stage timings (ms), peak RSS (MB).

    Example:
        Without starting the CLI (a few seconds): ``subprocess.run`` returns what the child prints.

        >>> import subprocess
        >>> from unittest import mock
        >>> printed = "a.jpg -> b.jpg | read 120 ms, predict 45 ms, apply 300 ms (total 465 ms)\\npeak_rss_kb 512000"
        >>> with mock.patch("subprocess.run", return_value=subprocess.CompletedProcess([], 0, printed, "")) as run:
        ...     row = run_cli(Path("a.jpg"), Path("b.jpg"))
        >>> sorted(row), row["peak_rss_mb"]  # 512000 kB / 1024
        (['peak_rss_mb', 'stages_ms', 'wall_s'], 500.0)
        >>> row["stages_ms"]  # every "<word> <n> ms", the CLI's total too
        {'read': 120.0, 'predict': 45.0, 'apply': 300.0, 'total': 465.0}
        >>> run.call_args.args[0][3:]  # the child's arguments: the CLI's own
        ['a.jpg', '-o', 'b.jpg', '-i', 'warmer, lift the shadows', '--max-pixels', '200000000']
        >>> failed = subprocess.CompletedProcess([], 1, "", "error: a.jpg: no such file\\n")
        >>> with mock.patch("subprocess.run", return_value=failed):
        ...     run_cli(Path("a.jpg"), Path("b.jpg"))
        Traceback (most recent call last):
        ...
        RuntimeError: retouch failed on a.jpg:
        error: a.jpg: no such file
    """
    start = time.perf_counter()
    # The benchmark's own files are trusted: 100 MP is above the default decompression-bomb limit.
    command = [sys.executable, "-c", _CHILD, str(src), "-o", str(dst), "-i", INSTRUCTION,
               "--max-pixels", str(2 * 10**8)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"retouch failed on {src.name}:\n{result.stderr[-2000:]}")
    wall = time.perf_counter() - start
    stages = {name: float(ms) for name, ms in re.findall(r"(\w+) (\d+) ms", result.stdout)}
    peak_kb = int(re.search(r"peak_rss_kb (\d+)", result.stdout).group(1))
    return {"wall_s": wall, "stages_ms": stages, "peak_rss_mb": peak_kb / 1024}


def bench_size(megapixels: int, fmt: str, folder: Path) -> dict:
    """:func:`run_cli` on the synthetic JPEG of a size (written in ``folder`` once), output as ``fmt``;
    the row also has the size (``WxH``) and the float32 RGB image's MB.

    Example:
        A tiny made-up size, and a stand-in for the CLI run (:func:`run_cli` shows what it parses):

        >>> import subprocess, tempfile
        >>> from unittest import mock
        >>> done = subprocess.CompletedProcess([], 0, "read 1 ms\\npeak_rss_kb 102400\\n", "")
        >>> tiny, cli = mock.patch.dict(SIZES, {1: (8, 12)}), mock.patch("subprocess.run", return_value=done)
        >>> with tempfile.TemporaryDirectory() as folder, tiny, cli as run:
        ...     row = bench_size(1, "png", Path(folder))
        ...     written = sorted(p.name for p in Path(folder).iterdir())
        ...     arguments = [Path(a).name for a in run.call_args.args[0][3:6]]
        >>> written, arguments  # the source JPEG; the output would be the CLI's
        (['1mp.jpg'], ['1mp.jpg', '-o', '1mp_out.png'])
        >>> row["size"], row["float_image_mb"] == 8 * 12 * 3 * 4 / 2**20, row["peak_rss_mb"]
        ('12x8', True, 100.0)
    """
    height, width = SIZES[megapixels]
    src = folder / f"{megapixels}mp.jpg"
    if not src.exists():
        Image.fromarray(synthetic_photo(height, width)).save(src, quality=95)
    row = run_cli(src, folder / f"{megapixels}mp_out.{fmt}")
    row.update(size=f"{width}x{height}", float_image_mb=height * width * 3 * 4 / 2**20)
    return row


def format_table(results: dict, floor_mb: float) -> str:
    """A Markdown table, one row per ``(megapixels, format)`` of ``results`` (rows of :func:`bench_size`).

    Example:
        >>> row = {"size": "6000x4000", "wall_s": 9.87, "peak_rss_mb": 450.0, "float_image_mb": 100.0,
        ...        "stages_ms": {"read": 400, "predict": 50, "apply": 2500, "write": 1200}}
        >>> table = format_table({(24, "jpg"): row}, floor_mb=250.0).splitlines()
        >>> len(table), table[-1]  # header, rule, one row; 450 / 100 and (450 - 250) / 100
        (3, '| 24 MP JPEG (6000x4000) | JPG | 9.9 | 400 / 50 / 2500 / 1200 | 450 | 100 | **4.50** | 2.00 |')
    """
    lines = ["| file | output | wall s | read / predict / apply / write ms | peak RSS MB | float image MB "
             "| **peak / float image** | (peak - start-up floor) / float image |", "|---|---|---|---|---|---|---|---|"]
    for (megapixels, fmt), r in results.items():
        stages = " / ".join(f"{r['stages_ms'].get(name, 0):.0f}" for name in ("read", "predict", "apply", "write"))
        lines.append(f"| {megapixels} MP JPEG ({r['size']}) | {fmt.upper()} | {r['wall_s']:.1f} | {stages} "
                     f"| {r['peak_rss_mb']:.0f} | {r['float_image_mb']:.0f} "
                     f"| **{r['peak_rss_mb'] / r['float_image_mb']:.2f}** "
                     f"| {(r['peak_rss_mb'] - floor_mb) / r['float_image_mb']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """The command line (module docstring): writes the table to stdout, returns 0.

    Example:
        A full run takes minutes; arguments are checked first:

        >>> try:
        ...     main(["--sizes", "30"])  # not one of SIZES: argparse prints the usage and exits
        ... except SystemExit as error:
        ...     print(error.code)
        2
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--formats", nargs="+", default=["jpg"], choices=["jpg", "png", "tif"])
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        Image.fromarray(synthetic_photo(64, 64)).save(Path(folder) / "tiny.jpg", quality=95)
        floor_mb = run_cli(Path(folder) / "tiny.jpg", Path(folder) / "tiny_out.jpg")["peak_rss_mb"]
        for megapixels in args.sizes:
            for fmt in args.formats:
                results[megapixels, fmt] = bench_size(megapixels, fmt, Path(folder))
                print(f"{megapixels} MP -> {fmt}: {json.dumps(results[megapixels, fmt])}", file=sys.stderr,
                      flush=True)
    print(f"start-up floor (same command on a 64x64 JPEG): {floor_mb:.0f} MB peak RSS")
    print(format_table(results, floor_mb))
    if args.json:
        raw = {f"{mp}mp_{fmt}": r for (mp, fmt), r in results.items()}
        args.json.write_text(json.dumps({"startup_floor_mb": floor_mb, **raw}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

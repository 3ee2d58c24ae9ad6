"""``retouch-train make-dataset``: (input, instruction, target) triplets by inverse degradation.

Layout of ``--out``::

    config.json          settings fingerprint (a resume with other settings is refused)
    photos.jsonl         the scanned photos: index, path, sha256, size, split (canonical order)
    skipped.jsonl        every file left out, with the reason (bad file, duplicate, low-light ...)
    images/0000/...      <id>_input.png, <id>_target.png; 500 triplets (1000 files) per folder
    parts/0000.jsonl     records of one image folder, appended as photos finish
    manifest.jsonl       all records in canonical order (photo order, then pair), written last
    summary.json         counts, speed, round-trip PSNR statistics

Resuming: run the same command again. A record counts as done only when its line in
``parts/`` parses and both of its images exist; images are written with temp file +
``os.replace``; partial lines from a killed run are dropped, so a resumed run ends with the same
manifest as an uninterrupted one. Work is distributed per photo over ``--workers`` spawned
processes; every record is a function of (seed, photo hash, pair index) only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retouch_core.formats.atomic import atomic_write, write_text_atomic  # stdlib only: --help stays import-free

from ..cli import add_subcommand, run_subcommand
from .manifest import MANIFEST

if TYPE_CHECKING:  # imported lazily at run time: torch must not load for `retouch-train --help`
    from .synthesis import SynthConfig

__all__ = ["DatasetConfig", "DatasetConfigError", "make_dataset", "parse_subsets", "register", "main"]

FORMAT_VERSION = 1
SUBSETS = ("auto", "style", "param")  # same as synth.SUBSETS, repeated to keep --help import-free


class DatasetConfigError(RuntimeError):
    """The output folder holds a dataset made with different settings."""


@dataclass(frozen=True)
class DatasetConfig:
    """One ``make-dataset`` run. ``synth`` holds the settings that shape each record."""

    photos: tuple[str, ...]
    out: str
    pairs_per_photo: int = 4
    workers: int = 1
    holdout_fraction: float = 0.05
    include_low_light: bool = False
    max_photos: int | None = None
    progress: bool = True
    synth: SynthConfig | None = None  # None: SynthConfig() defaults

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the output (not ``out``, ``workers`` or ``progress``)."""
        return {
            "format": FORMAT_VERSION,
            "photos": list(self.photos),
            "pairs_per_photo": self.pairs_per_photo,
            "holdout_fraction": self.holdout_fraction,
            "include_low_light": self.include_low_light,
            "max_photos": self.max_photos,
            "synth": dataclasses.asdict(self.synth),
        }


# ------------------------------------------------------------------------------ file helpers
@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Refuse a second concurrent run on the same folder (the lock dies with the process, so a
    killed run never blocks its resume)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no locking
        yield
        return
    with open(out / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetConfigError(f"another make-dataset run is writing to {out}") from None
        yield

def _write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; unparseable lines (e.g. cut by a kill) are dropped."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _normalise(value: Any) -> Any:
    """Tuples -> lists recursively, so a fingerprint equals its JSON round trip."""
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------------------------- pool
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


@dataclass
class _Executor:
    """``map`` in order / unordered, inline for one worker or over a spawn pool."""

    workers: int
    pool: Any = None

    def __enter__(self) -> "_Executor":
        if self.workers > 1:
            # spawn: safe with torch (no forked OpenMP state) and identical on every OS.
            self.pool = multiprocessing.get_context("spawn").Pool(self.workers, initializer=_init_worker)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def map(self, fn: Any, items: list[Any], ordered: bool = True) -> Iterator[Any]:
        if self.pool is None:
            return map(fn, items)
        if ordered:
            return self.pool.imap(fn, items, chunksize=8)
        return self.pool.imap_unordered(fn, items, chunksize=1)


# ---------------------------------------------------------------------------------- plan
def _plan(config: DatasetConfig, executor: _Executor, out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Photos (canonical order, de-duplicated, split) and skipped files; cached in ``out``."""
    from .sources import check_photo, find_photos, split_of

    photos_file, skipped_file = out / "photos.jsonl", out / "skipped.jsonl"
    if photos_file.exists():
        return _read_jsonl(photos_file), _read_jsonl(skipped_file)
    paths, skipped = find_photos(list(config.photos), config.include_low_light)
    photos: list[dict[str, Any]] = []
    first_by_hash: dict[str, str] = {}
    for check in executor.map(check_photo, paths):
        if check.error:
            skipped.append({"path": check.path, "kind": check.kind, "reason": check.error})
        elif check.sha256 in first_by_hash:
            skipped.append({"path": check.path, "kind": "duplicate",
                            "reason": f"duplicate of {first_by_hash[check.sha256]}"})
        elif config.max_photos is not None and len(photos) >= config.max_photos:
            skipped.append({"path": check.path, "kind": "max-photos",
                            "reason": f"beyond --max-photos {config.max_photos}"})
        else:
            first_by_hash[check.sha256] = check.path
            photos.append({"index": len(photos), "path": check.path, "sha256": check.sha256,
                           "width": check.width, "height": check.height,
                           "split": split_of(check.sha256, config.holdout_fraction)})
    _write_jsonl_atomic(skipped_file, skipped)
    _write_jsonl_atomic(photos_file, photos)  # written last: its presence marks a finished scan
    return photos, skipped


def _check_config(config: DatasetConfig, out: Path) -> None:
    path = out / "config.json"
    fingerprint = _normalise(config.fingerprint())
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != fingerprint:
            changed = sorted(k for k in set(previous) | set(fingerprint) if previous.get(k) != fingerprint.get(k))
            raise DatasetConfigError(
                f"{out} holds a dataset made with other settings (differs in: {', '.join(changed)}); "
                "use a new --out folder or delete it"
            )
    else:
        write_text_atomic(path, json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------- records
def _valid_parts(out: Path, photos: list[dict[str, Any]], pairs: int, rewrite: bool) -> Iterator[list[dict[str, Any]]]:
    """Finished records, one list per part file, in canonical (shard, then index) order.

    A record is finished when its line parses, matches the plan (index and id) and both of its
    images exist. With ``rewrite`` each part file is rewritten with only those lines, so later
    appends start on a clean line. One part (<= 500 records) is in memory at a time.
    """
    from .synthesis import record_id

    parts = sorted((out / "parts").glob("*.jsonl"), key=lambda p: (len(p.stem), p.stem))
    for part in parts:
        keep: dict[int, dict[str, Any]] = {}
        for row in _read_jsonl(part):
            index = row.get("index")
            if not isinstance(index, int) or not 0 <= index < len(photos) * pairs:
                continue
            photo = photos[index // pairs]
            if (row.get("id") == record_id(photo["sha256"], index % pairs)
                    and (out / str(row.get("input"))).is_file() and (out / str(row.get("target"))).is_file()):
                keep[index] = row  # a later line for the same record wins
        rows = [keep[i] for i in sorted(keep)]
        if rewrite:
            _write_jsonl_atomic(part, rows)
        yield rows


def _history_text(record: dict[str, Any]) -> str:
    """The text the near-duplicate check remembers for a record."""
    return record.get("restore_instruction") or record.get("instruction") or ""


def _remove_stale_temp_files(out: Path) -> None:
    images = out / "images"
    if images.is_dir():
        for shard in os.scandir(images):
            if shard.is_dir():
                for entry in os.scandir(shard.path):
                    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                        os.unlink(entry.path)


def _tasks(config: DatasetConfig, photos: list[dict[str, Any]], done: dict[int, str], out: Path) -> list[Any]:
    """One task per photo with unfinished pairs; ``done`` maps finished indices to their text."""
    from .synthesis import PhotoTask

    k = config.pairs_per_photo
    tasks = []
    for photo in photos:
        base = photo["index"] * k
        todo = [p for p in range(k) if base + p not in done]
        if not todo:
            continue
        earlier = tuple((p, done[base + p]) for p in range(k) if base + p in done)
        tasks.append(PhotoTask(photo["index"], photo["path"], photo["sha256"], photo["split"], tuple(todo),
                               tuple(base + p for p in todo), earlier, str(out)))
    return tasks


class _PartWriter:
    """Appends records to ``parts/<shard>.jsonl`` (one writer: the main process)."""

    def __init__(self, out: Path) -> None:
        self.folder = out / "parts"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.handles: dict[str, Any] = {}

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            shard = Path(record["input"]).parent.name
            if shard not in self.handles:
                self.handles[shard] = open(self.folder / f"{shard}.jsonl", "a")
            self.handles[shard].write(json.dumps(record, sort_keys=True) + "\n")
        for handle in self.handles.values():
            handle.flush()

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


# ------------------------------------------------------------------------------- summary
@dataclass
class _Stats:
    """Counts and round-trip PSNRs accumulated while the manifest is written."""

    records: int = 0
    subsets: Counter = dataclasses.field(default_factory=Counter)
    splits: Counter = dataclasses.field(default_factory=Counter)
    fallbacks: int = 0
    psnr: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def add(self, r: dict[str, Any]) -> None:
        self.records += 1
        self.subsets[r["subset"]] += 1
        self.splits[r["split"]] += 1
        self.fallbacks += "fallback" in r["captioner"]
        if r["subset"] == "param":
            key = "param"
        else:
            local = any(step.get("mask") for step in r["degradation"])
            key = f"{r['subset']}_{'none' if not r['degradation'] else 'local' if local else 'global'}"
        self.psnr.setdefault(key, []).append(float(r["inverse_psnr"]))

    def psnr_summary(self) -> dict[str, Any]:
        """Round-trip PSNR by subset and by global / local / no degradation."""
        return {k: {"count": len(v), "mean": round(statistics.fmean(v), 2), "min": round(min(v), 2),
                    "median": round(statistics.median(v), 2)} for k, v in sorted(self.psnr.items())}


def _write_manifest(out: Path, photos: list[dict[str, Any]], pairs: int) -> _Stats:
    """Merge the part files into ``manifest.jsonl`` (canonical order), streaming, atomically."""
    stats = _Stats()

    def write(tmp: Path) -> None:
        with open(tmp, "w") as handle:
            for rows in _valid_parts(out, photos, pairs, rewrite=False):
                for row in rows:
                    handle.write(json.dumps(row, sort_keys=True) + "\n")
                    stats.add(row)

    atomic_write(out / MANIFEST, write)
    return stats


_BAD_KINDS = frozenset({"unreadable", "undecodable", "too-small", "load-failed", "missing"})


def _summary(config: DatasetConfig, photos: list, skipped: list, stats: _Stats, made: int, seconds: float,
             failures: list) -> dict[str, Any]:
    return {
        "photos_used": len(photos) - len(failures),
        "photos_heldout": sum(p["split"] == "heldout" for p in photos),
        "skipped": len(skipped),
        "skipped_kinds": dict(Counter(s["kind"] for s in skipped)),
        # Broken files are listed by name (folder rules and duplicates are in skipped.jsonl).
        "bad_files": [s for s in skipped if s["kind"] in _BAD_KINDS],
        "records": stats.records,
        "records_made_this_run": made,
        "records_reused": stats.records - made,
        "subsets": dict(stats.subsets),
        "splits": dict(stats.splits),
        "instruction_fallbacks": stats.fallbacks,
        "workers": config.workers,
        "seconds": round(seconds, 2),
        "triplets_per_second": round(made / seconds, 3) if seconds > 0 and made else None,
        "round_trip_psnr": stats.psnr_summary(),
    }


def make_dataset(config: DatasetConfig) -> dict[str, Any]:
    """Build (or resume) the dataset described by ``config``; returns the summary dict."""
    from .synthesis import SynthConfig

    if config.synth is None:
        config = dataclasses.replace(config, synth=SynthConfig())
    missing = [root for root in config.photos if not Path(root).is_dir()]
    if missing:  # before --out is made: a typo must not leave an empty dataset behind
        raise DatasetConfigError(f"--photos: no such folder: {', '.join(missing)}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        _check_config(config, out)
        return _make(config, out)


def _make(config: DatasetConfig, out: Path) -> dict[str, Any]:
    with _Executor(max(1, config.workers)) as executor:
        photos, skipped = _plan(config, executor, out)
        _remove_stale_temp_files(out)
        done = {r["index"]: _history_text(r)
                for rows in _valid_parts(out, photos, config.pairs_per_photo, rewrite=True) for r in rows}
        tasks = _tasks(config, photos, done, out)
        start = time.perf_counter()
        made, failures = _generate(config, out, executor, tasks)
        seconds = time.perf_counter() - start
    if failures:
        listed = {s["path"] for s in skipped}
        skipped = skipped + [f for f in failures if f["path"] not in listed]
        _write_jsonl_atomic(out / "skipped.jsonl", skipped)
    stats = _write_manifest(out, photos, config.pairs_per_photo)
    summary = _summary(config, photos, skipped, stats, made, seconds, failures)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _generate(config: DatasetConfig, out: Path, executor: _Executor, tasks: list[Any]) -> tuple[int, list]:
    """Run the photo tasks; append their records as they arrive. Returns (records made, failures)."""
    from tqdm import tqdm

    from .synthesis import process_photo

    writer = _PartWriter(out)
    failures: list[dict[str, Any]] = []
    made = 0
    pairs_of = {t.photo_index: len(t.pairs) for t in tasks}
    try:
        with tqdm(total=sum(pairs_of.values()), unit="triplet", disable=not config.progress,
                  desc="make-dataset") as bar:
            for result in executor.map(partial(process_photo, config=config.synth), tasks, ordered=False):
                if result.error:
                    failures.append({"path": result.path, "kind": "load-failed", "reason": result.error})
                else:
                    writer.write(result.records)
                    made += len(result.records)
                bar.update(pairs_of[result.photo_index])
    finally:
        writer.close()
    return made, failures


# ----------------------------------------------------------------------------------- CLI
def parse_subsets(text: str) -> tuple[tuple[str, float], ...]:
    """``"auto,style,param"`` or ``"auto=2,style=1"`` -> ((name, weight), ...)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, weight = item.partition("=")
        if name not in SUBSETS:
            raise argparse.ArgumentTypeError(f"unknown subset {name!r} (choose from {', '.join(SUBSETS)})")
        out.append((name, float(weight) if weight else 1.0))
    if not out or not any(w > 0 for _, w in out):
        raise argparse.ArgumentTypeError("give at least one subset with a positive weight")
    return tuple(out)


def _add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--photos", action="append", required=True, metavar="DIR",
                   help="folder of real photos, searched recursively (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (resumable)")
    p.add_argument("--pairs-per-photo", type=int, default=4, metavar="K", help="triplets per photo")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (records: seed, photo hash, pair index)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes (output does not depend on N)")
    p.add_argument("--size", type=int, default=512, metavar="LONG_SIDE", help="long side of the images in px")
    p.add_argument("--subsets", type=parse_subsets, default=parse_subsets("auto,style,param"),
                   help="comma-separated subsets, optionally weighted: auto=2,style=1,param=1")
    p.add_argument("--holdout-fraction", type=float, default=0.05, metavar="F",
                   help="fraction of photos (by content hash) kept for evaluation")
    p.add_argument("--include-low-light", action="store_true", help="also use low-light folders without targets")
    p.add_argument("--max-photos", type=int, default=None, metavar="N",
                   help="use only the first N photos (canonical order)")
    p.add_argument("--fit-steps", type=int, default=25, metavar="N", help="Adam steps of the inverse fit")
    p.add_argument("--fit-resolution", type=int, default=64, metavar="PX", help="long side of the inverse fit")
    p.add_argument("--as-shot", default=None, metavar="FILE",
                   help="calibration file of calibrate-degradations: also draw calibrated 'as shot' degradations")
    p.add_argument("--p-as-shot", type=float, default=0.5, metavar="P",
                   help="with --as-shot, share of degradations drawn from the calibration")
    p.add_argument("--captioner", default=None, metavar="MODULE:CLASS", help="Captioner implementation")
    p.add_argument("--mask-provider", default=None, metavar="MODULE:CLASS", help="MaskProvider implementation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> DatasetConfig:
    from .degradations import DegradationConfig, FitConfig
    from .synthesis import SynthConfig

    degradation = DegradationConfig(as_shot=args.as_shot, p_as_shot=args.p_as_shot)
    synth = SynthConfig(size=args.size, seed=args.seed, subsets=args.subsets, degradation=degradation,
                        fit=FitConfig(steps=args.fit_steps, resolution=args.fit_resolution, lr=0.2),
                        captioner=args.captioner, mask_provider=args.mask_provider)
    return DatasetConfig(tuple(args.photos), args.out, args.pairs_per_photo, args.workers, args.holdout_fraction,
                         args.include_low_light, args.max_photos, not args.no_progress, synth)


def _print_summary(summary: dict[str, Any], out: str) -> None:
    rate = summary["triplets_per_second"]
    print(f"made {summary['records_made_this_run']} triplets in {summary['seconds']} s"
          f" ({rate if rate is not None else '-'} triplets/s, {summary['workers']} worker(s));"
          f" reused {summary['records_reused']}; total {summary['records']} {summary['subsets']}")
    print(f"photos: {summary['photos_used']} used ({summary['photos_heldout']} held out); "
          f"{summary['skipped']} files skipped: {summary['skipped_kinds']} (see {out}/skipped.jsonl)")
    for bad in summary["bad_files"][:10]:
        print(f"  skipped {bad['path']}: {bad['reason']}")
    if len(summary["bad_files"]) > 10:
        print(f"  ... and {len(summary['bad_files']) - 10} more")
    for key, stats in summary["round_trip_psnr"].items():
        print(f"round-trip PSNR {key:14s} n={stats['count']:<5d} mean {stats['mean']:6.2f} dB, "
              f"median {stats['median']:6.2f}, min {stats['min']:6.2f}")
    print(f"manifest: {out}/manifest.jsonl")


def run(args: argparse.Namespace) -> int:
    try:
        summary = make_dataset(config_from_args(args))
    except DatasetConfigError as exc:
        print(f"make-dataset: {exc}", file=sys.stderr)
        return 2
    _print_summary(summary, args.out)
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``make-dataset`` to the ``retouch-train`` command."""
    return add_subcommand(subparsers, "make-dataset", "make (input, instruction, target) triplets from real photos",
                          __doc__, _add_arguments)


def main(argv: list[str] | None = None) -> int:
    return run_subcommand("make-dataset", __doc__, _add_arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())

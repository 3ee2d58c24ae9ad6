"""Plumbing shared by ``train-teacher`` and ``distill``: accelerator, data order, logging, teacher.

Data order is a pure function of ``(seed, micro-batch index, process)``
(:class:`ResumableBatchSampler`), so a resumed run reads exactly the batches an uninterrupted
run would have, on any number of processes, without replaying the data loader.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import DataConfig, ModelConfig, OptimConfig, RunConfig


def make_accelerator(run: RunConfig):
    """An ``accelerate.Accelerator`` for one CPU, one GPU or an ``accelerate launch`` job.

    fp16 autocast needs CUDA; without it the run falls back to full precision (bf16 works on
    CPU). Gradient accumulation is handled by accelerate (``grad_accum`` micro-batches per
    optimizer step, DDP gradient sync only on the last one).
    """
    from accelerate import Accelerator

    precision = run.mixed_precision
    if precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {precision!r}")
    if precision == "no" and os.environ.get("ACCELERATE_MIXED_PRECISION"):
        precision = None  # `accelerate launch --mixed_precision X` decides when the config does not
    if precision == "fp16" and (run.cpu or not torch.cuda.is_available()):
        warnings.warn("fp16 mixed precision needs CUDA; training in full precision instead")
        precision = "no"
    return Accelerator(mixed_precision=precision, gradient_accumulation_steps=run.grad_accum, cpu=run.cpu)


def write_run_files(output_dir: Path, config_dict: dict, accelerator) -> None:
    """``config.json`` (loadable with ``--config``) and ``runtime.json`` (how this run executes)."""
    if not accelerator.is_main_process:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(json.dumps(config_dict, indent=2))
    runtime = {"mixed_precision": accelerator.mixed_precision, "num_processes": accelerator.num_processes,
               "device": str(accelerator.device), "distributed_type": str(accelerator.distributed_type),
               "torch": torch.__version__}
    (output_dir / "runtime.json").write_text(json.dumps(runtime, indent=2))


def frozen_dtype(accelerator) -> torch.dtype:
    """Weight dtype of frozen modules: half precision under mixed precision (saves memory; they
    get no gradient updates, so no precision is lost to accumulation)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


class ResumableBatchSampler(Sampler):
    """Endless batches of indices; batch ``k`` of process ``r`` depends only on (seed, k, r).

    The index stream is the concatenation of per-epoch permutations (epoch ``e`` seeded with
    ``seed``, ``e``); micro-batch ``k`` of process ``r`` reads stream positions
    ``[(k W + r) B, (k W + r + 1) B)`` with ``W`` processes of batch ``B``.

    Args:
        size: dataset length. batch_size: B. seed: data-order seed.
        start: first micro-batch index (the resume point). rank / world: process r of W.
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, start: int = 0, rank: int = 0, world: int = 1):
        if size < 1:
            raise ValueError("the dataset is empty")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.rank, self.world = start, rank, world
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            self._cache = {epoch: torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))}
        return self._cache[epoch]

    def batch(self, k: int) -> list[int]:
        first = (k * self.world + self.rank) * self.batch_size
        return [int(self._perm(p // self.size)[p % self.size]) for p in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start
        while True:
            yield self.batch(k)
            k += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for progress bars
        return sys.maxsize


def batch_iterator(dataset: Dataset, data: DataConfig, seed: int, start: int, accelerator) -> Iterator[dict]:
    """Endless collated batches on ``accelerator.device`` from micro-batch ``start`` on."""
    sampler = ResumableBatchSampler(len(dataset), data.batch_size, seed, start,
                                    accelerator.process_index, accelerator.num_processes)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=data.num_workers,
                        persistent_workers=data.num_workers > 0)
    for batch in loader:
        yield {k: v.to(accelerator.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def step_generator(seed: int, rank: int, micro_step: int) -> torch.Generator:
    """The CPU RNG of one micro-batch: a pure function of (seed, process, micro-batch), so a
    resumed run draws the same noise, timesteps and dropout an uninterrupted one would."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_000_007 + micro_step) % (2**63))


def build_dataset(data: DataConfig, seed: int, size: int | None = None) -> Dataset:
    """``TripletDataset`` of ``data.root`` with square crops of ``size`` (default ``data.size``)."""
    from ..data.dataset import TripletDataset

    if not data.root:
        raise ValueError("data.root is not set: pass --dataset DIR (a make-dataset folder)")
    return TripletDataset(data.root, split=data.split, size=size or data.size, subsets=data.subsets,
                          crop=data.crop, auto_instruction=data.auto_instruction, seed=seed)


def build_teacher(model: ModelConfig):
    """The teacher a :class:`ModelConfig` names (local folder, single file, or tiny random)."""
    from retouch_core.models.diffusion.teacher import InstructPix2PixTeacher

    if model.tiny:
        from retouch_core.models.diffusion.tiny import build_tiny_teacher

        return build_tiny_teacher(model.tiny_config, seed=model.tiny_seed)
    if model.init_from_sd is not None:
        return InstructPix2PixTeacher.from_pretrained(model.init_from_sd, allow_download=model.allow_download,
                                                      widen_unet=True, variant=model.variant)
    if model.teacher is None:
        raise ValueError("model.teacher is not set: pass --teacher DIR_OR_FILE (or model.tiny for a smoke run)")
    path = Path(model.teacher)
    if path.suffix == ".safetensors":
        return InstructPix2PixTeacher.from_single_file(path, config_dir=model.config_dir)
    return InstructPix2PixTeacher.from_pretrained(model.teacher, allow_download=model.allow_download,
                                                  variant=model.variant)


def enable_gradient_checkpointing(*modules) -> None:
    """Turn on diffusers' gradient checkpointing of every module that supports it (UNets, the
    VAE); None and modules without it (the pixel codec) are skipped. It only acts while
    gradients are recorded, so frozen modules run under ``no_grad`` are unaffected."""
    for module in modules:
        if module is not None and getattr(module, "_supports_gradient_checkpointing", False):
            module.enable_gradient_checkpointing()


def run_steps(trainer, batches: Iterator[dict], max_steps: int, run: RunConfig) -> dict[str, float]:
    """The step loop of the diffusion trainers: ``trainer.train_step(batches)`` until
    ``trainer.step`` reaches ``max_steps``, logging every ``run.log_every`` and checkpointing
    every ``run.checkpoint_every`` steps and at the last one. Returns the last logged values.

    trainer: has ``step``, ``train_step(batches) -> dict``, ``logger`` (:class:`JsonlLogger`)
    and ``save_checkpoint()``.
    """
    logs: dict[str, float] = {}
    while trainer.step < max_steps:
        logs = trainer.train_step(batches)
        if trainer.step % run.log_every == 0 or trainer.step == max_steps:
            trainer.logger.log(trainer.step, logs)
        if trainer.step % run.checkpoint_every == 0 or trainer.step == max_steps:
            trainer.save_checkpoint()
    return logs


def learning_rate(step: int, peak: float, warmup_steps: int = 0, decay_steps: int | None = None,
                  floor: float = 0.05) -> float:
    """The learning-rate schedule of every trainer at optimizer step ``step`` (from 0).

    Linear warm-up to ``peak`` over ``warmup_steps``; then constant (``decay_steps`` None: the
    diffusion trainers, whose runs are open-ended) or cosine decay to ``floor * peak`` at step
    ``decay_steps`` (the run's total steps: train-lite).

    Example:
        >>> [round(learning_rate(s, 1.0, warmup_steps=2, decay_steps=4), 3) for s in range(5)]
        [0.5, 1.0, 1.0, 0.525, 0.05]
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if decay_steps is None:
        return peak
    progress = min(1.0, (step - warmup_steps) / max(1, decay_steps - warmup_steps))
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_learning_rate(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def adamw(params, optim: OptimConfig, lr: float | None = None) -> torch.optim.AdamW:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to optimise: no parameter requires grad")
    return torch.optim.AdamW(params, lr=optim.lr if lr is None else lr, betas=tuple(optim.betas),
                             weight_decay=optim.weight_decay, eps=optim.eps)


class JsonlLogger:
    """Loss terms to ``log.jsonl`` (one object per logged step) and a line on stdout.

    Only the main process writes. ``enabled=False`` makes every call a no-op. ``stream``: a
    text stream, ``"stdout"`` (whatever ``sys.stdout`` is when a line is written) or None.
    """

    def __init__(self, path: str | Path | None, enabled: bool = True, stream="stdout"):
        self.path = Path(path) if path is not None else None
        self.enabled = enabled
        self.stream = stream
        self._start = time.monotonic()
        if self.enabled and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": round(time.monotonic() - self._start, 3),
                  **{k: _finite(v) for k, v in values.items()}}
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        stream = sys.stdout if self.stream == "stdout" else self.stream
        if stream is not None:
            parts = " | ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "time")
            print(parts, file=stream, flush=True)


def _finite(value) -> float | None:
    value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    return value if math.isfinite(value) else None


# ------------------------------------------------------------------------------------------
# command line


def add_config_arguments(parser) -> None:
    """Options shared by ``train-teacher`` and ``distill`` (each maps to a config key)."""
    parser.add_argument("--config", metavar="YAML", help="config file (see training/configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optim.lr=1e-5 (repeatable)")
    parser.add_argument("--dataset", metavar="DIR", help="make-dataset folder (data.root)")
    parser.add_argument("--teacher", metavar="PATH", help="local diffusers folder or teacher .safetensors (model.teacher)")
    parser.add_argument("--output-dir", metavar="DIR", help="run folder (run.output_dir)")
    parser.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps (run.max_steps)")
    parser.add_argument("--resume", metavar="latest|PATH|none", help="run.resume (default: latest)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), help="run.mixed_precision")
    parser.add_argument("--tiny", action="store_true", help="tiny random teacher (smoke test; model.tiny)")


def config_overrides(args) -> list[str]:
    """``--set`` items plus the shortcut options, shortcuts last (they win)."""
    items = list(args.set)
    shortcuts = {"data.root": args.dataset, "model.teacher": args.teacher, "run.output_dir": args.output_dir,
                 "run.max_steps": args.max_steps, "run.mixed_precision": args.mixed_precision}
    items += [f"{k}={json.dumps(v)}" for k, v in shortcuts.items() if v is not None]
    if args.resume is not None:
        items.append("run.resume=null" if args.resume.lower() == "none" else f"run.resume={json.dumps(args.resume)}")
    if args.tiny:
        items.append("model.tiny=true")
    return items

"""``retouch-train train-teacher``: fine-tune the InstructPix2Pix teacher on retouching triplets.

    retouch-train train-teacher --config training/configs/teacher.yaml \\
        --teacher models/instruct-pix2pix --dataset data/triplets --output-dir runs/teacher
    accelerate launch -m retouch_training.train.teacher --config ...     # many GPUs / nodes

Paper eq. 1: ``E ||ε - ε_θ(z_t, t, E(x_in), c_T)||²`` with ``z_t`` the noised latent of the
target and the input image's latent concatenated to the UNet input. Conditioning dropout
(InstructPix2Pix): per sample, the text, the image or both are replaced by their null values
(empty-prompt embedding, zero latent) so both guidance scales exist at sampling time. Only
the UNet trains; the codec and text encoder are frozen. The EMA weights are exported as a
diffusers folder ``<output_dir>/teacher`` that ``distill --teacher`` reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import torch

from retouch_core.models.diffusion.schedule import add_noise, training_target
from retouch_core.models.diffusion.teacher import InstructPix2PixTeacher, denoise

from ..cli import add_subcommand, run_subcommand
from .config import TeacherTrainConfig, config_to_dict, load_config
from .ema import EMA
from .losses import denoising_loss
from .runtime import (
    JsonlLogger,
    adamw,
    add_config_arguments,
    batch_iterator,
    build_dataset,
    build_teacher,
    config_overrides,
    enable_gradient_checkpointing,
    frozen_dtype,
    learning_rate,
    make_accelerator,
    run_steps,
    set_learning_rate,
    step_generator,
    write_run_files,
)
from .state import find_checkpoint, load_train_state, restore_global_rng, restore_optimizer, save_train_state


def dropout_masks(batch: int, generator: torch.Generator, drop_text: float, drop_image: float,
                  drop_both: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch,) bool masks (text dropped, image dropped): disjoint slices of one uniform draw,
    so exactly ``drop_text`` / ``drop_image`` / ``drop_both`` of the samples lose text / image / both."""
    r = torch.rand(batch, generator=generator)
    text_only = r < drop_text
    both = (r >= drop_text) & (r < drop_text + drop_both)
    image_only = (r >= drop_text + drop_both) & (r < drop_text + drop_both + drop_image)
    return text_only | both, image_only | both


class TeacherTrainer:
    """One ``train-teacher`` run.

    Args:
        config: the run configuration.
        dataset: triplets (default: ``build_dataset(config.data)`` at ``data.resolution``).
        teacher: a ready teacher (default: built from ``config.model``).
        accelerator: an ``accelerate.Accelerator`` (default: from ``config.run``).
        log_stream: where log lines are printed (None: only ``log.jsonl``).
    """

    def __init__(self, config: TeacherTrainConfig, *, dataset=None, teacher: InstructPix2PixTeacher | None = None,
                 accelerator=None, log_stream="stdout"):
        self.config = config
        self.accelerator = acc = accelerator or make_accelerator(config.run)
        self.teacher = teacher if teacher is not None else build_teacher(config.model)
        t = self.teacher
        t.codec.requires_grad_(False).eval()
        t.text.requires_grad_(False).eval()
        t.unet.requires_grad_(True).train()
        if config.run.gradient_checkpointing:
            enable_gradient_checkpointing(t.unet)
        t.to(acc.device)
        if frozen_dtype(acc) != torch.float32:
            t.codec.to(dtype=frozen_dtype(acc))
            t.text.to(dtype=frozen_dtype(acc))
        self.ema = EMA(t.unet, config.run.ema_decay)
        self.unet, self.optimizer = acc.prepare(t.unet, adamw(t.unet.parameters(), config.optim))
        self.dataset = dataset
        self.step = 0
        self.output_dir = Path(config.run.output_dir)
        self.logger = JsonlLogger(self.output_dir / "log.jsonl", enabled=acc.is_main_process, stream=log_stream)
        with torch.no_grad():
            self.null_text = t.text([""])  # (1, L, D): the "no instruction" condition
        if config.run.resume is not None:
            found = find_checkpoint(self.output_dir / "checkpoints" if config.run.resume == "latest" else config.run.resume)
            if found is not None:
                self.resume(found)
            elif config.run.resume != "latest":
                raise FileNotFoundError(f"run.resume: no checkpoint at {config.run.resume}")

    # ------------------------------------------------------------------------------- one step
    def losses(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Eq. 1 for one micro-batch. ``batch``: ``input``, ``target`` (B, 3, H, W), ``instruction``.

        Returns:
            ``{"loss"}`` (scalar with grad to the UNet), plus ``"drop_text"`` / ``"drop_image"``
            fractions for logging.
        """
        cfg, t, device = self.config, self.teacher, self.accelerator.device
        with torch.no_grad():
            dtype = frozen_dtype(self.accelerator)
            image_latent = t.image_condition(batch["input"].to(dtype)).float()
            target = t.target_latent(batch["target"].to(dtype), generator=generator).float()
            text = t.text(list(batch["instruction"])).float()
            b = target.shape[0]
            no_text, no_image = dropout_masks(b, generator, cfg.drop_text, cfg.drop_image, cfg.drop_both)
            text = torch.where(no_text.to(device).view(b, 1, 1), self.null_text.float().expand_as(text), text)
            image_latent = image_latent * (~no_image).to(device, image_latent.dtype).view(b, 1, 1, 1)
            noise = torch.randn(target.shape, generator=generator).to(device)
            timesteps = torch.randint(0, t.num_train_timesteps, (b,), generator=generator).to(device)
            x_t = add_noise(target, noise, timesteps, t.alphas_cumprod)
            goal = training_target(target, noise, timesteps, t.alphas_cumprod, t.prediction_type)
        with self.accelerator.autocast():
            prediction = denoise(self.unet, x_t, timesteps, image_latent, text)
        return {"loss": denoising_loss(prediction, goal),
                "drop_text": no_text.float().mean(), "drop_image": no_image.float().mean()}

    def train_step(self, batches: Iterator[dict]) -> dict[str, float]:
        """One optimizer step over ``run.grad_accum`` micro-batches; returns the logged values."""
        acc, cfg = self.accelerator, self.config
        lr = learning_rate(self.step, cfg.optim.lr, cfg.optim.warmup_steps)
        set_learning_rate(self.optimizer, lr)
        totals: dict[str, float] = {}
        grad_norm = float("nan")
        for micro in range(cfg.run.grad_accum):
            generator = step_generator(cfg.run.seed, acc.process_index, self.step * cfg.run.grad_accum + micro)
            with acc.accumulate(self.unet):
                terms = self.losses(next(batches), generator)
                acc.backward(terms["loss"])
                if acc.sync_gradients:
                    grad_norm = float(acc.clip_grad_norm_(self.unet.parameters(), cfg.optim.max_grad_norm))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach()) / cfg.run.grad_accum
        self.step += 1
        self.ema.update(acc.unwrap_model(self.unet))
        return {**totals, "lr": lr, "grad_norm": grad_norm}

    # -------------------------------------------------------------------------------- the run
    def train(self, max_steps: int | None = None) -> dict[str, float]:
        """Train to ``max_steps`` (default ``run.max_steps``), checkpointing and logging; export
        the EMA teacher at the end. Returns the last logged values."""
        cfg, acc = self.config, self.accelerator
        max_steps = cfg.run.max_steps if max_steps is None else max_steps
        write_run_files(self.output_dir, config_to_dict(cfg), acc)
        dataset = self.dataset if self.dataset is not None else build_dataset(cfg.data, cfg.run.seed, cfg.data.resolution)
        batches = batch_iterator(dataset, cfg.data, cfg.run.seed, self.step * cfg.run.grad_accum, acc)
        logs = run_steps(self, batches, max_steps, cfg.run)
        self.export(self.output_dir / "teacher")
        return logs

    def save_checkpoint(self) -> Path | None:
        acc = self.accelerator
        acc.wait_for_everyone()
        path = None
        if acc.is_main_process:
            path = save_train_state(
                self.output_dir / "checkpoints", self.step,
                models={"unet": acc.unwrap_model(self.unet).state_dict()},
                optimizers={"unet": self.optimizer},
                ema=self.ema.state_dict(),
                scalars={"config": config_to_dict(self.config), "kind": "teacher"},
                keep=self.config.run.keep_checkpoints,
            )
        acc.wait_for_everyone()
        return path

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint: weights, optimizer, EMA, RNGs and the step counter."""
        state = load_train_state(path)
        self.accelerator.unwrap_model(self.unet).load_state_dict(state.models["unet"])
        restore_optimizer(self.optimizer, state.optimizers["unet"])
        self.ema.load_state_dict(state.ema)
        restore_global_rng(state)
        self.step = state.step

    def export(self, folder: str | Path) -> Path | None:
        """Write the EMA teacher as a diffusers folder (main process only)."""
        acc = self.accelerator
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return None
        t = self.teacher
        t.codec.float()
        t.text.float()
        with self.ema.swapped_in(acc.unwrap_model(self.unet)):
            return t.save_pretrained(folder)


# ------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_config_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``train-teacher`` subcommand (see training/cli.py)."""
    return add_subcommand(subparsers, "train-teacher", "fine-tune the InstructPix2Pix teacher (paper eq. 1)",
                          __doc__, add_arguments)


def run(args: argparse.Namespace) -> int:
    config = load_config(TeacherTrainConfig, args.config, config_overrides(args))
    TeacherTrainer(config).train()
    return 0


def main(argv=None) -> int:
    """``python -m retouch_training.train.teacher`` / ``accelerate launch -m ...``."""
    return run_subcommand("train-teacher", __doc__, add_arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["TeacherTrainer", "dropout_masks", "register", "main"]

"""``retouch-train distill``: one-step bilateral distillation of the InstructPix2Pix teacher.

    retouch-train distill --stage 1 --config training/configs/distill_stage1.yaml \\
        --teacher runs/teacher/teacher --dataset data/triplets --output-dir runs/stage1
    retouch-train distill --stage 2 --config training/configs/distill_stage2.yaml \\
        --teacher runs/teacher/teacher --dataset data/triplets --output-dir runs/stage2 \\
        --init-from runs/stage1
    accelerate launch -m retouch_training.train.distill --stage 1 ...          # many GPUs / nodes

Stage 1 trains the one-step generator (paper eq. 2: the teacher's UNet run once at t_max):

* VSD / DMD2 in latent space: the generator sample x̂ is noised to ``x_t`` with ``t`` from a
  curriculum (high noise first: the paper's high / mid / low phases, or a linearly widening
  range), the teacher (real score, with both
  CFGs) and the fake score estimate x0; the gradient ``(x0_fake - x0_real) / mean|x̂ - x0_real|``
  is applied through an MSE to the detached target ``x̂ - grad``;
* the fake score (LoRA on the frozen teacher UNet, or a full copy) learns to denoise the
  detached generator samples (eq. 4), with its own optimizer;
* data loss on the decoded x̂: MSE + LPIPS to the target (eq. 7);
* CLIP attribute alignment, InfoNCE over the matcher's attributes of the instruction (eqs. 5-6).

Stage 2 also trains the bilateral adapter and adds eq. 8 on the grid sliced at full
resolution: L1 and LPIPS to the target, LPIPS to x̂, 3-D Laplacian smoothness of the grid and
an out-of-gamut penalty. The EMA student is exported as one safetensors file
(``<output_dir>/student.safetensors``) that ``load_retouch_model`` reads.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, NamedTuple

import torch

from retouch_core.engine.resize import resize
from retouch_core.models.diffusion.bilateral_student import BilateralStudentNet, StudentConfig
from retouch_core.models.diffusion.schedule import add_noise, training_target, x0_from_output
from retouch_core.models.diffusion.teacher import InstructPix2PixTeacher, denoise, guided_denoise
from retouch_core.engine.slicing import slice_and_apply

from ..cli import add_subcommand, run_subcommand
from .config import DistillConfig, FakeScoreConfig, config_to_dict, load_config
from .ema import EMA
from .losses import (
    bilateral_losses,
    build_lpips,
    clip_alignment,
    curriculum_range,
    data_loss,
    denoising_loss,
    sample_timesteps,
    vsd_loss,
)
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

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections, as DMD2 / diffusers LoRA
FAKE_ADAPTER = "fake_score"
FROZEN_STUDENT_PREFIXES = ("codec.", "text.")  # shared with the teacher: never checkpointed
WEIGHTED_TERMS = ("vsd", "mse", "lpips", "clip", "bil_l1", "bil_lpips", "bil_xhat", "smooth", "gamut")


class Conditioning(NamedTuple):
    """Frozen encodings of one batch.

    full_input / full_target: (B, 3, S, S); low_target: (B, 3, r, r) at ``data.resolution``;
    instructions: B strings; image_latent: (B, C, h, w); text / null_text: (B, L, D).
    """

    full_input: torch.Tensor
    full_target: torch.Tensor
    low_target: torch.Tensor
    instructions: list[str]
    image_latent: torch.Tensor
    text: torch.Tensor
    null_text: torch.Tensor


# ------------------------------------------------------------------------------------------
# fake score


def build_fake_score(teacher: InstructPix2PixTeacher, config: FakeScoreConfig):
    """The trainable fake-score UNet, initialised at the teacher.

    ``"full"``: a deep copy. ``"lora"``: LoRA layers (B = 0, so it starts equal to the teacher)
    added to the teacher's own UNet, whose base weights stay frozen; the real score is then
    evaluated with the adapter disabled (:func:`real_score`), saving a UNet copy in memory.
    """
    if config.mode == "full":
        return copy.deepcopy(teacher.unet).requires_grad_(True).train()
    if config.mode != "lora":
        raise ValueError(f"fake.mode must be 'lora' or 'full', got {config.mode!r}")
    from peft import LoraConfig

    teacher.unet.requires_grad_(False)
    teacher.unet.add_adapter(
        LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                   target_modules=list(LORA_TARGETS)),
        adapter_name=FAKE_ADAPTER,
    )
    return teacher.unet


@contextlib.contextmanager
def real_score(unet, mode: str):
    """Evaluate ``unet`` as the teacher: with the fake-score LoRA switched off in LoRA mode."""
    if mode != "lora":
        yield unet
        return
    unet.disable_adapters()
    try:
        yield unet
    finally:
        unet.enable_adapters()


def fake_score_state(unet, mode: str) -> dict[str, torch.Tensor]:
    """What training changes in the fake score: LoRA weights, or the whole copy."""
    if mode == "lora":
        return {k: v for k, v in unet.state_dict().items() if "lora_" in k}
    return unet.state_dict()


def load_partial(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str, may_miss) -> None:
    """``load_state_dict`` where only keys matching ``may_miss(key)`` may be absent."""
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not may_miss(k)]
    if missing or result.unexpected_keys:
        raise ValueError(f"{name} checkpoint does not fit: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")


# ------------------------------------------------------------------------------------------
# trainer


class DistillTrainer:
    """One ``distill`` run (stage 1 or 2).

    Args:
        config: the run configuration.
        dataset: triplets at full resolution ``data.size`` (default: ``build_dataset``).
        teacher: a ready teacher (default: built from ``config.model``). It is modified (frozen,
            and in LoRA mode given the fake-score adapter): pass a fresh one per trainer.
        accelerator: an ``accelerate.Accelerator`` (default: from ``config.run``).
        clip_scorer: a :class:`~retouch_core.language.clip_score.ClipScorer` (default: from ``config.clip``).
        lpips_model: an LPIPS module (default: from ``config.lpips``).
        log_stream: where log lines are printed (None: only ``log.jsonl``).
    """

    def __init__(self, config: DistillConfig, *, dataset=None, teacher: InstructPix2PixTeacher | None = None,
                 accelerator=None, clip_scorer=None, lpips_model=None, log_stream="stdout"):
        if config.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {config.stage}")
        self.config = cfg = config
        self.accelerator = acc = accelerator or make_accelerator(cfg.run)
        self.teacher = t = teacher if teacher is not None else build_teacher(cfg.model)
        t.requires_grad_(False).eval()
        t.to(acc.device)

        # Random inits (adapter, LoRA) from run.seed, without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.run.seed)
            student = BilateralStudentNet.from_teacher(t, StudentConfig(
                resolution=cfg.data.resolution, timestep=cfg.generator_timestep, noise_seed=cfg.noise_seed,
                adapter=cfg.adapter))
            # After the student copied the teacher UNet (LoRA must not leak into the generator).
            fake = build_fake_score(t, cfg.fake).to(acc.device)
        if cfg.run.gradient_checkpointing:  # the teacher UNet is also the fake score in LoRA mode
            enable_gradient_checkpointing(student.generator.unet, fake, t.unet, getattr(t.codec, "vae", None))
        train_generator = not (cfg.stage == 2 and cfg.freeze_generator)
        student.generator.requires_grad_(train_generator).train()
        student.adapter.requires_grad_(cfg.stage == 2).train()
        self._check_timesteps(t)

        if cfg.stage == 2 and cfg.init_from:
            self._init_from_stage1(student, fake, cfg.init_from)
        # Frozen modules in half precision under mixed precision; trainable weights stay fp32.
        dtype = frozen_dtype(acc)
        if dtype != torch.float32:
            t.codec.to(dtype=dtype)
            t.text.to(dtype=dtype)
            t.unet.to(dtype=dtype)
            for p in t.unet.parameters():  # LoRA mode: the fake-score adapter lives here and trains
                if p.requires_grad:
                    p.data = p.data.float()

        self.ema = EMA(student, cfg.run.ema_decay)
        self.train_generator = train_generator
        opt_g = adamw(student.parameters(), cfg.optim)
        opt_f = adamw(fake.parameters(), cfg.optim, lr=cfg.fake.lr)
        self.student, self.fake, self.opt_g, self.opt_f = acc.prepare(student, fake, opt_g, opt_f)

        weights = cfg.losses
        needs_lpips = weights.lpips > 0 or (cfg.stage == 2 and (weights.bil_lpips > 0 or weights.bil_xhat > 0))
        if lpips_model is None and needs_lpips:
            lpips_model = build_lpips(cfg.lpips.net, cfg.lpips.weights_dir, cfg.lpips.random)
        self.lpips = lpips_model.to(acc.device) if lpips_model is not None else None
        if clip_scorer is None and weights.clip > 0:
            clip_scorer = self._build_clip()
        self.clip = clip_scorer
        self.dataset = dataset
        self.step = 0
        self.output_dir = Path(cfg.run.output_dir)
        self.logger = JsonlLogger(self.output_dir / "log.jsonl", enabled=acc.is_main_process, stream=log_stream)
        self.attribute_cache: dict = {}
        with torch.no_grad():
            self.null_text = t.text([""]).float()  # (1, L, D)
        if cfg.run.resume is not None:
            found = find_checkpoint(self.output_dir / "checkpoints" if cfg.run.resume == "latest" else cfg.run.resume)
            if found is not None:
                self.resume(found)
            elif cfg.run.resume != "latest":
                raise FileNotFoundError(f"run.resume: no checkpoint at {cfg.run.resume}")

    def _check_timesteps(self, teacher) -> None:
        cur, steps = self.config.curriculum, teacher.num_train_timesteps
        if not 0 <= cur.t_min <= cur.start <= cur.t_max < steps:
            raise ValueError(f"curriculum needs 0 <= t_min <= start <= t_max < {steps}, got "
                             f"{cur.t_min}, {cur.start}, {cur.t_max}")
        for i, phase in enumerate(cur.phases):
            if not 0 <= phase.t_min <= phase.t_max < steps:
                raise ValueError(f"curriculum.phases[{i}] needs 0 <= t_min <= t_max < {steps}, got "
                                 f"{phase.t_min}, {phase.t_max}")
            if phase.steps <= 0 and i < len(cur.phases) - 1:
                raise ValueError(f"curriculum.phases[{i}].steps must be > 0 (only the last phase is open-ended)")

    def _build_clip(self):
        from retouch_core.language.clip_score import load_clip, tiny_clip

        c = self.config.clip
        if c.tiny:
            return tiny_clip(device=self.accelerator.device)
        if c.path is None:
            raise ValueError("losses.clip > 0 needs a CLIP judge: set clip.path to a local open_clip model "
                             "(or losses.clip=0 to train without the alignment loss)")
        return load_clip(c.path, c.arch, device=self.accelerator.device)

    def _init_from_stage1(self, student, fake, path) -> None:
        state = load_train_state(path)
        # Stage 1 never trains the adapter: take the generator only, so stage 2 may use another
        # adapter configuration (grid size, features) than stage 1 was built with.
        weights = {k: v for k, v in state.models["student"].items() if k.startswith("generator.")}
        if self.config.use_ema_init and state.ema:
            weights.update({k[len("shadow."):]: v for k, v in state.ema.items() if k.startswith("shadow.generator.")})
        load_partial(student, weights, "student", lambda k: not k.startswith("generator."))
        if "fake" in state.models:
            lora = self.config.fake.mode == "lora"
            load_partial(fake, state.models["fake"], "fake score", (lambda k: "lora_" not in k) if lora else (lambda k: False))

    # ------------------------------------------------------------------------------- one step
    def conditioning(self, batch: dict) -> Conditioning:
        """Frozen encodings of a batch (no grad): latents at ``data.resolution``, text embeddings."""
        t, dtype = self.teacher, frozen_dtype(self.accelerator)
        size = (self.config.data.resolution,) * 2
        full_in, full_target = batch["input"].float(), batch["target"].float()
        instructions = list(batch["instruction"])
        with torch.no_grad():
            image_latent = t.image_condition(resize(full_in, size).to(dtype)).float()
            text = t.text(instructions).float()
        return Conditioning(full_in, full_target, resize(full_target, size), instructions, image_latent, text,
                            self.null_text.expand_as(text))

    def vsd_terms(self, x0: torch.Tensor, cond: Conditioning, generator: torch.Generator, step: int) -> dict:
        """Distribution matching of x̂ (B, C, h, w): ``{"vsd"}`` plus monitoring values."""
        cfg, acc, t = self.config, self.accelerator, self.teacher
        abar, ptype = t.alphas_cumprod, t.prediction_type
        low, high = curriculum_range(step, cfg.curriculum)
        timesteps = self._draw(lambda n: sample_timesteps(n, low, high, generator), x0)
        eps = self._draw(lambda n: torch.randn((n, *x0.shape[1:]), generator=generator), x0)
        with torch.no_grad(), acc.autocast():
            x_t = add_noise(x0.detach(), eps, timesteps, abar)
            with real_score(t.unet, cfg.fake.mode) as teacher_unet:
                real = guided_denoise(teacher_unet, x_t, timesteps, cond.image_latent, cond.text, cond.null_text,
                                      text_scale=cfg.real_text_scale, image_scale=cfg.real_image_scale)
            fake = denoise(acc.unwrap_model(self.fake), x_t, timesteps, cond.image_latent, cond.text)
        x0_real = x0_from_output(real.float(), x_t, timesteps, abar, ptype)
        x0_fake = x0_from_output(fake.float(), x_t, timesteps, abar, ptype)
        return {"vsd": vsd_loss(x0, x0_real, x0_fake), "dmd_norm": (x0.detach() - x0_real).abs().mean(),
                "t_low": torch.tensor(float(low)), "t_high": torch.tensor(float(high))}

    def fake_score_loss(self, x0: torch.Tensor, cond: Conditioning, generator: torch.Generator) -> torch.Tensor:
        """Eq. 4: the fake score denoises detached generator samples over the full t range."""
        cfg, t = self.config, self.teacher
        abar = t.alphas_cumprod
        timesteps = self._draw(lambda n: sample_timesteps(n, cfg.curriculum.t_min, cfg.curriculum.t_max, generator), x0)
        eps = self._draw(lambda n: torch.randn((n, *x0.shape[1:]), generator=generator), x0)
        with torch.no_grad():
            x_t = add_noise(x0.detach(), eps, timesteps, abar)
            goal = training_target(x0.detach(), eps, timesteps, abar, t.prediction_type)
        with self.accelerator.autocast():
            prediction = denoise(self.fake, x_t, timesteps, cond.image_latent, cond.text)
        return denoising_loss(prediction, goal)

    def losses(self, batch: dict, generator: torch.Generator, update_generator: bool = True,
               step: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Every loss term of one micro-batch.

        Args:
            batch: ``input``, ``target`` (B, 3, S, S) full-resolution crops, ``instruction`` (B strings).
            generator: CPU RNG for noise and timesteps.
            update_generator: compute the student's terms with grad (else only the fake score's).
            step: curriculum position (default: the current step).

        Returns:
            (student terms incl. the weighted ``"total"``, fake-score terms ``{"fake"}``); the
            student dict also holds monitoring values (``dmd_norm``, ``t_low``, ``t_high``) not in the total.
        """
        cfg, acc = self.config, self.accelerator
        cond = self.conditioning(batch)
        latent = cond.image_latent
        noise = self._draw(lambda n: torch.randn((n, *latent.shape[1:]), generator=generator), latent)
        with (contextlib.nullcontext() if update_generator else torch.no_grad()), acc.autocast():
            out = self.student(noise, cond.image_latent, cond.text, with_grid=cfg.stage == 2)
        x0 = out.x0.float()
        terms: dict[str, torch.Tensor] = {}
        if update_generator:
            train_x0 = self.train_generator
            if train_x0:
                terms.update(self.vsd_terms(x0, cond, generator, self.step if step is None else step))
            x_hat = self._decode(x0 if train_x0 else x0.detach())
            if train_x0:
                terms.update(data_loss(x_hat, cond.low_target, self.lpips if cfg.losses.lpips > 0 else None))
                if cfg.losses.clip > 0:
                    terms["clip"] = clip_alignment(self.clip, x_hat, cond.instructions, cfg.clip.temperature,
                                                   cache=self.attribute_cache, weighting=cfg.clip.weighting)
            if cfg.stage == 2:
                terms.update(self._bilateral_terms(out, cond, x_hat))
            weights = asdict(cfg.losses)
            terms["total"] = sum(weights[k] * v for k, v in terms.items() if k in WEIGHTED_TERMS)
        return terms, {"fake": self.fake_score_loss(x0, cond, generator)}

    def _draw(self, sample, like: torch.Tensor) -> torch.Tensor:
        """This process's rows of ``sample(global batch)``, on ``like``'s device.

        Every process draws for the whole global batch from the same generator and keeps its own
        rows (those of its data, see ``ResumableBatchSampler``), so W processes of batch B draw
        exactly what one process of batch W B does: the run does not depend on the process count.
        """
        acc, rows = self.accelerator, like.shape[0]
        start = acc.process_index * rows
        return sample(rows * acc.num_processes)[start:start + rows].to(like.device)

    def _decode(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latent -> (B, 3, H, W) float32 image through the frozen decoder (grad flows to x0)."""
        dtype = frozen_dtype(self.accelerator)
        with self.accelerator.autocast():
            return self.teacher.codec.decode(x0.to(dtype)).float()

    def _bilateral_terms(self, out, cond: Conditioning, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 8 on the grid sliced at full resolution."""
        w = self.config.losses
        sliced = slice_and_apply(cond.full_input, out.grid.float(), out.guide.to(dtype=torch.float32),
                                 backend="grid_sample")
        lpips = self.lpips if (w.bil_lpips > 0 or w.bil_xhat > 0) else None
        return bilateral_losses(sliced, cond.full_target, x_hat, out.grid, lpips)

    def train_step(self, batches: Iterator[dict]) -> dict[str, float]:
        """One optimizer step (``run.grad_accum`` micro-batches) of the fake score and, every
        ``fake.generator_every`` steps, of the student. Returns the logged values."""
        cfg, acc = self.config, self.accelerator
        lr_g = learning_rate(self.step, cfg.optim.lr, cfg.optim.warmup_steps)
        lr_f = learning_rate(self.step, cfg.fake.lr, cfg.optim.warmup_steps)
        set_learning_rate(self.opt_g, lr_g)
        set_learning_rate(self.opt_f, lr_f)
        update_generator = self.step % cfg.fake.generator_every == 0
        totals: dict[str, float] = {}
        norms = {"grad_norm_student": float("nan"), "grad_norm_fake": float("nan")}
        for micro in range(cfg.run.grad_accum):
            # Rank 0's stream on every process: _draw slices the global draw per process.
            generator = step_generator(cfg.run.seed, 0, self.step * cfg.run.grad_accum + micro)
            with acc.accumulate(self.student, self.fake):
                gen_terms, fake_terms = self.losses(next(batches), generator, update_generator)
                if update_generator:
                    acc.backward(gen_terms["total"])
                    if acc.sync_gradients:
                        norms["grad_norm_student"] = float(acc.clip_grad_norm_(
                            [p for p in self.student.parameters() if p.requires_grad], cfg.optim.max_grad_norm))
                    self.opt_g.step()
                    self.opt_g.zero_grad(set_to_none=True)
                acc.backward(cfg.losses.fake * fake_terms["fake"])
                if acc.sync_gradients:
                    norms["grad_norm_fake"] = float(acc.clip_grad_norm_(
                        [p for p in self.fake.parameters() if p.requires_grad], cfg.optim.max_grad_norm))
                self.opt_f.step()
                self.opt_f.zero_grad(set_to_none=True)
            terms = {**gen_terms, **fake_terms}
            # Logged values are means over the global batch (all processes), as the losses are.
            values = acc.reduce(torch.stack([v.detach().float().reshape(()).to(acc.device) for v in terms.values()]), "mean")
            for key, value in zip(terms, values.tolist()):
                totals[key] = totals.get(key, 0.0) + value / cfg.run.grad_accum
        self.step += 1
        if update_generator:
            self.ema.update(acc.unwrap_model(self.student))
        return {**totals, **norms, "lr": lr_g, "lr_fake": lr_f}

    # -------------------------------------------------------------------------------- the run
    def train(self, max_steps: int | None = None) -> dict[str, float]:
        """Train to ``max_steps`` (default ``run.max_steps``), logging and checkpointing, then
        export the EMA student (``config.export``). Returns the last logged values."""
        cfg, acc = self.config, self.accelerator
        max_steps = cfg.run.max_steps if max_steps is None else max_steps
        write_run_files(self.output_dir, config_to_dict(cfg), acc)
        dataset = self.dataset if self.dataset is not None else build_dataset(cfg.data, cfg.run.seed)
        batches = batch_iterator(dataset, cfg.data, cfg.run.seed, self.step * cfg.run.grad_accum, acc)
        logs = run_steps(self, batches, max_steps, cfg.run)
        if cfg.export:
            self.export(self.output_dir / cfg.export)
        return logs

    def save_checkpoint(self) -> Path | None:
        acc, cfg = self.accelerator, self.config
        acc.wait_for_everyone()
        path = None
        if acc.is_main_process:
            student = acc.unwrap_model(self.student)
            path = save_train_state(
                self.output_dir / "checkpoints", self.step,
                models={
                    "student": {k: v for k, v in student.state_dict().items() if not k.startswith(FROZEN_STUDENT_PREFIXES)},
                    "fake": fake_score_state(acc.unwrap_model(self.fake), cfg.fake.mode),
                },
                optimizers={"student": self.opt_g, "fake": self.opt_f},
                ema=self.ema.state_dict(),
                scalars={"config": config_to_dict(cfg), "kind": "distill", "stage": cfg.stage},
                keep=cfg.run.keep_checkpoints,
            )
        acc.wait_for_everyone()
        return path

    def resume(self, path: str | Path) -> None:
        """Continue this stage from a checkpoint: weights, optimizers, EMA, RNGs, step."""
        state = load_train_state(path)
        if state.scalars.get("stage") != self.config.stage:
            raise ValueError(f"{state.path} is a stage-{state.scalars.get('stage')} checkpoint; this run is stage "
                             f"{self.config.stage} (use init_from to start stage 2 from stage 1)")
        acc, lora = self.accelerator, self.config.fake.mode == "lora"
        load_partial(acc.unwrap_model(self.student), state.models["student"], "student",
                     lambda k: k.startswith(FROZEN_STUDENT_PREFIXES))
        load_partial(acc.unwrap_model(self.fake), state.models["fake"], "fake score",
                     (lambda k: "lora_" not in k) if lora else (lambda k: False))
        restore_optimizer(self.opt_g, state.optimizers["student"])
        restore_optimizer(self.opt_f, state.optimizers["fake"])
        self.ema.load_state_dict(state.ema)
        restore_global_rng(state)
        self.step = state.step

    def export(self, path: str | Path) -> Path | None:
        """Write the EMA student as one safetensors file (main process only)."""
        acc = self.accelerator
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return None
        student = acc.unwrap_model(self.student)
        with self.ema.swapped_in(student):
            return student.save(path, label=f"distill stage {self.config.stage}, step {self.step}")


# ------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_config_arguments(parser)
    parser.add_argument("--stage", type=int, choices=(1, 2), help="1: generator; 2: + bilateral adapter (stage)")
    parser.add_argument("--init-from", metavar="PATH", help="stage 2: stage-1 checkpoint or run folder (init_from)")
    parser.add_argument("--export", metavar="FILE", help="student file name under the run folder (export)")
    parser.set_defaults(func=run)
    return parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``distill`` subcommand (see training/cli.py)."""
    return add_subcommand(subparsers, "distill",
                          "one-step bilateral distillation (VSD/DMD2 + data + CLIP; stage 2: bilateral loss)",
                          __doc__, add_arguments)


def config_from_args(args: argparse.Namespace) -> DistillConfig:
    overrides = config_overrides(args)
    if args.stage is not None:
        overrides.append(f"stage={args.stage}")
    if args.init_from is not None:
        overrides.append(f"init_from={json.dumps(args.init_from)}")
    if args.export is not None:
        overrides.append(f"export={json.dumps(args.export)}")
    return load_config(DistillConfig, args.config, overrides)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.stage == 2 and not config.init_from and find_checkpoint(Path(config.run.output_dir) / "checkpoints") is None:
        warnings.warn("stage 2 without --init-from: the generator starts from the teacher, not from stage 1")
    DistillTrainer(config).train()
    return 0


def main(argv=None) -> int:
    """``python -m retouch_training.train.distill`` / ``accelerate launch -m retouch_training.train.distill``."""
    return run_subcommand("distill", __doc__, add_arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Conditioning", "DistillTrainer", "build_fake_score", "real_score", "register", "main"]

"""Configuration dataclasses of ``train-teacher`` and ``distill`` (diffusion training), loadable from YAML.

Every field has a default; a YAML file (``training/configs/*.yaml``) overrides any subset and
``--set section.key=value`` on the command line overrides the file. Unknown keys are errors,
so a typo never silently trains with a default.

Defaults: the InstantRetouch paper specifies the losses and stages but, in what this package
could check, not every number. Where it is silent the defaults follow the method each part
comes from and say so: InstructPix2Pix (conditioning dropout 5 % each, guidance s_T 7.5 /
s_I 1.5, AdamW), DMD2 (fake-score LoRA, DMD normaliser, timesteps in [0.02 T, 0.98 T]) and
HDRNet (8 x 16 x 16 grid, smoothness weight).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from retouch_core.models.diffusion.adapter import AdapterConfig
from retouch_core.models.diffusion.tiny import TinyTeacherConfig


@dataclass
class DataConfig:
    """Training triplets (``make-dataset`` output read by :class:`training.data.TripletDataset`).

    Attributes:
        root: dataset folder with ``manifest.jsonl``.
        split / subsets / crop / auto_instruction: as in ``TripletDataset``.
        size: side of the square full-resolution crop (stage 2 slices the grid at this size).
        resolution: side the diffusion models see (the low-resolution copy).
        batch_size: per process and micro-step.
        num_workers: DataLoader workers.
    """

    root: str | None = None
    split: str = "train"
    subsets: tuple[str, ...] | None = None
    crop: str = "random"
    auto_instruction: float = 0.3
    size: int = 512
    resolution: int = 256
    batch_size: int = 4
    num_workers: int = 2


@dataclass
class ModelConfig:
    """Where the teacher comes from.

    Attributes:
        teacher: a local diffusers folder (InstructPix2Pix layout) or a teacher ``.safetensors``.
        config_dir: for a raw single-file teacher, the local diffusers folder with its configs.
        variant: weight-file variant of a diffusers folder, e.g. ``"fp16"`` (``*.fp16.safetensors``).
        init_from_sd: ``train-teacher`` only: a local text-to-image Stable Diffusion folder whose
            UNet is widened to 8 input channels (zero-initialised, as InstructPix2Pix does).
        allow_download: allow ``teacher`` / ``init_from_sd`` to be hub ids.
        tiny: build a small random teacher from ``tiny_config`` instead (tests, smoke runs, the
            small-scale CPU reproduction), seeded with ``tiny_seed``.
    """

    teacher: str | None = None
    config_dir: str | None = None
    variant: str | None = None
    init_from_sd: str | None = None
    allow_download: bool = False
    tiny: bool = False
    tiny_config: TinyTeacherConfig = field(default_factory=TinyTeacherConfig)
    tiny_seed: int = 0


@dataclass
class OptimConfig:
    """AdamW and the learning-rate warm-up."""

    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    warmup_steps: int = 0
    max_grad_norm: float = 1.0


@dataclass
class RunConfig:
    """Loop, precision, logging and checkpoints.

    Attributes:
        output_dir: run folder (``log.jsonl``, ``config.json``, ``checkpoints/``, exports).
        max_steps: optimizer steps (each ``grad_accum`` micro-batches).
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (fp16 needs CUDA; falls back to "no").
        resume: ``"latest"`` (continue ``output_dir`` if it has a checkpoint), a checkpoint
            folder, or ``None`` (start fresh).
        cpu: force CPU even when a GPU is visible.
        gradient_checkpointing: recompute activations in the backward pass instead of storing
            them (diffusers' checkpointing of the trained UNets and the VAE decoder the data loss
            runs through): one more forward pass of each per step for a fraction of the activation memory;
            ``python -m retouch_training.train.memory`` prints both for a config.
    """

    output_dir: str = "runs/retouch"
    max_steps: int = 10_000
    grad_accum: int = 1
    mixed_precision: str = "no"
    seed: int = 0
    ema_decay: float = 0.9999
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: str | None = "latest"
    cpu: bool = False
    gradient_checkpointing: bool = False


@dataclass
class TeacherTrainConfig:
    """``train-teacher`` (paper eq. 1). Conditioning dropout as InstructPix2Pix: 5 % of the
    samples lose the text, 5 % the image, 5 % both, so both CFG scales are available."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5))
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/teacher"))
    drop_text: float = 0.05
    drop_image: float = 0.05
    drop_both: float = 0.05


@dataclass
class LossWeights:
    """Weights of every loss term (paper eqs. 3-8).

    Attributes:
        vsd: distribution matching (VSD/DMD) generator term.
        fake: fake-score denoising loss (eq. 4; its own optimizer).
        mse / lpips: data loss on the decoded x̂ (eq. 7).
        clip: attribute InfoNCE alignment (eqs. 5-6).
        bil_l1 / bil_lpips: sliced full-res output vs target (eq. 8, stage 2).
        bil_xhat: LPIPS of the sliced output to x̂ (eq. 8).
        smooth: 3-D Laplacian smoothness of the grid (eq. 8).
        gamut: out-of-gamut penalty on the sliced output (eq. 8).
    """

    vsd: float = 1.0
    fake: float = 1.0
    mse: float = 1.0
    lpips: float = 1.0
    clip: float = 0.1
    bil_l1: float = 1.0
    bil_lpips: float = 1.0
    bil_xhat: float = 0.5
    smooth: float = 1e-2
    gamut: float = 1.0


@dataclass
class CurriculumPhase:
    """One phase of the phased curriculum: VSD timesteps ``t ~ U[t_min, t_max]`` for ``steps``
    optimizer steps (the last phase lasts until the end of the run; its ``steps`` is ignored)."""

    steps: int = 0
    t_min: int = 20
    t_max: int = 980


@dataclass
class CurriculumConfig:
    """Timesteps of the VSD term, high noise first.

    Linear (``phases`` empty): ``t ~ U[low(step), t_max]``, ``low`` falls linearly from ``start``
    to ``t_min`` over ``steps`` optimizer steps. Phased (the paper's three stages of high, mid
    and low noise): ``phases`` in order, each with its own range and length. ``t_min`` /
    ``t_max`` are also the range the fake score trains on in both forms.
    """

    t_min: int = 20
    t_max: int = 980
    start: int = 800
    steps: int = 5000
    phases: tuple[CurriculumPhase, ...] = ()


@dataclass
class FakeScoreConfig:
    """The fake-score regulariser (the generator distribution's denoiser).

    Attributes:
        mode: ``"lora"`` (LoRA on the teacher UNet, which stays frozen underneath) or
            ``"full"`` (a trainable full copy).
        rank / alpha: LoRA size.
        lr: its AdamW learning rate (other AdamW settings from ``optim``).
        generator_every: generator updates once every N fake-score updates (DMD2's two
            time-scale rule; 1 = alternate every step).
    """

    mode: str = "lora"
    rank: int = 64
    alpha: int = 64
    lr: float = 1e-5
    generator_every: int = 1


@dataclass
class ClipConfig:
    """CLIP judge of the alignment loss. ``path``: local open_clip model (folder or file);
    ``arch``: its architecture if no config sits next to it; ``tiny``: random tiny CLIP (tests);
    ``weighting``: ``"confidence"`` (the paper's eq. 6: mean over matched attributes of the
    matcher confidence times the term) or ``"intensity"`` (the earlier |intensity|-weighted mean;
    see ``training.train.losses.clip_alignment``)."""

    path: str | None = None
    arch: str | None = None
    tiny: bool = False
    temperature: float = 0.07
    weighting: str = "confidence"


@dataclass
class LpipsConfig:
    """LPIPS of the data and bilateral losses. ``weights_dir``: folder with the backbone weights
    (see ``training.metrics.load_lpips``); ``random``: random backbone (tests only)."""

    net: str = "alex"
    weights_dir: str | None = None
    random: bool = False


@dataclass
class DistillConfig:
    """``distill`` (both stages).

    Attributes:
        stage: 1 (generator: VSD + data + CLIP) or 2 (adds the adapter and eq. 8).
        init_from: stage 2: the stage-1 checkpoint folder (or run folder) to start from.
        use_ema_init: start stage 2 from the stage-1 EMA weights.
        freeze_generator: stage 2 trains the adapter only.
        real_text_scale / real_image_scale: teacher guidance of the real score.
        generator_timestep: the one-step generator's ``t_max`` (None: T - 1).
        export: student file written at the end (relative to ``run.output_dir``), or None.
    """

    stage: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/distill", ema_decay=0.999))
    losses: LossWeights = field(default_factory=LossWeights)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    fake: FakeScoreConfig = field(default_factory=FakeScoreConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    lpips: LpipsConfig = field(default_factory=LpipsConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    init_from: str | None = None
    use_ema_init: bool = True
    freeze_generator: bool = False
    real_text_scale: float = 7.5
    real_image_scale: float = 1.5
    generator_timestep: int | None = None
    noise_seed: int = 0
    export: str | None = "student.safetensors"


# ------------------------------------------------------------------------------------------
# dict / YAML conversion


def config_from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from nested dicts: defaults, overridden by the keys ``data`` names.

    YAML scalars and lists are coerced to the annotated types; a section given in part keeps
    the defaults of the keys it does not name.

    Raises:
        ValueError: an unknown key (with its dotted path) or a value of the wrong kind.
    """
    return _merge(cls(), dict(data or {}), where)


def _merge(base, data: dict, where: str):
    hints = typing.get_type_hints(type(base))
    names = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) {[where + k for k in unknown]}; known: {sorted(names)}")
    values = {}
    for key, value in data.items():
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            values[key] = _merge(current, value, f"{where}{key}.")
        else:
            values[key] = _coerce(hints[key], value, f"{where}{key}")
    return dataclasses.replace(base, **values)


def _coerce(tp, value: Any, where: str):
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(options[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a mapping")
        return _merge(tp(), value, where + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, where) if item is not Any else v for v in value)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if tp is int:
            return int(value)
        if tp is float:  # PyYAML reads "1e-5" (no dot) as a string
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a {tp.__name__}, got {value!r}") from None
    return value


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {dotted}: {key} is not a section")
    node[keys[-1]] = value


def load_config(cls, path: str | Path | None = None, overrides: Sequence[str] = ()):
    """``cls`` from defaults, then the YAML file ``path``, then ``key.sub=value`` overrides.

    Override values are parsed as YAML (``--set optim.lr=1e-4``, ``--set data.subsets=[auto]``).
    """
    import yaml

    data = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override must look like section.key=value, got {item!r}")
        _set_dotted(data, key.strip(), yaml.safe_load(raw))
    return config_from_dict(cls, data)


def config_to_dict(config) -> dict:
    """Plain nested dict (JSON/YAML-safe) of a config dataclass."""
    return _plain(dataclasses.asdict(config))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

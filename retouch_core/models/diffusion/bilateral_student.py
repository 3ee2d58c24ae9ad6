"""The distilled model: one-step generator + bilateral adapter, as a :class:`RetouchModel`.

:class:`BilateralStudentNet` is the trainable ``nn.Module`` (codec and text encoder frozen,
shared with the teacher during training). :class:`BilateralStudent` wraps it for the ComfyUI
nodes and :func:`~retouch_core.models.load_retouch_model`: it predicts on a low-resolution
copy and returns a :class:`~retouch_core.engine.retouch_grid.RetouchGrid` that applies at any resolution.

A trained student is exported as ONE safetensors file (:meth:`BilateralStudentNet.save`):
weights of the UNet, the codec's encoder, the text encoder and the adapter, with every
architecture and the tokenizer as JSON metadata. The VAE decoder is left out: inference never
decodes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import nn

from ...engine.guide import GuideParams
from ...engine.resize import resize
from ...engine.retouch_grid import RetouchGrid
from ...formats.model_files import (
    check_bounds,
    check_shapes,
    load_strict,
    parse_config,
    prefixed,
    read_metadata,
    read_model_file,
    unprefixed,
    write_model_file,
)
from ...language.matcher import Plan
from ..base import RetouchModel, low_res_copy
from .adapter import AdapterConfig, BilateralAdapter, adapter_config_for_unet, capture_features
from .codec import DECODER_PREFIXES, LatentCodec
from .student import OneStepGenerator
from .teacher import InstructPix2PixTeacher, teacher_from_config
from .text_encoder import TextConditioner, tokenizer_from_files, tokenizer_to_files

STUDENT_FORMAT = "instantretouch-student"
FORMAT_VERSION = "1"
# Sizes a student file may set, (low, high), checked before anything is built: the resolution
# sets the low-res copy's size, the adapter entries its layers and the grid it predicts.
STUDENT_BOUNDS = {"resolution": (16, 2048), "noise_seed": (0, 2**63 - 1)}
ADAPTER_BOUNDS = {"grid_depth": (1, 64), "grid_height": (1, 128), "grid_width": (1, 128), "width": (1, 1024),
                  "num_blocks": (1, 64), "latent_channels": (1, 64), "guide_knots": (1, 256)}


@dataclass(frozen=True)
class StudentConfig:
    """Inference settings of a student.

    Attributes:
        resolution: long side of the low-resolution copy the student reads (the grid is then
            applied at full resolution).
        timestep: the generator's fixed step ``t_max`` (None: ``T - 1``).
        noise_seed: seed of the generator's input noise at inference (reproducible grids).
        adapter: adapter hyper-parameters.

    Example:
        >>> from dataclasses import asdict
        >>> config = StudentConfig(256, adapter=AdapterConfig(feature_blocks=("mid",), feature_channels=(8,)))
        >>> StudentConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config  # through a file's JSON
        True
        >>> StudentConfig.from_dict({"resolution": 8}, "student.safetensors")
        Traceback (most recent call last):
        ValueError: student.safetensors: resolution must be an integer from 16 to 2048, got 8
        >>> StudentConfig.from_dict({"adapter": {"grid_depth": 1000}}, "student.safetensors")
        Traceback (most recent call last):
        ValueError: student.safetensors (adapter): grid_depth must be an integer from 1 to 64, got 1000
    """

    resolution: int = 512
    timestep: int | None = None
    noise_seed: int = 0
    adapter: AdapterConfig = field(default_factory=AdapterConfig)

    @staticmethod
    def from_dict(values: dict, where: str = "student config") -> "StudentConfig":
        """Inverse of ``asdict``; ValueError naming ``where`` for unknown entries, wrong types or
        sizes out of :data:`STUDENT_BOUNDS` / :data:`ADAPTER_BOUNDS`."""
        adapter = values.get("adapter", {}) if isinstance(values, dict) else None
        if not isinstance(adapter, dict):
            raise ValueError(f"{where}: the student config and its adapter entry must be JSON objects")
        adapter = dict(adapter)
        for key in ("feature_blocks", "feature_channels"):
            if key in adapter:
                if not isinstance(adapter[key], list | tuple):
                    raise ValueError(f"{where}: adapter {key} must be a list")
                adapter[key] = tuple(adapter[key])  # JSON lists back to the dataclass's tuples
        check_bounds(values, STUDENT_BOUNDS, where)
        check_bounds(adapter, ADAPTER_BOUNDS, f"{where} (adapter)")
        if values.get("timestep") is not None:
            check_bounds(values, {"timestep": (0, 1 << 20)}, where)
        try:
            return StudentConfig(**{**values, "adapter": AdapterConfig(**adapter)})
        except TypeError as err:  # unknown entries
            raise ValueError(f"{where}: {err}") from None


class StudentOutput(NamedTuple):
    """x0: (B, C, h, w) predicted latent; grid: (B, 12, D, H_g, W_g) or None; guide: GuideParams or None.

    Example:
        >>> from retouch_core.models.diffusion.tiny import build_tiny_student
        >>> net = build_tiny_student()  # pixel codec, 32 px, a 4x6 grid of depth 4
        >>> image = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
        >>> x0, grid, guide = net.predict(image, ["make it warmer"])
        >>> x0.shape, grid.shape, guide.batch
        (torch.Size([1, 4, 8, 12]), torch.Size([1, 12, 4, 4, 6]), 1)
        >>> stage1 = net.predict(image, ["make it warmer"], with_grid=False)  # stage 1 trains the latent only
        >>> stage1.grid, stage1.guide, torch.equal(stage1.x0, x0)
        (None, None, True)
    """

    x0: torch.Tensor
    grid: torch.Tensor | None
    guide: GuideParams | None


class BilateralStudentNet(nn.Module):
    """Codec + text encoder (frozen) + one-step generator + bilateral adapter.

    Args:
        codec, text: the teacher's (frozen; only the encoder side is used at inference).
        generator: the one-step generator.
        adapter: the bilateral head.
        config: inference settings.
        scheduler_config: the teacher's DDPM config (kept for export).
        condition_scaled: whether image-condition latents are scaled (teacher convention).

    Example:
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
        >>> teacher = build_tiny_teacher()  # pixel codec: latents (B, 4, H / 2, W / 2)
        >>> adapter = AdapterConfig(grid_depth=4, grid_height=4, grid_width=6, width=16, num_blocks=1, init_std=0.0)
        >>> net = BilateralStudentNet.from_teacher(teacher, StudentConfig(resolution=32, adapter=adapter))
        >>> net.config.adapter.feature_channels, net.size_multiple  # widths of mid, up0, up1 read from the UNet
        ((64, 64, 32), 4)
        >>> net.codec is teacher.codec, net.text is teacher.text, net.generator.unet is teacher.unet  # the UNet: a copy
        (True, True, False)
        >>> image = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
        >>> out = net.predict(image, ["make it warmer", ""])
        >>> out.x0.shape, out.grid.shape, out.guide.batch  # (B, C, h, w), (B, 12, D, H_g, W_g)
        (torch.Size([2, 4, 8, 12]), torch.Size([2, 12, 4, 4, 6]), 2)
        >>> torch.allclose(slice_and_apply(image, out.grid, out.guide), image, atol=1e-5)  # untrained adapter: no edit
        True
    """

    def __init__(self, codec: LatentCodec, text: TextConditioner, generator: OneStepGenerator,
                 adapter: BilateralAdapter, config: StudentConfig, scheduler_config: dict,
                 condition_scaled: bool = False):
        super().__init__()
        self.codec, self.text, self.generator, self.adapter = codec, text, generator, adapter
        self.config = config
        self.scheduler_config = dict(scheduler_config)
        self.condition_scaled = condition_scaled

    @classmethod
    def from_teacher(cls, teacher: InstructPix2PixTeacher,
                     config: StudentConfig | None = None) -> "BilateralStudentNet":
        """Generator initialised from the teacher's UNet; codec and text shared with the teacher."""
        config = config or StudentConfig()
        adapter_cfg = adapter_config_for_unet(teacher.unet, config.adapter)
        config = StudentConfig(**{**config.__dict__, "adapter": adapter_cfg})
        generator = OneStepGenerator.from_teacher(teacher, config.timestep)
        return cls(teacher.codec, teacher.text, generator, BilateralAdapter(adapter_cfg), config,
                   teacher.scheduler_config, teacher.condition_scaled)

    @property
    def size_multiple(self) -> int:
        return self.codec.downscale * 2 ** (len(self.generator.unet.config.block_out_channels) - 1)

    def image_condition(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) low-res input in [0, 1] -> (B, C, h / f, w / f) condition latent.

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_student, build_tiny_teacher
            >>> teacher = build_tiny_teacher()  # pixel codec: latents (B, 4, H / 2, W / 2)
            >>> net = build_tiny_student(teacher)  # 32 px, a 4x6 grid of depth 4
            >>> image = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
            >>> condition = net.image_condition(image)
            >>> condition.shape, torch.equal(condition, teacher.image_condition(image))  # the teacher's convention
            (torch.Size([1, 4, 8, 12]), True)
        """
        return self.codec.encode(image, scaled=self.condition_scaled)

    def inference_noise(self, like: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) standard normal noise from ``config.noise_seed`` (same for every call).

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_student
            >>> net = build_tiny_student()  # pixel codec, 32 px, a 4x6 grid of depth 4
            >>> latent = torch.zeros(2, 4, 8, 12)
            >>> noise = net.inference_noise(latent)
            >>> noise.shape, torch.equal(noise, net.inference_noise(latent))  # reproducible grids
            (torch.Size([2, 4, 8, 12]), True)
            >>> torch.equal(noise, torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(0)))  # noise_seed 0
            True
        """
        generator = torch.Generator().manual_seed(self.config.noise_seed)
        return torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like)

    def forward(self, noise: torch.Tensor, image_latent: torch.Tensor, text_emb: torch.Tensor,
                with_grid: bool = True) -> StudentOutput:
        """Generator step (eq. 2) and, with ``with_grid``, the adapter on its features.

        Args:
            noise: (B, C, h, w); image_latent: (B, C, h, w) condition latent; text_emb: (B, L, D).
            with_grid: run the adapter (stage 2 and inference); stage 1 trains ``x0`` only.

        Returns:
            :class:`StudentOutput`.

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_student
            >>> net = build_tiny_student()  # pixel codec, 32 px, a 4x6 grid of depth 4
            >>> noise = torch.Generator().manual_seed(0)
            >>> z, image_latent = torch.randn(2, 4, 8, 8, generator=noise), torch.rand(2, 4, 8, 8, generator=noise)
            >>> text_emb = net.text(["make it warmer", "brighter"])
            >>> with torch.no_grad():
            ...     stage1, stage2 = net(z, image_latent, text_emb, with_grid=False), net(z, image_latent, text_emb)
            >>> stage1.grid is None, stage2.grid.shape
            (True, torch.Size([2, 12, 4, 4, 6]))
            >>> torch.equal(stage1.x0, stage2.x0)  # reading the features does not change the generator step
            True
        """
        if not with_grid:
            return StudentOutput(self.generator(noise, image_latent, text_emb), None, None)
        with capture_features(self.generator.unet, self.adapter.config.feature_blocks) as feats:
            x0 = self.generator(noise, image_latent, text_emb)
        features = [feats[name] for name in self.adapter.config.feature_blocks]
        # The adapter sees both latents in the generator's (scaled) units.
        cond = image_latent if self.condition_scaled else image_latent * self.codec.scaling_factor
        grid, guide = self.adapter(features, x0, cond)
        return StudentOutput(x0, grid, guide)

    @torch.no_grad()
    def predict(self, image_low: torch.Tensor, prompts: Sequence[str], with_grid: bool = True) -> StudentOutput:
        """(B, 3, h, w) low-res images (sides multiples of :attr:`size_multiple`) + B prompts ->
        outputs with the deterministic inference noise (``with_grid`` as in :meth:`forward`)."""
        image_latent = self.image_condition(image_low)
        return self(self.inference_noise(image_latent), image_latent, self.text(list(prompts)), with_grid)

    # ------------------------------------------------------------------------------------- I/O
    def config_dict(self) -> dict:
        return {
            "unet": json.loads(json.dumps(dict(self.generator.unet.config), default=list)),
            "codec": self.codec.codec_config(),
            "text_encoder": self.text.text_encoder.config.to_dict(),
            "text_max_length": self.text.max_length,
            "scheduler": self.scheduler_config,
            "condition_scaled": self.condition_scaled,
            "prediction_type": self.generator.prediction_type,
            "student": asdict(self.config),
        }

    def save(self, path: str | Path, dtype: torch.dtype = torch.float32, label: str = "") -> Path:
        """Export as one safetensors file (see module docstring). ``dtype``: stored float dtype.

        Example:
            >>> import tempfile
            >>> from retouch_core.formats.model_files import read_model_file
            >>> from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_student, build_tiny_teacher
            >>> net = build_tiny_student(build_tiny_teacher(TinyTeacherConfig(codec="vae")))
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     path = net.save(Path(folder) / "student.safetensors", dtype=torch.half, label="warm v1")
            ...     tensors, metadata = read_model_file(path)
            >>> path.name, metadata["format"], metadata["label"], tensors["adapter.stem.weight"].dtype
            ('student.safetensors', 'instantretouch-student', 'warm v1', torch.float16)
            >>> sorted({name.split(".")[0] for name in tensors})
            ['adapter', 'codec', 'text_encoder', 'unet']
            >>> any(name.startswith("codec.vae.decoder.") for name in tensors)  # inference never decodes
            False
        """
        tensors = {
            **prefixed(self.generator.unet.state_dict(), "unet."),
            **prefixed(self.codec.inference_state_dict(), "codec."),
            **prefixed(self.text.text_encoder.state_dict(), "text_encoder."),
            **prefixed(self.adapter.state_dict(), "adapter."),
        }
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        metadata = {
            "format": STUDENT_FORMAT,
            "format_version": FORMAT_VERSION,
            "config": json.dumps(self.config_dict()),
            "tokenizer": json.dumps(tokenizer_to_files(self.text.tokenizer)),
            "label": label,
        }
        return write_model_file(path, tensors, metadata)

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> "BilateralStudentNet":
        """Rebuild a student from :meth:`save` output: no download, no pickle, no code from the file.

        Every config entry is checked (:func:`~retouch_core.formats.model_files.check_config`),
        the tokenizer may hold data files only, and the architecture is first built on the meta
        device and compared with the file's weights, so a config claiming a huge model is refused
        before anything is allocated.

        Raises:
            ValueError: not a student file, or a damaged one; the message names the file.

        Example:
            >>> import tempfile
            >>> from retouch_core.models.diffusion.tiny import build_tiny_student, build_tiny_teacher
            >>> teacher = build_tiny_teacher()  # pixel codec: latents (B, 4, H / 2, W / 2)
            >>> net = build_tiny_student(teacher)  # 32 px, a 4x6 grid of depth 4
            >>> image = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     loaded = BilateralStudentNet.load(net.save(Path(folder) / "student.safetensors"))
            ...     teacher_file = teacher.save_single_file(Path(folder) / "teacher.safetensors")
            ...     BilateralStudentNet.load(teacher_file)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ValueError: .../teacher.safetensors is not an InstantRetouch student file (format 'instantretouch-teacher')
            >>> loaded.training, torch.equal(loaded.predict(image, ["warm"]).grid, net.predict(image, ["warm"]).grid)
            (False, True)
        """
        tensors, metadata = read_model_file(path)
        if metadata.get("format") != STUDENT_FORMAT:
            raise ValueError(f"{path} is not an InstantRetouch student file (format {metadata.get('format')!r})")
        missing = [key for key in ("config", "tokenizer") if key not in metadata]
        if missing:
            raise ValueError(f"{path}: the student file lacks {' and '.join(missing)} in its metadata")
        config = parse_config(metadata["config"], str(path))
        try:
            tokenizer = tokenizer_from_files(json.loads(metadata["tokenizer"]))
            with torch.device("meta"):
                cls._check_weights(cls._build(config, tokenizer, str(path)), tensors)
            net = cls._build(config, tokenizer, str(path))
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError, RuntimeError) as err:
            # A config of the wrong shape fails in diffusers / transformers / torch with any of these.
            what = f"lacks the entry {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(f"{path}: not a valid student file: {what}") from None
        load_strict(net.generator.unet, unprefixed(tensors, "unet."), "unet")
        load_strict(net.codec, unprefixed(tensors, "codec."), "codec", allow_missing=DECODER_PREFIXES)
        load_strict(net.text.text_encoder, unprefixed(tensors, "text_encoder."), "text_encoder")
        load_strict(net.adapter, unprefixed(tensors, "adapter."), "adapter")
        return net.to(dtype).eval().requires_grad_(False)

    @classmethod
    def _build(cls, config: dict, tokenizer, where: str) -> "BilateralStudentNet":
        """A student with untrained weights from a checked :meth:`config_dict`."""
        student_cfg = StudentConfig.from_dict(config["student"], where)
        shell = teacher_from_config(config, tokenizer)
        generator = OneStepGenerator(shell.unet, shell.alphas_cumprod, shell.prediction_type, student_cfg.timestep)
        return cls(shell.codec, shell.text, generator, BilateralAdapter(student_cfg.adapter), student_cfg,
                   shell.scheduler_config, shell.condition_scaled)

    @staticmethod
    def _check_weights(net: "BilateralStudentNet", tensors: dict[str, torch.Tensor]) -> None:
        check_shapes(net.generator.unet, unprefixed(tensors, "unet."), "unet")
        check_shapes(net.codec, unprefixed(tensors, "codec."), "codec", allow_missing=DECODER_PREFIXES)
        check_shapes(net.text.text_encoder, unprefixed(tensors, "text_encoder."), "text_encoder")
        check_shapes(net.adapter, unprefixed(tensors, "adapter."), "adapter")


def is_student_file(path: str | Path) -> bool:
    """True when ``path`` is a safetensors file written by :meth:`BilateralStudentNet.save`.

    Example:
        >>> import tempfile
        >>> from retouch_core.models.diffusion.tiny import build_tiny_student, build_tiny_teacher
        >>> teacher = build_tiny_teacher()  # pixel codec: latents (B, 4, H / 2, W / 2)
        >>> net = build_tiny_student(teacher)  # 32 px, a 4x6 grid of depth 4
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     student = net.save(Path(folder) / "student.safetensors")
        ...     other = teacher.save_single_file(Path(folder) / "teacher.safetensors")
        ...     print(is_student_file(student), is_student_file(other), is_student_file(Path(folder) / "nothing.here"))
        True False False
    """
    try:
        return read_metadata(path).get("format") == STUDENT_FORMAT
    except Exception:  # not safetensors at all
        return False


def resize_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, h, w) with h, w the nearest positive multiples of ``multiple``.

    Example:
        >>> resize_to_multiple(torch.rand(1, 3, 30, 45), 8).shape  # 30 / 8 = 3.75 -> 4, 45 / 8 = 5.6 -> 6
        torch.Size([1, 3, 32, 48])
        >>> resize_to_multiple(torch.rand(1, 3, 3, 5), 8).shape  # never an empty side
        torch.Size([1, 3, 8, 8])
        >>> image = torch.rand(1, 3, 32, 48)
        >>> resize_to_multiple(image, 8) is image  # already multiples: the input itself
        True
    """
    height, width = image.shape[-2:]
    size = (max(multiple, round(height / multiple) * multiple), max(multiple, round(width / multiple) * multiple))
    return resize(image, size)


class BilateralStudent(RetouchModel):
    """A distilled student as a retouch model.

    Args:
        net: the trained network (evaluation mode, frozen).
        device: where it runs (default: the net's device).

    Example:
        >>> from retouch_core.models.diffusion.tiny import build_tiny_student
        >>> net = build_tiny_student(init_std=0.0)  # an untrained adapter that makes no edit
        >>> model = BilateralStudent(net)  # frozen, evaluation mode
        >>> image = torch.rand(1, 3, 60, 90, generator=torch.Generator().manual_seed(0))
        >>> grid, plan = model.predict(image, "make it warmer")  # predicted on a 20 x 32 copy (resolution 32)
        >>> grid.grid.shape, grid.source_size, grid.label
        (torch.Size([1, 12, 4, 4, 6]), (60, 90), 'bilateral-student: make it warmer')
        >>> torch.allclose(model(image, "make it warmer"), image, atol=1e-5)  # an untrained adapter: no edit
        True
    """

    name = "bilateral-student"

    def __init__(self, net: BilateralStudentNet, device: str | torch.device | None = None):
        self.net = net.eval().requires_grad_(False)
        if device is not None:
            self.net.to(device)
        self.device = next(self.net.parameters()).device
        self.dtype = next(self.net.parameters()).dtype

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> "BilateralStudent":
        """Load an exported student file.

        Example:
            >>> import tempfile
            >>> from retouch_core.models import load_retouch_model
            >>> from retouch_core.models.diffusion.tiny import build_tiny_student
            >>> net = build_tiny_student()  # pixel codec, 32 px, a 4x6 grid of depth 4
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     path = net.save(Path(folder) / "student.safetensors")
            ...     model, found = BilateralStudent.from_file(path), load_retouch_model(path)  # the same, by format
            >>> type(found).__name__, model.device, model.dtype
            ('BilateralStudent', device(type='cpu'), torch.float32)
            >>> image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
            >>> torch.equal(model(image, "warmer"), BilateralStudent(net)(image, "warmer"))
            True
        """
        return cls(BilateralStudentNet.load(path, dtype=dtype), device)

    @torch.no_grad()
    def predict_grid(self, image: torch.Tensor, plan: Plan) -> RetouchGrid:
        """(1, 3, H, W) in [0, 1] + plan -> batch-1 grid with its learned guide.

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_student
            >>> net = build_tiny_student()  # pixel codec, 32 px, a 4x6 grid of depth 4
            >>> image = torch.rand(1, 3, 150, 200, generator=torch.Generator().manual_seed(0))
            >>> grid = BilateralStudent(net).predict_grid(image, Plan())  # an empty instruction: "auto"
            >>> grid.grid.shape, grid.guide.batch, grid.guide.knots, grid.source_size, grid.label
            (torch.Size([1, 12, 4, 4, 6]), 1, 16, (150, 200), 'bilateral-student: auto')
            >>> grid.apply(image).shape  # predicted on a 24 x 32 copy, applied at full resolution
            torch.Size([1, 3, 150, 200])
        """
        low = low_res_copy(image.float(), self.net.config.resolution)
        low = resize_to_multiple(low, self.net.size_multiple).clamp(0, 1)
        out = self.net.predict(low.to(self.device, self.dtype), [plan.text])
        guide = out.guide.to(device="cpu", dtype=torch.float32)
        text = plan.text.strip() or "auto"
        return RetouchGrid(out.grid.float().cpu(), guide, tuple(image.shape[-2:]), f"{self.name}: {text}")

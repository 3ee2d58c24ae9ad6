"""Tiny random teachers built from config objects: offline tests and CPU smoke runs.

Same classes and code paths as a real Stable Diffusion / InstructPix2Pix teacher, with widths
and depths small enough that a training step takes well under a second on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .adapter import AdapterConfig
from .bilateral_student import BilateralStudentNet, StudentConfig
from .codec import PixelCodec, VAECodec
from .teacher import InstructPix2PixTeacher
from .text_encoder import TextConditioner, tiny_clip_tokenizer


@dataclass(frozen=True)
class TinyTeacherConfig:
    """Sizes of a tiny teacher.

    Attributes:
        codec: ``"pixel"`` (parameter-free, fastest) or ``"vae"`` (a tiny ``AutoencoderKL``).
        latent_channels: C; the UNet reads 2 C channels.
        block_out_channels: UNet widths, one per resolution level.
        attention_levels: levels whose blocks cross-attend to the text (the mid block always
            does); default: all but the lowest resolution, as Stable Diffusion. Leaving the
            high-resolution levels out makes larger images affordable on a CPU.
        cross_attention_dim: = text hidden size.
        text_layers / text_heads / max_length: CLIP text encoder size and context length.
        vae_block_out_channels: VAE widths (downscale 2^(n-1)).
        latent_scale: the pixel codec's ``scaling_factor`` (None: its default, which leaves photo
            latents at a standard deviation of about 0.26). Diffusion assumes roughly unit-variance
            latents, as Stable Diffusion's 0.18215 gives its VAE: with 0.26 the signal is gone early
            in the noise schedule and the x0 estimate at high noise is poor.
        prediction_type: ``"epsilon"`` (SD 1.x, the paper) or ``"v_prediction"``.

    Example:
        >>> config = TinyTeacherConfig(codec="vae", attention_levels=(), prediction_type="v_prediction")
        >>> teacher = build_tiny_teacher(config)
        >>> teacher.unet.config.in_channels, type(teacher.codec).__name__, teacher.prediction_type
        (8, 'VAECodec', 'v_prediction')
        >>> teacher.size_multiple  # VAE downscale 2 x one UNet downsampling
        4
    """

    codec: str = "pixel"
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (32, 64)
    attention_levels: tuple[int, ...] | None = None
    layers_per_block: int = 1
    cross_attention_dim: int = 32
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    text_layers: int = 1
    text_heads: int = 2
    max_length: int = 16
    vae_block_out_channels: tuple[int, ...] = (16, 32)
    latent_scale: float | None = None
    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"


def tiny_scheduler_config(config: TinyTeacherConfig) -> dict:
    """Stable Diffusion's DDPM schedule (scaled-linear betas) at ``num_train_timesteps``.

    Example:
        >>> from diffusers import DDPMScheduler
        >>> alphas_cumprod = DDPMScheduler.from_config(tiny_scheduler_config(TinyTeacherConfig())).alphas_cumprod
        >>> betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2  # "scaled_linear": linear in sqrt(β)
        >>> alphas_cumprod.shape, torch.allclose(alphas_cumprod, torch.cumprod(1 - betas, 0))
        (torch.Size([1000]), True)
        >>> round(alphas_cumprod[-1].item(), 4)  # SD 1.x's: some signal is left at t = T - 1
        0.0047
    """
    return {
        "num_train_timesteps": config.num_train_timesteps,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "prediction_type": config.prediction_type,
        "set_alpha_to_one": False,
        "steps_offset": 1,
    }


def build_tiny_teacher(config: TinyTeacherConfig | None = None, seed: int = 0) -> InstructPix2PixTeacher:
    """A random tiny teacher; the same ``(config, seed)`` gives the same weights.

    Example:
        >>> rng_state = torch.get_rng_state()
        >>> teacher, again = build_tiny_teacher(seed=0), build_tiny_teacher(seed=0)
        >>> all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), again.state_dict().values()))
        True
        >>> torch.equal(torch.get_rng_state(), rng_state)  # the caller's random stream is left alone
        True
        >>> noise = torch.Generator().manual_seed(0)
        >>> photo = torch.rand(1, 3, 16, 16, generator=noise)
        >>> teacher.sample(photo, ["warmer"], steps=2, generator=noise).shape  # random weights: no edit yet
        torch.Size([1, 3, 16, 16])
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = config or TinyTeacherConfig()
    levels = len(config.block_out_channels)
    attention = range(levels - 1) if config.attention_levels is None else config.attention_levels
    if any(not 0 <= level < levels for level in attention):
        raise ValueError(f"attention_levels must be in [0, {levels}), got {tuple(attention)}")
    down = tuple("CrossAttnDownBlock2D" if i in attention else "DownBlock2D" for i in range(levels))
    up = tuple("CrossAttnUpBlock2D" if levels - 1 - i in attention else "UpBlock2D" for i in range(levels))
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=16,
            in_channels=2 * config.latent_channels,
            out_channels=config.latent_channels,
            layers_per_block=config.layers_per_block,
            block_out_channels=tuple(config.block_out_channels),
            down_block_types=down,
            up_block_types=up,
            cross_attention_dim=config.cross_attention_dim,
            attention_head_dim=config.attention_head_dim,
            norm_num_groups=config.norm_num_groups,
        )
        tokenizer = tiny_clip_tokenizer()
        text_config = CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.cross_attention_dim,
            intermediate_size=2 * config.cross_attention_dim,
            num_attention_heads=config.text_heads,
            num_hidden_layers=config.text_layers,
            max_position_embeddings=config.max_length,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
        encoder = CLIPTextModel(text_config)
        if config.codec == "pixel":
            codec = PixelCodec(factor=2, latent_channels=config.latent_channels, scaling_factor=config.latent_scale)
        elif config.codec == "vae":
            n = len(config.vae_block_out_channels)
            codec = VAECodec(AutoencoderKL(
                in_channels=3, out_channels=3, latent_channels=config.latent_channels,
                down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                block_out_channels=tuple(config.vae_block_out_channels), layers_per_block=1,
                norm_num_groups=8, sample_size=32,
            ))
        else:
            raise ValueError(f"codec must be 'pixel' or 'vae', got {config.codec!r}")
    return InstructPix2PixTeacher(unet, codec, TextConditioner(tokenizer, encoder), tiny_scheduler_config(config))


def build_tiny_student(teacher: InstructPix2PixTeacher | None = None, **adapter) -> BilateralStudentNet:
    """A bilateral student net on a tiny teacher (default :func:`build_tiny_teacher`): 32 px
    input, a 4x6 grid of depth 4, one adapter block; ``adapter`` overrides
    :class:`~.adapter.AdapterConfig` fields.

    Example:
        >>> net = build_tiny_student(init_std=0.0)
        >>> net.config.resolution, net.config.adapter.grid_depth, net.config.adapter.init_std
        (32, 4, 0.0)
        >>> image = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
        >>> net.predict(image, ["warmer"]).grid.shape  # (B, 12, D, H_g, W_g)
        torch.Size([1, 12, 4, 4, 6])
    """
    fields = {"grid_depth": 4, "grid_height": 4, "grid_width": 6, "width": 16, "num_blocks": 1, **adapter}
    config = StudentConfig(resolution=32, adapter=AdapterConfig(**fields))
    return BilateralStudentNet.from_teacher(teacher or build_tiny_teacher(), config)

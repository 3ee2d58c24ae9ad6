"""InstructPix2Pix teacher: a multi-step, instruction-conditioned latent diffusion editor.

Components (all from diffusers / transformers, built from configs or read from local files):
a ``UNet2DConditionModel`` whose input is the noisy target latent concatenated with the input
image latent (``2 C`` channels), a :class:`~.codec.LatentCodec`, a
:class:`~.text_encoder.TextConditioner` and a DDPM noise schedule. Sampling uses DDIM with the
three-branch InstructPix2Pix guidance (:func:`~.schedule.ip2p_guidance`).

Loading never downloads unless ``allow_download=True``:

* :meth:`InstructPix2PixTeacher.from_pretrained` - a diffusers folder (``unet/``, ``vae/`` or
  ``codec/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), e.g. a local copy of
  ``timbrooks/instruct-pix2pix`` or the output of ``retouch-train train-teacher``;
* :meth:`InstructPix2PixTeacher.from_single_file` - one safetensors file written by
  :meth:`save_single_file` (config in its metadata), or a file of ``unet.* / vae.* /
  text_encoder.*`` tensors plus a local diffusers folder giving the configs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ...formats.model_files import (
    json_config,
    load_strict,
    parse_config,
    prefixed,
    read_model_file,
    text_encoder_from_config,
    unet_from_config,
    unprefixed,
    write_model_file,
)
from .codec import LatentCodec, VAECodec, codec_from_config
from .schedule import ip2p_guidance
from .text_encoder import TextConditioner, tokenizer_from_files, tokenizer_to_files

TEACHER_FORMAT = "instantretouch-teacher"
FORMAT_VERSION = "1"


class InstructPix2PixTeacher(nn.Module):
    """Instruction-guided latent diffusion editor (see module docstring).

    Args:
        unet: ``UNet2DConditionModel`` with ``in_channels == 2 * codec.latent_channels``.
        codec: latent codec.
        text: instruction encoder.
        scheduler_config: a DDPM scheduler config (dict); fixes ᾱ and the prediction type.
        condition_scaled: whether the image condition latent is scaled by the codec's
            ``scaling_factor``. InstructPix2Pix conditions on the unscaled posterior mode.

    Example:
        >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
        >>> teacher = build_tiny_teacher()  # pixel codec (downscale 2, C = 4), text of L = 16 tokens x D = 32
        >>> teacher.prediction_type, teacher.num_train_timesteps, teacher.unet.config.in_channels
        ('epsilon', 1000, 8)
        >>> noise = torch.Generator().manual_seed(0)
        >>> image = torch.rand(2, 3, 16, 16, generator=noise)
        >>> image_latent, text_emb = teacher.image_condition(image), teacher.text(["make it warmer", "brighter"])
        >>> image_latent.shape, text_emb.shape
        (torch.Size([2, 4, 8, 8]), torch.Size([2, 16, 32]))
        >>> x_t = torch.randn(2, 4, 8, 8, generator=noise)
        >>> teacher(x_t, torch.tensor([10, 900]), image_latent, text_emb).shape  # one denoiser call: the noise estimate
        torch.Size([2, 4, 8, 8])
        >>> from retouch_core.models.diffusion.codec import PixelCodec
        >>> codec = PixelCodec(2, latent_channels=8)
        >>> InstructPix2PixTeacher(teacher.unet, codec, teacher.text, teacher.scheduler_config)
        Traceback (most recent call last):
        ValueError: the UNet takes 8 channels but noisy + image latents have 16; see unet_with_image_channels()
    """

    def __init__(self, unet, codec: LatentCodec, text: TextConditioner, scheduler_config: dict,
                 condition_scaled: bool = False):
        super().__init__()
        from diffusers import DDPMScheduler

        if unet.config.in_channels != 2 * codec.latent_channels:
            raise ValueError(
                f"the UNet takes {unet.config.in_channels} channels but noisy + image latents have "
                f"{2 * codec.latent_channels}; see unet_with_image_channels()"
            )
        self.unet, self.codec, self.text = unet, codec, text
        self.scheduler_config = json_config(scheduler_config)
        self.condition_scaled = condition_scaled
        scheduler = DDPMScheduler.from_config(self.scheduler_config)
        self.prediction_type = scheduler.config.prediction_type
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        # Non-persistent: derived from the config, follows .to(device) without entering state dicts.
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.float(), persistent=False)

    # ---------------------------------------------------------------------------------- encode
    def image_condition(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) input image in [0, 1] -> (B, C, h, w) condition latent (posterior mode).

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> teacher = build_tiny_teacher()
            >>> image = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
            >>> condition = teacher.image_condition(image)
            >>> condition.shape, teacher.condition_scaled
            (torch.Size([1, 4, 8, 12]), False)
            >>> torch.allclose(condition * teacher.codec.scaling_factor, teacher.codec.encode(image))  # unscaled
            True
        """
        return self.codec.encode(image, scaled=self.condition_scaled)

    def target_latent(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) edited image -> (B, C, h, w) scaled latent sampled from the posterior.

        Example:
            >>> from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_teacher
            >>> teacher = build_tiny_teacher(TinyTeacherConfig(codec="vae"))
            >>> edited = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
            >>> target = teacher.target_latent(edited, generator=torch.Generator().manual_seed(1))
            >>> target.shape
            torch.Size([1, 4, 8, 8])
            >>> torch.equal(target, teacher.target_latent(edited, generator=torch.Generator().manual_seed(1)))
            True
            >>> torch.equal(target, teacher.codec.encode(edited))  # a sample, not the posterior mode
            False
        """
        return self.codec.encode(image, sample=True, generator=generator)

    def null_text(self, batch: int) -> torch.Tensor:
        """(batch, L, D) embedding of the empty instruction (the CFG "no text" condition).

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> teacher = build_tiny_teacher()
            >>> null = teacher.null_text(3)
            >>> null.shape, torch.equal(null[2], teacher.text([""])[0])  # one encoding, repeated
            (torch.Size([3, 16, 32]), True)
        """
        return self.text([""]).expand(batch, -1, -1)

    # --------------------------------------------------------------------------------- denoise
    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, image_latent: torch.Tensor,
                text_emb: torch.Tensor) -> torch.Tensor:
        """One denoiser call.

        Args:
            x_t: (B, C, h, w) noisy target latent.
            timesteps: (B,) integer timesteps.
            image_latent: (B, C, h, w) image condition (zeros = no image).
            text_emb: (B, L, D) instruction embedding.

        Returns:
            (B, C, h, w) output of ``self.prediction_type``.

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> teacher = build_tiny_teacher()  # prediction_type "epsilon": the output estimates the noise
            >>> x_t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
            >>> no_image, text_emb = torch.zeros_like(x_t), teacher.text(["make it warmer", ""])
            >>> teacher(x_t, torch.tensor([999, 0]), no_image, text_emb).shape  # one timestep per sample
            torch.Size([2, 4, 8, 8])
        """
        return denoise(self.unet, x_t, timesteps, image_latent, text_emb)

    def guided_output(self, x_t, timesteps, image_latent, text_emb, null_text_emb, *,
                      text_scale: float, image_scale: float) -> torch.Tensor:
        """Three-branch guided output; the branches run as one batch of 3B. Shapes as :meth:`forward`
        with ``null_text_emb`` (B, L, D).

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> teacher = build_tiny_teacher()
            >>> noise = torch.Generator().manual_seed(0)
            >>> x_t, image_latent = torch.randn(1, 4, 8, 8, generator=noise), torch.randn(1, 4, 8, 8, generator=noise)
            >>> t, text_emb, null = torch.tensor([500]), teacher.text(["warmer"]), teacher.null_text(1)
            >>> guided = teacher.guided_output(x_t, t, image_latent, text_emb, null, text_scale=1.0, image_scale=1.0)
            >>> torch.allclose(guided, teacher(x_t, t, image_latent, text_emb), atol=1e-5)  # scales 1: conditional
            True
            >>> guided = teacher.guided_output(x_t, t, image_latent, text_emb, null, text_scale=0.0, image_scale=0.0)
            >>> torch.allclose(guided, teacher(x_t, t, torch.zeros_like(image_latent), null), atol=1e-5)  # neither
            True
        """
        return guided_denoise(self.unet, x_t, timesteps, image_latent, text_emb, null_text_emb,
                              text_scale=text_scale, image_scale=image_scale)

    @torch.no_grad()
    def sample(self, image: torch.Tensor, prompts: Sequence[str], *, steps: int = 20,
               text_scale: float = 7.5, image_scale: float = 1.5, eta: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Edit images with DDIM sampling.

        Args:
            image: (B, 3, H, W) in [0, 1], H and W multiples of the model's size multiple.
            prompts: B instructions.
            steps: DDIM steps. text_scale / image_scale: guidance s_T / s_I. eta: DDIM noise.
            generator: CPU RNG for the initial noise (reproducible on any device).

        Returns:
            (B, 3, H, W) edited images (not clamped).

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> teacher = build_tiny_teacher()  # random weights: the "edit" is noise, the mechanics are real
            >>> image = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
            >>> prompts = ["make it warmer", "brighter"]
            >>> edited = teacher.sample(image, prompts, steps=2, generator=torch.Generator().manual_seed(1))
            >>> edited.shape
            torch.Size([2, 3, 16, 24])
            >>> again = teacher.sample(image, prompts, steps=2, generator=torch.Generator().manual_seed(1))
            >>> torch.equal(edited, again)  # the generator fixes the initial noise
            True
        """
        from diffusers import DDIMScheduler

        # clip_sample=False: clipping x0 to [-1, 1] is for pixel diffusion, latents exceed it.
        scheduler = DDIMScheduler.from_config(self.scheduler_config, clip_sample=False)
        scheduler.set_timesteps(steps, device=image.device)
        image_latent = self.image_condition(image)
        text_emb = self.text(list(prompts))
        null = self.null_text(len(prompts))
        latents = torch.randn(image_latent.shape, generator=generator, dtype=torch.float32)
        latents = latents.to(image_latent) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(latents, t)
            out = self.guided_output(x_in, t.expand(latents.shape[0]), image_latent, text_emb, null,
                                     text_scale=text_scale, image_scale=image_scale)
            latents = scheduler.step(out, t, latents, eta=eta, generator=generator).prev_sample
        return self.codec.decode(latents)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (codec downscale x UNet downsamplings).

        Example:
            >>> from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_teacher
            >>> build_tiny_teacher().size_multiple  # pixel codec 2 x one downsampling 2
            4
            >>> build_tiny_teacher(TinyTeacherConfig(block_out_channels=(16, 16, 16))).size_multiple  # 2 x 2 x 2
            8
        """
        return self.codec.downscale * 2 ** (len(self.unet.config.block_out_channels) - 1)

    # ------------------------------------------------------------------------------------- I/O
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a diffusers-style folder (safetensors weights) that :meth:`from_pretrained` reads.

        Example:
            >>> import tempfile
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> with tempfile.TemporaryDirectory() as root:
            ...     folder = build_tiny_teacher().save_pretrained(Path(root) / "teacher")  # created if needed
            ...     print(sorted(p.name for p in folder.iterdir()))  # a pixel codec: codec/, no vae/
            ...     print(json.loads((folder / "codec" / "config.json").read_text())["type"])
            ['codec', 'scheduler', 'teacher_config.json', 'text_encoder', 'tokenizer', 'unet']
            pixel
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        if isinstance(self.codec, VAECodec):
            self.codec.vae.save_pretrained(folder / "vae", safe_serialization=True)
        else:
            (folder / "codec").mkdir(exist_ok=True)
            (folder / "codec" / "config.json").write_text(json.dumps(self.codec.codec_config(), indent=2))
        self.text.text_encoder.save_pretrained(folder / "text_encoder")
        self.text.tokenizer.save_pretrained(folder / "tokenizer")
        (folder / "scheduler").mkdir(exist_ok=True)
        (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(self.scheduler_config, indent=2))
        (folder / "teacher_config.json").write_text(json.dumps({"condition_scaled": self.condition_scaled}))
        return folder

    @classmethod
    def from_pretrained(cls, path: str | Path, *, allow_download: bool = False,
                        dtype: torch.dtype | None = None, widen_unet: bool = False,
                        variant: str | None = None) -> "InstructPix2PixTeacher":
        """Load a diffusers InstructPix2Pix layout.

        The weights of each component may be ``.safetensors`` (preferred when both exist) or
        ``.bin``; diffusers and transformers read ``.bin`` with ``torch.load(weights_only=True)``,
        which refuses arbitrary pickled objects.

        Args:
            path: a local folder; a hub id only with ``allow_download=True``.
            allow_download: permit hub downloads (otherwise ``local_files_only``).
            dtype: weight dtype (default float32, whatever the files store).
            widen_unet: the folder is a text-to-image Stable Diffusion model: give its UNet the
                extra zero-initialised image channels (:func:`unet_with_image_channels`), the
                starting point of InstructPix2Pix training.
            variant: weight file variant, e.g. ``"fp16"`` for ``diffusion_pytorch_model.fp16.safetensors``
                / ``model.fp16.safetensors`` (the half-precision copies hub repositories ship).

        Raises:
            FileNotFoundError: ``path`` is not a folder and downloads are not allowed.

        Example:
            >>> import tempfile
            >>> from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_teacher
            >>> teacher = build_tiny_teacher(TinyTeacherConfig(codec="vae"))
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     loaded = InstructPix2PixTeacher.from_pretrained(teacher.save_pretrained(folder))
            >>> type(loaded.codec).__name__, loaded.prediction_type
            ('VAECodec', 'epsilon')
            >>> state, again = teacher.state_dict(), loaded.state_dict()
            >>> state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)  # the same weights
            True
            >>> InstructPix2PixTeacher.from_pretrained("no/such/teacher")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            FileNotFoundError: no teacher folder at no/such/teacher; pass a local diffusers folder ...
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        folder = Path(path)
        if not folder.is_dir() and not allow_download:
            raise FileNotFoundError(
                f"no teacher folder at {path}; pass a local diffusers folder (unet/, vae/, text_encoder/, "
                "tokenizer/, scheduler/) or allow_download=True for a hub id"
            )
        source, local = str(path), not allow_download
        # use_safetensors=None: safetensors when present, else .bin (both libraries' default).
        kw = dict(local_files_only=local, variant=variant)
        dtype = dtype or torch.float32  # transformers would otherwise keep the files' dtype
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kw, torch_dtype=dtype)
        if widen_unet and unet.config.in_channels == unet.config.out_channels:
            unet = unet_with_image_channels(unet)
        if (folder / "codec" / "config.json").is_file():
            codec = codec_from_config(json.loads((folder / "codec" / "config.json").read_text()))
        else:
            codec = VAECodec(AutoencoderKL.from_pretrained(source, subfolder="vae", **kw, torch_dtype=dtype))
        # transformers may import code a folder names (auto_map); never allow it.
        encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", trust_remote_code=False, **kw,
                                                dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=local,
                                                  trust_remote_code=False)
        scheduler_config = _scheduler_config(source, local)
        extra = folder / "teacher_config.json"
        scaled = json.loads(extra.read_text()).get("condition_scaled", False) if extra.is_file() else False
        return cls(unet, codec, TextConditioner(tokenizer, encoder), scheduler_config, condition_scaled=scaled)

    def config_dict(self) -> dict:
        """Architecture of every component as JSON (what :meth:`save_single_file` embeds).

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> config = build_tiny_teacher().config_dict()
            >>> sorted(config)
            ['codec', 'condition_scaled', 'scheduler', 'text_encoder', 'text_max_length', 'unet']
            >>> config["unet"]["block_out_channels"], config["codec"]["type"], config["text_encoder"]["hidden_size"]
            ([32, 64], 'pixel', 32)
            >>> json.loads(json.dumps(config["unet"])) == config["unet"]  # plain JSON types
            True
        """
        return {
            "unet": json_config(self.unet.config),
            "codec": self.codec.codec_config(),
            "text_encoder": self.text.text_encoder.config.to_dict(),
            "text_max_length": self.text.max_length,
            "scheduler": self.scheduler_config,
            "condition_scaled": self.condition_scaled,
        }

    def save_single_file(self, path: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """One safetensors file: weights plus the architecture and tokenizer in its metadata.

        Example:
            >>> import tempfile
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     path = build_tiny_teacher().save_single_file(Path(folder) / "teacher.safetensors", dtype=torch.half)
            ...     tensors, metadata = read_model_file(path)
            >>> sorted(metadata), metadata["format"]
            (['config', 'format', 'format_version', 'tokenizer'], 'instantretouch-teacher')
            >>> sorted({name.split(".")[0] for name in tensors})  # the pixel codec has no weights
            ['text_encoder', 'unet']
            >>> tensors["unet.conv_in.weight"].dtype
            torch.float16
        """
        tensors = {
            **prefixed(self.unet.state_dict(), "unet."),
            **prefixed(self.codec.state_dict(), "codec."),
            **prefixed(self.text.text_encoder.state_dict(), "text_encoder."),
        }
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        metadata = {
            "format": TEACHER_FORMAT,
            "format_version": FORMAT_VERSION,
            "config": json.dumps(self.config_dict()),
            "tokenizer": json.dumps(tokenizer_to_files(self.text.tokenizer)),
        }
        return write_model_file(path, tensors, metadata)

    @classmethod
    def from_single_file(cls, path: str | Path, config_dir: str | Path | None = None,
                         dtype: torch.dtype | None = None) -> "InstructPix2PixTeacher":
        """Load :meth:`save_single_file` output, or ``unet.* / vae.* / text_encoder.*`` tensors with
        the architecture from the local diffusers folder ``config_dir``.

        Raises:
            ValueError: not a safetensors file, or neither embedded config nor ``config_dir``.

        Example:
            >>> import tempfile
            >>> from safetensors.torch import save_file
            >>> from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_teacher
            >>> teacher = build_tiny_teacher(TinyTeacherConfig(codec="vae"))
            >>> def same(a, b):
            ...     return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
            >>> diffusers_names = {**prefixed(teacher.unet.state_dict(), "unet."),  # vae.*, not codec.vae.*
            ...                    **prefixed(teacher.codec.vae.state_dict(), "vae."),
            ...                    **prefixed(teacher.text.text_encoder.state_dict(), "text_encoder.")}
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     path = teacher.save_single_file(Path(folder) / "teacher.safetensors")  # the config inside
            ...     loaded = InstructPix2PixTeacher.from_single_file(path)
            ...     configs = teacher.save_pretrained(Path(folder) / "configs")  # or the configs from a folder
            ...     save_file(diffusers_names, str(Path(folder) / "weights.safetensors"))
            ...     from_folder = InstructPix2PixTeacher.from_single_file(Path(folder) / "weights.safetensors", configs)
            >>> same(loaded, teacher), same(from_folder, teacher)
            (True, True)
            >>> InstructPix2PixTeacher.from_single_file("sd15.ckpt")
            Traceback (most recent call last):
            ValueError: sd15.ckpt: only .safetensors single files are read (no pickles)
        """
        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"{path}: only .safetensors single files are read (no pickles)")
        tensors, metadata = read_model_file(path)
        if any(k.startswith("model.diffusion_model.") for k in tensors):
            raise ValueError(
                f"{path} is an original (LDM-format) Stable Diffusion checkpoint; convert it once with "
                "diffusers (StableDiffusionInstructPix2PixPipeline.from_single_file(path, config=LOCAL_DIR)"
                ".save_pretrained(OUT)) and load OUT with from_pretrained"
            )
        if metadata.get("format") == TEACHER_FORMAT:
            config = parse_config(metadata.get("config"), str(path))
            tokenizer = tokenizer_from_files(json.loads(metadata.get("tokenizer", "{}")))
        elif config_dir is not None:
            config, tokenizer = _configs_from_folder(Path(config_dir))
            if "codec.vae.encoder.conv_in.weight" not in tensors:  # diffusers keys: vae.* -> codec.vae.*
                tensors = {("codec." + k if k.startswith("vae.") else k): v for k, v in tensors.items()}
        else:
            raise ValueError(
                f"{path} carries no InstantRetouch teacher config; pass config_dir= a local diffusers "
                "folder holding unet/, vae/ (or codec/), text_encoder/, tokenizer/ and scheduler/ configs"
            )
        teacher = teacher_from_config(config, tokenizer)
        load_strict(teacher.unet, unprefixed(tensors, "unet."), "unet")
        load_strict(teacher.codec, unprefixed(tensors, "codec."), "codec")
        load_strict(teacher.text.text_encoder, unprefixed(tensors, "text_encoder."), "text_encoder")
        return teacher.to(dtype) if dtype is not None else teacher


def denoise(unet, x_t, timesteps, image_latent, text_emb) -> torch.Tensor:
    """IP2P denoiser call: ``unet(cat(x_t, image_latent), t, text)``. (B, C, h, w) -> (B, C, h, w).

    Example:
        >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
        >>> teacher = build_tiny_teacher()
        >>> noise = torch.Generator().manual_seed(0)
        >>> x_t, image_latent = torch.randn(2, 4, 8, 8, generator=noise), torch.randn(2, 4, 8, 8, generator=noise)
        >>> t, text_emb = torch.tensor([10, 900]), teacher.text(["make it warmer", ""])
        >>> output = denoise(teacher.unet, x_t, t, image_latent, text_emb)
        >>> output.shape, teacher.unet.config.in_channels  # the UNet reads x_t and the image latent: 2 C channels
        (torch.Size([2, 4, 8, 8]), 8)
        >>> torch.equal(output, teacher.unet(torch.cat([x_t, image_latent], 1), t, text_emb).sample)
        True
    """
    return unet(torch.cat([x_t, image_latent.to(x_t.dtype)], dim=1), timesteps,
                encoder_hidden_states=text_emb).sample


def guided_denoise(unet, x_t, timesteps, image_latent, text_emb, null_text_emb, *,
                   text_scale: float, image_scale: float) -> torch.Tensor:
    """Three-branch IP2P guidance around any IP2P UNet (teacher or fake score).

    Branches in one batch of 3B: (c_I, c_T), (c_I, ∅), (∅, ∅); "no image" is a zero latent and
    "no text" the empty-prompt embedding, as in InstructPix2Pix training.

    Args:
        x_t, image_latent: (B, C, h, w); timesteps: (B,); text_emb, null_text_emb: (B, L, D).

    Returns:
        (B, C, h, w).

    Example:
        >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
        >>> teacher = build_tiny_teacher()
        >>> unet, text = teacher.unet, teacher.text
        >>> noise = torch.Generator().manual_seed(0)
        >>> x_t, image = torch.randn(2, 4, 8, 8, generator=noise), torch.randn(2, 4, 8, 8, generator=noise)
        >>> t, text_emb, null = torch.tensor([500]), text(["make it warmer", "brighter"]), text(["", ""])
        >>> full, image_only, uncond = (denoise(unet, x_t, t.expand(2), i, c)  # the three branches, one by one
        ...                             for i, c in ((image, text_emb), (image, null), (torch.zeros_like(image), null)))
        >>> guided = guided_denoise(unet, x_t, t, image, text_emb, null, text_scale=7.5, image_scale=1.5)
        >>> guided.shape  # one timestep for the whole batch is broadcast
        torch.Size([2, 4, 8, 8])
        >>> torch.allclose(guided, uncond + 1.5 * (image_only - uncond) + 7.5 * (full - image_only), atol=1e-4)
        True
    """
    x = torch.cat([x_t] * 3)
    t = torch.cat([timesteps.reshape(-1).expand(x_t.shape[0])] * 3)
    img = torch.cat([image_latent, image_latent, torch.zeros_like(image_latent)])
    txt = torch.cat([text_emb, null_text_emb, null_text_emb])
    full, image_only, uncond = denoise(unet, x, t, img, txt).chunk(3)
    return ip2p_guidance(uncond, image_only, full, image_scale=image_scale, text_scale=text_scale)


def teacher_from_config(config: dict, tokenizer) -> InstructPix2PixTeacher:
    """A randomly initialised teacher from :meth:`InstructPix2PixTeacher.config_dict` output.

    Example:
        >>> from retouch_core.models.diffusion.tiny import TinyTeacherConfig, build_tiny_teacher
        >>> teacher = build_tiny_teacher(TinyTeacherConfig(codec="vae", prediction_type="v_prediction"))
        >>> shell = teacher_from_config(teacher.config_dict(), teacher.text.tokenizer)
        >>> type(shell.codec).__name__, shell.prediction_type, shell.text.max_length
        ('VAECodec', 'v_prediction', 16)
        >>> shell.load_state_dict(teacher.state_dict())  # the same architecture: every weight fits
        <All keys matched successfully>
    """
    text = TextConditioner(tokenizer, text_encoder_from_config(config["text_encoder"]), config.get("text_max_length"))
    return InstructPix2PixTeacher(
        unet_from_config(config["unet"]), codec_from_config(config["codec"]), text,
        config["scheduler"], condition_scaled=config.get("condition_scaled", False),
    )


def _scheduler_config(source: str, local: bool) -> dict:
    from diffusers import DDPMScheduler

    # DDPMScheduler reads any scheduler_config.json (IP2P ships EulerAncestral's); only the
    # training schedule (betas, prediction type) is used from it.
    return json_config(DDPMScheduler.load_config(source, subfolder="scheduler", local_files_only=local))


def _configs_from_folder(folder: Path) -> tuple[dict, object]:
    from transformers import AutoTokenizer

    def read(*parts):
        return json.loads((folder.joinpath(*parts)).read_text())

    codec = (read("codec", "config.json") if (folder / "codec" / "config.json").is_file()
             else {"type": "vae", "config": read("vae", "config.json")})
    extra = folder / "teacher_config.json"
    config = {
        "unet": read("unet", "config.json"),
        "codec": codec,
        "text_encoder": read("text_encoder", "config.json"),
        "scheduler": _scheduler_config(str(folder), True),
        "condition_scaled": json.loads(extra.read_text()).get("condition_scaled", False) if extra.is_file() else False,
    }
    return config, AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True,
                                                 trust_remote_code=False)


def unet_with_image_channels(unet, latent_channels: int | None = None):
    """A copy of a text-to-image UNet whose ``conv_in`` also reads an image latent.

    The new input channels get zero weights (InstructPix2Pix's initialisation), so the copy
    computes exactly what the original did until training moves them.

    Args:
        unet: ``UNet2DConditionModel`` with ``C`` input channels.
        latent_channels: C (default: the UNet's ``in_channels``).

    Returns:
        A new UNet with ``2 C`` input channels.

    Example:
        >>> from diffusers import UNet2DConditionModel
        >>> unet = UNet2DConditionModel(  # a tiny text-to-image UNet: 4 input channels
        ...     in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
        ...     down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        ...     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=8, attention_head_dim=4)
        >>> wide = unet_with_image_channels(unet)
        >>> wide.config.in_channels, tuple(wide.conv_in.weight.shape), unet.config.in_channels  # the original is kept
        (8, (16, 8, 3, 3), 4)
        >>> noise = torch.Generator().manual_seed(0)
        >>> x_t, image_latent = torch.randn(1, 4, 8, 8, generator=noise), torch.randn(1, 4, 8, 8, generator=noise)
        >>> t, text_emb = torch.tensor([500]), torch.randn(1, 5, 8, generator=noise)
        >>> with torch.no_grad():  # zero weights on the image channels: the image latent changes nothing yet
        ...     torch.allclose(denoise(wide, x_t, t, image_latent, text_emb), unet(x_t, t, text_emb).sample, atol=1e-5)
        True
    """
    channels = latent_channels or unet.config.in_channels
    new = copy.deepcopy(unet)
    old = unet.conv_in
    conv = nn.Conv2d(2 * channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :channels].copy_(old.weight)
        conv.bias.copy_(old.bias)
    new.conv_in = conv.to(old.weight)
    new.register_to_config(in_channels=2 * channels)
    return new


__all__ = [
    "InstructPix2PixTeacher",
    "TEACHER_FORMAT",
    "denoise",
    "guided_denoise",
    "teacher_from_config",
    "unet_with_image_channels",
]

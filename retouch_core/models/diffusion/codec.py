"""Latent codecs: images in [0, 1] to diffusion latents and back.

Two implementations behind one interface:

:class:`VAECodec`
    Stable Diffusion's ``AutoencoderKL`` (what a real InstructPix2Pix teacher uses).
:class:`PixelCodec`
    A fixed, parameter-free orthonormal transform: space-to-depth by ``factor`` followed by an
    opponent-colour x Haar basis truncated to ``latent_channels`` components. It makes small
    models trainable on a CPU and is exactly invertible with ``latent_channels = 3 factor²``.

Latents are *scaled* (``scaling_factor`` applied: unit-variance-ish, what the diffusion model
denoises) unless ``scaled=False`` is asked; InstructPix2Pix conditions on the *unscaled* mode of
the input image's posterior, which is why both are offered.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from ...formats.model_files import json_config

CODEC_TYPES = ("vae", "pixel")


class LatentCodec(nn.Module, ABC):
    """Images (B, 3, H, W) in [0, 1] <-> latents (B, latent_channels, H / downscale, W / downscale).

    Example:
        >>> codec = PixelCodec(factor=2, latent_channels=4)  # the cheapest LatentCodec
        >>> latent = codec.encode(torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0)))
        >>> latent.shape, codec.decode(latent).shape
        (torch.Size([2, 4, 8, 12]), torch.Size([2, 3, 16, 24]))
    """

    latent_channels: int
    downscale: int
    scaling_factor: float

    @abstractmethod
    def encode(
        self, image: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None,
        scaled: bool = True,
    ) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, C, H / f, W / f).

        Args:
            sample: draw from the posterior instead of taking its mode (VAE only).
            generator: RNG for ``sample``.
            scaled: multiply by ``scaling_factor`` (the diffusion latent space).
        """

    @abstractmethod
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) scaled latent -> (B, 3, h f, w f), nominally [0, 1], *not* clamped
        (losses need to see out-of-gamut values)."""

    @abstractmethod
    def codec_config(self) -> dict:
        """JSON-serialisable description that :func:`codec_from_config` rebuilds (without weights)."""

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors ``encode`` needs (a deployed student never decodes)."""
        return self.state_dict()


class VAECodec(LatentCodec):
    """``diffusers.AutoencoderKL`` as a codec. Frozen by the callers that need it frozen.

    Example:
        >>> from diffusers import AutoencoderKL
        >>> vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
        ...                     up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8)
        >>> codec = VAECodec(vae)  # random and tiny: two levels, so a downscale of 2
        >>> codec.downscale, codec.latent_channels, codec.scaling_factor
        (2, 4, 0.18215)
        >>> image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> latent = codec.encode(image)
        >>> latent.shape, codec.decode(latent).shape
        (torch.Size([1, 4, 8, 8]), torch.Size([1, 3, 16, 16]))
        >>> torch.allclose(codec.encode(image, scaled=False) * codec.scaling_factor, latent)
        True
        >>> sorted({name.split(".")[1] for name in codec.inference_state_dict()})  # a deployed student never decodes
        ['encoder', 'quant_conv']
    """

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        config = vae.config
        self.latent_channels = int(config.latent_channels)
        self.downscale = 2 ** (len(config.block_out_channels) - 1)
        self.scaling_factor = float(config.scaling_factor)
        # SD3/Flux VAEs shift before scaling; SD 1.x/2.x have no shift.
        self.shift_factor = float(getattr(config, "shift_factor", None) or 0.0)

    def encode(self, image, *, sample=False, generator=None, scaled=True):
        posterior = self.vae.encode(image * 2.0 - 1.0).latent_dist
        latent = posterior.sample(generator) if sample else posterior.mode()
        if scaled:
            latent = (latent - self.shift_factor) * self.scaling_factor
        return latent

    def decode(self, latent):
        pixels = self.vae.decode(latent / self.scaling_factor + self.shift_factor).sample
        return (pixels + 1.0) / 2.0

    def codec_config(self) -> dict:
        return {"type": "vae", "config": json_config(self.vae.config)}

    def inference_state_dict(self):
        return {k: v for k, v in self.state_dict().items() if not k.startswith(DECODER_PREFIXES)}


DECODER_PREFIXES = ("vae.decoder.", "vae.post_quant_conv.")


def _opponent_haar_basis(factor: int) -> torch.Tensor:
    """(3 f², 3 f²) orthonormal rows ordered coarse-to-fine: all colour DC terms first.

    Rows are Kronecker products of an opponent colour basis (luma, red-blue, green-magenta)
    and the separable Haar/Walsh basis of an f x f block, sorted by (spatial frequency,
    colour index) so truncating keeps the low-pass image and the luma detail first.
    """
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"factor must be a power of two, got {factor}")
    colour = torch.tensor(
        [[1, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=torch.float64
    ) / torch.tensor([[math.sqrt(3)], [math.sqrt(2)], [math.sqrt(6)]], dtype=torch.float64)
    haar = torch.ones(1, 1, dtype=torch.float64)
    while haar.shape[0] < factor:  # Sylvester construction of the Walsh-Hadamard matrix
        haar = torch.cat([torch.cat([haar, haar], 1), torch.cat([haar, -haar], 1)], 0)
    haar = haar / math.sqrt(factor)
    sequency = (haar[:, 1:] != haar[:, :-1]).sum(1)  # sign changes: low frequencies first
    haar = haar[sequency.argsort()]
    rows, keys = [], []
    for c in range(3):
        for i in range(factor):
            for j in range(factor):
                spatial = torch.outer(haar[i], haar[j]).reshape(-1)  # row-major over the block
                rows.append(torch.kron(colour[c], spatial))  # channel-major, like pixel_unshuffle
                keys.append((i + j, 0 if c == 0 else 1, c, i, j))
    order = sorted(range(len(rows)), key=lambda k: keys[k])
    return torch.stack([rows[k] for k in order])


class PixelCodec(LatentCodec):
    """Parameter-free orthonormal codec (see module docstring); no weights to load.

    Args:
        factor: spatial downscale (power of two).
        latent_channels: components kept, ``<= 3 factor²`` (4 for a SD-shaped latent).
        scaling_factor: multiplier of the encoded latent; the default maps the mean of a
            mid-grey image to ~0 and a full-range luma DC term to about ±1.

    Example:
        >>> image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> full = PixelCodec(factor=2, latent_channels=12)  # all 3 f² components: exactly invertible
        >>> torch.allclose(full.decode(full.encode(image)), image, atol=1e-6)
        True
        >>> codec = PixelCodec(factor=2, latent_channels=4)
        >>> blocky = F.interpolate(image[..., ::2, ::2], scale_factor=2)  # constant 2x2 blocks: colour DC terms only
        >>> torch.allclose(codec.decode(codec.encode(blocky)), blocky, atol=1e-6)
        True
        >>> [round(codec.encode(torch.full((1, 3, 2, 2), grey))[0, 0].item(), 4) for grey in (0.0, 0.5, 1.0)]
        [-1.0, 0.0, 1.0]
    """

    def __init__(self, factor: int = 2, latent_channels: int = 4, scaling_factor: float | None = None):
        super().__init__()
        full = 3 * factor * factor
        if not 1 <= latent_channels <= full:
            raise ValueError(f"latent_channels must be in [1, {full}] for factor {factor}, got {latent_channels}")
        self.downscale = factor
        self.latent_channels = latent_channels
        # A luma DC term of a block of ones is sqrt(3) * factor: scale it to 1.
        self.scaling_factor = float(scaling_factor) if scaling_factor is not None else 1.0 / (math.sqrt(3) * factor)
        self.register_buffer("basis", _opponent_haar_basis(factor)[:latent_channels].float(), persistent=False)

    def encode(self, image, *, sample=False, generator=None, scaled=True):
        blocks = F.pixel_unshuffle(image * 2.0 - 1.0, self.downscale)  # (B, 3 f², h, w)
        latent = torch.einsum("kc,bchw->bkhw", self.basis.to(blocks.dtype), blocks)
        return latent * self.scaling_factor if scaled else latent

    def decode(self, latent):
        coeffs = latent / self.scaling_factor
        # Orthonormal rows: the transpose is the least-squares inverse of the truncation.
        blocks = torch.einsum("kc,bkhw->bchw", self.basis.to(coeffs.dtype), coeffs)
        return (F.pixel_shuffle(blocks, self.downscale) + 1.0) / 2.0

    def codec_config(self) -> dict:
        return {"type": "pixel", "factor": self.downscale, "latent_channels": self.latent_channels,
                "scaling_factor": self.scaling_factor}


def codec_from_config(config: dict) -> LatentCodec:
    """A codec with random (VAE) or fixed (pixel) weights from :meth:`LatentCodec.codec_config`.

    Example:
        >>> import json
        >>> codec = PixelCodec(factor=4, latent_channels=8)
        >>> config = json.loads(json.dumps(codec.codec_config()))  # what a model file stores
        >>> rebuilt = codec_from_config(config)
        >>> image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> rebuilt.encode(image).shape, torch.equal(rebuilt.encode(image), codec.encode(image))
        (torch.Size([1, 8, 4, 4]), True)
        >>> codec_from_config({"type": "gan"})
        Traceback (most recent call last):
        ValueError: unknown codec type 'gan'; expected one of ('vae', 'pixel')
    """
    kind = config.get("type")
    if kind == "pixel":
        return PixelCodec(config["factor"], config["latent_channels"], config["scaling_factor"])
    if kind == "vae":
        from diffusers import AutoencoderKL

        return VAECodec(AutoencoderKL.from_config(config["config"]))
    raise ValueError(f"unknown codec type {kind!r}; expected one of {CODEC_TYPES}")

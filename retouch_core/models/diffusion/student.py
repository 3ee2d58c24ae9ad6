"""One-step generator: the teacher's UNet run once at ``t_max`` (paper eq. 2).

Given pure noise ``z`` standing in for ``x_{t_max}``, the input-image latent ``c_I`` and the
instruction ``c_T``, the generator returns the denoiser's clean-latent estimate::

    x̂ = (z - sqrt(1 - ᾱ_{t_max}) ε_θ(z, t_max, c_I, c_T)) / sqrt(ᾱ_{t_max})

(the equivalent conversion for v- or x0-prediction UNets). The UNet starts as a copy of the
teacher's weights; the codec and text encoder stay the teacher's (frozen).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .schedule import x0_from_output
from .teacher import InstructPix2PixTeacher, denoise


class OneStepGenerator(nn.Module):
    """Single-step x0 predictor.

    Args:
        unet: IP2P ``UNet2DConditionModel`` (2 C input channels).
        alphas_cumprod: (T,) training schedule of the teacher.
        prediction_type: what the UNet outputs (``"epsilon"``, ``"v_prediction"``, ``"sample"``).
        timestep: the fixed step ``t_max`` (default ``T - 1``).

    Example:
        >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
        >>> teacher = build_tiny_teacher()  # epsilon prediction, T = 1000, 4 latent channels
        >>> generator = OneStepGenerator.from_teacher(teacher)
        >>> generator.timestep, generator.prediction_type
        (999, 'epsilon')
        >>> noise = torch.Generator().manual_seed(0)
        >>> z, image_latent = torch.randn(2, 4, 8, 8, generator=noise), torch.randn(2, 4, 8, 8, generator=noise)
        >>> text_emb = teacher.text(["make it warmer", ""])
        >>> x0 = generator(z, image_latent, text_emb)
        >>> x0.shape
        torch.Size([2, 4, 8, 8])
        >>> eps = teacher(z, torch.tensor([999, 999]), image_latent, text_emb)  # the teacher's noise estimate
        >>> abar = teacher.alphas_cumprod[999]
        >>> torch.allclose(x0, (z - (1 - abar).sqrt() * eps) / abar.sqrt(), atol=1e-4)  # eq. 2
        True
        >>> OneStepGenerator(teacher.unet, teacher.alphas_cumprod, timestep=1000)
        Traceback (most recent call last):
        ValueError: timestep must be in [0, 1000), got 1000
    """

    def __init__(self, unet, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon",
                 timestep: int | None = None):
        super().__init__()
        self.unet = unet
        self.prediction_type = prediction_type
        steps = alphas_cumprod.shape[0]
        self.timestep = steps - 1 if timestep is None else int(timestep)
        if not 0 <= self.timestep < steps:
            raise ValueError(f"timestep must be in [0, {steps}), got {self.timestep}")
        self.register_buffer("alphas_cumprod", alphas_cumprod.detach().float().clone(), persistent=False)

    @classmethod
    def from_teacher(cls, teacher: InstructPix2PixTeacher, timestep: int | None = None) -> "OneStepGenerator":
        """A generator whose UNet is a trainable deep copy of the teacher's.

        Example:
            >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
            >>> teacher = build_tiny_teacher().requires_grad_(False)  # frozen, as during distillation
            >>> generator = OneStepGenerator.from_teacher(teacher, timestep=900)
            >>> pairs = list(zip(generator.unet.parameters(), teacher.unet.parameters()))
            >>> all(torch.equal(p, q) and p.data_ptr() != q.data_ptr() for p, q in pairs)  # same values, own copy
            True
            >>> all(p.requires_grad for p, _ in pairs), generator.timestep
            (True, 900)
        """
        unet = copy.deepcopy(teacher.unet).requires_grad_(True)
        return cls(unet, teacher.alphas_cumprod, teacher.prediction_type, timestep)

    def forward(self, noise: torch.Tensor, image_latent: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Eq. 2.

        Args:
            noise: (B, C, h, w) standard normal, the stand-in for ``x_{t_max}``.
            image_latent: (B, C, h, w) input-image condition latent.
            text_emb: (B, L, D) instruction embedding.

        Returns:
            (B, C, h, w) predicted clean (scaled) latent ``x̂``.
        """
        t = torch.full((noise.shape[0],), self.timestep, device=noise.device, dtype=torch.long)
        output = denoise(self.unet, noise, t, image_latent, text_emb)
        return x0_from_output(output, noise, t, self.alphas_cumprod, self.prediction_type)

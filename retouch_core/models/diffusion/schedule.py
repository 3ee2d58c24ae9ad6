"""Functional diffusion ops shared by the teacher, the one-step student and training.

Notation (DDPM, discrete ``t`` in ``[0, T)``): ``ᾱ_t`` is the cumulative product of
``1 - β``; a clean latent ``x0`` is noised as ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε``. A
denoiser outputs ``ε`` (``prediction_type="epsilon"``), ``x0`` (``"sample"``) or
``v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0`` (``"v_prediction"``); the helpers below convert any of
them to ``x0`` or ``ε``. All ops are pure functions of tensors, so they work under autograd,
any dtype and any device.
"""

from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def _check_prediction_type(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def schedule_coefficients(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sqrt(ᾱ_t)`` and ``sqrt(1 - ᾱ_t)`` broadcastable against ``like``.

    Args:
        alphas_cumprod: (T,) cumulative alphas of the training schedule.
        timesteps: (B,) or () integer timesteps.
        like: (B, C, h, w) tensor whose device/dtype/rank the result follows.

    Returns:
        Two tensors of shape (B, 1, 1, 1) (or (1, 1, 1, 1) for a scalar timestep).

    Example:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)  # DDPM's linear betas
        >>> signal, sigma = schedule_coefficients(alphas_cumprod, torch.tensor([0, 999]), torch.zeros(2, 4, 8, 8))
        >>> signal.shape, torch.allclose(signal**2 + sigma**2, torch.ones(()))  # variance preserving
        (torch.Size([2, 1, 1, 1]), True)
        >>> sigma.flatten()  # t = 0 is almost clean, t = T - 1 almost pure noise
        tensor([0.0100, 1.0000])
        >>> schedule_coefficients(alphas_cumprod, torch.tensor(0), torch.zeros(1, 4, 8, 8, dtype=torch.half))[1]
        tensor([[[[0.0100]]]], dtype=torch.float16)
    """
    t = torch.as_tensor(timesteps, device=alphas_cumprod.device).long().reshape(-1)
    # Gather in float64: sqrt(1 - ᾱ) near t = 0 loses digits in float16/bfloat16.
    abar = alphas_cumprod.double()[t]
    shape = (-1,) + (1,) * (like.dim() - 1)
    signal = abar.sqrt().reshape(shape).to(device=like.device, dtype=like.dtype)
    noise = (1.0 - abar).sqrt().reshape(shape).to(device=like.device, dtype=like.dtype)
    return signal, noise


def add_noise(
    x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """Forward process ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε``.

    Args:
        x0, noise: (B, C, h, w).
        timesteps: (B,) integer timesteps.
        alphas_cumprod: (T,).

    Returns:
        (B, C, h, w) noised latents.

    Example:
        >>> alphas_cumprod, t = torch.tensor([0.25]), torch.tensor([0])  # signal 0.5, noise sqrt(0.75) = 0.866
        >>> add_noise(torch.full((1, 1, 1, 2), 2.0), torch.tensor([[[[1.0, -1.0]]]]), t, alphas_cumprod)
        tensor([[[[1.8660, 0.1340]]]])
    """
    signal, sigma = schedule_coefficients(alphas_cumprod, timesteps, x0)
    return signal * x0 + sigma * noise


def training_target(
    x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """What a denoiser of ``prediction_type`` should output for ``x_t = add_noise(x0, noise, t)``.

    Args:
        x0, noise: (B, C, h, w); timesteps: (B,); alphas_cumprod: (T,).

    Returns:
        (B, C, h, w): ``ε``, ``x0`` or ``v``.

    Example:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)  # DDPM's linear betas
        >>> noise = torch.Generator().manual_seed(0)
        >>> x0, eps = torch.randn(2, 4, 8, 8, generator=noise), torch.randn(2, 4, 8, 8, generator=noise)
        >>> t = torch.tensor([10, 500])
        >>> x_t = add_noise(x0, eps, t, alphas_cumprod)
        >>> training_target(x0, eps, t, alphas_cumprod, "v_prediction").shape
        torch.Size([2, 4, 8, 8])
        >>> for kind in PREDICTION_TYPES:  # a perfect denoiser of any type gives back x0 and the noise
        ...     target = training_target(x0, eps, t, alphas_cumprod, kind)
        ...     x0_hat, eps_hat = (f(target, x_t, t, alphas_cumprod, kind) for f in (x0_from_output, eps_from_output))
        ...     print(kind, torch.allclose(x0_hat, x0, atol=1e-4), torch.allclose(eps_hat, eps, atol=1e-4))
        epsilon True True
        sample True True
        v_prediction True True
    """
    _check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    signal, sigma = schedule_coefficients(alphas_cumprod, timesteps, x0)
    return signal * noise - sigma * x0


def x0_from_output(
    output: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """Predicted clean latent from a denoiser output (paper eq. 2 for ``"epsilon"``).

    ``x0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t)``.

    Args:
        output: (B, C, h, w) denoiser output; x_t: (B, C, h, w); timesteps: (B,); alphas_cumprod: (T,).

    Returns:
        (B, C, h, w).

    Example:
        >>> alphas_cumprod, t = torch.tensor([0.25]), torch.tensor([0])  # signal 0.5, noise sqrt(0.75)
        >>> x0, eps = torch.full((1, 1, 1, 2), 2.0), torch.tensor([[[[1.0, -1.0]]]])
        >>> x_t = add_noise(x0, eps, t, alphas_cumprod)
        >>> x0_from_output(eps, x_t, t, alphas_cumprod)  # given the true noise: the clean sample back
        tensor([[[[2., 2.]]]])
        >>> x0_from_output(eps, x_t, t, alphas_cumprod, "flow")
        Traceback (most recent call last):
        ValueError: prediction_type must be one of ('epsilon', 'sample', 'v_prediction'), got 'flow'
    """
    _check_prediction_type(prediction_type)
    if prediction_type == "sample":
        return output
    signal, sigma = schedule_coefficients(alphas_cumprod, timesteps, x_t)
    if prediction_type == "epsilon":
        return (x_t - sigma * output) / signal
    return signal * x_t - sigma * output


def eps_from_output(
    output: torch.Tensor, x_t: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """Predicted noise from a denoiser output. Shapes as :func:`x0_from_output`.

    Example:
        >>> alphas_cumprod, t = torch.tensor([0.25]), torch.tensor([0])  # signal 0.5, noise sqrt(0.75)
        >>> x_t = 0.5 * torch.full((1, 1, 1, 2), 2.0) + 0.75**0.5 * torch.tensor([[[[1.0, -1.0]]]])
        >>> eps = eps_from_output(torch.full((1, 1, 1, 2), 2.0), x_t, t, alphas_cumprod, "sample")  # x0 given
        >>> eps.round(decimals=4)  # the noise back
        tensor([[[[ 1., -1.]]]])
    """
    _check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return output
    signal, sigma = schedule_coefficients(alphas_cumprod, timesteps, x_t)
    if prediction_type == "sample":
        return (x_t - signal * output) / sigma
    return sigma * x_t + signal * output


def ip2p_guidance(
    out_uncond: torch.Tensor, out_image: torch.Tensor, out_full: torch.Tensor,
    image_scale: float, text_scale: float,
) -> torch.Tensor:
    """InstructPix2Pix classifier-free guidance with separate image and text scales.

    ``ε = ε(∅, ∅) + s_I (ε(c_I, ∅) - ε(∅, ∅)) + s_T (ε(c_I, c_T) - ε(c_I, ∅))``

    The weights sum to one, so at a fixed ``x_t`` the same combination of raw outputs of any
    prediction type (ε, x0, v are affine in each other) gives the guided prediction of that type.

    Args:
        out_uncond: (B, C, h, w) output with neither condition.
        out_image: (B, C, h, w) output with the input image only.
        out_full: (B, C, h, w) output with image and instruction.
        image_scale: ``s_I`` (1 = no image guidance).
        text_scale: ``s_T`` (1 = no text guidance).

    Returns:
        (B, C, h, w) guided output.

    Example:
        >>> uncond, image, full = (torch.full((1, 4, 8, 8), value) for value in (0.0, 1.0, 3.0))
        >>> torch.equal(ip2p_guidance(uncond, image, full, image_scale=1.0, text_scale=1.0), full)  # no guidance
        True
        >>> ip2p_guidance(uncond, image, full, image_scale=1.5, text_scale=7.5).unique()  # 1.5 (1 - 0) + 7.5 (3 - 1)
        tensor([16.5000])
    """
    return out_uncond + image_scale * (out_image - out_uncond) + text_scale * (out_full - out_image)

"""Peak signal-to-noise ratio, the library's one PSNR (benchmarks, training, evaluation)."""

from __future__ import annotations

import torch


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image: ``10 log10(data_range^2 / MSE)``. x, y: (B, C, H, W) -> (B,) in x's
    dtype; ``inf`` where x == y. The MSE is accumulated in float64 so nearly identical images do not
    round to an infinite PSNR.

    Example:
        >>> x = torch.zeros(1, 3, 4, 4)
        >>> round(float(psnr(x, x + 0.1)), 3)  # MSE 0.01 -> 20 dB
        20.0
        >>> y = torch.zeros(2, 3, 4, 4)
        >>> y[1] += 0.01  # image 0 unchanged, image 1 off by 0.01 everywhere: MSE 1e-4 -> 40 dB
        >>> psnr(torch.zeros(2, 3, 4, 4), y).round(decimals=4)  # one value per image
        tensor([inf, 40.])
        >>> x8 = torch.zeros(1, 3, 2, 2, dtype=torch.float64)  # on a 0..255 scale, 25.5 off is 10 % again
        >>> psnr(x8, x8 + 25.5, data_range=255.0).round(decimals=4)  # and the result keeps x's dtype
        tensor([20.], dtype=torch.float64)
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    return psnr_from_mse(mse, data_range).to(x.dtype)


def psnr_from_mse(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of mean squared errors (any shape); ``inf`` where the error is 0.

    Example:
        >>> psnr_from_mse(torch.tensor([0.01, 0.0]))
        tensor([20., inf])
        >>> psnr_from_mse(torch.tensor(2.55**2), data_range=255.0).round(decimals=4)  # RMSE 1 % of the range
        tensor(40.)
    """
    return 10.0 * torch.log10(data_range**2 / mse)

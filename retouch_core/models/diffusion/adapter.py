"""Bilateral adapter: student features -> bilateral grid + guide parameters.

The adapter reads feature maps of the one-step generator's UNet (captured with forward hooks
by :func:`capture_features`), the predicted latent ``x̂`` and the input-image latent, pools them
to the grid's spatial size and predicts

* a grid ``(B, 12, D, H_g, W_g)`` of 3x4 affines, as ``identity + head(features)`` with the head's
  last layer initialised near zero, so an untrained adapter returns the input unchanged;
* per-image :class:`~retouch_core.engine.guide.GuideParams` (the HDRNet guide), also initialised at
  the luminance guide.

The grid is then applied at full resolution with :func:`~retouch_core.engine.slicing.slice_and_apply`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...engine.grid import GRID_CHANNELS, identity_grid
from ...engine.guide import LUMA_WEIGHTS, GuideParams

SOFTPLUS_ONE = math.log(math.expm1(1.0))  # softplus(SOFTPLUS_ONE) = 1: identity curve slope


@dataclass(frozen=True)
class AdapterConfig:
    """Adapter hyper-parameters.

    Attributes:
        grid_depth / grid_height / grid_width: D, H_g, W_g of the predicted grid (HDRNet: 8x16x16).
        width: channels of the adapter trunk.
        num_blocks: residual 3x3 conv blocks at grid resolution.
        feature_blocks: UNet blocks read by hooks: ``"mid"``, ``"up<i>"`` or ``"down<i>"``.
        feature_channels: channels of those blocks (filled by :func:`adapter_config_for_unet`).
        latent_channels: C of ``x̂`` and the image latent.
        guide_knots: segments K of the guide's per-channel curves.
        init_std: std of the output layers' initial weights ("near zero": starts at identity).

    Example:
        >>> config = AdapterConfig(grid_depth=4, guide_knots=8)
        >>> config.guide_size  # colour mix 9 + bias 3, 3 curves of K slopes, 1x1 mix 3 + bias 1: 16 + 3 K
        40
        >>> config.feature_blocks, config.feature_channels  # the widths are read from the UNet
        (('mid', 'up0', 'up1'), ())
        >>> BilateralAdapter(config)
        Traceback (most recent call last):
        ValueError: feature_channels must list one width per feature block;
        build the config with adapter_config_for_unet(unet)
    """

    grid_depth: int = 8
    grid_height: int = 16
    grid_width: int = 16
    width: int = 64
    num_blocks: int = 2
    feature_blocks: tuple[str, ...] = ("mid", "up0", "up1")
    feature_channels: tuple[int, ...] = field(default=())
    latent_channels: int = 4
    guide_knots: int = 16
    init_std: float = 1e-4

    @property
    def guide_size(self) -> int:
        return 9 + 3 + 3 * self.guide_knots + 3 + 1


def unet_block_channels(unet_config, name: str) -> int:
    """Output channels of UNet block ``name`` (``"mid"``, ``"up<i>"``, ``"down<i>"``).

    Example:
        >>> config = {"block_out_channels": [32, 64, 128]}  # a UNet's config (object or dict)
        >>> [unet_block_channels(config, name) for name in ("down0", "down2", "mid", "up0", "up2")]
        [32, 128, 128, 128, 32]
        >>> unet_block_channels(config, "up3")  # up blocks count from the lowest resolution
        Traceback (most recent call last):
        ValueError: unknown UNet block 'up3' for 3 levels (use 'mid', 'up<i>', 'down<i>')
    """
    widths = list(unet_config.block_out_channels if hasattr(unet_config, "block_out_channels")
                  else unet_config["block_out_channels"])
    if name == "mid":
        return widths[-1]
    if name.startswith("up") and name[2:].isdigit() and int(name[2:]) < len(widths):
        return widths[::-1][int(name[2:])]
    if name.startswith("down") and name[4:].isdigit() and int(name[4:]) < len(widths):
        return widths[int(name[4:])]
    raise ValueError(f"unknown UNet block {name!r} for {len(widths)} levels (use 'mid', 'up<i>', 'down<i>')")


def adapter_config_for_unet(unet, config: AdapterConfig | None = None, **overrides) -> AdapterConfig:
    """``config`` with ``feature_channels`` and ``latent_channels`` read from ``unet``'s config.

    Example:
        >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
        >>> unet = build_tiny_teacher().unet  # widths (32, 64), 4 latent channels
        >>> config = adapter_config_for_unet(unet, AdapterConfig(width=16), feature_blocks=("mid", "up1", "down0"))
        >>> config.feature_channels, config.latent_channels, config.width
        ((64, 32, 32), 4, 16)
    """
    base = config or AdapterConfig()
    values = {**base.__dict__, **overrides}
    blocks = tuple(values["feature_blocks"])
    values["feature_blocks"] = blocks
    values["feature_channels"] = tuple(unet_block_channels(unet.config, b) for b in blocks)
    values["latent_channels"] = int(unet.config.out_channels)
    return AdapterConfig(**values)


def _block(unet, name: str) -> nn.Module:
    if name == "mid":
        return unet.mid_block
    if name.startswith("up"):
        return unet.up_blocks[int(name[2:])]
    return unet.down_blocks[int(name[4:])]


@contextlib.contextmanager
def capture_features(unet, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of UNet blocks during the ``with`` body.

    Yields a dict filled by forward hooks: name -> (B, C_i, h_i, w_i). The hooks are removed on
    exit, so the UNet carries no state afterwards.

    Example:
        >>> from retouch_core.models.diffusion.teacher import denoise
        >>> from retouch_core.models.diffusion.tiny import build_tiny_teacher
        >>> teacher = build_tiny_teacher()  # UNet widths (32, 64): one downsampling
        >>> x_t = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> call = (teacher.unet, x_t, torch.tensor([500]), torch.zeros_like(x_t), teacher.text(["warmer"]))
        >>> with capture_features(teacher.unet, ("mid", "up1", "down0")) as features:
        ...     output = denoise(*call)
        >>> {name: tuple(f.shape) for name, f in features.items()}  # in the order the blocks ran
        {'down0': (1, 32, 8, 8), 'mid': (1, 64, 8, 8), 'up1': (1, 32, 16, 16)}
        >>> torch.equal(output, denoise(*call))  # the same output as without hooks
        True
        >>> len(teacher.unet.mid_block._forward_hooks)  # and no hook is left
        0
    """
    store: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs, output):
            store[name] = output[0] if isinstance(output, tuple) else output  # down blocks return (h, skips)
        return record

    handles = [_block(unet, n).register_forward_hook(hook(n)) for n in names]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def _groups(channels: int) -> int:
    return math.gcd(channels, 32) or 1


class _ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(width), width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(_groups(width), width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


class BilateralAdapter(nn.Module):
    """Light head predicting a grid and guide from generator features (see module docstring).

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> config = AdapterConfig(grid_depth=2, grid_height=4, grid_width=6, width=16, num_blocks=1,
        ...                        feature_blocks=("mid",), feature_channels=(64,), init_std=0.0)
        >>> adapter = BilateralAdapter(config)  # init_std=0: output layers exactly zero
        >>> noise = torch.Generator().manual_seed(0)
        >>> features = [torch.randn(2, 64, 8, 8, generator=noise)]  # one map per feature block, any size
        >>> x0, image_latent = torch.randn(2, 4, 16, 16, generator=noise), torch.randn(2, 4, 16, 16, generator=noise)
        >>> grid, guide = adapter(features, x0, image_latent)
        >>> grid.shape, guide.batch, guide.knots  # (B, 12, D, H_g, W_g)
        (torch.Size([2, 12, 2, 4, 6]), 2, 16)
        >>> torch.equal(grid, identity_grid(2, 2, 4, 6))  # identity + a zero head
        True
        >>> image = torch.rand(2, 3, 32, 48, generator=noise)
        >>> torch.allclose(slice_and_apply(image, grid, guide), image, atol=1e-5)  # an untrained adapter: no edit
        True
    """

    def __init__(self, config: AdapterConfig):
        super().__init__()
        if len(config.feature_channels) != len(config.feature_blocks):
            raise ValueError("feature_channels must list one width per feature block; "
                             "build the config with adapter_config_for_unet(unet)")
        self.config = config
        # Features are UNet activations of arbitrary scale: normalise each source. Latents are
        # not normalised: their absolute level is the edit (brightness, colour).
        self.feature_norms = nn.ModuleList(nn.GroupNorm(_groups(c), c) for c in config.feature_channels)
        in_channels = sum(config.feature_channels) + 2 * config.latent_channels
        self.stem = nn.Conv2d(in_channels, config.width, 1)
        self.trunk = nn.Sequential(*(_ResBlock(config.width) for _ in range(config.num_blocks)))
        self.grid_head = nn.Sequential(
            nn.GroupNorm(_groups(config.width), config.width), nn.SiLU(),
            nn.Conv2d(config.width, GRID_CHANNELS * config.grid_depth, 1),
        )
        self.guide_head = nn.Sequential(
            nn.Linear(config.width, config.width), nn.SiLU(), nn.Linear(config.width, config.guide_size),
        )
        for layer in (self.grid_head[-1], self.guide_head[-1]):
            nn.init.normal_(layer.weight, std=config.init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Sequence[torch.Tensor], x0: torch.Tensor,
                image_latent: torch.Tensor) -> tuple[torch.Tensor, GuideParams]:
        """Predict the grid and guide.

        Args:
            features: one (B, C_i, h_i, w_i) map per ``config.feature_blocks`` entry.
            x0: (B, C, h, w) predicted latent ``x̂`` (scaled).
            image_latent: (B, C, h, w) input-image latent, in the same units as ``x0``.

        Returns:
            grid (B, 12, D, H_g, W_g) and batch-B :class:`GuideParams`.
        """
        cfg = self.config
        size = (cfg.grid_height, cfg.grid_width)
        pooled = [F.adaptive_avg_pool2d(norm(f), size) for norm, f in zip(self.feature_norms, features)]
        pooled += [F.adaptive_avg_pool2d(x0, size), F.adaptive_avg_pool2d(image_latent.to(x0.dtype), size)]
        h = self.trunk(self.stem(torch.cat(pooled, dim=1).to(self.stem.weight.dtype)))
        batch = h.shape[0]
        delta = self.grid_head(h).view(batch, GRID_CHANNELS, cfg.grid_depth, *size)
        eye = identity_grid(1, cfg.grid_depth, *size, device=h.device, dtype=h.dtype)
        guide = guide_from_vector(self.guide_head(h.mean(dim=(2, 3))), cfg.guide_knots)
        return eye + delta, guide


def guide_from_vector(vector: torch.Tensor, knots: int) -> GuideParams:
    """(B, 16 + 3K) offsets from the luminance guide -> batch-B :class:`GuideParams`.

    Slopes go through a softplus centred on 1, so every output is a valid monotone guide.

    Example:
        >>> from retouch_core.engine.guide import GuideParams
        >>> guide = guide_from_vector(torch.zeros(2, 16 + 3 * 4), knots=4)  # zero offsets
        >>> guide.batch, guide.slopes.shape
        (2, torch.Size([2, 3, 4]))
        >>> all(torch.allclose(a, b) for a, b in zip(guide.tensors(), GuideParams.identity(2, knots=4).tensors()))
        True
        >>> steep = guide_from_vector(torch.full((1, 16 + 3 * 4), -30.0), knots=4)  # far below: still monotone
        >>> steep.check()  # no error: finite, non-negative slopes
        >>> bool((steep.slopes > 0).all())
        True
    """
    b = vector.shape[0]
    ccm, bias, slopes, mix, mix_bias = torch.split(vector, [9, 3, 3 * knots, 3, 1], dim=1)
    eye = torch.eye(3, device=vector.device, dtype=vector.dtype)
    luma = torch.tensor(LUMA_WEIGHTS, device=vector.device, dtype=vector.dtype)
    return GuideParams(
        ccm=eye + ccm.view(b, 3, 3),
        ccm_bias=bias,
        slopes=F.softplus(slopes.view(b, 3, knots) + SOFTPLUS_ONE),
        mix=luma + mix,
        mix_bias=mix_bias.view(b),
    )

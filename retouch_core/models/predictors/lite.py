"""The lite model: an HDRNet-style grid predictor conditioned on the instruction.

A small CNN reads a fixed 256x256 copy of the image (HDRNet's low-resolution stream) and
the instruction vector (:mod:`.conditioning`), which modulates every convolution by FiLM
(per-channel scale and shift). Local features (16x16) and a global vector are fused into
the coefficients of a (12, D, 16, 16) bilateral grid, predicted as a residual on the
identity so that an untrained network leaves photos unchanged. The guide is HDRNet's
learned per-pixel curve network, shared by all images.

With ``recipe_prior`` the residual is taken on the instruction's recipe instead of the identity:
the global grid of the rule-based edit (the attribute bank's recipe, rendered and fitted, see
:func:`~.rule_based.global_grid_from_params`) is added to the network's output. The network then
learns how much of the recipe this photo needs and what local correction to add, and an
instruction is followed even where the training data are thin.

Param mode (explicit numbers only) does not use the network: the renderer is exact, so the
edit is rendered and fitted (:func:`~.rule_based.grid_from_params`).

With ``auto_contrast`` = w > 0, auto mode (no instruction) returns ``(1 - w)`` times the
network's grid plus ``w`` times the classical auto-contrast grid (:mod:`.auto_contrast`): the
network and the classic err on different photos, and their average is closer to real retouches
than either (the shipped default uses w = 0.5; see its model card). The blend is part of
:meth:`LiteRetouchModel.predict_grids`, so a model trained with it learns the share of the edit
the classic leaves to it.

At inference the predicted grid is projected by :func:`~.obedience.obey`: every instructed
attribute moves the instructed way by a visible margin, whatever the network learned (the
training path :meth:`LiteRetouchModel.predict_grids` stays unconstrained and differentiable).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...engine.grid import GRID_CHANNELS, identity_grid
from ...engine.retouch_grid import RetouchGrid
from ...formats.model_files import check_bounds, check_shapes, parse_config, read_model_file, write_model_file
from ...engine.guide import LUMA_WEIGHTS, GuideParams, LearnedGuide
from ...engine.resize import resize
from ...language.matcher import Plan
from ..base import RetouchModel
from .auto_contrast import auto_contrast_grid
from .conditioning import ConditionLayout
from .obedience import obey
from .rule_based import global_grid_from_params, grid_from_params

FORMAT = "instantretouch-lite"
# Sizes a lite config may hold, (low, high): a model file is data, and every size in it is
# bounded before anything is allocated (input_size sets the low-res copy, the others the layers).
LITE_BOUNDS = {"input_size": (16, 2048), "grid_depth": (1, 64), "grid_size": (1, 128), "width": (1, 128),
               "cond_hidden": (1, 1024), "guide_knots": (1, 256)}


@dataclass(frozen=True)
class LiteConfig:
    """Architecture of :class:`LiteGridNet`.

    Attributes:
        input_size: side of the square low-resolution copy the network reads.
        grid_depth, grid_size: grid D and H_g = W_g.
        width: channels of the first layer; doubled at each of the 4 stride-2 layers
            (HDRNet's splat path), so 16x16 features have ``8 * width`` channels.
        cond_hidden: size of the instruction embedding.
        guide_knots: segments of the guide's per-channel curves.
        attributes, params: the conditioning layout the weights were trained with.
        recipe_prior: add the instruction's recipe grid to the network's residual (module docstring).
        global_stats: feed the global path the photo's tone statistics too (:func:`tone_statistics`:
            luminance histogram and per-channel quantiles: black and white points, midtones),
            which a 4x4-pooled CNN feature can only approximate.
        auto_contrast: weight of the classical auto-contrast grid in auto mode (module docstring);
            0 leaves auto mode to the network.

    Example:
        >>> config = LiteConfig(input_size=64, grid_size=4)  # tiny: a 64 px copy, 4x4 grid cells
        >>> LiteConfig.from_json(config.to_json()) == config
        True
        >>> LiteConfig.from_json('{"input_size": 64, "grid_size": 16}')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: lite config: input_size must be a multiple of 16 and grid_size = input_size / 16 ...
    """

    input_size: int = 256
    grid_depth: int = 8
    grid_size: int = 16
    width: int = 8
    cond_hidden: int = 64
    guide_knots: int = 16
    attributes: tuple[str, ...] = field(default_factory=lambda: ConditionLayout.default().attributes)
    params: tuple[str, ...] = field(default_factory=lambda: ConditionLayout.default().params)
    recipe_prior: bool = False
    global_stats: bool = False
    auto_contrast: float = 0.0

    @property
    def layout(self) -> ConditionLayout:
        return ConditionLayout(tuple(self.attributes), tuple(self.params))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str, where: str = "lite config") -> "LiteConfig":
        """Inverse of :meth:`to_json`; ValueError (naming ``where``) for anything out of
        :data:`LITE_BOUNDS`, of the wrong type or unknown. Missing entries take the defaults."""
        data = parse_config(text, where)
        known = {f.name for f in fields(LiteConfig)}
        if set(data) - known:
            raise ValueError(f"{where}: unknown lite config entries {sorted(set(data) - known)}")
        check_bounds(data, LITE_BOUNDS, where)
        size = data.get("input_size", LiteConfig.input_size)
        if size % 16 or data.get("grid_size", LiteConfig.grid_size) != size // 16:
            raise ValueError(f"{where}: input_size must be a multiple of 16 and grid_size = input_size / 16 "
                             f"(the network's 4 stride-2 layers), got {size} and {data.get('grid_size')}")
        for key in ("attributes", "params"):
            names = data.get(key, getattr(ConditionLayout.default(), key))
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"{where}: {key} must be a list of names")
            data[key] = tuple(names)
        if not isinstance(data.get("recipe_prior", False), bool):
            raise ValueError(f"{where}: recipe_prior must be true or false")
        weight = data.get("auto_contrast", 0.0)
        if type(weight) not in (int, float) or not 0 <= weight <= 1:
            raise ValueError(f"{where}: auto_contrast must be a number from 0 to 1, got {weight!r}")
        return LiteConfig(**data)


class FiLMConv(nn.Module):
    """3x3 conv, FiLM by the instruction embedding, ReLU: (B, C_in, H, W) -> (B, C_out, H/s, W/s).

    Example:
        >>> layer = FiLMConv(3, 8, cond=5, stride=2)
        >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> out = layer(x, torch.ones(2, 5))
        >>> out.shape
        torch.Size([2, 8, 8, 8])
        >>> torch.equal(out, F.relu(layer.conv(x)))  # zero-initialised FiLM: training starts from a plain conv
        True
    """

    def __init__(self, c_in: int, c_out: int, cond: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.film = nn.Linear(cond, 2 * c_out)
        nn.init.zeros_(self.film.weight)  # starts as a plain conv: scale 1, shift 0
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[..., None, None].chunk(2, dim=1)
        return F.relu(self.conv(x) * (1 + scale) + shift)


HISTOGRAM_BINS = 16
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TONE_STATISTICS = HISTOGRAM_BINS + 3 * len(QUANTILES)


def tone_statistics(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 37): soft 16-bin luminance histogram (fractions summing to 1)
    and the 1/5/25/50/75/95/99 % quantiles of each channel.

    Example:
        >>> tone_statistics(torch.full((1, 3, 8, 8), 0.5))[0, 16:].unique()
        tensor([0.5000])
    """
    red, green, blue = LUMA_WEIGHTS
    luma = (red * image[:, 0] + green * image[:, 1] + blue * image[:, 2]).flatten(1).clamp(0, 1)
    centres = (torch.arange(HISTOGRAM_BINS, device=image.device, dtype=image.dtype) + 0.5) / HISTOGRAM_BINS
    weights = F.relu(1 - (luma[..., None] - centres).abs() * HISTOGRAM_BINS)  # triangular bins
    histogram = weights.mean(1) / weights.mean(1).sum(1, keepdim=True)
    q = torch.tensor(QUANTILES, device=image.device, dtype=image.dtype)
    quantiles = torch.quantile(image.flatten(2), q, dim=2).permute(1, 2, 0).flatten(1)  # (B, 3 * Q)
    return torch.cat([histogram, quantiles], dim=1)


class LiteGridNet(nn.Module):
    """Low-res image + instruction vector -> bilateral grid.

    forward(image (B, 3, S, S), cond (B, C)) -> grid (B, 12, D, G, G), S = input_size,
    G = grid_size = S / 16.

    Example:
        >>> config = LiteConfig(input_size=64, grid_size=4, grid_depth=2)
        >>> net = LiteGridNet(config)
        >>> image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> grid = net(image, torch.zeros(2, config.layout.size))
        >>> grid.shape
        torch.Size([2, 12, 2, 4, 4])
        >>> torch.equal(grid, identity_grid(2, 2, 4, 4))  # zero head: an untrained network leaves photos unchanged
        True
    """

    def __init__(self, config: LiteConfig):
        super().__init__()
        self.config = config
        w, h = config.width, config.cond_hidden
        self.embed = nn.Sequential(nn.Linear(config.layout.size, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.splat = nn.ModuleList(FiLMConv(c_in, c_out, h, 2) for c_in, c_out in ((3, w), (w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)))
        self.local = nn.ModuleList([FiLMConv(8 * w, 8 * w, h), FiLMConv(8 * w, 8 * w, h)])
        self.global_convs = nn.ModuleList([FiLMConv(8 * w, 8 * w, h, 2), FiLMConv(8 * w, 8 * w, h, 2)])
        self.global_fc = nn.Sequential(nn.Linear(8 * w * 16, 8 * w), nn.ReLU(), nn.Linear(8 * w, 8 * w))
        self.cond_to_global = nn.Linear(h, 8 * w)
        self.stats_fc = None
        if config.global_stats:
            self.stats_fc = nn.Sequential(nn.Linear(TONE_STATISTICS, 8 * w), nn.ReLU(), nn.Linear(8 * w, 8 * w))
            nn.init.zeros_(self.stats_fc[2].weight)  # a model without statistics is the starting point
            nn.init.zeros_(self.stats_fc[2].bias)
        self.head = nn.Conv2d(8 * w, GRID_CHANNELS * config.grid_depth, 1)
        nn.init.zeros_(self.head.weight)  # identity grid at initialisation
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = self.embed(cond)
        x = image
        for layer in self.splat:
            x = layer(x, c)
        local = x
        for layer in self.local:
            local = layer(local, c)
        g = x
        for layer in self.global_convs:
            g = layer(g, c)
        g = F.adaptive_avg_pool2d(g, 4).flatten(1)
        g = self.global_fc(g) + self.cond_to_global(c)
        if self.stats_fc is not None:
            g = g + self.stats_fc(tone_statistics(image))
        fused = F.relu(local + g[..., None, None])
        b, _, gh, gw = fused.shape
        delta = self.head(fused).view(b, GRID_CHANNELS, self.config.grid_depth, gh, gw)
        eye = identity_grid(1, self.config.grid_depth, gh, gw, device=delta.device, dtype=delta.dtype)
        return eye + delta


def square_copy(image: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, size, size), antialiased (aspect is not kept, as in HDRNet).

    Example:
        >>> square_copy(torch.rand(2, 3, 30, 50, generator=torch.Generator().manual_seed(0)), 16).shape
        torch.Size([2, 3, 16, 16])
        >>> torch.allclose(square_copy(torch.full((1, 3, 30, 50), 0.25), 16), torch.tensor(0.25))  # no ringing
        True
    """
    return resize(image, (size, size))


class LiteRetouchModel(RetouchModel, nn.Module):
    """Trainable lite model: network + guide, with save/load as one safetensors file.

    Example:
        >>> import tempfile
        >>> from retouch_core.language.matcher import parse_instruction
        >>> model = LiteRetouchModel(LiteConfig(input_size=64, grid_size=4))
        >>> photos = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
        >>> grids = model.predict_grids(photos, [parse_instruction(""), parse_instruction("warmer")])
        >>> grids.shape, torch.equal(grids, identity_grid(2, 8, 4, 4))  # untrained: identity for any instruction
        (torch.Size([2, 12, 8, 4, 4]), True)
        >>> from retouch_core.models.predictors.obedience import proxy_statistics
        >>> photo = photos[:1]
        >>> warmer = model(photo, "warmer")  # obey() still makes the untrained network follow the instruction
        >>> warmer.shape, bool(proxy_statistics(warmer)["b_mean"] > proxy_statistics(photo)["b_mean"])  # yellower
        (torch.Size([1, 3, 48, 64]), True)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     model.save(Path(folder) / "lite.safetensors", {"trained_on": "nothing"})
        ...     loaded = LiteRetouchModel.load(Path(folder) / "lite.safetensors")
        >>> loaded.config == model.config, loaded.metadata
        (True, {'trained_on': 'nothing'})
    """

    name = "lite"

    def __init__(self, config: LiteConfig | None = None):
        nn.Module.__init__(self)
        self.config = config or LiteConfig()
        self.net = LiteGridNet(self.config)
        self.guide = LearnedGuide(self.config.guide_knots)
        self.metadata: dict[str, str] = {}

    def predict_grids(self, image: torch.Tensor, plans: list[Plan]) -> torch.Tensor:
        """Differentiable grids for a batch: (B, 3, H, W) + B plans -> (B, 12, D, G, G), auto
        plans blended with the classical auto-contrast grid (``config.auto_contrast``)."""
        cond = self.config.layout.encode_batch(plans).to(image.device, image.dtype)
        grids = self.net(square_copy(image, self.config.input_size), cond)
        if self.config.recipe_prior:
            grids = grids + self.recipe_offsets(image, plans).to(grids.dtype)
        auto = [i for i, plan in enumerate(plans) if plan.mode == "auto"]
        if self.config.auto_contrast > 0 and auto:
            with torch.no_grad():
                classic = auto_contrast_grid(image[auto].float(), self.config.grid_depth, self.config.grid_size)
            blended = torch.lerp(grids[auto], classic.to(grids), self.config.auto_contrast)
            grids = grids.index_copy(0, torch.tensor(auto, device=grids.device), blended)
        return grids

    @torch.no_grad()
    def recipe_offsets(self, image: torch.Tensor, plans: list[Plan]) -> torch.Tensor:
        """(B, 3, H, W) + B plans -> (B, 12, D, 1, 1): each plan's recipe grid minus the identity
        (zero for plans without recipe, e.g. auto mode), fitted for the current guide."""
        depth = self.config.grid_depth
        guide = self.frozen_guide()
        offsets = torch.zeros(len(plans), GRID_CHANNELS, depth, 1, 1, device=image.device)
        eye = identity_grid(1, depth, 1, 1, device=image.device)
        for i, plan in enumerate(plans):
            params = plan.to_params()
            if params:
                offsets[i] = (global_grid_from_params(image[i : i + 1], params, depth, guide) - eye)[0]
        return offsets

    @torch.no_grad()
    def predict_grid(self, image: torch.Tensor, plan: Plan) -> RetouchGrid:
        if plan.mode == "param":
            grid = grid_from_params(image, plan.to_params())
            return replace(grid, label=f"{self.name} (exact param render): {grid.label}")
        guide = self.frozen_guide()
        grid = obey(image, self.predict_grids(image.float(), [plan]), guide, plan)
        return RetouchGrid(grid, guide, tuple(image.shape[-2:]), f"{self.name}: {plan.mode}")

    def frozen_guide(self) -> GuideParams:
        """The learned guide's current parameters, detached (batch 1)."""
        return GuideParams(*(t.detach() for t in self.guide.params().tensors()))

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """One .safetensors file: weights, config and free-form metadata (e.g. training command)."""
        tensors = {k: v.float() for k, v in self.state_dict().items()}
        info = {"format": FORMAT, "config": self.config.to_json(), **self.metadata, **(metadata or {})}
        write_model_file(path, tensors, info)

    @staticmethod
    def load(path: str | Path) -> "LiteRetouchModel":
        """Read a :meth:`save` file; ValueError naming the file when it is not a valid one."""
        state, info = read_model_file(path)
        if info.get("format") != FORMAT:
            raise ValueError(f"{path} is not a lite retouch model (format {info.get('format')!r})")
        if "config" not in info:
            raise ValueError(f"{path}: the lite model has no config entry in its metadata")
        config = LiteConfig.from_json(info["config"], str(path))
        with torch.device("meta"):  # the architecture must fit the weights before it is allocated
            check_shapes(LiteRetouchModel(config), state, str(path))
        model = LiteRetouchModel(config)
        model.load_state_dict(state)
        model.metadata = {k: v for k, v in info.items() if k not in ("format", "config")}
        return model.eval()

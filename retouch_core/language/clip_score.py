"""CLIP attribute scoring and the InstantRetouch alignment loss (pure torch + open_clip).

An *attribute* is a pair of prompts, e.g. ``("a warm photo", "a cold photo")``. For images
(B, 3, H, W) and K pairs, :func:`attribute_scores` returns cosine similarities s+ and s- (B, K);
:func:`alignment_loss` is the two-way InfoNCE of the InstantRetouch paper (eqs. 5-6) on them and is
differentiable w.r.t. the images, so the same code scores images in a node and trains the model;
:func:`edit_direction` reports whether an edit moved each attribute the instructed way.

Weights are read from local files only (safetensors preferred). Nothing is downloaded unless the
caller passes ``allow_download=True`` to :func:`load_clip`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "ClipScorer",
    "ClipWeightsNotFoundError",
    "EditDirection",
    "load_clip",
    "tiny_clip",
    "tiny_clip_config",
    "prepare_images",
    "attribute_scores",
    "alignment_loss",
    "edit_direction",
]

CONFIG_NAME = "open_clip_config.json"
# Order of preference inside a model folder: safetensors first, pickles (restricted loader) last.
WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "pytorch_model.bin",
    "model.pth",
    "model.pt",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".npz")


class ClipWeightsNotFoundError(FileNotFoundError):
    """No usable local CLIP model; ``searched`` lists every path that was tried.

    Example:
        >>> err = ClipWeightsNotFoundError("ViT-B-32", [Path("ViT-B-32.safetensors")], "Put the weights there.")
        >>> print(err)
        CLIP model 'ViT-B-32' not found locally. Looked for:
          ViT-B-32.safetensors
        Put the weights there.
        >>> isinstance(err, FileNotFoundError), err.searched[0].name  # callers catching FileNotFoundError see it too
        (True, 'ViT-B-32.safetensors')
    """

    def __init__(self, what: str, searched: Sequence[Path], hint: str = ""):
        self.searched = [Path(p) for p in searched]
        listing = "\n  ".join(str(p) for p in self.searched) or "(no candidate paths)"
        message = f"CLIP model {what!r} not found locally. Looked for:\n  {listing}"
        super().__init__(message + (f"\n{hint}" if hint else ""))


@dataclass(eq=False)
class ClipScorer:
    """A frozen open_clip model plus what is needed to feed it.

    ``preprocess`` is open_clip's PIL transform (for callers holding PIL images); tensors go
    through :func:`prepare_images`, which is differentiable. ``text_cache`` maps a prompt to its
    unit-norm embedding (D,); it belongs to this scorer, so different models never share entries.

    Example:
        >>> scorer = tiny_clip()  # random weights: the numbers mean nothing, the shapes do
        >>> scorer.image_size, scorer.device, scorer.dtype
        ((32, 32), device(type='cpu'), torch.float32)
        >>> images = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
        >>> scorer.encode_images(images).shape, scorer.encode_texts(["a warm photo", "a cold photo"]).shape  # D = 32
        (torch.Size([2, 32]), torch.Size([2, 32]))
    """

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "shortest"
    config: dict | None = None  # open_clip_config.json content when known (lets callers save the model)
    text_cache: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) in [0, 1] -> unit-norm embeddings (B, D) float32, differentiable.

        Example:
            >>> scorer = tiny_clip()
            >>> images = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0)).requires_grad_()
            >>> emb = scorer.encode_images(images)  # any size in: resized and cropped to the model's 32 x 32
            >>> emb.shape, torch.allclose(emb.norm(dim=-1), torch.ones(2)), emb.requires_grad
            (torch.Size([2, 32]), True, True)
        """
        pixels = prepare_images(images, self.image_size, self.mean, self.std, self.resize_mode)
        emb = self.model.encode_image(pixels.to(device=self.device, dtype=self.dtype))
        return F.normalize(emb.float(), dim=-1)

    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """prompts: K strings -> unit-norm embeddings (K, D) float32 (constants: no gradient).

        Only prompts missing from ``text_cache`` are tokenised and encoded, in one batch.

        Example:
            >>> scorer = tiny_clip()
            >>> scorer.encode_texts(["a warm photo", "a cold photo", "a warm photo"]).shape  # one row per prompt
            torch.Size([3, 32])
            >>> sorted(scorer.text_cache)  # the repeat was encoded once
            ['a cold photo', 'a warm photo']
        """
        missing = list(dict.fromkeys(p for p in prompts if p not in self.text_cache))
        if missing:
            with torch.no_grad():
                tokens = self.tokenizer(missing).to(self.device)
                emb = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            self.text_cache.update(zip(missing, emb))
        return torch.stack([self.text_cache[p].to(self.device) for p in prompts])


# --------------------------------------------------------------------------------------------
# image preparation (torch, differentiable)


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _resized_size(h: int, w: int, th: int, tw: int, resize_mode: str) -> tuple[int, int]:
    """Output size of open_clip's eval resize (same integer rounding, so crops line up)."""
    if resize_mode == "squash":
        return th, tw
    if resize_mode == "shortest" and th == tw:
        # torchvision Resize(int): short side -> size, long side truncated.
        short, long = min(h, w), max(h, w)
        new_short, new_long = th, int(th * long / short)
        return (new_short, new_long) if h <= w else (new_long, new_short)
    if resize_mode in ("shortest", "longest"):
        # open_clip ResizeKeepRatio: one ratio for both sides, rounded.
        ratio = (min if resize_mode == "shortest" else max)(h / th, w / tw)
        return max(1, round(h / ratio)), max(1, round(w / ratio))
    raise ValueError(f"unknown resize_mode {resize_mode!r}")


def _center_crop_or_pad(x: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """open_clip/torchvision centre crop, zero-padding first where the image is smaller."""
    h, w = x.shape[-2:]
    if th > h or tw > w:
        dh, dw = max(th - h, 0), max(tw - w, 0)
        x = F.pad(x, (dw // 2, (dw + 1) // 2, dh // 2, (dh + 1) // 2))
        h, w = x.shape[-2:]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return x[..., top : top + th, left : left + tw]


def prepare_images(
    images: torch.Tensor,
    image_size: int | Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    resize_mode: str = "shortest",
) -> torch.Tensor:
    """Resize and normalise like open_clip's eval transform, but in torch so gradients flow.

    images: (B, 3, H, W) in [0, 1] -> (B, 3, h, w) normalised, (h, w) = ``image_size``.
    ``resize_mode``: "shortest" (scale the short side, centre-crop; open_clip's default),
    "squash" (scale to h x w ignoring aspect) or "longest" (scale the long side, zero-pad).
    Bicubic with antialias, which follows PIL's filter, as used by open_clip's PIL transform.

    Example:
        >>> x = prepare_images(torch.full((1, 3, 4, 6), 0.5), 8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        >>> x.shape, bool(x.abs().max() < 1e-6)  # short side scaled to 8, centre-cropped; the mean maps to 0
        (torch.Size([1, 3, 8, 8]), True)
        >>> x = prepare_images(torch.ones(1, 3, 4, 8), 8, (0.5,) * 3, (0.5,) * 3, resize_mode="longest")
        >>> x[0, 0, :, 0]  # 4 x 8 already fits: zero (black) padding above and below, -1 once normalised
        tensor([-1., -1.,  1.,  1.,  1.,  1., -1., -1.])
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
    th, tw = _size2(image_size)
    h, w = images.shape[-2:]
    new_h, new_w = _resized_size(h, w, th, tw, resize_mode)
    x = images
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp(0.0, 1.0)  # bicubic overshoots; PIL clips to the 8-bit range too
    x = _center_crop_or_pad(x, th, tw)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


# --------------------------------------------------------------------------------------------
# scoring and loss


def attribute_scores(
    scorer: ClipScorer, images: torch.Tensor, pairs: Sequence[tuple[str, str]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of each image to each positive and negative prompt.

    images: (B, 3, H, W) in [0, 1]; pairs: K (positive, negative) prompts
    -> (s_plus (B, K), s_minus (B, K)), float32, differentiable w.r.t. ``images``.

    Example:
        >>> scorer = tiny_clip()
        >>> images = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0)).requires_grad_()
        >>> pairs = [("a warm photo", "a cold photo"), ("a bright photo", "a dark photo")]
        >>> s_plus, s_minus = attribute_scores(scorer, images, pairs)
        >>> s_plus.shape, s_minus.shape  # (B, K)
        (torch.Size([2, 2]), torch.Size([2, 2]))
        >>> cosine = scorer.encode_images(images) @ scorer.encode_texts(["a warm photo"])[0]
        >>> torch.allclose(s_plus[:, 0], cosine)
        True
        >>> (s_plus - s_minus).sum().backward()
        >>> images.grad.shape  # the scores can steer the pixels
        torch.Size([2, 3, 16, 24])
    """
    if not pairs:
        raise ValueError("pairs must contain at least one (positive, negative) prompt pair")
    k = len(pairs)
    img = scorer.encode_images(images)  # (B, D)
    txt = scorer.encode_texts([p for p, _ in pairs] + [n for _, n in pairs])  # (2K, D)
    sims = img @ txt.T  # (B, 2K): both unit norm, so this is the cosine
    return sims[:, :k], sims[:, k:]


def _weights_like(weights: torch.Tensor | Sequence[float] | None, ref: torch.Tensor) -> torch.Tensor:
    """Per-attribute weights broadcast to ref's (B, K); None means all 1."""
    if weights is None:
        return torch.ones_like(ref)
    return torch.as_tensor(weights, dtype=ref.dtype, device=ref.device).expand_as(ref)


def alignment_loss(
    s_plus: torch.Tensor,
    s_minus: torch.Tensor,
    temperature: float = 0.07,
    weights: torch.Tensor | Sequence[float] | None = None,
    reduction: str = "mean",
    average: str = "weighted",
) -> torch.Tensor:
    """InstantRetouch attribute alignment loss (eqs. 5-6).

    s_plus, s_minus: (B, K). For attribute k,
    ``L_k = -log( exp(s+/τ) / (exp(s+/τ) + exp(s-/τ)) )`` = a 2-way log-softmax, and the per-image
    loss is ``sum_k |w_k| L_k`` divided by ``sum_k |w_k|`` (``average="weighted"``) or by the
    number of attributes with ``w_k != 0`` (``average="count"``: eq. 6's mean of ``w_k L_k`` over
    the matched attributes, with ``|w_k|`` the matcher's confidence).
    weights: None (all 1), (K,) or (B, K), e.g. matcher confidences. A negative weight means the
    instruction asks for the opposite of the pair's positive prompt, so s+ and s- swap roles for
    that entry. Images whose weights are all 0 get loss 0.
    reduction: "mean" -> scalar, "sum" -> scalar, "none" -> (B,).

    Example:
        >>> s_plus, s_minus = torch.tensor([[0.3, 0.3]]), torch.tensor([[0.3, 0.2]])  # (B=1, K=2)
        >>> alignment_loss(s_plus, s_minus, reduction="none")  # mean of log 2 (undecided) and 0.2148 (leaning +)
        tensor([0.4540])
        >>> alignment_loss(s_plus[:, 1:], s_minus[:, 1:], weights=[-1.0])  # opposite asked: same margin, more loss
        tensor(1.6434)
    """
    if s_plus.shape != s_minus.shape or s_plus.ndim != 2:
        raise ValueError(f"expected two (B, K) tensors, got {tuple(s_plus.shape)} and {tuple(s_minus.shape)}")
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    w = _weights_like(weights, s_plus)
    flip = w < 0
    pos = torch.where(flip, s_minus, s_plus)
    neg = torch.where(flip, s_plus, s_minus)
    logits = torch.stack((pos, neg), dim=-1) / temperature  # (B, K, 2)
    per_attr = -torch.log_softmax(logits, dim=-1)[..., 0]  # (B, K); stable form of -log(e^a / (e^a + e^b))
    mag = w.abs()
    if average not in ("weighted", "count"):
        raise ValueError(f"average must be 'weighted' or 'count', got {average!r}")
    norm = mag.sum(-1) if average == "weighted" else (mag > 0).sum(-1).to(mag.dtype)
    per_image = (mag * per_attr).sum(-1) / norm.clamp_min(torch.finfo(mag.dtype).tiny)
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    if reduction == "sum":
        return per_image.sum()
    raise ValueError(f"unknown reduction {reduction!r}")


class EditDirection(NamedTuple):
    """delta: (B, K) change of the margin s+ - s- (after minus before); moved: (B, K) bool.

    Example:
        >>> result = EditDirection(delta=torch.tensor([[0.02, -0.01]]), moved=torch.tensor([[True, False]]))  # B=1, K=2
        >>> delta, moved = result  # a NamedTuple unpacks like a plain pair
        >>> moved.float().mean()  # share of the attributes that went the instructed way
        tensor(0.5000)
    """

    delta: torch.Tensor
    moved: torch.Tensor


def edit_direction(
    scorer: ClipScorer,
    before: torch.Tensor,
    after: torch.Tensor,
    pairs: Sequence[tuple[str, str]],
    weights: torch.Tensor | Sequence[float] | None = None,
) -> EditDirection:
    """Did an edit move each attribute the instructed way?

    before, after: (B, 3, H, W) in [0, 1]; pairs: K prompt pairs; weights: None, (K,) or (B, K)
    whose sign gives the instructed direction (None: towards the positive prompt).
    Returns delta (B, K) = margin(after) - margin(before) with margin = s+ - s-, and
    moved (B, K) = sign(w) * delta > 0 (a zero weight never counts as moved).

    Example:
        >>> scorer = tiny_clip()
        >>> before = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> after, pair = (before * 1.5).clamp(0, 1), [("a bright photo", "a dark photo")]
        >>> d = edit_direction(scorer, before, after, pair)
        >>> d.delta.shape, torch.equal(d.moved, d.delta > 0)  # random weights: only the bookkeeping is meaningful
        (torch.Size([1, 1]), True)
        >>> torch.equal(edit_direction(scorer, before, after, pair, weights=[-1.0]).moved, d.delta < 0)  # "darker"
        True
        >>> edit_direction(scorer, before, before, pair)  # no edit, no move
        EditDirection(delta=tensor([[0.]]), moved=tensor([[False]]))
    """
    sp_b, sm_b = attribute_scores(scorer, before, pairs)
    sp_a, sm_a = attribute_scores(scorer, after, pairs)
    delta = (sp_a - sm_a) - (sp_b - sm_b)
    sign = _weights_like(weights, delta).sign()
    return EditDirection(delta, (sign * delta) > 0)


# --------------------------------------------------------------------------------------------
# loading


def _scorer_from_model(model: torch.nn.Module, tokenizer, config: dict | None, device, dtype) -> ClipScorer:
    """Freeze ``model`` (CLIP is a fixed judge; gradients only flow to the images) and wrap it."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    pp = merge_preprocess_dict(PreprocessCfg(), open_clip.get_model_preprocess_cfg(model))
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return ClipScorer(
        model=model,
        preprocess=image_transform_v2(PreprocessCfg(**pp), is_train=False),
        tokenizer=tokenizer,
        image_size=_size2(pp["size"]),
        mean=tuple(pp["mean"]),
        std=tuple(pp["std"]),
        resize_mode=pp["resize_mode"],
        config=config,
    )


def _find_in_dir(folder: Path) -> tuple[Path | None, list[Path]]:
    """Preferred weight file in ``folder`` and the list of names checked (for error messages)."""
    checked = [folder / n for n in WEIGHT_NAMES]
    for p in checked:
        if p.is_file():
            return p, checked
    # Any other single safetensors file as a last resort; several would be a guess, so refuse.
    others = sorted(folder.glob("*.safetensors"))
    checked.append(folder / ("*.safetensors" if len(others) < 2 else f"*.safetensors (ambiguous: {len(others)} files)"))
    return (others[0] if len(others) == 1 else None), checked


def _architecture(model_name: str | os.PathLike | None, weights: Path) -> tuple[str, dict | None]:
    """open_clip model identifier for ``weights`` plus the parsed config when one is read.

    ``model_name`` may be a built-in open_clip architecture ("ViT-B-32"), a folder holding
    open_clip_config.json, or that json file itself; with no model_name, an open_clip_config.json
    next to the weights is used.
    """
    if model_name is not None:
        p = Path(model_name)
        if p.is_file() and p.name == CONFIG_NAME:
            p = p.parent
        if p.is_dir():
            if not (p / CONFIG_NAME).is_file():
                raise FileNotFoundError(f"model_name folder {p} has no {CONFIG_NAME}")
            return f"local-dir:{p}", json.loads((p / CONFIG_NAME).read_text(encoding="utf-8"))
        return str(model_name), None
    sibling = weights.parent / CONFIG_NAME
    if sibling.is_file():
        return f"local-dir:{weights.parent}", json.loads(sibling.read_text(encoding="utf-8"))
    raise ValueError(
        f"cannot tell the architecture of {weights}: pass model_name (an open_clip architecture such as "
        f"'ViT-B-32', or a folder / {CONFIG_NAME}) or put {CONFIG_NAME} next to the weights"
    )


class _DropRandomInitWarning(logging.Filter):
    """open_clip warns "initialized randomly" when built without weights; ours are loaded next."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init():
    # Scoped to one create_model call and always removed, so no logging state outlives it.
    root, flt = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _build_local(arch: str, weights: Path, config: dict | None, device, dtype) -> ClipScorer:
    import open_clip

    if weights.suffix not in _WEIGHT_SUFFIXES:
        raise ValueError(f"unsupported weight file {weights} (expected one of {_WEIGHT_SUFFIXES})")
    # Build the architecture without any weights (no tower downloads), then load the file:
    # safetensors via safetensors, .bin/.pt via torch.load(weights_only=True) inside open_clip.
    with _quiet_random_init():
        model = open_clip.create_model(arch, load_weights=False, pretrained_image=False, pretrained_text=False)
    open_clip.load_checkpoint(model, str(weights), strict=True, weights_only=True)
    return _scorer_from_model(model, open_clip.get_tokenizer(arch), config, device, dtype)


def _download(path_or_name: str, model_name: str | None, device, dtype) -> ClipScorer:
    import open_clip

    if path_or_name.startswith("hf-hub:"):
        model = open_clip.create_model(path_or_name, weights_only=True)
        tokenizer = open_clip.get_tokenizer(path_or_name)
    else:
        if model_name is None:
            raise ValueError(
                "a pretrained tag needs model_name, e.g. load_clip('openai', 'ViT-B-32', allow_download=True)"
            )
        model = open_clip.create_model(model_name, pretrained=path_or_name, weights_only=True)
        tokenizer = open_clip.get_tokenizer(model_name)
    return _scorer_from_model(model, tokenizer, None, device, dtype)


def load_clip(
    path_or_name: str | os.PathLike,
    model_name: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    search_dirs: Sequence[str | os.PathLike] = (),
    allow_download: bool = False,
) -> ClipScorer:
    """Load a frozen open_clip model as a :class:`ClipScorer`.

    ``path_or_name`` is tried as given and, when relative, under each of ``search_dirs``:
      * a folder in open_clip's hf-hub layout (open_clip_config.json + open_clip_model.safetensors,
        or the other names in ``WEIGHT_NAMES``);
      * a weight file (.safetensors preferred; .bin/.pt/.pth are read by open_clip with
        ``weights_only=True``), whose architecture comes from ``model_name`` or a sibling
        open_clip_config.json.
    If nothing matches and ``allow_download`` is True, ``path_or_name`` is treated as a hub name
    ("hf-hub:org/repo", or a pretrained tag such as "openai" with ``model_name="ViT-B-32"``).
    Otherwise raises :class:`ClipWeightsNotFoundError` listing every path looked at.

    Example:
        >>> import tempfile
        >>> from safetensors.torch import save_file
        >>> scorer = tiny_clip()
        >>> image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = Path(tmp) / "tiny"  # open_clip's hf-hub layout
        ...     folder.mkdir()
        ...     state = {k: v.contiguous() for k, v in scorer.model.state_dict().items()}
        ...     save_file(state, str(folder / WEIGHT_NAMES[0]))
        ...     _ = (folder / CONFIG_NAME).write_text(json.dumps(scorer.config))
        ...     loaded = load_clip(folder)
        >>> torch.equal(loaded.encode_images(image), scorer.encode_images(image)), loaded.config == scorer.config
        (True, True)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     load_clip(Path(tmp) / "missing")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        retouch_core.language.clip_score.ClipWeightsNotFoundError: CLIP model '...' not found locally. Looked for:
          .../missing
        Nothing is downloaded unless load_clip(..., allow_download=True).
    """
    raw = Path(path_or_name)
    candidates = [raw] + ([Path(d) / raw for d in search_dirs] if not raw.is_absolute() else [])
    searched: list[Path] = []
    for cand in candidates:
        if cand.is_dir():
            weights, checked = _find_in_dir(cand)
            searched.extend(checked)
            if weights is None:
                continue
            arch, config = _architecture(model_name, weights)
            return _build_local(arch, weights, config, device, dtype)
        searched.append(cand)
        if cand.is_file():
            arch, config = _architecture(model_name, cand)
            return _build_local(arch, cand, config, device, dtype)
    if allow_download:
        return _download(str(path_or_name), None if model_name is None else str(model_name), device, dtype)
    raise ClipWeightsNotFoundError(
        str(path_or_name), searched, "Nothing is downloaded unless load_clip(..., allow_download=True)."
    )


# --------------------------------------------------------------------------------------------
# tiny offline model for tests


def tiny_clip_config() -> dict:
    """open_clip_config.json content of a ~1.7M-parameter random CLIP (32 px, D = 32).

    A fresh dict per call so callers may edit it.

    Example:
        >>> cfg = tiny_clip_config()
        >>> cfg["model_cfg"]["embed_dim"], cfg["model_cfg"]["vision_cfg"]["image_size"]  # D = 32, 32 px images
        (32, 32)
        >>> cfg["model_cfg"]["embed_dim"] = 64
        >>> tiny_clip_config()["model_cfg"]["embed_dim"]  # editing one copy leaves the next untouched
        32
    """
    return {
        "model_cfg": {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        },
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }


def tiny_clip(seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ClipScorer:
    """Random tiny open_clip model with the bundled BPE tokenizer; offline, for tests and demos.

    Example:
        >>> a, b = tiny_clip(seed=0), tiny_clip(seed=0)
        >>> all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))  # seeded: reproducible
        True
        >>> a.image_size, a.encode_texts(["a photo"]).shape, any(p.requires_grad for p in a.model.parameters())
        ((32, 32), torch.Size([1, 32]), False)
    """
    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    config = tiny_clip_config()
    cfg = config["model_cfg"]
    # fork_rng keeps the caller's global RNG stream untouched while seeding the init.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])
    pp = merge_preprocess_dict(PreprocessCfg(), config["preprocess_cfg"])
    pp["size"] = cfg["vision_cfg"]["image_size"]
    open_clip.set_model_preprocess_cfg(model, pp)
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg["text_cfg"]["context_length"])
    return _scorer_from_model(model, tokenizer, config, device, dtype)

"""Image-quality metrics for evaluating retouched images.

Every metric takes ``(B, 3, H, W)`` float tensors in ``[0, 1]`` (sRGB) and returns one value per
image, shape ``(B,)``. Two families:

* pixel / colour error against a target: :func:`psnr`, :func:`l1`, :func:`l2`, :func:`ciede2000`;
* the InstantRetouch *fidelity* protocol, which asks "did the edit keep the photo's structure?"
  independently of the (intended) tone and colour change: both images go to grey, the output's
  grey histogram is matched to the input's (:func:`grayscale_histogram_match`), then SSIM,
  CW-SSIM and GMSD compare the two grey images (:func:`fidelity_metrics`).

Learned metrics (:func:`lpips`, :func:`dists`) need ImageNet backbone weights. They are read from
local files only; when absent a :class:`MissingWeightsError` lists every path that was tried so
the caller can report the metric as "missing" rather than silently skip it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import kornia
import piq
import torch
import torch.nn.functional as F

from retouch_core.engine.guide import luminance_guide
from retouch_core.engine.psnr import psnr

__all__ = [
    "psnr",
    "l1",
    "l2",
    "delta_e_ciede2000",
    "ciede2000",
    "to_gray",
    "grayscale_histogram_match",
    "ssim",
    "cw_ssim",
    "gmsd",
    "fidelity_metrics",
    "MissingWeightsError",
    "load_lpips",
    "load_dists",
    "lpips",
    "dists",
]


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")


# --------------------------------------------------------------------------------------------
# pixel errors


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image. x, y: (B, C, H, W) -> (B,)."""
    _check_pair(x, y)
    return (x - y).abs().flatten(1).mean(1)


def l2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error (MSE) per image. x, y: (B, C, H, W) -> (B,)."""
    _check_pair(x, y)
    return (x - y).square().flatten(1).mean(1)


# --------------------------------------------------------------------------------------------
# CIEDE2000


def _safe_sqrt(v: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite derivative at 0 (identical colours, zero chroma); keep gradients finite
    # while still returning an exact 0 there.
    return torch.where(v > 0, v.clamp_min(1e-20).sqrt(), torch.zeros_like(v))


def delta_e_ciede2000(
    lab1: torch.Tensor, lab2: torch.Tensor, k_l: float = 1.0, k_c: float = 1.0, k_h: float = 1.0
) -> torch.Tensor:
    """Per-pixel CIEDE2000 colour difference. lab1, lab2: (*, 3, H, W) CIELAB (L in [0, 100]) -> (*, H, W).

    Follows Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula: implementation notes,
    supplementary test data, and mathematical observations", Color Res. Appl. 30(1), 2005,
    eqs. (1)-(17), including the hue-mean and hue-difference branch rules that the paper's
    test pairs 7-16 exercise. Angles are handled in degrees like the paper.
    """
    if lab1.shape != lab2.shape or lab1.shape[-3] != 3:
        raise ValueError(f"expected (*, 3, H, W) Lab tensors of equal shape, got {tuple(lab1.shape)}, "
                         f"{tuple(lab2.shape)}")
    L1, a1, b1 = lab1.unbind(-3)
    L2, a2, b2 = lab2.unbind(-3)
    deg = 180.0 / math.pi
    pow25_7 = 25.0**7

    # (2)-(5): a' stretch so near-neutral colours get a larger chroma.
    c_bar = 0.5 * (_safe_sqrt(a1 * a1 + b1 * b1) + _safe_sqrt(a2 * a2 + b2 * b2))
    c_bar7 = c_bar**7
    g = 0.5 * (1.0 - _safe_sqrt(c_bar7 / (c_bar7 + pow25_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = _safe_sqrt(a1p * a1p + b1 * b1), _safe_sqrt(a2p * a2p + b2 * b2)
    # (7): h' in [0, 360), defined as 0 where a' = b = 0 (atan2(0, 0) is 0 in torch).
    h1p = torch.remainder(torch.atan2(b1, a1p) * deg, 360.0)
    h2p = torch.remainder(torch.atan2(b2, a2p) * deg, 360.0)

    # (8)-(11): differences; the hue difference takes the short way round the circle.
    d_lp = L2 - L1
    d_cp = c2p - c1p
    c_prod = c1p * c2p
    dh = h2p - h1p
    dh = torch.where(dh > 180.0, dh - 360.0, torch.where(dh < -180.0, dh + 360.0, dh))
    dh = torch.where(c_prod == 0, torch.zeros_like(dh), dh)
    d_hp = 2.0 * _safe_sqrt(c_prod) * torch.sin(dh / (2.0 * deg))

    # (12)-(14): means; the hue mean also needs the wrap-around rule.
    l_bar = 0.5 * (L1 + L2)
    c_barp = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    h_bar = torch.where(
        (h1p - h2p).abs() <= 180.0,
        0.5 * h_sum,
        torch.where(h_sum < 360.0, 0.5 * (h_sum + 360.0), 0.5 * (h_sum - 360.0)),
    )
    h_bar = torch.where(c_prod == 0, h_sum, h_bar)

    # (15)-(17): weighting functions and the blue-region rotation term.
    t = (
        1.0
        - 0.17 * torch.cos((h_bar - 30.0) / deg)
        + 0.24 * torch.cos((2.0 * h_bar) / deg)
        + 0.32 * torch.cos((3.0 * h_bar + 6.0) / deg)
        - 0.20 * torch.cos((4.0 * h_bar - 63.0) / deg)
    )
    d_theta = 30.0 * torch.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    c_barp7 = c_barp**7
    r_c = 2.0 * _safe_sqrt(c_barp7 / (c_barp7 + pow25_7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / torch.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * c_barp
    s_h = 1.0 + 0.015 * c_barp * t
    r_t = -torch.sin(2.0 * d_theta / deg) * r_c

    tl, tc, th = d_lp / (k_l * s_l), d_cp / (k_c * s_c), d_hp / (k_h * s_h)
    return _safe_sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)


def ciede2000(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 (ΔE00) between two sRGB images. x, y: (B, 3, H, W) in [0, 1] -> (B,).

    sRGB -> CIELAB (D65) with :func:`kornia.color.rgb_to_lab`, then :func:`delta_e_ciede2000`
    per pixel, averaged per image.
    """
    _check_pair(x, y)
    lab_x = kornia.color.rgb_to_lab(x.clamp(0.0, 1.0))
    lab_y = kornia.color.rgb_to_lab(y.clamp(0.0, 1.0))
    return delta_e_ciede2000(lab_x, lab_y).flatten(1).mean(1)


# --------------------------------------------------------------------------------------------
# fidelity protocol: grey + histogram matching


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (the library's luminance). x: (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [0, 1].

    Clamped because the weighted sum can exceed 1 by one ulp, which piq's range checks reject.
    """
    return luminance_guide(x).clamp(0.0, 1.0)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """1-D linear interpolation like ``numpy.interp`` (clamped ends). x: (N,), xp, fp: (M,) -> (N,)."""
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    idx = torch.searchsorted(xp, x, right=True).clamp(1, xp.numel() - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    f0, f1 = fp[idx - 1], fp[idx]
    w = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return f0 + w * (f1 - f0)


def _match_cdf(source: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Map ``source`` values so their empirical CDF follows ``template``'s. (N,), (M,) -> (N,).

    Same rule as ``skimage.exposure.match_histograms`` for float images: each distinct source
    value gets the template value at the same cumulative quantile, so equal input pixels stay
    equal (a plain rank/sort mapping would split ties arbitrarily).
    """
    src_values, src_inverse, src_counts = torch.unique(source, return_inverse=True, return_counts=True)
    tmpl_values, tmpl_counts = torch.unique(template, return_counts=True)
    src_q = torch.cumsum(src_counts, 0).to(torch.float64) / source.numel()
    tmpl_q = torch.cumsum(tmpl_counts, 0).to(torch.float64) / template.numel()
    mapped = _interp(src_q, tmpl_q, tmpl_values.to(torch.float64))
    return mapped[src_inverse].to(source.dtype)


def grayscale_histogram_match(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Grey version of ``output`` whose histogram matches ``reference``'s grey histogram.

    output: (B, 3, H, W), reference: (B, 3, H', W') in [0, 1] -> (B, 1, H, W) in [0, 1].

    This removes the global tone change an edit is *supposed* to make, so the structural metrics
    after it measure only artefacts (halos, banding, lost detail). Not differentiable w.r.t.
    ``output`` (values are looked up from ``reference``); it is an evaluation step.
    """
    if output.ndim != 4 or reference.ndim != 4 or output.shape[0] != reference.shape[0]:
        raise ValueError(f"expected (B, 3, H, W) tensors with equal B, got {tuple(output.shape)}, "
                         f"{tuple(reference.shape)}")
    out_g, ref_g = to_gray(output), to_gray(reference)
    # torch.unique has no batched form; a loop over B is fine for an evaluation metric.
    matched = [_match_cdf(o.flatten(), r.flatten()).view_as(o) for o, r in zip(out_g, ref_g)]
    return torch.stack(matched)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM (Wang et al. 2004; 11x11 Gaussian, sigma 1.5, MATLAB-style downsampling) via piq.

    x, y: (B, C, H, W) in [0, data_range], H, W >= 11 -> (B,).
    """
    _check_pair(x, y)
    return piq.ssim(x, y, data_range=data_range, reduction="none")


def gmsd(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Gradient magnitude similarity deviation (Xue et al. 2014) via piq; 0 = identical, larger = worse.

    x, y: (B, C, H, W) in [0, data_range] (3 channels are reduced to luma by piq) -> (B,).
    """
    _check_pair(x, y)
    return piq.gmsd(x, y, data_range=data_range, reduction="none")


# CW-SSIM -------------------------------------------------------------------------------------
# Sampat, Wang, Gupta, Bovik & Markey, "Complex Wavelet Structural Similarity: A New Image
# Similarity Index", IEEE Trans. Image Processing 18(11):2385-2401, 2009. The decomposition is
# the complex steerable pyramid of Portilla & Simoncelli (IJCV 40(1), 2000), built in the Fourier
# domain. As in the authors' reference MATLAB code, the index is computed on the sub-bands of the
# coarsest scale, with a 7x7 box window, and the per-position map is pooled with a Gaussian of
# std = band size / 4, then averaged over orientations.


def _freq_grid(h: int, w: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius (rad/sample, 0..pi*sqrt2) and angle of an fftshift-ed (h, w) spectrum."""
    fy = (torch.arange(h, device=device, dtype=dtype) - h // 2) * (2 * math.pi / h)
    fx = (torch.arange(w, device=device, dtype=dtype) - w // 2) * (2 * math.pi / w)
    yy, xx = torch.meshgrid(fy, fx, indexing="ij")
    return torch.sqrt(xx * xx + yy * yy), torch.atan2(yy, xx)


def _high_low(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raised-cosine radial pair with H^2 + L^2 = 1, transition over pi/4..pi/2 (one octave)."""
    t = torch.log2((2.0 * r / math.pi).clamp_min(1e-12)).clamp(-1.0, 0.0)  # -1 at pi/4, 0 at pi/2
    high = torch.cos(0.5 * math.pi * t)
    return high, torch.sqrt((1.0 - high * high).clamp_min(0.0))


def _angular_masks(theta: torch.Tensor, n_orient: int) -> torch.Tensor:
    """One-sided (analytic) steerable angular windows. theta: (h, w) -> (K, h, w)."""
    order = n_orient - 1
    const = (2.0 ** (2 * order)) * math.factorial(order) ** 2 / (n_orient * math.factorial(2 * order))
    masks = []
    for k in range(n_orient):
        alpha = torch.remainder(theta - math.pi * k / n_orient + math.pi, 2 * math.pi) - math.pi
        masks.append(2.0 * math.sqrt(const) * torch.cos(alpha) ** order * (alpha.abs() < math.pi / 2))
    return torch.stack(masks)


def _coarsest_bands(x: torch.Tensor, levels: int, n_orient: int) -> torch.Tensor:
    """Complex steerable-pyramid sub-bands at the coarsest of ``levels`` scales.

    x: (B, 1, H, W) with H, W divisible by 2**levels -> complex (B, K, H / 2**(levels-1), W / 2**(levels-1)).
    """
    spec = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float64)), dim=(-2, -1))
    r, _ = _freq_grid(spec.shape[-2], spec.shape[-1], x.device, torch.float64)
    spec = spec * _high_low(r / 2.0)[1]  # L0: the initial low-pass that splits off the residual high-pass
    for _ in range(levels - 1):
        h, w = spec.shape[-2:]
        r, _ = _freq_grid(h, w, x.device, torch.float64)
        spec = spec * _high_low(r)[1]
        # The low-passed spectrum is zero beyond pi/2, so keeping the central half is an exact
        # factor-2 downsampling.
        top, left = h // 2 - h // 4, w // 2 - w // 4
        spec = spec[..., top : top + h // 2, left : left + w // 2] / 4.0
    r, theta = _freq_grid(spec.shape[-2], spec.shape[-1], x.device, torch.float64)
    band_spec = spec * (_high_low(r)[0] * _angular_masks(theta, n_orient))  # (B, K, h, w)
    return torch.fft.ifft2(torch.fft.ifftshift(band_spec, dim=(-2, -1)))


def _gaussian_window(h: int, w: int, sigma_h: float, sigma_w: float, device) -> torch.Tensor:
    """Normalised 2-D Gaussian (h, w) summing to 1."""
    gy = torch.exp(-0.5 * ((torch.arange(h, device=device, dtype=torch.float64) - (h - 1) / 2) / sigma_h) ** 2)
    gx = torch.exp(-0.5 * ((torch.arange(w, device=device, dtype=torch.float64) - (w - 1) / 2) / sigma_w) ** 2)
    g = gy[:, None] * gx[None, :]
    return g / g.sum()


def cw_ssim(
    x: torch.Tensor, y: torch.Tensor, levels: int = 4, orientations: int = 8, window: int = 7, k: float = 1e-12
) -> torch.Tensor:
    """Complex-wavelet SSIM (Sampat et al. 2009). x, y: (B, 1, H, W) grey in [0, 1] -> (B,) in [0, 1].

    CW-SSIM = (2 |sum c_x c_y*| + K) / (sum |c_x|^2 + sum |c_y|^2 + K) over local windows of the
    complex sub-band coefficients; insensitive to small translations and to the global luminance
    and contrast changes that rescale coefficient magnitudes. K only guards 0/0 on flat regions
    (the reference code uses K = 0). Images are centre-cropped to a multiple of 2**levels.
    """
    _check_pair(x, y)
    if x.shape[1] != 1:
        raise ValueError(f"cw_ssim expects grey (B, 1, H, W) images, got {tuple(x.shape)}")
    step = 2**levels
    h, w = (x.shape[-2] // step) * step, (x.shape[-1] // step) * step
    band_h, band_w = h // 2 ** (levels - 1), w // 2 ** (levels - 1)
    if band_h < window or band_w < window:
        raise ValueError(f"image {tuple(x.shape[-2:])} too small for {levels} levels with a {window}px window")
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    x, y = x[..., top : top + h, left : left + w], y[..., top : top + h, left : left + w]

    cx, cy = _coarsest_bands(x, levels, orientations), _coarsest_bands(y, levels, orientations)
    corr = cx * cy.conj()
    box = lambda t: F.avg_pool2d(t, window, stride=1)  # noqa: E731 - local sums (as means; ratio unchanged)
    corr_win = torch.complex(box(corr.real), box(corr.imag))
    var_win = box(cx.abs() ** 2 + cy.abs() ** 2)
    cmap = (2.0 * corr_win.abs() + k) / (var_win + k)  # (B, K, h', w')
    weight = _gaussian_window(cmap.shape[-2], cmap.shape[-1], band_h / 4.0, band_w / 4.0, x.device)
    return (cmap * weight).sum((-2, -1)).mean(1).to(x.dtype)


def fidelity_metrics(output: torch.Tensor, input: torch.Tensor) -> dict[str, torch.Tensor]:
    """InstantRetouch structural-fidelity protocol. output, input: (B, 3, H, W) in [0, 1].

    Returns ``{"ssim", "cw_ssim", "gmsd"}``, each (B,), computed between the histogram-matched grey
    output (:func:`grayscale_histogram_match`) and the grey input. Higher SSIM / CW-SSIM and lower
    GMSD mean the edit preserved the photo's structure.
    """
    _check_pair(output, input)
    matched = grayscale_histogram_match(output, input)
    ref = to_gray(input)
    return {"ssim": ssim(matched, ref), "cw_ssim": cw_ssim(matched, ref), "gmsd": gmsd(matched, ref)}


# --------------------------------------------------------------------------------------------
# learned metrics with local-only weights


class MissingWeightsError(FileNotFoundError):
    """Raised when a learned metric's weights are not on disk; ``searched`` lists every path tried."""

    def __init__(self, metric: str, searched: Sequence[Path]):
        self.metric = metric
        self.searched = [Path(p) for p in searched]
        listing = "\n  ".join(str(p) for p in self.searched)
        super().__init__(
            f"{metric}: weights not found locally (nothing is downloaded). Looked for:\n  {listing}\n"
            f"Place one of these files in a searched folder or pass weights_dirs=[...]."
        )


def _default_weight_dirs() -> list[Path]:
    # torch hub's checkpoint cache is where torchvision/piq would have put these files.
    return [Path(torch.hub.get_dir()) / "checkpoints"]


def _find_weights(metric: str, names: Sequence[str], weights_dirs: Iterable[str | os.PathLike] | None) -> Path:
    """First existing ``dir/name`` in directory-major order; else MissingWeightsError listing all."""
    dirs = [Path(d) for d in weights_dirs] if weights_dirs is not None else _default_weight_dirs()
    searched = [d / n for d in dirs for n in names]
    for p in searched:
        if p.is_file():
            return p
    raise MissingWeightsError(metric, searched)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """State dict from safetensors, or from a torchvision/piq ``.pth``/``.pt`` with the restricted
    ``weights_only`` unpickler (tensors and containers only, no code execution)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _candidate_names(stem_url: str, extra: Sequence[str]) -> list[str]:
    """``<torchvision cache name>.safetensors`` first, then the cache's own ``.pth``, then extras."""
    base = Path(stem_url).name
    stem = base.rsplit(".", 1)[0]
    return [f"{stem}.safetensors", *extra, base]


_LPIPS_BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}
_LPIPS_SHORT = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def load_lpips(net: str = "alex", weights_dirs: Iterable[str | os.PathLike] | None = None) -> torch.nn.Module:
    """LPIPS v0.1 (Zhang et al. 2018) with its ImageNet trunk read from a local file.

    Looks in ``weights_dirs`` (default: ``torch.hub.get_dir()/checkpoints``) for
    ``<torchvision name>.safetensors``, ``<alexnet|vgg16|squeezenet1_1>.safetensors`` or
    torchvision's cached ``.pth``. The calibrated linear heads ship inside the ``lpips`` package.
    Raises :class:`MissingWeightsError` when the trunk is absent. Returns an eval-mode module.
    """
    import warnings

    import lpips as lpips_pkg
    import torchvision

    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"net must be one of {sorted(_LPIPS_BACKBONES)}, got {net!r}")
    url = getattr(torchvision.models, _LPIPS_BACKBONES[net]).IMAGENET1K_V1.url
    path = _find_weights(f"LPIPS[{net}]", _candidate_names(url, [f"{_LPIPS_SHORT[net]}.safetensors"]), weights_dirs)
    trunk = {k[len("features.") :]: v for k, v in _load_tensors(path).items() if k.startswith("features.")}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lpips passes torchvision's deprecated `pretrained=` flag
        # pnet_rand: build the trunk randomly (no download); pretrained=False: load the heads below.
        model = lpips_pkg.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    # lpips splits torchvision's `features` Sequential into slices whose children keep their
    # original indices as names, so `features.<i>.<p>` maps to `slice<s>.<i>.<p>`.
    mapped = {}
    for slice_name, sl in model.net.named_children():
        for idx, _ in sl.named_children():
            for key, value in trunk.items():
                if key.split(".", 1)[0] == idx:
                    mapped[f"{slice_name}.{key}"] = value
    model.net.load_state_dict(mapped, strict=True)
    return load_lpips_heads(model, net)


def load_lpips_heads(model: torch.nn.Module, net: str) -> torch.nn.Module:
    """Load the calibrated linear heads that ship inside the ``lpips`` package into ``model`` (an
    ``lpips.LPIPS``), with the restricted ``weights_only`` loader; -> the frozen, eval-mode model."""
    import lpips as lpips_pkg

    heads = Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    # strict=False because the file holds only the heads; check that every head key did load.
    result = model.load_state_dict(torch.load(heads, map_location="cpu", weights_only=True), strict=False)
    # (`lins.<i>` are aliases of `lin<i>` registered twice by lpips, so only `lin<i>` must load.)
    missing_heads = [k for k in result.missing_keys if k.startswith("lin") and not k.startswith("lins.")]
    if result.unexpected_keys or missing_heads:
        raise RuntimeError(f"LPIPS head file {heads} does not fit: {result.unexpected_keys or missing_heads}")
    return model.eval().requires_grad_(False)


def load_dists(weights_dirs: Iterable[str | os.PathLike] | None = None) -> torch.nn.Module:
    """DISTS (Ding et al. 2020, piq implementation) with VGG16 and alpha/beta read from local files.

    Needs ``vgg16-397923af.safetensors`` / ``vgg16.safetensors`` / torchvision's cached
    ``vgg16-397923af.pth`` and ``dists_weights.safetensors`` / piq's cached ``dists_weights.pt``
    in ``weights_dirs`` (default: ``torch.hub.get_dir()/checkpoints``). piq's own constructor
    would download and fully unpickle them, so the module is assembled here instead.
    Returns an eval-mode module whose ``forward(x, y)`` gives (B,) distances (0 = identical).
    """
    import torchvision
    from piq.perceptual import VGG16_LAYERS, ContentLoss

    vgg_url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    vgg_path = _find_weights("DISTS[vgg16]", _candidate_names(vgg_url, ["vgg16.safetensors"]), weights_dirs)
    ab_path = _find_weights(
        "DISTS[alpha/beta]", ["dists_weights.safetensors", Path(piq.DISTS._weights_url).name], weights_dirs
    )
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])  # VGG16 trunk only
    features.load_state_dict(
        {k[len("features.") :]: v for k, v in _load_tensors(vgg_path).items() if k.startswith("features.")}
    )
    ab = _load_tensors(ab_path)
    channels = [3, 64, 128, 256, 512, 512]
    layer_weights = list(torch.split(ab["alpha"], channels, dim=1)) + list(torch.split(ab["beta"], channels, dim=1))

    model = piq.DISTS.__new__(piq.DISTS)  # skip DISTS.__init__ (downloads); reuse its forward
    ContentLoss.__init__(
        model,
        features,
        layers=[VGG16_LAYERS[n] for n in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")],
        weights=layer_weights,
        replace_pooling=True,
        reduction="none",
        normalize_features=False,
        allow_layers_weights_mismatch=True,
    )
    return model.eval().requires_grad_(False)


def lpips(
    x: torch.Tensor, y: torch.Tensor, model: torch.nn.Module | None = None, net: str = "alex",
    weights_dirs: Iterable[str | os.PathLike] | None = None,
) -> torch.Tensor:
    """LPIPS distance. x, y: (B, 3, H, W) in [0, 1] -> (B,). Pass a :func:`load_lpips` model to
    avoid reloading; otherwise one is loaded (may raise :class:`MissingWeightsError`)."""
    _check_pair(x, y)
    model = model if model is not None else load_lpips(net, weights_dirs)
    return model(x, y, normalize=True).flatten(1).mean(1)  # normalize: [0, 1] -> the [-1, 1] lpips expects


def dists(
    x: torch.Tensor, y: torch.Tensor, model: torch.nn.Module | None = None,
    weights_dirs: Iterable[str | os.PathLike] | None = None,
) -> torch.Tensor:
    """DISTS distance. x, y: (B, 3, H, W) in [0, 1] -> (B,). Pass a :func:`load_dists` model to
    avoid reloading; otherwise one is loaded (may raise :class:`MissingWeightsError`)."""
    _check_pair(x, y)
    model = model if model is not None else load_dists(weights_dirs)
    return model(x, y).reshape(x.shape[0])

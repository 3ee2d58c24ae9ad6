"""Robust grid fitting: carry an AI edit to full resolution despite what image editors do.

Image-editing models (Qwen-Image-Edit, FLUX Kontext, InstructPix2Pix) return the photo near 1 MP,
shifted by a few pixels, slightly cropped or rescaled, softened and re-noised by the VAE, with
new texture and some content changed. :func:`~retouch_core.engine.fit.fit_grid` assumes aligned
pixel pairs and squared errors, so every one of those pulls the grid away from the edit's colour
and tone. :func:`fit_grid_robust` (all at the fitting resolution, <= 256 x 256 by default):

1. **Alignment**: a scale per axis about the centre (editors resize to their own aspect ratio),
   then a translation: phase correlation of the luminance over a few scales, refined by the
   shifts of 4 x 4 tiles (a least-squares line per axis, tiles with new content dropped); the
   edit is resampled onto the original.
   Pixels the edit does not cover (a crop) get weight 0.
2. **Blur matching**: the original is blurred by the Gaussian (sigma in a small set) that best
   explains the edit, so that the pairs compare like with like; the grid, a function of colour,
   is then applied to the sharp original.
3. **Iteratively reweighted least squares** with Tukey's biweight on the colour residual, scale
   from the median absolute residual: a stiff (nearly global) first fit, then the normal grid.
   Pasted objects and new texture get weight 0 and cannot bend the grid.

It reports the residual map (residual / rejection threshold, clipped to [0, 1]: 1 = not explained
by a colour edit, e.g. new content, or not covered by the edit) and ``confidence``, the share of
the original's pixels the grid explains (residual map < 1).

Example:
    >>> original = torch.rand(1, 3, 48, 64)                      # the photo at the edit's size
    >>> ai_edit = (0.8 * original + 0.1).clamp(0, 1)             # an editor's output, (1, 3, h, w)
    >>> fit = fit_grid_robust(original, ai_edit)
    >>> fit.grid.shape, bool(fit.confidence[0] > 0.9)            # apply fit.grid at full resolution
    (torch.Size([1, 12, 8, 16, 16]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F

from .checks import check_image, split_alpha
from .fit import DEFAULT_IDENTITY_PRIOR, DEFAULT_MAX_PIXELS, DEFAULT_SMOOTHNESS, accumulate_normal_equations, downsample, solve_grid
from .guide import apply_guide, GuideParams
from .slicing import slice_and_apply

SCALES = tuple(0.01 * k for k in range(-3, 4))  # slight rescale: +-3 % per axis, then a finer search
BLUR_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # pixels at the fitting resolution
TUKEY_C = 4.685  # 95 % efficiency for Gaussian residuals
STIFF = 100.0  # smoothness multiplier of the first, nearly global fit
MIN_SCALE = 2 / 255  # residual scale floor: a grid approximates an edit to ~1/255; VAE noise is ~2-4/255


@dataclass(frozen=True)
class RobustFit:
    """Result of :func:`fit_grid_robust`.

    Attributes:
        grid: (B, 12, D, H_g, W_g) float32 grid (float64 for float64 input).
        confidence: (B,) share of the edit's pixels the grid explains, in [0, 1].
        residual: (B, 1, h, w) residual / rejection threshold in [0, 1] at the fitting resolution,
            in the original's coordinates (1 = not a colour edit of the original).
        scale, shift: (B, 2) and (B, 2) the alignment: edit(s p + t) ~ original(p) per axis
            (x, y) in normalised coordinates, as ``affine_grid`` uses them.
        blur: (B,) Gaussian sigma (fitting-resolution pixels) that matched the edit's softness.

    Example:
        >>> original = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(0))
        >>> fit = fit_grid_robust(original, 0.8 * original + 0.1, depth=4, height=2, width=2, align_edit=False)
        >>> fit.grid.shape, fit.residual.shape, fit.scale.shape, fit.confidence  # a pure colour edit: all explained
        (torch.Size([2, 12, 4, 2, 2]), torch.Size([2, 1, 24, 32]), torch.Size([2, 2]),
         tensor([1., 1.], dtype=torch.float64))
    """

    grid: torch.Tensor
    confidence: torch.Tensor
    residual: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    blur: torch.Tensor


# ----------------------------------------------------------------------------- alignment
def _luma(rgb: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_grayscale(rgb)


def phase_correlation(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Translation ``d`` (pixels, (dy, dx)) with ``a(p) ~ b(p - d)``, and the peak's strength.

    Args:
        a, b: (B, 1, H, W) grey images.

    Returns:
        (B, 2) float64 shift with sub-pixel refinement, (B,) peak value (higher = better match).

    Example:
        >>> noise = torch.Generator().manual_seed(0)
        >>> a = torch.rand(1, 1, 32, 32, generator=noise)
        >>> b = torch.roll(a, shifts=(2, -3), dims=(-2, -1))  # a(p) = b(p + (2, -3))
        >>> shift, strength = phase_correlation(a, b)
        >>> shift.round(), round(float(strength), 1)
        (tensor([[-2.,  3.]], dtype=torch.float64), 0.8)
        >>> round(float(phase_correlation(a, torch.rand(1, 1, 32, 32, generator=noise))[1]), 1)  # unrelated
        0.1
    """
    height, width = a.shape[-2:]
    window = torch.hann_window(height, periodic=False, dtype=torch.float64)[:, None] * torch.hann_window(
        width, periodic=False, dtype=torch.float64
    )
    fa = torch.fft.rfft2((a.double() - a.double().mean(dim=(-2, -1), keepdim=True)) * window)
    fb = torch.fft.rfft2((b.double() - b.double().mean(dim=(-2, -1), keepdim=True)) * window)
    cross = fa * fb.conj()
    surface = torch.fft.irfft2(cross / (cross.abs() + 1e-12), s=(height, width))[:, 0]  # (B, H, W)
    flat = surface.flatten(1).argmax(1)
    peak_y, peak_x = flat // width, flat % width
    shifts = []
    for axis, (peak, size) in enumerate(((peak_y, height), (peak_x, width))):
        offsets = [torch.stack([peak_y, peak_x], 1) for _ in range(3)]
        values = []
        for k, delta in enumerate((-1, 0, 1)):
            index = offsets[k].clone()
            index[:, axis] = (index[:, axis] + delta) % size
            values.append(surface[torch.arange(surface.shape[0]), index[:, 0], index[:, 1]])
        below, centre, above = values
        denominator = below - 2 * centre + above
        sub = torch.where(denominator.abs() > 1e-12, 0.5 * (below - above) / denominator, torch.zeros_like(centre))
        signed = torch.where(peak > size // 2, peak - size, peak).double()
        shifts.append(signed + sub.clamp(-0.5, 0.5))
    peak_value = surface.flatten(1).max(1).values
    return torch.stack(shifts, 1), peak_value


def _theta(scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, 2), (B, 2) (x, y) -> (B, 2, 3) affine_grid matrices ``p -> s p + t`` (per axis)."""
    theta = torch.zeros(scale.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0], scale[:, 1]
    theta[:, :, 2] = shift
    return theta


def warp(image: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``image`` at ``s p + t``: (B, C, H, W) -> (warped, (B, 1, H, W) coverage in {0, 1}).

    Example:
        >>> image = torch.arange(16.0).view(1, 1, 4, 4)
        >>> moved, coverage = warp(image, torch.ones(1, 2), torch.tensor([[0.5, 0.0]]))  # x + 1 pixel (2 / W)
        >>> moved[0, 0, 0], coverage[0, 0, 0]  # the last column samples outside the image
        (tensor([1., 2., 3., 3.]), tensor([1., 1., 1., 0.]))
    """
    theta = _theta(scale, shift).to(image.dtype)
    coords = F.affine_grid(theta, list(image.shape), align_corners=False)
    warped = F.grid_sample(image, coords, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (coords.abs() <= 1).all(-1, keepdim=True).permute(0, 3, 1, 2)
    return warped, inside.to(image.dtype)


def align(original: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The map of the original's pixels into the edit: ``edit(s p + t) ~ original(p)``.

    Args:
        original, edited: (B, 3, H, W), the same size.

    Returns:
        (B, 2) scale and (B, 2) shift, (x, y), in normalised coordinates.

    Example:
        >>> original = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
        >>> edited = torch.roll(original, shifts=3, dims=-1)  # the edit sits 3 pixels to the right
        >>> scale, shift = align(original, edited)
        >>> scale.round(decimals=2), (shift * torch.tensor([64, 48]) / 2).round()  # shift in pixels (x, y)
        (tensor([[1., 1.]], dtype=torch.float64), tensor([[3., 0.]], dtype=torch.float64))
    """
    grey_a, grey_b = _luma(original), _luma(edited)
    batch = original.shape[0]
    scale, shift = _best_scale(grey_a, grey_b, torch.ones(batch, 2, dtype=torch.float64), SCALES)
    for _ in range(2):  # the peak height is a coarse guide to scale; tile shifts measure it
        scale, shift = _refine_with_tiles(grey_a, grey_b, scale, shift)
    return scale, shift


def _refine_with_tiles(grey_a, grey_b, scale, shift, tiles: int = 4):
    """Phase-correlate ``tiles x tiles`` tiles of the aligned pair and fit the residual
    displacement ``d(p) = a p + b`` per axis (dropping tiles that disagree, e.g. new content)."""
    height, width = grey_a.shape[-2:]
    aligned, _ = warp(grey_b, scale, shift)
    th, tw = height // tiles, width // tiles
    centres, shifts = [], []
    for i in range(tiles):
        for j in range(tiles):
            block = (slice(None), slice(None), slice(i * th, (i + 1) * th), slice(j * tw, (j + 1) * tw))
            d, _ = phase_correlation(grey_a[block], aligned[block])
            # tile centre in normalised coordinates (x, y); shift in normalised units (x, y)
            centres.append(torch.tensor([((j + 0.5) * tw) * 2 / width - 1, ((i + 0.5) * th) * 2 / height - 1],
                                        dtype=torch.float64))
            shifts.append(torch.stack([d[:, 1] * 2 / width, d[:, 0] * 2 / height], 1))
    centres = torch.stack(centres)  # (T, 2)
    shifts = torch.stack(shifts, 1)  # (B, T, 2)
    new_scale, new_shift = scale.clone(), shift.clone()
    for b in range(scale.shape[0]):
        keep = torch.ones(centres.shape[0], dtype=torch.bool)
        for _ in range(3):
            slope, offset = [], []
            for axis in range(2):
                x, y = centres[keep, axis], shifts[b, keep, axis]
                design = torch.stack([x, torch.ones_like(x)], 1)
                a, c = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
                slope.append(a)
                offset.append(c)
            slope, offset = torch.stack(slope), torch.stack(offset)
            error = (shifts[b] - (centres * slope + offset)).abs().amax(1)
            pixel = 2 / min(height, width)
            keep = error <= max(0.75 * pixel, float(error[keep].median()) * 3)
        # original(p) ~ aligned(p - d(p)) = edit(s (1 - a) p + t - s c)
        new_scale[b] = scale[b] * (1 - slope)
        new_shift[b] = shift[b] - scale[b] * offset
    return new_scale, new_shift


def _best_scale(grey_a, grey_b, centre, offsets) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase correlation at every scale ``centre + (ox, oy)``; the (scale, shift) of the best peak."""
    height, width = grey_a.shape[-2:]
    batch = grey_a.shape[0]
    best_strength = torch.full((batch,), -math.inf, dtype=torch.float64)
    best_scale, best_shift = centre.clone(), torch.zeros(batch, 2, dtype=torch.float64)
    for ox in offsets:
        for oy in offsets:
            scale = centre + torch.tensor([ox, oy], dtype=torch.float64)
            zoomed, _ = warp(grey_b, scale, torch.zeros(batch, 2, dtype=torch.float64))
            d, strength = phase_correlation(grey_a, zoomed)
            # original(p) ~ zoomed(p - d) = edit(s (p - d)): t = -s d, d in normalised units (x, y).
            shift = -scale * torch.stack([d[:, 1] * 2 / width, d[:, 0] * 2 / height], 1)
            better = strength > best_strength
            best_strength = torch.where(better, strength, best_strength)
            best_scale = torch.where(better[:, None], scale, best_scale)
            best_shift = torch.where(better[:, None], shift, best_shift)
    return best_scale, best_shift


# ----------------------------------------------------------------------------- fitting
def _tukey(r: torch.Tensor) -> torch.Tensor:
    """Tukey's biweight of a residual already divided by its rejection threshold."""
    return torch.where(r < 1, (1 - r**2) ** 2, torch.zeros_like(r))


def _residual_scale(residual: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Robust residual scale per image: 1.4826 x median of the residuals of covered pixels."""
    scales = []
    for r, w in zip(residual.flatten(1), weight.flatten(1)):
        inside = r[w > 0]
        scales.append(1.4826 * inside.median() if inside.numel() else r.new_tensor(1.0))
    return torch.stack(scales).clamp_min(MIN_SCALE).view(-1, 1, 1, 1)


def _fit(low, target, z, size, weight, smoothness, identity_prior, prior, iterations):
    """IRLS: fit, residuals, Tukey weights (times the coverage), again.

    Returns:
        grid, residual / rejection threshold (B, 1, h, w), residual scale (B, 1, 1, 1).
    """
    coverage = weight
    grid, relative, spread = None, None, None
    for step in range(iterations):
        equations = accumulate_normal_equations(low, target, z, size, weight)
        stiff = STIFF if step == 0 else 1.0
        scaled = tuple(stiff * v for v in ((smoothness,) if isinstance(smoothness, (int, float)) else smoothness))
        grid = solve_grid(equations, smoothness=scaled, identity_prior=identity_prior, prior=prior)
        residual = (slice_and_apply(low, grid, GuideParams.identity(dtype=low.dtype)) - target).norm(dim=1, keepdim=True)
        spread = _residual_scale(residual, coverage)
        relative = residual / (TUKEY_C * spread)
        weight = coverage * _tukey(relative)
    return grid, relative, spread


@torch.no_grad()
def fit_grid_robust(
    input: torch.Tensor,
    output: torch.Tensor,
    *,
    depth: int = 8,
    height: int = 16,
    width: int = 16,
    smoothness=DEFAULT_SMOOTHNESS,
    identity_prior: float = DEFAULT_IDENTITY_PRIOR,
    prior: str = "global",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    iterations: int = 3,
    align_edit: bool = True,
    match_blur: bool = True,
) -> RobustFit:
    """Fit the grid that turns ``input`` into ``output``, ignoring what a colour edit cannot explain.

    Args:
        input: (B, C, H, W) the original at the edit's size, C in {1, 3, 4} (alpha ignored).
        output: (B, C', H, W) the edit, roughly aligned (a few pixels, a few per cent of scale).
        depth, height, width: grid size D, H_g, W_g (luminance guide).
        smoothness, prior: as in :func:`~retouch_core.engine.fit.solve_grid`.
        identity_prior: pull toward the prior affine (the robust global affine: cells whose
            pixels were all rejected follow their neighbours and the global edit).
        max_pixels: the pair is shrunk to at most this many pixels first.
        iterations: reweighting rounds (the first is a stiff, nearly global fit).
        align_edit, match_blur: steps 1 and 2 of the module docstring.

    Returns:
        :class:`RobustFit`.

    Example:
        >>> from retouch_core.engine.slicing import slice_and_apply
        >>> original = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
        >>> edit = 0.8 * original + 0.1
        >>> edit[..., 16:32, 24:40] = 1.0  # a pasted white square: new content on 1/12 of the pixels
        >>> fit = fit_grid_robust(original, edit, depth=4, height=4, width=4)
        >>> round(float(fit.confidence), 4), bool((fit.residual[..., 16:32, 24:40] == 1).all())
        (0.9167, True)
        >>> error = slice_and_apply(original, fit.grid) - (0.8 * original + 0.1)  # the square did not bend the grid
        >>> bool(error.abs().max() < 0.02)
        True
    """
    check_image(input, "input")
    check_image(output, "output")
    if output.shape[0] != input.shape[0] or output.shape[-2:] != input.shape[-2:]:
        raise ValueError(f"output must have the input's batch and size {(input.shape[0], *input.shape[-2:])}, "
                         f"got {tuple(output.shape)}; resize the original to the edit first")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    work = torch.float64 if input.dtype == torch.float64 else torch.float32
    low = downsample(split_alpha(input)[0].to(work).expand(-1, 3, -1, -1), max_pixels)
    target = downsample(split_alpha(output)[0].to(work).expand(-1, 3, -1, -1), max_pixels)
    batch, size = low.shape[0], (depth, height, width)
    scale, shift = torch.ones(batch, 2, dtype=torch.float64), torch.zeros(batch, 2, dtype=torch.float64)
    if align_edit:
        scale, shift = align(low, target)
    target, coverage = warp(target, scale, shift)
    blur = torch.zeros(batch, dtype=torch.float64)
    source = low
    if match_blur:
        source, blur = _match_blur(low, target, coverage, size, smoothness, identity_prior, prior)
    z = apply_guide(source, GuideParams.identity(dtype=source.dtype))
    grid, relative, _ = _fit(source, target, z, size, coverage, smoothness, identity_prior, prior, iterations)
    residual = torch.where(coverage > 0, relative.clamp(0, 1), torch.ones_like(relative))
    confidence = (residual < 1).to(torch.float64).flatten(1).mean(1)
    return RobustFit(grid.to(work), confidence, residual.to(work), scale, shift, blur)


def _match_blur(low, target, coverage, size, smoothness, identity_prior, prior):
    """The Gaussian blur of the original that best explains the edit (lowest robust residual)."""
    best_source, best_blur, best_score = low, torch.zeros(low.shape[0], dtype=torch.float64), None
    for sigma in BLUR_SIGMAS:
        if sigma == 0:
            source = low
        else:
            kernel = 2 * math.ceil(3 * sigma) + 1
            source = kornia.filters.gaussian_blur2d(low, (kernel, kernel), (sigma, sigma), border_type="replicate")
        z = apply_guide(source, GuideParams.identity(dtype=source.dtype))
        score = _fit(source, target, z, size, coverage, smoothness, identity_prior, prior, 1)[2].flatten()
        better = score < best_score if best_score is not None else torch.ones_like(score, dtype=torch.bool)
        best_source = torch.where(better.view(-1, 1, 1, 1), source, best_source)
        best_blur = torch.where(better, torch.full_like(best_blur, sigma), best_blur)
        best_score = score if best_score is None else torch.where(better, score, best_score)
    return best_source, best_blur

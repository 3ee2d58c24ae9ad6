"""Loss terms of teacher training and bilateral distillation (paper eqs. 1, 3-8), as functions.

Images are (B, 3, H, W) floats nominally in [0, 1]; latents (B, C, h, w); grids
(B, 12, D, H_g, W_g). Every function returns a scalar unless its docstring says otherwise.
The CLIP alignment reuses :mod:`retouch_core.language.clip_score` (eqs. 5-6 live there).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from retouch_core.engine.resize import resize
from retouch_core.language.attributes import AttributeBank, default_bank
from retouch_core.language.clip_score import ClipScorer, alignment_loss, attribute_scores
from retouch_core.language.matcher import Plan, parse_instruction

LPIPS_MIN_SIZE = 32  # AlexNet-LPIPS pools its input to nothing below ~32 px


# ------------------------------------------------------------------------------------------
# diffusion


def denoising_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1 / eq. 4: MSE between a denoiser output and its target (ε, v or x0), in float32."""
    return F.mse_loss(prediction.float(), target.float())


def dmd_gradient(x0_gen: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor,
                 min_normaliser: float = 1e-6) -> torch.Tensor:
    """Distribution-matching gradient of the generator sample (VSD with the DMD normaliser).

    ``grad = (x0_fake - x0_real) / mean_{c,h,w} |x0_gen - x0_real|`` per sample: the difference of
    the fake and real scores expressed in x0 space, made scale-free by the real denoiser's
    error on this sample (DMD, Yin et al. 2024, eq. 8 and its normalisation).

    Args:
        x0_gen: (B, C, h, w) generator output x̂ (only its values are used).
        x0_real: (B, C, h, w) teacher (real score, with CFG) x0 estimate from the noised x̂.
        x0_fake: (B, C, h, w) fake-score x0 estimate from the same noised x̂.
        min_normaliser: floor of the normaliser. DMD2 divides unguarded and maps the
            resulting inf to ±3.4e38 when the real estimate reproduces x̂ exactly; the floor
            keeps that gradient finite and bounded instead.

    Returns:
        (B, C, h, w) float32.
    """
    x0_gen, x0_real, x0_fake = x0_gen.detach().float(), x0_real.detach().float(), x0_fake.detach().float()
    dims = tuple(range(1, x0_gen.dim()))
    normaliser = (x0_gen - x0_real).abs().mean(dim=dims, keepdim=True).clamp_min(min_normaliser)
    return (x0_fake - x0_real) / normaliser


def vsd_loss(x0_gen: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor) -> torch.Tensor:
    """Generator loss whose gradient w.r.t. ``x0_gen`` is ``dmd_gradient / numel``.

    ``0.5 * mean((x̂ - sg(x̂ - grad))²)``: the score difference cannot be back-propagated through
    the denoisers cheaply, so it is injected as the residual to a detached target.

    Args:
        x0_gen: (B, C, h, w) generator output, with grad.
        x0_real, x0_fake: (B, C, h, w) score estimates (no grad needed).
    """
    grad = dmd_gradient(x0_gen, x0_real, x0_fake)
    target = (x0_gen.detach().float() - grad).detach()
    return 0.5 * F.mse_loss(x0_gen.float(), target)


def curriculum_low(step: int, t_min: int, start: int, steps: int) -> int:
    """Lower timestep bound at ``step``: ``start`` at step 0, linearly down to ``t_min`` at ``steps``."""
    if steps <= 0:
        return t_min
    frac = min(1.0, max(0.0, step / steps))
    return int(round(start + (t_min - start) * frac))


def curriculum_range(step: int, curriculum) -> tuple[int, int]:
    """VSD timestep range ``(low, high)`` at ``step`` of a :class:`~.config.CurriculumConfig`:
    the phase ``step`` falls in, or the linear schedule when it has no phases."""
    if not curriculum.phases:
        return curriculum_low(step, curriculum.t_min, curriculum.start, curriculum.steps), curriculum.t_max
    end = 0
    for phase in curriculum.phases[:-1]:
        end += phase.steps
        if step < end:
            return phase.t_min, phase.t_max
    last = curriculum.phases[-1]
    return last.t_min, last.t_max


def sample_timesteps(batch: int, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """(batch,) int64 timesteps uniform in ``[low, high]`` (inclusive), drawn on CPU."""
    if high < low:
        raise ValueError(f"empty timestep range [{low}, {high}]")
    return torch.randint(low, high + 1, (batch,), generator=generator)


# ------------------------------------------------------------------------------------------
# image losses


def lpips_distance(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS between (B, 3, H, W) images in [0, 1] (scalar, differentiable).

    Images smaller than the backbone can take are upsampled first (both alike).
    """
    if min(x.shape[-2:]) < LPIPS_MIN_SIZE:
        scale = LPIPS_MIN_SIZE / min(x.shape[-2:])
        size = [max(LPIPS_MIN_SIZE, round(s * scale)) for s in x.shape[-2:]]
        x, y = resize(x, size), resize(y, size)
    return model(x.float(), y.float(), normalize=True).mean()


def data_loss(image: torch.Tensor, target: torch.Tensor, lpips_model: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    """Eq. 7 terms: ``{"mse", "lpips"}`` between the decoded x̂ and the target, (B, 3, h, w) each.

    ``lpips`` is absent when no LPIPS model is given.
    """
    terms = {"mse": F.mse_loss(image.float(), target.float())}
    if lpips_model is not None:
        terms["lpips"] = lpips_distance(lpips_model, image, target)
    return terms


def grid_laplacian_smoothness(grid: torch.Tensor) -> torch.Tensor:
    """Mean squared 3-D discrete Laplacian of a (B, 12, D, H_g, W_g) grid, edges replicated.

    Zero for any grid affine in (depth, y, x) per channel in the interior, e.g. a constant grid.
    """
    b, c, d, h, w = grid.shape
    padded = F.pad(grid.reshape(b * c, 1, d, h, w), (1, 1, 1, 1, 1, 1), mode="replicate")
    kernel = torch.zeros(1, 1, 3, 3, 3, dtype=grid.dtype, device=grid.device)
    kernel[0, 0, 1, 1, 1] = -6.0
    for offset in ((0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)):
        kernel[(0, 0) + offset] = 1.0
    return F.conv3d(padded, kernel).square().mean()


def out_of_gamut(image: torch.Tensor, power: int = 2) -> torch.Tensor:
    """Mean ``power``-th power of the distance of (B, 3, H, W) values outside [0, 1] (0 inside), a scalar.

    Two powers, one definition: 2 for the distillation's eq. 8 (slight overshoot costs little,
    large overshoot much) and 1 for train-lite (the same pull on any overshoot; the shipped lite
    weights were trained with it, so changing it would change what train-lite reproduces).

    Example:
        >>> float(out_of_gamut(torch.tensor([1.5, -0.5, 0.5, 1.0]).view(1, 1, 1, 4), power=1))
        0.25
    """
    excess = F.relu(image - 1.0) + F.relu(-image)  # at most one of the two is non-zero
    return excess.pow(power).mean()


def bilateral_losses(
    sliced: torch.Tensor, target: torch.Tensor, x_hat: torch.Tensor, grid: torch.Tensor,
    lpips_model: torch.nn.Module | None,
) -> dict[str, torch.Tensor]:
    """Eq. 8 terms of stage 2.

    Args:
        sliced: (B, 3, H, W) full-resolution output of slice-and-apply (unclamped).
        target: (B, 3, H, W) full-resolution target.
        x_hat: (B, 3, h, w) decoded generator output; the adapter is pulled towards it, not
            the reverse (it is detached here).
        grid: (B, 12, D, H_g, W_g).
        lpips_model: LPIPS module or None (then the LPIPS terms are absent).

    Returns:
        ``{"bil_l1", "bil_lpips", "bil_xhat", "smooth", "gamut"}`` scalars.
    """
    terms = {
        "bil_l1": F.l1_loss(sliced.float(), target.float()),
        "smooth": grid_laplacian_smoothness(grid.float()),
        "gamut": out_of_gamut(sliced.float()),
    }
    if lpips_model is not None:
        terms["bil_lpips"] = lpips_distance(lpips_model, sliced, target)
        small = resize(sliced, x_hat.shape[-2:])
        terms["bil_xhat"] = lpips_distance(lpips_model, small, x_hat.detach())
    return terms


# ------------------------------------------------------------------------------------------
# CLIP attribute alignment (eqs. 5-6 via retouch_core.language.clip_score)


class AttributeTargets(NamedTuple):
    """The matcher's reading of a batch: K attribute prompt pairs (the union over the batch) and
    (B, K) float32 signed intensities and confidences in [0, 1] (0 where an instruction does not
    name the attribute)."""

    pairs: list[tuple[str, str]]
    intensities: torch.Tensor
    confidences: torch.Tensor


def attribute_targets(
    instructions: Sequence[str], bank: AttributeBank | None = None, cache: dict[str, Plan] | None = None,
) -> AttributeTargets:
    """Attribute prompt pairs, signed intensities and confidences of a batch, from the matcher.

    Args:
        instructions: B instruction strings.
        bank: attribute bank (default: :func:`default_bank`).
        cache: optional instruction -> :class:`Plan` memo (parsing is the slow part).
    """
    bank = bank or default_bank()
    plans = []
    for text in instructions:
        plan = cache.get(text) if cache is not None else None
        if plan is None:
            plan = parse_instruction(text, bank)
            if cache is not None:
                cache[text] = plan
        plans.append(plan)
    names = list(dict.fromkeys(name for plan in plans for name in plan.attributes))

    def table(field: str) -> torch.Tensor:
        rows = [[getattr(plan, field).get(n, 0.0) for n in names] for plan in plans]
        return torch.tensor(rows, dtype=torch.float32).reshape(len(plans), len(names))

    return AttributeTargets([(bank[n].positive, bank[n].negative) for n in names],
                            table("attributes"), table("confidences"))


ALIGNMENT_WEIGHTINGS = ("confidence", "intensity")


def clip_alignment(
    scorer: ClipScorer, images: torch.Tensor, instructions: Sequence[str], temperature: float = 0.07,
    bank: AttributeBank | None = None, cache: dict | None = None, weighting: str = "confidence",
) -> torch.Tensor:
    """Eqs. 5-6: attribute InfoNCE of (B, 3, H, W) images for their instructions (scalar).

    ``weighting="confidence"`` (the paper's eq. 6): per image, the mean over its matched
    attributes of ``c_k L_k``, ``c_k`` the matcher's confidence, the pair's direction from the
    sign of the intensity. ``"intensity"``: ``sum_k |w_k| L_k / sum_k |w_k|`` with the signed
    intensities ``w_k`` as weights (this package's earlier form).

    Images whose instruction names no attribute contribute 0; a batch without any gives 0
    (still attached to ``images`` so backward works).
    """
    if weighting not in ALIGNMENT_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {ALIGNMENT_WEIGHTINGS}, got {weighting!r}")
    targets = attribute_targets(instructions, bank, cache)
    if not targets.pairs:
        return images.sum() * 0.0
    s_plus, s_minus = attribute_scores(scorer, images.float().clamp(0, 1), targets.pairs)
    if weighting == "confidence":
        weights, average = targets.intensities.sign() * targets.confidences, "count"
    else:
        weights, average = targets.intensities, "weighted"
    return alignment_loss(s_plus, s_minus, temperature=temperature, weights=weights.to(s_plus.device), average=average)


# ------------------------------------------------------------------------------------------
# LPIPS construction


def build_lpips(net: str = "alex", weights_dir: str | None = None, random: bool = False) -> torch.nn.Module:
    """Frozen LPIPS: backbone from local weights (``training.metrics.load_lpips``) or, with
    ``random=True`` (tests only), a random backbone with the package's calibrated heads."""
    from ..eval.metrics import load_lpips, load_lpips_heads

    if not random:
        return load_lpips(net, [weights_dir] if weights_dir else None)
    import lpips as lpips_pkg

    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")  # lpips passes torchvision's deprecated `pretrained=` flag
        torch.manual_seed(0)  # the same random backbone every time, without touching the global RNG
        # pnet_rand: no ImageNet download; the calibrated (non-negative) heads are loaded as usual.
        model = lpips_pkg.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    return load_lpips_heads(model, net)

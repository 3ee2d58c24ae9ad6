"""Apply LUT files exactly: 1D tables, tetrahedral and trilinear 3D lookup, the whole .cube chain.

:func:`~retouch_core.engine.lut.apply_lut` is the trilinear 3D lookup. This module adds what a
LUT file needs on top of it: tetrahedral interpolation (what Resolve and OCIO use by default:
each lattice cube is split into 6 tetrahedra along its grey diagonal, so neutral greys map
exactly and hue does not bend toward the cube's corners), per-channel 1D tables (linear
interpolation), and :func:`apply_cube`, the chain a ``.cube`` file describes (video range in,
1D shaper, 3D table, video range out). Inputs outside a table's domain are clamped to its edge.

Example:
    >>> from retouch_core.engine.lut import parse_cube
    >>> cube = parse_cube("LUT_3D_SIZE 2\\n" + "\\n".join(f"{r} {g} {b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)))
    >>> image = torch.rand(1, 3, 8, 8)
    >>> out = apply_cube(image, cube, interpolation="tetrahedral")  # (B, 3, H, W); identity LUT
    >>> torch.allclose(out, image, atol=1e-6)
    True
"""

from __future__ import annotations

import torch

from .checks import check_image, join_alpha, split_alpha
from .lut import (
    CubeLUT,
    _domain,
    _lattice_image,
    apply_lut,
    checked_lut_inputs,
)

INTERPOLATIONS = ("tetrahedral", "trilinear")
# LUT_IN/OUT_VIDEO_RANGE: legal video levels 16..235 of 255 (64..940 of 1023 to within 1e-4).
VIDEO_LOW, VIDEO_HIGH = 16 / 255, 235 / 255
DEFAULT_BAKE_SIZE = 65


def apply_lut_tetrahedral(image: torch.Tensor, lut: torch.Tensor, *, domain_min=(0.0,) * 3, domain_max=(1.0,) * 3) -> torch.Tensor:
    """Tetrahedral 3D LUT lookup.

    Within the lattice cube holding a colour, with fractions sorted ``f1 >= f2 >= f3`` along
    axes ``a1, a2, a3``, the result is ``(1-f1) V000 + (f1-f2) V(a1) + (f2-f3) V(a1+a2) + f3 V111``:
    the walk from the cube's black corner to its white corner along the largest fractions.

    Args:
        image: (B, C, H, W), C in {3, 4} (alpha passed through).
        lut: (B or 1, 3, N, N, N) or (3, N, N, N), indexed [.., c, b, g, r].
        domain_min, domain_max: input colours of the first / last lattice node.

    Returns:
        (B, 3 or 4, H, W) in the image's dtype.

    Example:
        >>> from retouch_core.engine.lut import identity_lattice
        >>> lut = identity_lattice(2)
        >>> lut[0, :, 0, 0, 1] = 0.0  # pure red now maps to black
        >>> grey = torch.full((1, 3, 1, 1), 0.5)
        >>> apply_lut_tetrahedral(grey, lut).flatten()  # greys see only the black-white diagonal
        tensor([0.5000, 0.5000, 0.5000])
        >>> apply_lut(grey, lut).flatten()  # trilinear mixes in the red corner
        tensor([0.3750, 0.5000, 0.5000])
    """
    lut, rgb, alpha = checked_lut_inputs(image, lut)
    if rgb.shape[1] != 3:
        raise ValueError(f"a 3D LUT needs RGB images, got {rgb.shape[1]} channel(s)")
    dtype = torch.float64 if torch.float64 in (image.dtype, lut.dtype) else torch.float32
    rgb, lut = rgb.to(dtype), lut.to(device=image.device, dtype=dtype)
    low, high = _domain(domain_min, domain_max, rgb)
    size = lut.shape[-1]
    pos = ((rgb - low) / (high - low)).clamp(0, 1) * (size - 1)  # (B, 3, H, W) as (r, g, b)
    lower = pos.floor().clamp(max=size - 2)
    frac, lower = pos - lower, lower.long()
    frac_sorted, axis = frac.sort(dim=1, descending=True)
    # Flat lattice index of the cube's black corner and the step of each axis (r, g, b).
    strides = torch.tensor([1, size, size * size], device=image.device)
    index = (lower * strides.view(1, 3, 1, 1)).sum(1)
    step = strides[axis]  # (B, 3, H, W): stride of the largest, second, smallest fraction's axis
    corners = [index, index + step[:, 0], index + step[:, 0] + step[:, 1], index + strides.sum()]
    weights = [1 - frac_sorted[:, 0], frac_sorted[:, 0] - frac_sorted[:, 1], frac_sorted[:, 1] - frac_sorted[:, 2], frac_sorted[:, 2]]
    table = lut.flatten(2).expand(rgb.shape[0], -1, -1)  # (B, 3, N^3)
    out = torch.zeros_like(rgb)
    for corner, weight in zip(corners, weights):
        values = torch.gather(table, 2, corner.flatten(1).unsqueeze(1).expand(-1, 3, -1)).view_as(rgb)
        out += weight.unsqueeze(1) * values
    return join_alpha(out.to(image.dtype), alpha)


def apply_1d(image: torch.Tensor, table: torch.Tensor, *, domain_min=(0.0,) * 3, domain_max=(1.0,) * 3) -> torch.Tensor:
    """Per-channel 1D table with linear interpolation (edge-clamped).

    Args:
        image: (B, C, H, W), C in {3, 4} (alpha passed through).
        table: (3, M) float, entry ``m`` is the output at ``min + m (max - min) / (M - 1)``.
        domain_min, domain_max: inputs of the first / last entry, per channel.

    Returns:
        (B, 3 or 4, H, W) in the image's dtype.

    Example:
        >>> table = torch.tensor([[0.0, 0.25, 1.0]]).expand(3, -1)  # a rough gamma-2 curve for each channel
        >>> apply_1d(torch.tensor([0.25, 0.75, 1.5]).view(1, 3, 1, 1), table).flatten()  # 1.5 is clamped
        tensor([0.1250, 0.6250, 1.0000])
    """
    check_image(image)
    if table.dim() != 2 or table.shape[0] != 3 or table.shape[1] < 2:
        raise ValueError(f"a 1D table must have shape (3, M) with M >= 2, got {tuple(table.shape)}")
    rgb, alpha = split_alpha(image)
    dtype = torch.float64 if torch.float64 in (image.dtype, table.dtype) else torch.float32
    rgb, table = rgb.to(dtype), table.to(device=image.device, dtype=dtype)
    low, high = _domain(domain_min, domain_max, rgb)
    length = table.shape[1]
    pos = ((rgb - low) / (high - low)).clamp(0, 1) * (length - 1)
    lower = pos.floor().clamp(max=length - 2)
    frac, lower = pos - lower, lower.long()
    flat = table.unsqueeze(0).expand(rgb.shape[0], -1, -1)
    below = torch.gather(flat, 2, lower.flatten(2)).view_as(rgb)
    above = torch.gather(flat, 2, (lower + 1).flatten(2)).view_as(rgb)
    return join_alpha(torch.lerp(below, above, frac).to(image.dtype), alpha)


def apply_cube(image: torch.Tensor, cube: CubeLUT, interpolation: str = "tetrahedral") -> torch.Tensor:
    """The whole chain of a ``.cube`` file: video range in, 1D shaper, 3D table, video range out.

    Args:
        image: (B, C, H, W) float, C in {3, 4} (alpha passed through).
        cube: from :func:`~retouch_core.engine.lut.load_cube` / ``parse_cube``, or a Hald CLUT.
        interpolation: ``"tetrahedral"`` or ``"trilinear"`` (3D table only; 1D is linear).

    Returns:
        (B, 3 or 4, H, W), not clipped: LUTs may produce values outside [0, 1].

    Example:
        >>> from retouch_core.engine.lut import parse_cube
        >>> negative = parse_cube("LUT_1D_SIZE 2\\n1 1 1\\n0 0 0")  # a 1D-only file
        >>> apply_cube(torch.tensor([0.0, 0.25, 1.0, 0.5]).view(1, 4, 1, 1), negative).flatten()  # RGBA
        tensor([1.0000, 0.7500, 0.0000, 0.5000])
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    check_image(image)
    rgb, alpha = split_alpha(image)
    if cube.video_in:
        rgb = VIDEO_LOW + rgb * (VIDEO_HIGH - VIDEO_LOW)
    if cube.shaper is not None:
        rgb = apply_1d(rgb, cube.shaper, domain_min=cube.shaper_min, domain_max=cube.shaper_max)
    if cube.lut is not None:
        lookup = apply_lut_tetrahedral if interpolation == "tetrahedral" else apply_lut
        rgb = lookup(rgb, cube.lut, domain_min=cube.domain_min, domain_max=cube.domain_max)
    if cube.video_out:
        rgb = (rgb - VIDEO_LOW) / (VIDEO_HIGH - VIDEO_LOW)
    return join_alpha(rgb.to(image.dtype), alpha)


def bake_cube(cube: CubeLUT, size: int | None = None, interpolation: str = "tetrahedral") -> torch.Tensor:
    """A ``.cube`` chain as one 3D LUT on [0, 1] (for the "LUT as grid" path and exporters).

    Exact at the lattice nodes; a plain 3D table on [0, 1] comes back unchanged when ``size``
    is its own size.

    Args:
        cube: a parsed file.
        size: lattice size; default: the file's 3D size, or 65 for a 1D-only file.

    Returns:
        (1, 3, N, N, N) float64 LUT indexed [.., c, b, g, r].

    Example:
        >>> from retouch_core.engine.lut import identity_lattice, parse_cube
        >>> lut = bake_cube(parse_cube("LUT_1D_SIZE 2\\n1 1 1\\n0 0 0"), size=3)  # a 1D negative as a 3D table
        >>> lut.shape, torch.allclose(lut, 1 - identity_lattice(3, dtype=torch.float64))
        (torch.Size([1, 3, 3, 3, 3]), True)
    """
    size = size or (cube.lut.shape[-1] if cube.lut is not None else DEFAULT_BAKE_SIZE)
    lattice = _lattice_image(size, dtype=torch.float64)
    return apply_cube(lattice, cube, interpolation).reshape(1, 3, size, size, size)

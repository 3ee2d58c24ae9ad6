"""3D LUTs: export the global part of a grid as a ``.cube`` file, import ``.cube`` files as grids.

LUT tensors
-----------
A LUT is a float tensor of shape ``(B, 3, N, N, N)`` indexed ``[batch, channel, b, g, r]``:
``lut[:, c, k, j, i]`` is output channel ``c`` for the input colour ``(r, g, b) = (i, j, k) /
(N - 1)`` (domain ``[0, 1]``; other domains are rescaled on the way in). This is the layout in
which 5-D ``grid_sample(..., align_corners=True)`` indexes its input by ``(x, y, z) = (r, g, b)``,
and the flattened order of the ``.cube`` format (red fastest, then green, then blue).

The global part of a grid
-------------------------
A grid's edit depends on position as well as colour; a LUT can only hold a function of colour.
:func:`grid_to_lut` exports the **spatially averaged grid**: every cell ``(k, a, b)`` replaced by
the mean over ``(a, b)`` of the grid at depth ``k``. Slicing is linear in the grid, and with
``align_corners=False`` pixel centres and border clamping every spatial cell gets the same total
interpolation weight over an image (an edge cell's half-cell beyond its centre makes up for the
missing neighbour; exactly so when the image size is a multiple of twice the grid size, to
within a pixel's share otherwise), so this is the edit averaged over image positions, for every
colour. For a spatially constant grid (a global edit) it is the edit itself. The alternative,
the grid at the image centre, would export whatever local edit sits there.

``.cube`` format
----------------
Adobe/Resolve Cube LUT 1.0: ``TITLE "..."``, ``LUT_3D_SIZE N`` (2..256), optional
``DOMAIN_MIN r g b`` / ``DOMAIN_MAX r g b`` (Resolve's ``LUT_3D_INPUT_RANGE min max`` is read too),
then ``N^3`` lines of ``r g b`` with red varying fastest. ``#`` starts a comment. The reader
(:func:`parse_cube`) also takes what real files contain: 1D tables (``LUT_1D_SIZE``, up to
65536), Resolve's 1D shaper + 3D files, video-range flags and unknown keywords (skipped with a
warning); the writer writes plain 3D files.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_image, join_alpha, split_alpha
from .fit import (
    DEFAULT_IDENTITY_PRIOR,
    DEFAULT_SMOOTHNESS,
    accumulate_normal_equations,
    solve_grid,
)
from .grid import check_grid
from .guide import GuideParams, apply_guide
from .slicing import slice_and_apply

DEFAULT_LUT_SIZE = 33
MAX_CUBE_SIZE = 256  # the Cube LUT specification's limit
DEFAULT_TILE_PIXELS = 1 << 18


@dataclass(frozen=True)
class CubeLUT:
    """A parsed ``.cube`` file: an optional 1D table (a shaper) followed by an optional 3D table.

    Applied in this order (see :func:`~retouch_core.engine.lut_interp.apply_cube`): input video
    range, 1D table on ``[shaper_min, shaper_max]``, 3D table on ``[domain_min, domain_max]``,
    output video range.

    Attributes:
        lut: (1, 3, N, N, N) indexed [batch, channel, b, g, r], or None for a 1D-only file.
        title: the TITLE string ("" when absent).
        domain_min, domain_max: (3,) input colours mapped to the first / last 3D lattice node.
        shaper: (3, M) per-channel 1D table, or None.
        shaper_min, shaper_max: (3,) inputs of the 1D table's first / last entry.
        video_in, video_out: ``LUT_IN_VIDEO_RANGE`` / ``LUT_OUT_VIDEO_RANGE``: the table expects
            / produces video-range (16..235 of 255) values.

    Example:
        >>> cube = CubeLUT(lut=identity_lattice(2), title="identity", domain_min=(0.0,) * 3, domain_max=(1.0,) * 3)
        >>> cube.is_plain_3d, cube.lut.shape
        (True, torch.Size([1, 3, 2, 2, 2]))
    """

    lut: torch.Tensor | None
    title: str
    domain_min: tuple[float, float, float]
    domain_max: tuple[float, float, float]
    shaper: torch.Tensor | None = None
    shaper_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shaper_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    video_in: bool = False
    video_out: bool = False

    @property
    def is_plain_3d(self) -> bool:
        """A 3D table alone: what :func:`apply_lut` and the .cube writer handle.

        Example:
            >>> parse_cube("LUT_1D_SIZE 2\\n0 0 0\\n1 1 1").is_plain_3d  # a 1D table needs apply_cube
            False
        """
        return self.lut is not None and self.shaper is None and not (self.video_in or self.video_out)


# ----------------------------------------------------------------------------- LUT tensors
def check_lut(lut, name: str = "lut") -> torch.Tensor:
    """Validate a LUT and return it as (B, 3, N, N, N); (3, N, N, N) gains a batch axis.

    Example:
        >>> check_lut(torch.zeros(3, 2, 2, 2)).shape
        torch.Size([1, 3, 2, 2, 2])
        >>> check_lut(torch.zeros(1, 3, 2, 2, 3))
        Traceback (most recent call last):
        ValueError: lut must have shape (B, 3, N, N, N) or (3, N, N, N) with N >= 2, got (1, 3, 2, 2, 3)
    """
    if not isinstance(lut, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(lut).__name__}")
    if not lut.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {lut.dtype}")
    if lut.dim() == 4:
        lut = lut.unsqueeze(0)
    n = lut.shape[-1] if lut.dim() == 5 else 0
    if lut.dim() != 5 or lut.shape[1] != 3 or lut.shape[2:] != (n, n, n) or n < 2:
        raise ValueError(f"{name} must have shape (B, 3, N, N, N) or (3, N, N, N) with N >= 2, got {tuple(lut.shape)}")
    if not torch.isfinite(lut).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return lut


def identity_lattice(size: int = DEFAULT_LUT_SIZE, device=None, dtype=torch.float32) -> torch.Tensor:
    """Lattice colours (1, 3, N, N, N) indexed [.., c, b, g, r]: the identity LUT.

    Example:
        >>> identity_lattice(3)[0, :, 2, 1, 0]  # the node at b index 2, g index 1, r index 0
        tensor([0.0000, 0.5000, 1.0000])
    """
    if not isinstance(size, int) or not 2 <= size <= MAX_CUBE_SIZE:  # bounded before allocating N^3
        raise ValueError(f"LUT size must be an integer from 2 to {MAX_CUBE_SIZE}, got {size!r}")
    axis = torch.linspace(0, 1, size, device=device, dtype=dtype)
    b, g, r = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([r, g, b]).unsqueeze(0)


def _lattice_image(size: int, batch: int = 1, device=None, dtype=torch.float32) -> torch.Tensor:
    """The identity lattice laid out as an image (batch, 3, N, N * N) for pointwise edits."""
    return identity_lattice(size, device, dtype).reshape(1, 3, size, size * size).expand(batch, -1, -1, -1)


def apply_lut(
    image: torch.Tensor,
    lut: torch.Tensor,
    *,
    domain_min=(0.0, 0.0, 0.0),
    domain_max=(1.0, 1.0, 1.0),
    max_tile_pixels: int = DEFAULT_TILE_PIXELS,
) -> torch.Tensor:
    """Apply a 3D LUT with trilinear interpolation (5-D ``grid_sample``, ``align_corners=True``).

    Colours outside the domain use the nearest edge of the lattice (border clamping).

    Args:
        image: (B, C, H, W) float, C in {1, 3, 4} (alpha passed through).
        lut: (B or 1, 3, N, N, N) or (3, N, N, N), indexed [.., c, b, g, r].
        domain_min, domain_max: input colours of the first / last lattice node, per channel.
        max_tile_pixels: pixels per row band (bounds the sampling-coordinate buffer).

    Returns:
        (B, 3 or 4, H, W) in the image's dtype.

    Example:
        >>> image = torch.linspace(0, 1, 16).view(1, 4, 2, 2)  # RGBA
        >>> out = apply_lut(image, 1 - identity_lattice(2))  # the negative: linear, so exact on a 2^3 lattice
        >>> out.shape, torch.allclose(out[:, :3], 1 - image[:, :3], atol=1e-6), torch.equal(out[:, 3], image[:, 3])
        (torch.Size([1, 4, 2, 2]), True, True)
    """
    lut, rgb, alpha = checked_lut_inputs(image, lut)
    dtype = torch.float64 if torch.float64 in (image.dtype, lut.dtype) else torch.float32
    rgb, lut = rgb.to(dtype), lut.to(device=image.device, dtype=dtype)
    low, high = _domain(domain_min, domain_max, rgb)
    batch, _, height, width = rgb.shape
    out = torch.empty_like(rgb)
    rows = max(1, max_tile_pixels // width)
    for top in range(0, height, rows):
        band = rgb[:, :, top : top + rows]
        # (r, g, b) -> (x, y, z) of grid_sample, i.e. (W, H, D) = (r, g, b) of the LUT.
        coords = ((band - low) / (high - low) * 2 - 1).permute(0, 2, 3, 1).unsqueeze(1)
        sampled = F.grid_sample(
            lut.expand(batch, -1, -1, -1, -1), coords, mode="bilinear", padding_mode="border", align_corners=True
        )
        out[:, :, top : top + rows] = sampled[:, :, 0]
    return join_alpha(out.to(image.dtype), alpha)


def checked_lut_inputs(image: torch.Tensor, lut) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Shared checks of the LUT lookups: the LUT as (B or 1, 3, N, N, N) matching the image batch,
    and the image split into RGB (B, 3, H, W) and alpha (B, 1, H, W) or None.

    Example:
        >>> lut, rgb, alpha = checked_lut_inputs(torch.zeros(2, 4, 3, 3), torch.zeros(3, 2, 2, 2))
        >>> lut.shape, rgb.shape, alpha.shape
        (torch.Size([1, 3, 2, 2, 2]), torch.Size([2, 3, 3, 3]), torch.Size([2, 1, 3, 3]))
    """
    check_image(image)
    lut = check_lut(lut)
    if lut.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"lut batch is {lut.shape[0]} but the image batch is {image.shape[0]}")
    rgb, alpha = split_alpha(image)
    return lut, rgb, alpha


def _domain(domain_min, domain_max, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Domain bounds as (1, 3, 1, 1) tensors, checked."""
    low = torch.as_tensor(domain_min, dtype=like.dtype, device=like.device).reshape(-1)
    high = torch.as_tensor(domain_max, dtype=like.dtype, device=like.device).reshape(-1)
    if low.numel() == 1:
        low = low.expand(3)
    if high.numel() == 1:
        high = high.expand(3)
    if low.shape != (3,) or high.shape != (3,) or not (high > low).all() or not torch.isfinite(high - low).all():
        raise ValueError(f"domain must be 3 finite values per bound with max > min, got {domain_min} .. {domain_max}")
    return low.view(1, 3, 1, 1), high.view(1, 3, 1, 1)


# ----------------------------------------------------------------------------- grids <-> LUTs
def spatial_mean_grid(grid: torch.Tensor) -> torch.Tensor:
    """The global part of a grid: its mean over the spatial axes.

    Args:
        grid: (B, 12, D, H_g, W_g).

    Returns:
        (B, 12, D, 1, 1): a function of the guide only.

    Example:
        >>> from retouch_core.engine.grid import identity_grid
        >>> grid = identity_grid(1, 4, 2, 2)
        >>> grid[:, 3, :, :, 0] = 0.2  # red offset +0.2 in the left column of cells only
        >>> mean = spatial_mean_grid(grid)
        >>> mean.shape, mean[0, 3, 0, 0, 0]
        (torch.Size([1, 12, 4, 1, 1]), tensor(0.1000))
    """
    check_grid(grid)
    return grid.mean(dim=(3, 4), keepdim=True)


def _check_colour_guide(guide) -> None:
    if isinstance(guide, torch.Tensor):
        raise TypeError(
            "a LUT is a function of colour only, so the guide must be None, GuideParams or a "
            "LearnedGuide, not a guide map"
        )


def grid_to_lut(grid: torch.Tensor, size: int = DEFAULT_LUT_SIZE, guide=None) -> torch.Tensor:
    """Export the global part of a grid (:func:`spatial_mean_grid`) as a 3D LUT.

    Args:
        grid: (B, 12, D, H_g, W_g).
        size: lattice size N (33 is the common choice; 65 for finer tone curves).
        guide: the guide the grid is applied with: None (luminance), GuideParams or a
            LearnedGuide. Guide maps depend on position and cannot go into a LUT.

    Returns:
        (B, 3, N, N, N) LUT in the grid's float dtype, indexed [.., c, b, g, r].

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> warm = grid_from_affine(torch.diag(torch.tensor([1.2, 1.0, 0.8, 0.0]))[:3], depth=4, height=2, width=2)
        >>> lut = grid_to_lut(warm, size=3)
        >>> lut.shape, lut[0, :, 2, 2, 2]  # white: not clipped
        (torch.Size([1, 3, 3, 3, 3]), tensor([1.2000, 1.0000, 0.8000]))
    """
    _check_colour_guide(guide)
    mean = spatial_mean_grid(grid)
    batch = mean.shape[0]
    lattice = _lattice_image(size, batch, mean.device, mean.dtype)
    # The lattice is sliced like any image; with a 1x1 spatial grid pixel positions do not matter.
    out = slice_and_apply(lattice, mean, guide, backend="grid_sample")
    return out.reshape(batch, 3, size, size, size)


def edit_to_lut(
    edit_fn: Callable[[torch.Tensor], torch.Tensor], size: int = DEFAULT_LUT_SIZE, *, dtype=torch.float32
) -> torch.Tensor:
    """Sample a pointwise colour edit on the lattice: exact at the nodes.

    Args:
        edit_fn: maps (1, 3, h, w) to (1, 3, h, w); must act on each pixel independently (a
            spatial edit would see the lattice as an image; fit it on a photo with
            :func:`~retouch_core.engine.fit.fit_grid_to_edit` and use :func:`grid_to_lut` instead).
        size: lattice size N.

    Returns:
        (1, 3, N, N, N) LUT.

    Example:
        >>> lut = edit_to_lut(lambda x: x**2, size=3)  # a gamma of 2
        >>> lut.shape, lut[0, 0, 0, 0, :]  # red output along the red axis
        (torch.Size([1, 3, 3, 3, 3]), tensor([0.0000, 0.2500, 1.0000]))
    """
    lattice = _lattice_image(size, dtype=dtype)
    with torch.no_grad():
        out = edit_fn(lattice.clone())
    check_image(out, "edit_fn output")
    if out.shape[0] != 1 or out.shape[-2:] != lattice.shape[-2:]:
        raise ValueError(f"edit_fn must keep shape {tuple(lattice.shape)}, got {tuple(out.shape)}")
    return split_alpha(out)[0].reshape(1, 3, size, size, size).to(dtype)


def params_to_lut(params, size: int = DEFAULT_LUT_SIZE) -> torch.Tensor:
    """A :mod:`retouch_core.language.render` edit as a LUT (all parameters but the spatial ``clarity``).

    Args:
        params: a RetouchParams or a mapping accepted by ``render``, for one image.
        size: lattice size N.

    Returns:
        (1, 3, N, N, N) LUT.

    Example:
        >>> from retouch_core.language.params import RetouchParams
        >>> lut = params_to_lut(RetouchParams(exposure=1.0), size=3)  # one stop brighter
        >>> lut.shape, lut[0, :, 0, 0, 0], lut[0, :, 1, 1, 1]  # black stays black; sRGB mid grey brightens
        (torch.Size([1, 3, 3, 3, 3]), tensor([0., 0., 0.]), tensor([0.6858, 0.6858, 0.6858]))
        >>> params_to_lut({"clarity": 20.0})
        Traceback (most recent call last):
        ValueError: clarity is a spatial operation and cannot be stored in a LUT; set it to 0
    """
    from ..language.render import (
        render,  # imported lazily: the renderer is optional for LUT I/O
    )

    clarity = params.get("clarity", 0.0) if isinstance(params, Mapping) else getattr(params, "clarity", 0.0)
    if torch.as_tensor(clarity).abs().max() > 0:
        raise ValueError("clarity is a spatial operation and cannot be stored in a LUT; set it to 0")
    return edit_to_lut(lambda x: render(x, params), size)


@torch.no_grad()
def lut_to_grid(
    lut: torch.Tensor,
    depth: int = 8,
    height: int = 16,
    width: int = 16,
    *,
    guide=None,
    samples: int = DEFAULT_LUT_SIZE,
    domain_min=(0.0, 0.0, 0.0),
    domain_max=(1.0, 1.0, 1.0),
    smoothness=DEFAULT_SMOOTHNESS,
    identity_prior: float = DEFAULT_IDENTITY_PRIOR,
    **solver,
) -> torch.Tensor:
    """Import a LUT as a spatially constant grid, by fitting.

    The LUT is applied to a uniform ``samples^3`` lattice of colours in [0, 1] and a grid with
    one spatial cell is fitted to those pairs (:mod:`retouch_core.engine.fit`), then repeated over the
    H_g x W_g cells. A grid holds one affine per guide bin, so LUTs that are smooth along the
    guide (tone curves, white balance, colour matrices, saturation) come back closely; hue twists
    within one brightness level are only matched in the least-squares sense.

    Args:
        lut: (B or 1, 3, N, N, N) or (3, N, N, N).
        depth, height, width: grid size D, H_g, W_g.
        guide: None (luminance), GuideParams or LearnedGuide: the guide the grid will be used with.
        samples: colour lattice size used for the fit.
        domain_min, domain_max: the LUT's input domain.
        smoothness, identity_prior, **solver: see :func:`~retouch_core.engine.fit.solve_grid`.

    Returns:
        (B, 12, D, H_g, W_g) float32 grid, constant over space.

    Example:
        >>> from retouch_core.engine.grid import grid_from_affine
        >>> lut = edit_to_lut(lambda x: 0.8 * x + 0.1, size=5)  # a global affine edit fits exactly
        >>> grid = lut_to_grid(lut, depth=4, height=2, width=2, samples=5)
        >>> expected = grid_from_affine(torch.tensor([[0.8, 0, 0, 0.1], [0, 0.8, 0, 0.1], [0, 0, 0.8, 0.1]]), 4, 2, 2)
        >>> grid.shape, torch.allclose(grid, expected, atol=1e-4)
        (torch.Size([1, 12, 4, 2, 2]), True)
    """
    lut = check_lut(lut)
    _check_colour_guide(guide)
    if not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    if not all(isinstance(n, int) and n >= 1 for n in (depth, height, width)):
        raise ValueError(f"grid size must be positive integers, got D={depth}, H_g={height}, W_g={width}")
    batch = lut.shape[0]
    colours = _lattice_image(samples, batch, lut.device, torch.float64)
    target = apply_lut(colours, lut.double(), domain_min=domain_min, domain_max=domain_max)
    params = guide.params() if hasattr(guide, "params") and callable(guide.params) else guide
    if params is None:
        params = GuideParams.identity(device=lut.device, dtype=torch.float64)
    params = params.to(dtype=torch.float64)
    params.check(batch=batch)
    z = apply_guide(colours, params)
    equations = accumulate_normal_equations(colours, target, z, (depth, 1, 1))
    grid = solve_grid(equations, smoothness=smoothness, identity_prior=identity_prior, **solver)
    return grid.float().expand(-1, -1, -1, height, width).contiguous()


# ----------------------------------------------------------------------------- .cube files
def format_cube(
    lut: torch.Tensor,
    *,
    title: str = "InstantRetouch",
    domain_min=(0.0, 0.0, 0.0),
    domain_max=(1.0, 1.0, 1.0),
    decimals: int = 6,
) -> str:
    """The text of a ``.cube`` file for one LUT (see :func:`write_cube`).

    Example:
        >>> print(format_cube(identity_lattice(2), title="identity", decimals=1), end="")  # red fastest
        TITLE "identity"
        LUT_3D_SIZE 2
        DOMAIN_MIN 0.0 0.0 0.0
        DOMAIN_MAX 1.0 1.0 1.0
        0.0 0.0 0.0
        1.0 0.0 0.0
        0.0 1.0 0.0
        1.0 1.0 0.0
        0.0 0.0 1.0
        1.0 0.0 1.0
        0.0 1.0 1.0
        1.0 1.0 1.0
    """
    lut = check_lut(lut)
    if lut.shape[0] != 1:
        raise ValueError(f"a .cube file holds one LUT, got a batch of {lut.shape[0]}")
    if lut.shape[-1] > MAX_CUBE_SIZE:
        raise ValueError(f"the .cube format allows LUT sizes up to {MAX_CUBE_SIZE}, got {lut.shape[-1]}")
    if any(ch in title for ch in '"\r\n'):
        raise ValueError(f"title must not contain quotes or line breaks, got {title!r}")
    if not isinstance(decimals, int) or not 1 <= decimals <= 17:
        raise ValueError(f"decimals must be an integer in 1..17, got {decimals!r}")
    low, high = _domain(domain_min, domain_max, torch.zeros(1, dtype=torch.float64))
    size = lut.shape[-1]
    # (3, b, g, r) -> rows ordered b, g, r with r fastest, as the format requires.
    rows = lut[0].permute(1, 2, 3, 0).reshape(-1, 3).double().cpu().numpy()
    body = io.StringIO()
    np.savetxt(body, rows, fmt=f"%.{decimals}f")
    header = [
        f'TITLE "{title}"',
        f"LUT_3D_SIZE {size}",
        "DOMAIN_MIN " + " ".join(f"{v:.{decimals}f}" for v in low.flatten().tolist()),
        "DOMAIN_MAX " + " ".join(f"{v:.{decimals}f}" for v in high.flatten().tolist()),
    ]
    return "\n".join(header) + "\n" + body.getvalue()


def write_cube(path, lut: torch.Tensor, **kwargs) -> None:
    """Write one LUT as a ``.cube`` file (red fastest).

    Args:
        path: destination file.
        lut: (1, 3, N, N, N) or (3, N, N, N), indexed [.., c, b, g, r].
        **kwargs: ``title``, ``domain_min``, ``domain_max``, ``decimals`` (default 6) of
            :func:`format_cube`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_cube(Path(folder) / "negative.cube", 1 - identity_lattice(2), title="negative")
        ...     back = read_cube(Path(folder) / "negative.cube")
        >>> back.shape, torch.equal(back, 1 - identity_lattice(2))
        (torch.Size([1, 3, 2, 2, 2]), True)
    """
    Path(path).write_text(format_cube(lut, **kwargs), encoding="utf-8")


class CubeFormatError(ValueError):
    """A ``.cube`` file that cannot be interpreted; the message names the line.

    Example:
        >>> parse_cube("LUT_3D_SIZE 2\\n0 0 0", source="short.cube")
        Traceback (most recent call last):
        retouch_core.engine.lut.CubeFormatError: short.cube:2: LUT_3D_SIZE 2 needs 8 data lines, found 1
    """


class CubeWarning(UserWarning):
    """Something in a ``.cube`` file was skipped; the message names the line.

    Example:
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     cube = parse_cube("LUT_3D_SIZE 2\\nFANCY_KEY 1\\n" + "0 0 0\\n" * 8)
        >>> caught[0].category.__name__, str(caught[0].message)
        ('CubeWarning', "<string>:2: unknown keyword 'FANCY_KEY' skipped")
    """


def parse_cube(text: str, *, source: str = "<string>", dtype=torch.float32) -> CubeLUT:
    """Parse the text of a ``.cube`` file leniently, as real-world files need.

    Accepted: 3D LUTs, 1D LUTs, Resolve's 1D shaper + 3D pair (``LUT_1D_SIZE`` and
    ``LUT_3D_SIZE`` in one file, the 1D table first), ``LUT_IN_VIDEO_RANGE`` /
    ``LUT_OUT_VIDEO_RANGE``, values outside the domain, CRLF or CR line ends, a BOM, ``#``
    comments on any line, an unquoted TITLE and keywords after the data. Unknown keywords are
    skipped with a :class:`CubeWarning`.

    Args:
        text: the file's contents.
        source: name used in messages.
        dtype: dtype of the returned tables (float64 keeps every printed digit).

    Returns:
        :class:`CubeLUT`.

    Raises:
        CubeFormatError: with ``source:line``, only for what cannot be interpreted: a data
            line without exactly 3 numbers, non-finite values, no size keyword, a size out of
            range or given twice, a keyword with the wrong number of values, too few / too
            many data lines, or an input range with max <= min.

    Example:
        >>> rows = "\\n".join(f"{1 - r} {1 - g} {1 - b}" for b in (0, 1) for g in (0, 1) for r in (0, 1))
        >>> cube = parse_cube('TITLE "negative"\\nLUT_3D_SIZE 2\\n' + rows)
        >>> cube.title, cube.lut.shape, cube.lut[0, :, 0, 0, 1]  # pure red -> cyan
        ('negative', torch.Size([1, 3, 2, 2, 2]), tensor([0., 1., 1.]))
        >>> parse_cube("LUT_1D_SIZE 3\\n0 0 0\\n0.25 0.25 0.25\\n1 1 1").shaper  # (3, M), no 3D table
        tensor([[0.0000, 0.2500, 1.0000],
                [0.0000, 0.2500, 1.0000],
                [0.0000, 0.2500, 1.0000]])
    """
    header = _CubeHeader()
    # Compact row storage: a 256^3 file has 16.7 M data lines, which as Python lists took 5.6 GB.
    numbers, values = array("l"), array("d")
    for number, raw in enumerate(io.StringIO(text.lstrip("\ufeff"), newline=None), start=1):
        where = f"{source}:{number}"
        line = raw.strip()
        if re.match(r"TITLE\b", line, flags=re.IGNORECASE):
            header.title = _parse_title(line)
            continue
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if re.match(r"[A-Za-z_]", parts[0]) and not _is_number(parts[0]):
            header.read(parts, where)
            continue
        if len(parts) != 3:
            raise CubeFormatError(f"{where}: expected 3 values (r g b), got {len(parts)}: {raw.strip()!r}")
        numbers.append(number)
        values.extend(_floats(parts, where))
    return header.build(numbers, values, source, dtype)


MAX_CUBE_1D_SIZE = 65536  # Resolve's limit for 1D tables
_UNIT_RANGE = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@dataclass
class _CubeHeader:
    """The keywords of a ``.cube`` file, collected while reading (they may come in any order)."""

    title: str = ""
    size_1d: int | None = None
    size_3d: int | None = None
    domain: dict | None = None  # DOMAIN_MIN / DOMAIN_MAX (Adobe: the first table's input)
    range_1d: tuple | None = None  # LUT_1D_INPUT_RANGE (Resolve)
    range_3d: tuple | None = None  # LUT_3D_INPUT_RANGE (Resolve)
    video_in: bool = False
    video_out: bool = False

    def read(self, parts: list[str], where: str) -> None:
        key = parts[0].upper()
        if key in ("LUT_IN_VIDEO_RANGE", "LUT_OUT_VIDEO_RANGE"):
            setattr(self, "video_in" if key == "LUT_IN_VIDEO_RANGE" else "video_out", True)
        elif key in ("LUT_1D_SIZE", "LUT_3D_SIZE"):
            attr, limit = ("size_1d", MAX_CUBE_1D_SIZE) if key == "LUT_1D_SIZE" else ("size_3d", MAX_CUBE_SIZE)
            if getattr(self, attr) is not None:
                raise CubeFormatError(f"{where}: {key} given twice")
            if len(parts) != 2 or not re.fullmatch(r"\d+", parts[1]):
                raise CubeFormatError(f"{where}: expected {key} <integer>, got {' '.join(parts)!r}")
            size = int(parts[1])
            if not 2 <= size <= limit:
                raise CubeFormatError(f"{where}: {key} must be in 2..{limit}, got {size}")
            setattr(self, attr, size)
        elif key in ("DOMAIN_MIN", "DOMAIN_MAX"):
            if len(parts) != 4:
                raise CubeFormatError(f"{where}: {key} needs 3 values, got {len(parts) - 1}")
            self.domain = self.domain or {"DOMAIN_MIN": _UNIT_RANGE[0], "DOMAIN_MAX": _UNIT_RANGE[1]}
            self.domain[key] = tuple(_floats(parts[1:], where))
        elif key in ("LUT_1D_INPUT_RANGE", "LUT_3D_INPUT_RANGE"):  # one range for all channels
            if len(parts) != 3:
                raise CubeFormatError(f"{where}: {key} needs 2 values, got {len(parts) - 1}")
            low, high = _floats(parts[1:], where)
            setattr(self, "range_1d" if key == "LUT_1D_INPUT_RANGE" else "range_3d", ((low,) * 3, (high,) * 3))
        else:
            warnings.warn(f"{where}: unknown keyword {parts[0]!r} skipped", CubeWarning, stacklevel=3)

    def build(self, numbers: array, values: array, source: str, dtype) -> CubeLUT:
        """The tables from the data lines: their line ``numbers`` and flat r, g, b ``values``."""
        if self.size_1d is None and self.size_3d is None:
            raise CubeFormatError(f"{source}: no LUT_3D_SIZE or LUT_1D_SIZE line; not a .cube LUT")
        n1, n3 = self.size_1d or 0, (self.size_3d or 0) ** 3
        if len(numbers) != n1 + n3:
            sizes = " and ".join(f"{k} {v}" for k, v in (("LUT_1D_SIZE", self.size_1d), ("LUT_3D_SIZE", self.size_3d)) if v)
            line = numbers[n1 + n3] if len(numbers) > n1 + n3 else (numbers[-1] if numbers else 0)
            raise CubeFormatError(f"{source}:{line}: {sizes} needs {n1 + n3} data lines, found {len(numbers)}")
        table = torch.frombuffer(values, dtype=torch.float64).clone().reshape(-1, 3) if values else torch.zeros(0, 3, dtype=torch.float64)
        domain = (self.domain["DOMAIN_MIN"], self.domain["DOMAIN_MAX"]) if self.domain else None
        shaper, lut = None, None
        shaper_range = lut_range = _UNIT_RANGE
        if n1:
            shaper = table[:n1].T.to(dtype).contiguous()  # (3, M)
            shaper_range = self.range_1d or domain or _UNIT_RANGE
        if n3:
            size = self.size_3d
            # rows (b, g, r) with red fastest -> (1, 3, b, g, r)
            lut = table[n1:].reshape(size, size, size, 3).permute(3, 0, 1, 2).unsqueeze(0).to(dtype).contiguous()
            # After a shaper the 3D table sees the shaper's output: DOMAIN_* belongs to the shaper.
            lut_range = self.range_3d or (None if n1 else domain) or _UNIT_RANGE
        for (low, high), what in ((shaper_range, "1D"), (lut_range, "3D")):
            if not all(h > l for l, h in zip(low, high)):
                raise CubeFormatError(f"{source}: {what} input range max {high} must exceed min {low} in every channel")
        return CubeLUT(
            lut=lut, title=self.title, domain_min=lut_range[0], domain_max=lut_range[1], shaper=shaper,
            shaper_min=shaper_range[0], shaper_max=shaper_range[1], video_in=self.video_in, video_out=self.video_out,
        )


def _parse_title(line: str) -> str:
    """TITLE "text" (the specification) or TITLE text (as some exporters write it)."""
    rest = line[len("TITLE"):].strip()
    match = re.fullmatch(r'"([^"]*)"\s*(#.*)?', rest)
    return match.group(1) if match else rest.split("#", 1)[0].strip().strip('"')


def _is_number(text: str) -> bool:
    """True for anything float() accepts, so 'nan' / 'inf' data get a value error, not 'unknown keyword'."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _floats(parts: list[str], where: str) -> list[float]:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise CubeFormatError(f"{where}: not a number in {' '.join(parts)!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise CubeFormatError(f"{where}: values must be finite, got {' '.join(parts)!r}")
    return values


def load_cube(path, *, dtype=torch.float32) -> CubeLUT:
    """Read a ``.cube`` file with its title and domain (see :func:`parse_cube`).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_cube(Path(folder) / "log.cube", identity_lattice(2), title="log", domain_max=(16.0,) * 3)
        ...     cube = load_cube(Path(folder) / "log.cube")
        >>> cube.title, cube.domain_max  # pass the domain on to apply_lut
        ('log', (16.0, 16.0, 16.0))
    """
    path = Path(path)
    return parse_cube(path.read_text(encoding="utf-8-sig"), source=str(path), dtype=dtype)


def read_cube(path, *, dtype=torch.float32) -> torch.Tensor:
    """Read a ``.cube`` file with the standard [0, 1] domain as a LUT tensor.

    Args:
        path: the file.
        dtype: LUT dtype (float64 keeps every printed digit).

    Returns:
        (1, 3, N, N, N) LUT indexed [.., c, b, g, r].

    Raises:
        CubeFormatError: malformed file, or a domain other than [0, 1] (use :func:`load_cube`
            and pass its domain to :func:`apply_lut` for those).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_cube(Path(folder) / "id.cube", identity_lattice(3))
        ...     lut = read_cube(Path(folder) / "id.cube")
        ...     write_cube(Path(folder) / "log.cube", identity_lattice(3), domain_max=(16.0,) * 3)
        ...     read_cube(Path(folder) / "log.cube")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        retouch_core.engine.lut.CubeFormatError: ...log.cube: domain ... (16.0, 16.0, 16.0) is not [0, 1]; ...
        >>> torch.equal(lut, identity_lattice(3))
        True
    """
    cube = load_cube(path, dtype=dtype)
    if not cube.is_plain_3d:
        raise CubeFormatError(
            f"{path}: has a 1D table or video range flags, not a 3D table alone; use load_cube() and "
            "lut_interp.apply_cube()"
        )
    if cube.domain_min != (0.0, 0.0, 0.0) or cube.domain_max != (1.0, 1.0, 1.0):
        raise CubeFormatError(
            f"{path}: domain {cube.domain_min} .. {cube.domain_max} is not [0, 1]; use load_cube() "
            "and apply_lut(..., domain_min=..., domain_max=...)"
        )
    return cube.lut

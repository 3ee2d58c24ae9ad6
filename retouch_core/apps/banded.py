"""Edit an image held as file pixels in row bands, so memory stays bounded at any size.

A 100-megapixel photo is 1.2 GB as a float tensor, and a whole-image pipeline holds several
such tensors at once (decoded file, float input, output, quantised copy). Here the file's own
(H, W, C) uint8/uint16 array is the only full-size buffer: the prediction runs on a small
copy made band by band (:func:`small_copy`), and the edit converts one band to float, edits
it and writes it back at the file's bit depth into the same array (:func:`edit_in_place`).
Peak memory is then the 8/16-bit image plus a few bands, a fraction of the float image.

Each band is sliced exactly as in the whole image (``slice_and_apply(..., band=...)``), so
the result equals the whole-image path's, byte for byte for the same grid.

Example::

    pixels, info = read_pixels("big.jpg")
    grid = model.predict(small_copy(pixels), "warmer")[0]
    edit_in_place(pixels, lambda band, rows: slice_and_apply(band, grid.grid, grid.guide, band=rows))
    write_pixels("out.jpg", pixels, info)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..formats.image_files import pixels_to_tensor

BAND_PIXELS = 1 << 20  # a 12 MB float RGB band: small next to any large image
PREDICT_SIZE = 1536  # long side of the copy the grid is predicted on (predictors work below it)

BandEdit = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


def _band_rows(width: int, band_pixels: int, multiple: int = 1) -> int:
    rows = max(1, band_pixels // width)
    return max(multiple, rows // multiple * multiple)


def float_bands(pixels: np.ndarray, rows: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(top, band)`` for each band of ``rows`` rows of ``pixels``, band as (1, C, h, W) float32
    in [0, 1]. The band is one reused buffer, valid until the next step: a fresh 12 MB tensor per
    band fragments glibc's heap (800 MB of a 100-megapixel run was never given back).

    Example:
        >>> pixels = np.full((5, 2, 3), 255, dtype=np.uint8)  # (H, W, C)
        >>> [(top, tuple(band.shape), band.max().item()) for top, band in float_bands(pixels, rows=2)]
        [(0, (1, 3, 2, 2), 1.0), (2, (1, 3, 2, 2), 1.0), (4, (1, 3, 1, 2), 1.0)]
    """
    height, width, channels = pixels.shape
    buffer = torch.empty((1, channels, min(rows, height), width))
    for top in range(0, height, rows):
        yield top, pixels_to_tensor(pixels[top : top + rows], out=buffer[:, :, : min(rows, height - top)])


def small_copy(pixels: np.ndarray, max_side: int = PREDICT_SIZE, band_pixels: int = BAND_PIXELS) -> torch.Tensor:
    """A box-filtered copy with its long side at most ``max_side``, made band by band.

    Args:
        pixels: (H, W, C) uint8 or uint16.

    Returns:
        (1, C, ceil(H / f), ceil(W / f)) float32 in [0, 1], with f the smallest integer factor
        that fits; the image itself (as float) when it already fits.

    Example:
        >>> pixels = np.zeros((6, 4, 3), dtype=np.uint8)
        >>> pixels[:3] = 255  # white top half, black bottom half
        >>> copy = small_copy(pixels, max_side=2, band_pixels=4)  # f = 3: two bands of 3 rows
        >>> copy.shape
        torch.Size([1, 3, 2, 2])
        >>> copy[0, 0]
        tensor([[1., 1.],
                [0., 0.]])
    """
    height, width, _ = pixels.shape
    factor = max(1, -(-max(height, width) // max_side))
    rows = _band_rows(width, band_pixels, factor)
    return torch.cat([F.avg_pool2d(band, factor, ceil_mode=True) for _, band in float_bands(pixels, rows)], dim=2)


def edit_in_place(pixels: np.ndarray, edit: BandEdit, band_pixels: int = BAND_PIXELS) -> None:
    """Replace ``pixels`` by ``edit`` of them, one row band at a time.

    Args:
        pixels: (H, W, C) uint8 or uint16, overwritten.
        edit: takes a (1, C, h, W) float32 band in [0, 1] and ``(first_row, H)``, returns the
            edited (1, C, h, W) band; values are clamped to [0, 1] and rounded to the array's
            bit depth, as :func:`~retouch_core.formats.image_files.write_image` does. The
            band it is given is one buffer reused for every band (:func:`float_bands`): it must
            not keep it.
        band_pixels: pixels per band (bounds the float memory).

    Example:
        >>> pixels = np.arange(24, dtype=np.uint8).reshape(4, 2, 3)  # (H, W, C)
        >>> original = pixels.copy()
        >>> edit_in_place(pixels, lambda band, rows: 1 - band, band_pixels=2)  # one row per band
        >>> np.array_equal(pixels, 255 - original)
        True
    """
    height, width, _ = pixels.shape
    scale = float(np.iinfo(pixels.dtype).max)
    rows = _band_rows(width, band_pixels)
    bands = float_bands(pixels, rows)
    for top, band in tqdm(bands, desc="edit", unit="band", total=-(-height // rows), file=sys.stderr, disable=None,
                          leave=False):
        out = edit(band, (top, height))
        levels = (out[0].clamp(0, 1) * scale).round().to(torch.int32)
        pixels[top : top + rows] = levels.permute(1, 2, 0).numpy()


def to_bit_depth(pixels: np.ndarray, bit_depth: int, band_pixels: int = BAND_PIXELS) -> np.ndarray:
    """``pixels`` at ``bit_depth`` (8 or 16), converted band by band; the array itself if it is.

    Example:
        >>> pixels = np.array([[[0, 1, 255]]], dtype=np.uint8)
        >>> to_bit_depth(pixels, 16)  # 255 * 257 = 65535: full scale stays full scale
        array([[[    0,   257, 65535]]], dtype=uint16)
        >>> to_bit_depth(pixels, 8) is pixels
        True
    """
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    if pixels.dtype == dtype:
        return pixels
    out = np.empty(pixels.shape, dtype)
    scale = float(np.iinfo(dtype).max)
    rows = _band_rows(pixels.shape[1], band_pixels)
    for top, band in float_bands(pixels, rows):
        out[top : top + rows] = (band[0] * scale).round().to(torch.int32).permute(1, 2, 0).numpy()
    return out

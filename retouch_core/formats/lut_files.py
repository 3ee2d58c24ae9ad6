"""LUT files as :class:`~retouch_core.engine.lut.CubeLUT`: ``.cube`` text and Hald CLUT images.

A Hald CLUT (darktable's and RawTherapee's film simulations, G'MIC, ImageMagick's ``-hald-clut``)
is an image of level ``L``: a square of side ``L^3`` pixels holding a 3D LUT of size ``N = L^2``.
Pixel ``i`` in row-major order is the output for the input colour ``(i mod N, i div N mod N,
i div N^2) / (N - 1)``, red fastest: the ``.cube`` order, so the pixels are the LUT's rows.
8- and 16-bit PNG and TIFF files are read at their own bit depth.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..engine.lut import CubeLUT, load_cube
from .image_files import read_image

CUBE_SUFFIXES = (".cube",)
HALD_SUFFIXES = (".png", ".tif", ".tiff")
LUT_SUFFIXES = CUBE_SUFFIXES + HALD_SUFFIXES
MAX_HALD_LEVEL = 16  # 4096 x 4096 pixels, a 256^3 LUT: the .cube size limit


class HaldFormatError(ValueError):
    """An image that is not a Hald CLUT.

    Example:
        >>> hald_to_lut(torch.zeros(1, 3, 10, 10), source="photo.png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        retouch_core.formats.lut_files.HaldFormatError: photo.png: a Hald CLUT is an RGB square ... 10x10
    """


def hald_to_lut(image: torch.Tensor, source: str = "<image>") -> torch.Tensor:
    """A Hald CLUT image as a LUT tensor.

    Args:
        image: (1, C, S, S) float with C in {3, 4} (alpha ignored) and ``S = L^3``.

    Returns:
        (1, 3, L^2, L^2, L^2) LUT indexed [.., c, b, g, r].

    Example:
        >>> from retouch_core.engine.lut import identity_lattice
        >>> hald = identity_lattice(4).reshape(1, 3, 8, 8)  # the level-2 identity Hald image, (1, 3, 8, 8)
        >>> lut = hald_to_lut(hald)
        >>> lut.shape, torch.equal(lut, identity_lattice(4))
        (torch.Size([1, 3, 4, 4, 4]), True)
    """
    channels, height, width = image.shape[1:]
    level = round(width ** (1 / 3))
    if channels not in (3, 4) or height != width or level**3 != width or not 2 <= level <= MAX_HALD_LEVEL:
        raise HaldFormatError(
            f"{source}: a Hald CLUT is an RGB square of side L^3 for a level L in 2..{MAX_HALD_LEVEL} "
            f"(8x8, 27x27, 64x64, 125x125, 216x216, 343x343, 512x512, ...), got {channels} channel(s), {width}x{height}"
        )
    size = level * level
    return image[:, :3].reshape(1, 3, size, size, size).contiguous()


def read_hald(path: str | Path, *, dtype=torch.float32) -> CubeLUT:
    """Read a Hald CLUT image file (see the module docstring).

    Example:
        >>> import tempfile
        >>> from retouch_core.engine.lut import identity_lattice
        >>> from retouch_core.formats.image_files import write_image
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_image(Path(folder) / "identity.png", identity_lattice(4).reshape(1, 3, 8, 8))
        ...     cube = read_hald(Path(folder) / "identity.png")
        >>> cube.title, cube.lut.shape, torch.allclose(cube.lut, identity_lattice(4))  # 8 bit holds k / 3 exactly
        ('identity', torch.Size([1, 3, 4, 4, 4]), True)
    """
    path = Path(path)
    image, _ = read_image(path)
    return CubeLUT(lut=hald_to_lut(image, str(path)).to(dtype), title=path.stem, domain_min=(0.0,) * 3, domain_max=(1.0,) * 3)


def read_lut_file(path: str | Path, *, dtype=torch.float32) -> CubeLUT:
    """Read a ``.cube`` file or a Hald CLUT image, chosen by the file suffix.

    Example:
        >>> import tempfile
        >>> from retouch_core.engine.lut import identity_lattice, write_cube
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_cube(Path(folder) / "look.CUBE", identity_lattice(2), title="look")
        ...     cube = read_lut_file(Path(folder) / "look.CUBE")
        >>> cube.title, cube.lut.shape
        ('look', torch.Size([1, 3, 2, 2, 2]))
        >>> read_lut_file("look.txt")
        Traceback (most recent call last):
        ValueError: look.txt: not a LUT file; expected one of .cube, .png, .tif, .tiff
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CUBE_SUFFIXES:
        return load_cube(path, dtype=dtype)
    if suffix in HALD_SUFFIXES:
        return read_hald(path, dtype=dtype)
    raise ValueError(f"{path}: not a LUT file; expected one of {', '.join(LUT_SUFFIXES)}")

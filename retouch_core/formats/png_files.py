"""PNG writer (8 and 16 bit), streamed band by band through the fastest deflate installed.

A PNG is a signature and chunks: IHDR (size and layout), optional iCCP (colour profile) and
eXIf, IDAT (the filtered rows, deflated as one zlib stream) and IEND. Writing them here instead
of through Pillow (8 bit) and pypng (16 bit) lets the rows be filtered and compressed a band at
a time, with no full-size copy of the image, and lets the deflate come from ``isal`` (Intel's
ISA-L, a PyPI wheel) when it is installed: several times faster than zlib, for a file of about
the same size (README, "24, 50 and 100 megapixel files"). Without it, the standard library's
zlib at Pillow's default level 6 is used. Either way the decoded pixels are exactly the input.

Every row uses the "Sub" filter (each byte minus the byte one pixel to its left): one numpy
subtraction per band, and on photos it compresses about as well as Pillow's choice.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    >>> path = Path(tempfile.mkdtemp()) / "tiny.png"
    >>> write_png(path, pixels)
    >>> bool((np.asarray(Image.open(path)) == pixels).all())
    True
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

try:  # ISA-L's deflate: same zlib format, several times faster
    from isal import isal_zlib as _deflate

    DEFLATE = "isal"
    _LEVEL = _deflate.ISAL_DEFAULT_COMPRESSION
except ImportError:  # pragma: no cover - depends on the environment
    _deflate = zlib
    DEFLATE = "zlib"
    _LEVEL = 6  # Pillow's default

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types by channel count: grey, grey + alpha, RGB, RGBA
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
#: bytes of filtered rows handed to the deflate at a time (bounds the writer's extra memory)
BAND_BYTES = 8 << 20
_SUB = 1  # PNG filter type "Sub"


def write_png(path: str | Path, array: np.ndarray, icc: bytes | None = None, exif: bytes | None = None) -> None:
    """Write (H, W, C) uint8 or uint16 pixels, C in 1-4, as a PNG of the same bit depth.

    Args:
        path: the file to write (overwritten).
        array: the pixels; uint16 gives a 16-bit PNG.
        icc: ICC profile stored as an iCCP chunk.
        exif: EXIF block (TIFF header onwards, without the ``Exif\\0\\0`` prefix) as an eXIf chunk.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> pixels = np.array([[[0], [1000]], [[40000], [65535]]], dtype=np.uint16)  # (H, W, 1): 16-bit grey
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_png(Path(folder) / "grey16.png", pixels)
        ...     with Image.open(Path(folder) / "grey16.png") as image:
        ...         mode, back = image.mode, np.asarray(image)
        >>> mode, back.tolist()
        ('I;16', [[0, 1000], [40000, 65535]])
    """
    if array.ndim != 3 or array.shape[-1] not in COLOUR_TYPES or array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png takes (H, W, 1-4) uint8 or uint16 pixels, got {array.shape} {array.dtype}")
    height, width, channels = array.shape
    depth = 16 if array.dtype == np.uint16 else 8
    with open(path, "wb") as f:
        f.write(PNG_SIGNATURE)
        _chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, depth, COLOUR_TYPES[channels], 0, 0, 0))
        if icc:
            _chunk(f, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))  # name, NUL, method 0 (zlib)
        if exif:
            _chunk(f, b"eXIf", exif)
        stream = _deflate.compressobj(_LEVEL)
        row_bytes = width * channels * depth // 8
        band = max(1, BAND_BYTES // (row_bytes + 1))
        for top in range(0, height, band):
            _chunk(f, b"IDAT", stream.compress(_sub_filtered(array[top : top + band], channels * depth // 8)))
        _chunk(f, b"IDAT", stream.flush())
        _chunk(f, b"IEND", b"")


def _sub_filtered(rows: np.ndarray, pixel_bytes: int) -> np.ndarray:
    """Rows as PNG scanlines (big-endian samples), each a filter-type byte then its Sub-filtered bytes."""
    raw = rows.astype(">u2", copy=False) if rows.dtype == np.uint16 else rows
    raw = raw.reshape(rows.shape[0], -1).view(np.uint8)
    out = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
    out[:, 0] = _SUB
    out[:, 1 : 1 + pixel_bytes] = raw[:, :pixel_bytes]
    np.subtract(raw[:, pixel_bytes:], raw[:, :-pixel_bytes], out=out[:, 1 + pixel_bytes :])  # wraps mod 256
    return out


def _chunk(f, kind: bytes, data: bytes) -> None:
    """Length, type, data, CRC-32 of type + data."""
    f.write(struct.pack(">I", len(data)) + kind)
    f.write(data)
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

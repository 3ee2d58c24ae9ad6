"""Image files in and out, at the file's own bit depth and with its colour metadata.

:func:`read_image` gives a (1, C, H, W) float32 tensor in [0, 1] and an :class:`ImageInfo`;
:func:`write_image` writes such a tensor back. C is 1 (grey), 2 (grey + alpha), 3 (RGB) or
4 (RGBA): the channel layout of the file is kept, never forced to RGB.

Formats and their decoders (every PNG is written by :mod:`.png_files`, streamed):

====== =========== ===================================================================
PNG    8, 16 bit   Pillow for <= 8 bit; pypng for 16 bit (Pillow's RGB modes are 8-bit
                   only and silently drop the low byte)
TIFF   8, 16 bit   tifffile (one page, previews aside; grey, RGB, optional alpha)
JPEG   8 bit       Pillow
WebP   8 bit       Pillow
BMP    8 bit       Pillow
====== =========== ===================================================================

Every reader refuses a file whose header claims more than ``max_pixels`` pixels before decoding
it (default: Pillow's own limit), and animations / multi-page files, which could only be edited
one frame at a time.

Metadata: the ICC profile is kept in every format that can hold one (the pixels stay in the
input's colour space, so its profile still describes them); EXIF is kept for JPEG, PNG and
WebP. The EXIF/TIFF orientation is applied on read, exactly as Pillow's
``ImageOps.exif_transpose``, so edits and masks see the photo upright, and written as 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import struct
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import png
import tifffile
import torch
from PIL import Image, UnidentifiedImageError

from .png_files import PNG_SIGNATURE, write_png

ORIENTATION_TAG = 0x0112  # EXIF and TIFF share the tag number
ICC_PROFILE_TAG = 34675  # TIFF InterColorProfile
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
EXIF_HEADER = b"Exif\x00\x00"

#: Output format -> file name suffixes.
SUFFIXES: dict[str, tuple[str, ...]] = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
}
#: Format -> bit depths (per channel) it can store, the first being the fallback.
BIT_DEPTHS: dict[str, tuple[int, ...]] = {"PNG": (8, 16), "TIFF": (8, 16), "JPEG": (8,), "WEBP": (8,), "BMP": (8,)}
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channel count -> Pillow-style mode name
DEFAULT_QUALITY = 95
#: Largest image (width x height) any reader decodes unless told otherwise: Pillow's own
#: decompression-bomb threshold, so a small file claiming a huge size is refused before decoding.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# Temporary files of write_image: ".ir<pid>-<token>.part", short so that any valid output
# name still works; the pid tells a stale one (its writer is gone) from one being written.
STALE_AGE_S = 24 * 3600  # where no process can be asked (Windows), a day-old temporary is stale
_PART_PATTERN = re.compile(r"^\.ir(\d+)-[0-9a-f]+\.part$|^\..+\.(\d+)\.part$")  # 2nd: older releases

# Cameras and phones write JPEGs with extra frames (multi-picture format); the first frame is
# the photo.
_PILLOW_FORMATS = {"MPO": "JPEG"}
# Pillow mode -> the mode we decode it to; other modes are refused. Palette and 1-bit images
# become plain 8-bit images; CMYK is refused because converting it needs its ICC profile.
_PILLOW_MODES = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "P": "RGB", "PA": "RGBA", "RGB": "RGB",
                 "RGBA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB"}


_DECODER_ERRORS = (OSError, ValueError, SyntaxError, EOFError, KeyError, IndexError, png.Error,
                   struct.error, UnicodeDecodeError, Image.DecompressionBombError)


class ImageFormatError(ValueError):
    """The file is not an image this module can read or write.

    Example:
        >>> try:
        ...     check_writable("scan.jpg", "LA")
        ... except ValueError as err:  # a ValueError, so callers need not import this module
        ...     print(f"{type(err).__name__}: {err}")
        ImageFormatError: JPEG has no alpha channel: write this image as .png, .tif or .webp
    """


class ImageTooLargeError(ImageFormatError):
    """The file claims more pixels than the reader's limit (refused before decoding).

    Example:
        >>> try:
        ...     check_pixel_count("pano.png", 4000, 3000, max_pixels=10_000_000)
        ... except ImageFormatError as err:  # the base class catches it too
        ...     print(f"{type(err).__name__}: {str(err).split(';')[0]}")
        ImageTooLargeError: pano.png: 4000x3000 is 12.0 megapixels, more than the limit of 10.0
    """


@dataclass(frozen=True)
class ImageInfo:
    """What a file held besides its pixels; :func:`write_image` uses it to write alike.

    Attributes:
        format: "PNG", "JPEG", "TIFF", "WEBP" or "BMP".
        bit_depth: bits per channel of the file, 8 or 16.
        mode: "L", "LA", "RGB" or "RGBA" (the tensor has 1, 2, 3 or 4 channels).
        icc_profile: the embedded ICC profile, or None.
        exif: raw EXIF block (``b"Exif\\0\\0"`` + TIFF structure) as read, or None.
        orientation: the EXIF/TIFF orientation found (1-8); already applied to the pixels.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_image(Path(folder) / "grey.png", torch.zeros(1, 1, 2, 2), bit_depth=16)
        ...     info = read_image(Path(folder) / "grey.png")[1]
        >>> info  # icc_profile and exif (none here) are left out of the repr: they are bytes
        ImageInfo(format='PNG', bit_depth=16, mode='L', orientation=1)
    """

    format: str
    bit_depth: int
    mode: str
    icc_profile: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)
    orientation: int = 1


# ----------------------------------------------------------------------------------- reading
def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[torch.Tensor, ImageInfo]:
    """Read an image file upright, at its own bit depth.

    Args:
        path: a PNG, JPEG, TIFF, WebP or BMP file; the format is detected from the content.
        max_pixels: largest width x height decoded; checked from the header, before decoding.

    Returns:
        (1, C, H, W) float32 tensor in [0, 1], C = 1 (grey), 2 (grey + alpha), 3 or 4 (RGBA),
        with the orientation applied; and the file's :class:`ImageInfo`.

    Raises:
        FileNotFoundError: no such file.
        ImageFormatError: not an image, a damaged one, a format/layout not supported, or an
            animation / multi-page file (only its first frame could be edited).
        ImageTooLargeError: more than ``max_pixels`` pixels.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "grey.png"
        >>> write_image(path, torch.full((1, 3, 4, 6), 0.5), bit_depth=16)
        >>> image, info = read_image(path)
        >>> image.shape, info.bit_depth, round(image.mean().item(), 4)
        (torch.Size([1, 3, 4, 6]), 16, 0.5)
    """
    array, info = read_pixels(path, max_pixels)
    return pixels_to_tensor(array), info


def read_pixels(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image` without the float conversion: (H, W, C) uint8 or uint16, upright.

    A quarter (8 bit) or half (16 bit) of the float image's memory: what a caller that works
    in bands (:mod:`retouch_core.apps.banded`) keeps whole.

    Example:
        >>> import tempfile
        >>> pixels = np.array([[[0, 128, 255], [255, 0, 0]]], dtype=np.uint8)  # (H, W, C) = (1, 2, 3)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_pixels(Path(folder) / "two.png", pixels)
        ...     array, info = read_pixels(Path(folder) / "two.png")
        >>> array.shape, array.dtype, np.array_equal(array, pixels), info.mode
        ((1, 2, 3), dtype('uint8'), True, 'RGB')
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ImageFormatError(f"{path} is a folder, not an image")
    with open(path, "rb") as f:
        header = f.read(32)
    try:
        if header.startswith(TIFF_SIGNATURES):
            array, info = _read_tiff(path, header, max_pixels)
        else:
            array, info = _read_with_pillow(path, header, max_pixels)
    except ImageFormatError:
        raise
    except _DECODER_ERRORS as err:
        # Decoders report damaged files with many exception types; the user needs one message.
        raise ImageFormatError(f"{path}: damaged or unreadable image ({err})") from err
    return apply_orientation(array, info.orientation), info


def check_pixel_count(path, width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """ImageTooLargeError when a ``width`` x ``height`` image exceeds ``max_pixels``.

    Example:
        >>> check_pixel_count("photo.jpg", 6000, 4000)  # 24 MP: below Pillow's limit
        >>> check_pixel_count("photo.jpg", 6000, 4000, max_pixels=20_000_000)
        Traceback (most recent call last):
        retouch_core.formats.image_files.ImageTooLargeError: photo.jpg: 6000x4000 is 24.0 megapixels, more than the
        limit of 20.0; raise the limit (retouch --max-pixels) only for files you trust
    """
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{path}: {width}x{height} is {width * height / 1e6:.1f} megapixels, more than the limit of "
            f"{max_pixels / 1e6:.1f}; raise the limit (retouch --max-pixels) only for files you trust"
        )


@contextlib.contextmanager
def _no_pillow_pixel_limit():
    """Pillow's bomb check (a module global) is replaced by :func:`check_pixel_count`, which runs
    right after ``Image.open`` has read the header and before any pixel is decoded."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _read_with_pillow(path: Path, header: bytes, max_pixels: int) -> tuple[np.ndarray, ImageInfo]:
    """PNG, JPEG, WebP, BMP -> (H, W, C) uint8/uint16 array (not yet oriented) and info."""
    try:
        with _no_pillow_pixel_limit():
            image = Image.open(path)
    except UnidentifiedImageError as err:
        raise ImageFormatError(f"{path}: not an image file in a supported format ({', '.join(SUFFIXES)})") from err
    with image:
        fmt = _PILLOW_FORMATS.get(image.format, image.format)
        if fmt not in BIT_DEPTHS:
            raise ImageFormatError(f"{path}: {image.format} images are not supported ({', '.join(SUFFIXES)} are)")
        check_pixel_count(path, *image.size, max_pixels)
        frames = getattr(image, "n_frames", 1)
        if frames > 1 and fmt != "JPEG":  # a JPEG's extra frames (MPO) are previews of the photo
            raise ImageFormatError(
                f"{path}: this {image.format} holds {frames} frames (an animation or several pages); only "
                "single images are supported, and editing the first frame alone would lose the others. "
                "Extract the frames into separate files first"
            )
        if fmt == "PNG" and _png_bit_depth(header) == 16:
            array = _read_png16(path)
            mode = MODES[array.shape[-1]]
        else:
            array, mode = _pillow_pixels(image, path)
        # Only after decoding: an eXIf chunk may follow the PNG data (getexif loads it), and
        # Pillow's TIFF decoder turns the pixels upright itself and drops the tag.
        exif = image.getexif()
        info = ImageInfo(
            format=fmt,
            bit_depth=16 if array.dtype == np.uint16 else 8,
            mode=mode,
            icc_profile=image.info.get("icc_profile") or None,
            exif=_readable_exif(image.info.get("exif"), path),
            orientation=_valid_orientation(exif.get(ORIENTATION_TAG, 1)),
        )
    return array, info


def _readable_exif(raw: bytes | None, path: Path) -> bytes | None:
    """The EXIF block if Pillow can parse it again on write; a damaged one is dropped with a
    warning (the photo is fine, only its metadata cannot be carried over)."""
    if not raw:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about every damaged entry it skips
            Image.Exif().load(raw)
    except _DECODER_ERRORS as err:
        warnings.warn(f"{path}: damaged EXIF block not carried over ({err})", stacklevel=3)
        return None
    return raw


def _png_bit_depth(header: bytes) -> int:
    # IHDR is always the first chunk; its bit-depth byte sits at offset 24 of the file.
    if header.startswith(PNG_SIGNATURE) and header[12:16] == b"IHDR" and len(header) > 24:
        return header[24]
    return 8


def _read_png16(path: Path) -> np.ndarray:
    """16-bit PNG -> (H, W, C) uint16 via pypng (palette, tRNS and sBIT resolved by asDirect)."""
    width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
    depth = meta["bitdepth"]
    # Filled row by row: a list of rows stacked at the end held the image three times over.
    array = np.empty((height, width, meta["planes"]), np.uint16)
    for y, row in enumerate(rows):
        values = np.asarray(row).reshape(width, -1)  # an array('H') without copying, or a list
        if depth != 16:  # asDirect scales down to the significant bits (sBIT): stretch back to 16
            values = (values.astype(np.uint32) * 65535 + (2**depth - 1) // 2) // (2**depth - 1)
        array[y] = values
    return array


def _pillow_pixels(image: Image.Image, path: Path) -> tuple[np.ndarray, str]:
    """An 8-bit Pillow image -> (H, W, C) uint8 array and its mode ("L", "LA", "RGB", "RGBA")."""
    mode = _PILLOW_MODES.get(image.mode)
    if mode is None:
        raise ImageFormatError(
            f"{path}: {image.mode} images are not supported (grey, RGB and RGBA at 8 or 16 bit are;"
            " convert CMYK and 32-bit images first)"
        )
    if "transparency" in image.info and mode in ("L", "RGB"):  # colour-key transparency -> alpha
        mode += "A"
    return _converted_array(image, mode), mode


#: Bytes of converted pixels held at once while copying a decoded image out of Pillow.
COPY_BAND_BYTES = 16 << 20


def _converted_array(image: Image.Image, mode: str) -> np.ndarray:
    """A decoded Pillow image converted to ``mode`` -> writable (H, W, C) uint8 array.

    Copied band by band: ``np.array(image.convert(mode))`` holds the pixels three more times
    next to Pillow's own buffer (converted image, bytes object, array), 1 GB extra for a
    100-megapixel photo. Cropping keeps palette and transparency, so each band converts as
    the whole image would.
    """
    image.load()
    width, height = image.size
    channels = len(mode)
    array = np.empty((height, width, channels), np.uint8)
    rows = max(1, COPY_BAND_BYTES // (width * channels))
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        band = image.crop((0, top, width, bottom)).convert(mode)
        array[top:bottom] = np.asarray(band).reshape(bottom - top, width, channels)
    return array


def _read_tiff(path: Path, header: bytes, max_pixels: int) -> tuple[np.ndarray, ImageInfo]:
    """A single-image TIFF -> (H, W, C) uint8/uint16 array (not yet oriented) and info."""
    with _quiet_logger("tifffile"), tifffile.TiffFile(path) as tif:
        if not len(tif.pages):
            raise ImageFormatError(f"{path}: damaged TIFF (no readable image in it)")
        page = tif.pages[0]
        check_pixel_count(path, page.imagewidth, page.imagelength, max_pixels)
        _refuse_multi_page(path, tif)
        try:
            array = page.asarray()
        except ValueError as err:
            # Without the optional imagecodecs package tifffile cannot decode LZW or JPEG
            # compression, common in TIFFs from photo editors. Pillow can, but at 8 bit only.
            if page.bitspersample <= 8:
                return _read_with_pillow(path, header, max_pixels)
            hint = "; pip install imagecodecs to read it" if "imagecodecs" in str(err) else ""
            raise ImageFormatError(f"{path}: cannot decode this {page.bitspersample}-bit TIFF ({err}){hint}") from err
        axes, photometric = page.axes, page.photometric
        tags = page.tags
        icc = tags[ICC_PROFILE_TAG].value if ICC_PROFILE_TAG in tags else None
        orientation = tags[ORIENTATION_TAG].value if ORIENTATION_TAG in tags else 1
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageFormatError(f"{path}: {array.dtype} TIFF samples are not supported (8- or 16-bit integers are)")
    if axes == "YX":
        array = array[..., None]
    elif axes == "SYX":  # planar configuration: one plane per channel
        array = np.moveaxis(array, 0, -1)
    elif axes != "YXS":
        raise ImageFormatError(f"{path}: TIFF layout {axes!r} is not supported (one 2-D image per page is)")
    photometric = int(photometric)
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        array = np.iinfo(array.dtype).max - array
    elif photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
        raise ImageFormatError(
            f"{path}: TIFF colour model {tifffile.PHOTOMETRIC(photometric).name} is not supported (grey and RGB are)"
        )
    expected = (1, 2) if photometric != tifffile.PHOTOMETRIC.RGB else (3, 4)
    if array.shape[-1] not in expected:
        raise ImageFormatError(f"{path}: TIFF with {array.shape[-1]} samples per pixel is not supported")
    info = ImageInfo(
        format="TIFF",
        bit_depth=16 if array.dtype == np.uint16 else 8,
        mode=MODES[array.shape[-1]],
        icc_profile=bytes(icc) if icc else None,
        orientation=_valid_orientation(orientation),
    )
    return array, info


def _refuse_multi_page(path: Path, tif: tifffile.TiffFile) -> None:
    """ImageFormatError for several full-size pages; reduced-resolution pages (previews) are fine."""
    pages = sum(1 for page in tif.pages if not int(getattr(page, "subfiletype", 0) or 0) & 1)
    if pages > 1:
        raise ImageFormatError(
            f"{path}: this TIFF holds {pages} pages; only single-image TIFFs are supported, and editing the "
            "first page alone would lose the others. Split the pages into separate files first"
        )


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Silence a library's warnings for the duration: damaged files are reported by our error."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _valid_orientation(value) -> int:
    # Broken tags (0, 9, strings) are common in the wild; like exif_transpose, ignore them.
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W, C) array upright as Pillow's ``ImageOps.exif_transpose`` does.

    Orientation 2 mirrors, 3 rotates 180 degrees, 4 flips, 5 transposes, 6 rotates 90 degrees
    clockwise, 7 transverses, 8 rotates 90 degrees counter-clockwise; 1 returns the array.

    Example:
        >>> array = np.arange(6).reshape(2, 3, 1)  # (H, W, C) = (2, 3, 1)
        >>> array[..., 0]
        array([[0, 1, 2],
               [3, 4, 5]])
        >>> apply_orientation(array, 6)[..., 0]  # (3, 2): turned 90 degrees clockwise
        array([[3, 0],
               [4, 1],
               [5, 2]])
    """
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array))


def pixels_to_tensor(array: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
    """(H, W, C) uint8/uint16 -> (1, C, H, W) float32 in [0, 1], written into ``out`` if given.

    Example:
        >>> tensor = pixels_to_tensor(np.array([[[0, 51, 255]]], dtype=np.uint8))
        >>> tensor.shape, tensor.flatten()
        (torch.Size([1, 3, 1, 1]), tensor([0.0000, 0.2000, 1.0000]))
        >>> pixels_to_tensor(np.array([[[65535]]], dtype=np.uint16), out=torch.empty(1, 1, 1, 1))
        tensor([[[[1.]]]])
    """
    scale = float(np.iinfo(array.dtype).max)
    # uint16 has no torch counterpart on every version: widen to int32 first.
    tensor = torch.from_numpy(array.astype(np.int32) if array.dtype == np.uint16 else array).permute(2, 0, 1)[None]
    if out is None:
        return (tensor.float() / scale).contiguous()
    return out.copy_(tensor).div_(scale)


# ----------------------------------------------------------------------------------- writing
def format_for_path(path: str | Path) -> str:
    """Output format named by a file's suffix ("PNG", "JPEG", ...); ImageFormatError if none.

    Example:
        >>> format_for_path("out/Photo.JPEG"), format_for_path("scan.tif")
        ('JPEG', 'TIFF')
        >>> format_for_path("notes.txt")
        Traceback (most recent call last):
        retouch_core.formats.image_files.ImageFormatError: cannot write notes.txt: unknown image type '.txt';
        use .png, .jpg, .jpeg, .jpe, .tif, .tiff, .webp, .bmp
    """
    suffix = Path(path).suffix.lower()
    for name, suffixes in SUFFIXES.items():
        if suffix in suffixes:
            return name
    known = ", ".join(s for suffixes in SUFFIXES.values() for s in suffixes)
    raise ImageFormatError(
        f"cannot write {Path(path).name}: unknown image type {suffix or '(no suffix)'!r}; use {known}"
    )


def check_writable(path: str | Path, mode: str) -> str:
    """The format of ``path``; ImageFormatError when it cannot hold a ``mode`` image.

    Lets callers fail before slow work rather than after it.

    Example:
        >>> check_writable("out.png", "RGBA")
        'PNG'
        >>> check_writable("out.jpg", "RGBA")
        Traceback (most recent call last):
        retouch_core.formats.image_files.ImageFormatError: JPEG has no alpha channel: write this image as .png,
        .tif or .webp
    """
    fmt = format_for_path(path)
    if fmt == "JPEG" and mode in ("LA", "RGBA"):
        raise ImageFormatError("JPEG has no alpha channel: write this image as .png, .tif or .webp")
    return fmt


def write_image(
    path: str | Path,
    tensor: torch.Tensor,
    info: ImageInfo | None = None,
    bit_depth: int | None = None,
    *,
    quality: int = DEFAULT_QUALITY,
) -> None:
    """Write a (1, C, H, W) tensor in [0, 1] as the format named by ``path``'s suffix.

    Args:
        path: output file; its folder must exist. Written via a temporary file in the same
            folder, so an interrupted write never leaves a half file under this name.
        tensor: (1, C, H, W) or (C, H, W) float, C = 1, 2, 3 or 4 (grey, grey + alpha, RGB,
            RGBA); values are clamped to [0, 1].
        info: the source's :class:`ImageInfo`: its bit depth is kept where the format allows
            (else 8 bit), its ICC profile and EXIF are carried over (orientation set to 1).
        bit_depth: 8 or 16 to override; ImageFormatError when the format cannot hold it.
        quality: JPEG/WebP quality, 1-100.

    Raises:
        FileNotFoundError: the output folder does not exist.
        ImageFormatError: unknown suffix, or a layout the format cannot hold (alpha in JPEG).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "out.jpg"
        >>> write_image(path, torch.rand(1, 3, 16, 16), quality=90)
        >>> read_image(path)[1].format
        'JPEG'
    """
    tensor = _check_tensor(tensor)
    fmt = check_writable(path, MODES[tensor.shape[0]])
    write_pixels(path, _quantise(tensor, _output_bit_depth(fmt, info, bit_depth)), info, quality=quality)


def output_bit_depth(path: str | Path, info: ImageInfo | None) -> int:
    """The bit depth :func:`write_image` writes ``path`` at: the source's where the format allows.

    Example:
        >>> source = ImageInfo(format="PNG", bit_depth=16, mode="RGB")
        >>> output_bit_depth("out.tif", source), output_bit_depth("out.jpg", source), output_bit_depth("out.png", None)
        (16, 8, 8)
    """
    return _output_bit_depth(format_for_path(path), info, None)


def write_pixels(path: str | Path, array: np.ndarray, info: ImageInfo | None = None, *,
                 quality: int = DEFAULT_QUALITY) -> None:
    """:func:`write_image` for pixels already quantised: (H, W, C) uint8, or uint16 for 16-bit
    PNG and TIFF (see :func:`output_bit_depth`).

    Example:
        >>> import tempfile
        >>> pixels = np.array([[[0, 1000, 65535]]], dtype=np.uint16)  # one 16-bit RGB pixel
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_pixels(Path(folder) / "pixel.tif", pixels)
        ...     back, info = read_pixels(Path(folder) / "pixel.tif")
        >>> np.array_equal(back, pixels), info.format, info.bit_depth  # lossless at 16 bit
        (True, 'TIFF', 16)
    """
    path = Path(path)
    fmt = check_writable(path, MODES[array.shape[-1]])
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    depth = 16 if array.dtype == np.uint16 else 8
    if depth not in BIT_DEPTHS[fmt]:
        raise ImageFormatError(f"{fmt} files hold {' or '.join(map(str, BIT_DEPTHS[fmt]))}-bit images, not {depth}-bit")
    icc = info.icc_profile if info is not None else None
    exif = _upright_exif(info.exif) if info is not None and info.exif else None
    temporary = path.with_name(f".ir{os.getpid()}-{secrets.token_hex(4)}.part")
    try:
        if fmt == "TIFF":
            _write_tiff(temporary, array, icc)
        elif fmt == "PNG":
            write_png(temporary, array, icc, _exif_chunk(exif) if exif is not None else None)
        else:
            _write_with_pillow(temporary, fmt, array, icc, exif, quality)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the ``.part`` files :func:`write_image` left in ``folder`` when its process was
    killed (SIGKILL, power loss); those of running processes are kept. Returns the deleted paths.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     orphan = Path(folder, ".ir4194305-00ff.part")  # above Linux's largest pid: its writer is gone
        ...     orphan.touch()
        ...     os.utime(orphan, (0, 0))  # and old, for systems that go by age
        ...     ours = Path(folder, f".ir{os.getpid()}-00ff.part")
        ...     ours.touch()
        ...     removed = [path.name for path in remove_stale_temporaries(folder)]
        ...     left = [path.name for path in Path(folder).iterdir()]
        >>> removed, left == [ours.name]
        (['.ir4194305-00ff.part'], True)
    """
    removed = []
    for entry in Path(folder).iterdir():
        match = _PART_PATTERN.match(entry.name)
        if match and entry.is_file() and _is_stale(entry, int(match.group(1) or match.group(2))):
            with contextlib.suppress(OSError):  # another run may have removed it first
                entry.unlink()
                removed.append(entry)
    return removed


def _is_stale(part: Path, pid: int) -> bool:
    """Whether the writer of ``part`` is gone."""
    if pid == os.getpid():
        return False
    if os.name == "nt":  # os.kill would terminate the process there: go by age instead
        return time.time() - part.stat().st_mtime > STALE_AGE_S
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):
        return True
    except PermissionError:  # it exists, owned by another user
        return False
    return False


def _output_bit_depth(fmt: str, info: ImageInfo | None, bit_depth: int | None) -> int:
    allowed = BIT_DEPTHS[fmt]
    if bit_depth is not None:
        if bit_depth not in allowed:
            raise ImageFormatError(f"{fmt} files hold {' or '.join(map(str, allowed))}-bit images, not {bit_depth}-bit")
        return bit_depth
    wanted = info.bit_depth if info is not None else 8
    return wanted if wanted in allowed else allowed[0]


def _check_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) or (C, H, W) float -> (C, H, W); clear errors otherwise."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise TypeError(f"write_image takes a float tensor in [0, 1], got {getattr(tensor, 'dtype', type(tensor))}")
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in MODES or tensor.numel() == 0:
        raise ValueError(f"write_image takes one (1, C, H, W) image with C in 1-4, got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError("image contains NaN or Inf values")
    return tensor


def _quantise(tensor: torch.Tensor, bit_depth: int) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) uint8 or uint16, rounded to nearest."""
    scale = 2**bit_depth - 1
    levels = (tensor.detach().cpu().float().clamp(0, 1) * scale).round().to(torch.int32)
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    return np.ascontiguousarray(levels.permute(1, 2, 0).numpy().astype(dtype))


def _upright_exif(exif: bytes) -> Image.Exif:
    """The EXIF block with orientation 1: the pixels were turned upright on read."""
    upright = Image.Exif()
    upright.load(exif)
    upright[ORIENTATION_TAG] = 1
    return upright


def _write_with_pillow(path: Path, fmt: str, array: np.ndarray, icc, exif, quality: int) -> None:
    """8-bit JPEG, WebP, BMP via Pillow."""
    channels = array.shape[-1]
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    image = Image.fromarray(array[..., 0] if channels == 1 else array)
    if fmt == "BMP" and channels == 2:  # BMP has no grey + alpha layout
        image = image.convert("RGBA")
    options: dict = {}
    if fmt != "BMP":  # Pillow's BMP writer stores neither ICC nor EXIF
        options = {"icc_profile": icc, "exif": exif}
        options = {key: value for key, value in options.items() if value is not None}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "JPEG":
        options["subsampling"] = 0  # 4:4:4: this tool edits colour; 4:2:0 halves colour resolution
    image.save(path, format=fmt, **options)


def _exif_chunk(exif: Image.Exif) -> bytes:
    """EXIF as a PNG eXIf chunk holds it: from the TIFF header on, without the JPEG prefix."""
    return exif.tobytes().removeprefix(EXIF_HEADER)


def _write_tiff(path: Path, array: np.ndarray, icc) -> None:
    """8/16-bit TIFF via tifffile, deflate-compressed; EXIF is not carried into TIFF."""
    channels = array.shape[-1]
    tifffile.imwrite(
        path,
        array[..., 0] if channels == 1 else array,
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="zlib",
        predictor=True,  # horizontal differencing: photos compress far better
        metadata=None,  # no tifffile JSON description in the file
        extratags=_tiff_tags(icc),
    )


def _tiff_tags(icc: bytes | None) -> list[tuple]:
    """Orientation 1 and the ICC profile as raw tags (older tifffile has no iccprofile argument)."""
    tags = [(ORIENTATION_TAG, "H", 1, 1, True)]
    if icc:
        tags.append((ICC_PROFILE_TAG, 7, len(icc), icc, True))  # 7: UNDEFINED, as the TIFF spec types it
    return tags

"""Reading and writing photos faithfully, and converting them to and from the generator's tensors.

EnlightenGAN (Jiang et al., IEEE TIP 2021) works on RGB tensors in ``[-1, 1]``, shape ``1 x 3 x H x W``
(docs/ARCHITECTURE.md). Photos come in many kinds; each is mapped to that RGB tensor and back
so that the enhanced image has the input's size and pixel mode:

==============================  ==================================================================
input                           what is enhanced, and what comes back
==============================  ==================================================================
RGB (8 or 16 bit)               the image itself; same bit depth back
L, I;16, I (greyscale)          three equal channels; back to one channel by ITU-R 601 luma
                                (``0.299 R + 0.587 G + 0.114 B``, Pillow's ``convert("L")`` weights)
RGBA, LA, HxWx4 / HxWx2 arrays  the colour (or grey) part; alpha is returned bit-exact, untouched
1 (bilevel)                     treated as L; an L image comes back
P, PA (palette)                 converted to RGB, or RGBA when the palette has transparency
CMYK, YCbCr, HSV, RGBX, RGBa    converted to RGB (or RGBA); an RGB image comes back
==============================  ==================================================================

Quantisation: a tensor value ``y`` becomes the integer ``round((clip(y, -1, 1) + 1) / 2 * M)`` with
``M = 255`` (8 bit) or ``65535`` (16 bit), rounding to nearest (ties to even). The authors' code
truncates instead, which darkens every pixel by half a grey level on average; rounding makes the
conversion an exact round trip (an image converted to a tensor and back is unchanged).

Pillow holds 16-bit greyscale (``I;16``) but not 16-bit RGB: 16-bit RGB(A) PNG and TIFF files are read
with OpenCV (``IMREAD_UNCHANGED``, converted from BGR to RGB) into a ``uint16`` array; they are written
back as 16-bit PNG by OpenCV (with the ICC profile and EXIF added as chunks) and as 16-bit TIFF by this
module (Deflate with a horizontal predictor, ICC profile and EXIF in the IFD).

Two more kinds of photo are read when their optional packages are installed (each file is recognised
by its content, and RAW files by their suffix too):

==============================  ==================================================================
HEIC/HEIF (extra ``heif``,      8-bit pictures as PIL images; 10- and 12-bit ones as full-range
pillow-heif)                    ``uint16`` arrays (``round(v * 65535 / (2**d - 1))``) that keep their
                                depth through the pipeline and are written back at it; upright as
                                decoded (HEIF rotates in the container), EXIF orientation reset to 1
camera RAW (extra ``raw``,      developed to 16-bit sRGB with the camera's white balance and no
rawpy): DNG, CR2, CR3, NEF,     automatic brightening (:mod:`enlightengan._camera_raw`); written
ARW, RAF, ORF, RW2              as 16-bit TIFF by default, EXIF carried where the file gives it
==============================  ==================================================================

A missing optional package is a :class:`CodecMissingError` naming the ``pip install`` command. All
writes are atomic (:func:`enlightengan._atomic.atomic_path`).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from torch import Tensor

from . import _camera_raw, _heif
from ._atomic import atomic_path
from ._optional import OptionalDependencyError
from .formats import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_QUALITY,
    HEIF_SUFFIXES,
    LUMA_WEIGHTS,
    RAW_SUFFIXES,
    too_many_pixels,
)

__all__ = [
    "NEAR_BLACK_LEVELS",
    "NEAR_BLACK_MEAN",
    "SUPPORTED_MODES",
    "CodecMissingError",
    "ImageReadError",
    "LoadedImage",
    "PreparedImage",
    "declared_size",
    "default_write_format",
    "fit_to_format",
    "from_tensor",
    "is_raw_format",
    "near_black",
    "prepare",
    "read_image",
    "to_tensor",
    "write_image",
]

#: Pillow modes that can be enhanced (see the module docstring for how each is treated).
SUPPORTED_MODES = frozenset(
    {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "HSV", "I"}
    | {"I;16", "I;16L", "I;16B", "I;16N"}
)

_GREY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_TO_RGB_MODES = frozenset({"CMYK", "YCbCr", "HSV", "RGBX"})

#: What each EXIF orientation (tag 0x0112) needs to be shown upright; the same table as Pillow's
#: ``ImageOps.exif_transpose``, applied here to 16-bit arrays that Pillow cannot hold.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112

#: ICC colour spaces (header bytes 16-20) that suit each output mode; other profiles are dropped.
_ICC_SPACES = {
    "RGB": b"RGB ",
    "RGBA": b"RGB ",
    "L": b"GRAY",
    "LA": b"GRAY",
    "I": b"GRAY",
    **dict.fromkeys(_GREY16_MODES, b"GRAY"),
}

#: Formats written with a quality setting, and formats that can store ICC profiles / EXIF.
_QUALITY_FORMATS = frozenset({"JPEG", "WEBP", "HEIF"})
_ICC_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "HEIF"})
_EXIF_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "HEIF"})
#: Formats that hold more than 8 bits per sample; 16-bit data for any other is reduced to 8 bits.
_HIGH_DEPTH_FORMATS = frozenset({"PNG", "TIFF", "HEIF"})
#: Formats Pillow reads but should be written as another (a camera's multi-picture JPEG is a JPEG).
_WRITE_AS = {"MPO": "JPEG"}
#: Output suffixes known here but not to Pillow (pillow-heif registers them only when imported).
_SUFFIX_FORMATS = dict.fromkeys(HEIF_SUFFIXES, "HEIF")
#: Bits per sample of HEIF outputs of 16-bit data that did not come from a HEIF file (10-bit HEVC is
#: what phones write and every HEIF reader decodes; 12 bits is for 12-bit sources).
_HEIF_HIGH_DEPTH = 10
#: Main-IFD tags that an EXIF block gives a 16-bit TIFF (the descriptive ones; the image structure is
#: the TIFF's own): ImageDescription, Make, Model, Orientation, Software, DateTime, Artist, Copyright.
_TIFF_EXIF_TAGS = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298)
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825


class ImageReadError(ValueError):
    """A file that cannot be read as an image; ``reason`` says why (without the path)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class CodecMissingError(ImageReadError):
    """A HEIF or RAW file whose optional package is not installed; ``extra`` is the extra that brings it."""

    def __init__(self, path: str | os.PathLike[str], kind: str, package: str, extra: str) -> None:
        super().__init__(
            path,
            f"reading {kind} files needs the optional package {package}, which is not installed: "
            f"pip install 'enlightengan[{extra}]'",
        )
        self.extra = extra


@dataclass
class LoadedImage:
    """A photo read by :func:`read_image`, ready to enhance and to write back in kind.

    Attributes:
        image: the decoded image with its EXIF orientation applied (upright). For 16-bit RGB(A)
            data this is an 8-bit reduction; the full data is in ``array16``.
        format: Pillow's format name (``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"HEIF"``, ...), or for camera
            RAW files the RAW format (``"DNG"``, ``"CR2"``, ``"NEF"``, ...: see :func:`is_raw_format`).
        icc_profile: the embedded ICC profile, or ``None``.
        exif: the EXIF block with its orientation reset to 1 (the pixels are upright now), or ``None``.
        array16: ``H x W x 3`` (or ``x 4``) full-range ``uint16`` RGB(A) for 16-bit colour PNG/TIFF,
            10/12-bit colour HEIF and developed RAW files, else ``None``.
        bit_depth: bits per sample of the file (8; 16 for 16-bit PNG/TIFF and developed RAW files; 10 or
            12 for HEIF files that deep), so that a HEIF output can be written at its input's depth.
    """

    image: Image.Image
    format: str | None
    icc_profile: bytes | None
    exif: bytes | None
    array16: NDArray[np.uint16] | None = None
    bit_depth: int = 8

    @property
    def pixels(self) -> Image.Image | NDArray[np.uint16]:
        """What to enhance: the 16-bit array when there is one, else the PIL image."""
        return self.array16 if self.array16 is not None else self.image

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright image."""
        return self.image.size


#: :func:`near_black` flags images whose mean brightness is below this (on the 0-255 scale) ...
NEAR_BLACK_MEAN = 3.0
#: ... and whose luminance holds fewer distinct levels than this, at the image's own bit depth.
NEAR_BLACK_LEVELS = 64


def near_black(pixels: Image.Image | NDArray[Any]) -> str | None:
    """Why a photo is too dark to recover, or ``None``.

    An 8-bit photo whose mean brightness is below about 3/255 records its scene in a handful of grey
    levels: brightening it shows the quantisation as flat patches and its noise as grain, whatever the
    model. Such an image is flagged when its mean luminance (BT.601, 0-255 scale) is below
    ``NEAR_BLACK_MEAN`` and its luminance holds fewer than ``NEAR_BLACK_LEVELS`` distinct values at its
    own bit depth; a 16-bit file (a developed RAW) of the same darkness holds hundreds of levels and is
    not flagged.

    Args:
        pixels: a PIL image or an ``H x W (x C)`` uint8/uint16 array.

    Returns:
        A sentence for a warning (mean brightness and level count), or ``None``.
    """
    array = np.asarray(pixels.convert("RGB") if isinstance(pixels, Image.Image) else pixels)
    colour = _split_array(array)[0].astype(np.float64)
    luma = colour @ np.array(LUMA_WEIGHTS)
    scale = 255.0 / _max_value(array.dtype)
    mean = float(luma.mean()) * scale
    if mean >= NEAR_BLACK_MEAN:
        return None
    levels = len(np.unique(np.round(luma)))
    if levels >= NEAR_BLACK_LEVELS:
        return None
    return (
        f"nearly black (mean brightness {mean:.1f}/255, {levels} grey levels): too little was recorded "
        "to recover, so the result shows flat patches and noise; a longer exposure or a RAW file holds more"
    )


# --- reading -------------------------------------------------------------------------------------


def _png_is_16bit_colour(path: Path) -> bool:
    """True for PNGs of bit depth 16 and colour type 2 (RGB) or 6 (RGBA), read from the IHDR chunk."""
    with path.open("rb") as handle:
        head = handle.read(26)
    return len(head) == 26 and head[24] == 16 and head[25] in (2, 6)


def _tiff_is_16bit_colour(image: Image.Image) -> bool:
    tags = getattr(image, "tag_v2", {})
    bits = tuple(tags.get(258) or ())
    samples = tags.get(277, 1)
    return bool(bits) and all(b == 16 for b in bits) and samples in (3, 4)


def _read_16bit_colour(path: Path, orientation: int) -> NDArray[np.uint16]:
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageReadError(path, "corrupt 16-bit image data (OpenCV could not decode it)")
    code = cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
    array = cv2.cvtColor(array, code)
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        # Pillow transposes single 16-bit channels (mode I;16) exactly as exif_transpose would.
        planes = [np.asarray(Image.fromarray(array[..., c]).transpose(method)) for c in range(array.shape[2])]
        array = np.stack(planes, axis=-1)
    return np.ascontiguousarray(array)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF: treat the image as upright
        return 1


def _upright(exif: Image.Exif) -> bytes | None:
    """``exif`` with its orientation reset to 1 (changed in place), as bytes; None when empty."""
    if not exif:
        return None
    if _ORIENTATION_TAG in exif:
        exif[_ORIENTATION_TAG] = 1
    return exif.tobytes()


def _upright_exif(image: Image.Image) -> bytes | None:
    """The EXIF block with its orientation reset to 1 (``image``'s own EXIF is changed: call last)."""
    try:
        return _upright(image.getexif())
    except Exception:  # malformed EXIF: the pixels are still good, the metadata is dropped
        return None


def _open_beyond_pillow_limit(path: Path) -> ImageFile.ImageFile:
    """``path`` opened as ``Image.open`` opens it, but without Pillow's decompression-bomb check.

    Called when that check refused the file, which happens only past ``2 * Image.MAX_IMAGE_PIXELS``
    (179 MP): the header is parsed by the format's plugin (nothing is decoded), so that the caller
    can apply its own limit (``max_pixels``) and name the image's size. Pillow's global limit is not
    touched (other threads keep it).

    Raises:
        UnidentifiedImageError: no plugin accepts the file.
    """
    Image.init()
    with path.open("rb") as handle:
        prefix = handle.read(16)
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        verdict = True if accept is None else accept(prefix)
        if not verdict or isinstance(verdict, str):
            continue
        # Given a path (ImageFile takes one, as Image.open's own callers do), the image owns its file.
        opener: Callable[[str, str], ImageFile.ImageFile] = factory  # type: ignore[assignment]
        try:
            image = opener(str(path), str(path))
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
        return image
    raise UnidentifiedImageError(f"cannot identify image file {str(path)!r}")


def declared_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The ``(width, height)`` an image file's header declares, whatever its size; nothing is decoded.

    Raises:
        UnidentifiedImageError: not an image Pillow can read.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError:
        with _open_beyond_pillow_limit(path) as image:
            return image.size


def _upright_exif_bytes(data: bytes | None) -> bytes | None:
    """An EXIF block with its orientation reset to 1, for pixels that are upright already."""
    if not data:
        return None
    try:
        exif = Image.Exif()
        exif.load(data)
        return _upright(exif)
    except Exception:  # malformed EXIF: the pixels are still good, the metadata is dropped
        return None


def _check_file(path: Path) -> bytes:
    """The file's first 16 bytes, after refusing a missing file, a folder, an empty or unreadable file."""
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with path.open("rb") as handle:
            return handle.read(16)
    except PermissionError as exc:
        raise ImageReadError(path, "permission denied (the file cannot be read)") from exc
    except OSError as exc:
        raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from exc


def _reduce_to_8bit(array: NDArray[np.uint16]) -> NDArray[np.uint8]:
    """Full-range 16-bit samples -> 8-bit, ``round(v / 257)`` (exact for 8-bit data scaled by 257)."""
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _read_heif(path: Path, max_pixels: int) -> LoadedImage:
    try:
        picture = _heif.read_heif(path, max_pixels)
    except OptionalDependencyError as exc:
        raise CodecMissingError(path, "HEIC/HEIF", "pillow-heif", "heif") from exc
    except ValueError as exc:
        raise ImageReadError(path, str(exc)) from exc
    exif = _upright_exif_bytes(picture.exif)  # libheif has turned the pixels upright
    pixels, icc, depth = picture.pixels, picture.icc_profile, picture.bit_depth
    if isinstance(pixels, Image.Image):
        if pixels.mode not in SUPPORTED_MODES:
            raise ImageReadError(path, f"unsupported pixel mode {pixels.mode!r} in a HEIF file")
        return LoadedImage(pixels, "HEIF", icc, exif, None, depth)
    if pixels.ndim == 2:  # 10/12-bit grey: Pillow holds it as I;16
        return LoadedImage(Image.fromarray(pixels), "HEIF", icc, exif, None, depth)
    return LoadedImage(Image.fromarray(_reduce_to_8bit(pixels)), "HEIF", icc, exif, pixels, depth)


def _read_raw(path: Path, raw_format: str, max_pixels: int) -> LoadedImage:
    try:
        rgb = _camera_raw.develop(path, max_pixels)
    except OptionalDependencyError as exc:
        raise CodecMissingError(path, "camera RAW", "rawpy", "raw") from exc
    except ValueError as exc:
        raise ImageReadError(path, str(exc)) from exc
    exif = _camera_raw.raw_exif(path)
    if rgb.ndim == 2:  # a monochrome sensor
        return LoadedImage(Image.fromarray(rgb), raw_format, None, exif, None, 16)
    return LoadedImage(Image.fromarray(_reduce_to_8bit(rgb)), raw_format, None, exif, rgb, 16)


def is_raw_format(file_format: str | None) -> bool:
    """True for the format names :func:`read_image` gives camera RAW files (``"DNG"``, ``"CR2"``, ...)."""
    return file_format is not None and f".{file_format.lower()}" in RAW_SUFFIXES


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # The pixel limit is checked below against max_pixels; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except PermissionError as exc:
        raise ImageReadError(path, "permission denied (the file cannot be read)") from exc
    except UnidentifiedImageError as exc:
        with path.open("rb") as handle:
            head = handle.read(8)
        raise ImageReadError(
            path,
            f"not an image: its content (starting {head!r}) is in no format Pillow can read"
            + (f", despite the {path.suffix} name" if path.suffix else ""),
        ) from exc
    except Image.DecompressionBombError as exc:
        # Pillow's own limit (179 MP): the size is read again without it, and max_pixels decides.
        try:
            image = _open_beyond_pillow_limit(path)
        except (UnidentifiedImageError, OSError) as inner:
            raise ImageReadError(path, f"too many pixels ({exc})") from inner
    except OSError as exc:
        raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from exc
    if image.width * image.height > max_pixels:
        image.close()
        raise ImageReadError(path, too_many_pixels(image.width, image.height, max_pixels))
    return image


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read a photo completely and upright, with its ICC profile and EXIF.

    The whole image is decoded here (a truncated or corrupt file fails now, not later while
    writing), multi-frame files give their first frame, and the EXIF orientation is applied.
    HEIC/HEIF files (recognised by their content) are read with pillow-heif, camera RAW files (by
    their suffix or content) developed with rawpy: see the module docstring.

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (decompression bombs, absurd sizes).

    Returns:
        A :class:`LoadedImage`.

    Raises:
        ImageReadError: missing file, folder, empty file, not an image, corrupt or truncated data,
            too many pixels, permission denied, or an unsupported pixel mode; ``reason`` says which.
            :class:`CodecMissingError` (a subclass) for a HEIF or RAW file whose optional package is
            not installed.
    """
    path = Path(path)
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    head = _check_file(path)
    if _heif.looks_like_heif(head):
        return _read_heif(path, max_pixels)
    raw_format = _camera_raw.raw_format(path, head)
    if raw_format is not None:
        return _read_raw(path, raw_format, max_pixels)
    image = _open_checked(path, max_pixels)
    with image:
        file_format = image.format
        try:
            image.load()
        except Exception as exc:  # plugins raise OSError, SyntaxError, ValueError, struct.error, ...
            raise ImageReadError(
                path, f"corrupt or truncated image data ({type(exc).__name__}: {exc})"
            ) from exc
        if image.mode not in SUPPORTED_MODES:
            raise ImageReadError(
                path,
                f"unsupported pixel mode {image.mode!r}: enhance 8/16-bit RGB, RGBA, greyscale, palette or "
                "CMYK images (convert it to 16-bit RGB first)",
            )
        icc = image.info.get("icc_profile") or None
        orientation = _orientation(image)
        array16 = None
        is_16bit = (file_format == "PNG" and _png_is_16bit_colour(path)) or (
            file_format == "TIFF" and _tiff_is_16bit_colour(image)
        )
        if is_16bit:
            array16 = _read_16bit_colour(path, orientation)
        bit_depth = 16 if is_16bit or image.mode in _GREY16_MODES or image.mode == "I" else 8
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception as exc:
            raise ImageReadError(path, f"cannot apply the EXIF orientation ({exc})") from exc
        exif = _upright_exif(image)
    return LoadedImage(upright, file_format, icc, exif, array16, bit_depth)


# --- tensors -------------------------------------------------------------------------------------


def _max_value(dtype: np.dtype[Any]) -> int:
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    raise ValueError(f"expected uint8 or uint16 pixels, got {dtype}")


def to_tensor(rgb: NDArray[np.uint8] | NDArray[np.uint16]) -> Tensor:
    """``H x W x 3`` uint8/uint16 RGB -> ``1 x 3 x H x W`` float32 RGB in ``[-1, 1]`` (``2 v / M - 1``)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB array, got shape {rgb.shape}")
    scale = _max_value(rgb.dtype)
    x = torch.from_numpy(np.ascontiguousarray(rgb).astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
    return x / scale * 2.0 - 1.0


def _to_unit(tensor: Tensor) -> Tensor:
    """``1 x 3 x H x W`` in ``[-1, 1]`` -> ``H x W x 3`` float32 in ``[0, 1]`` (clipped), on the CPU."""
    if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
        raise ValueError(f"expected a 1 x 3 x H x W tensor, got shape {tuple(tensor.shape)}")
    return ((tensor.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) / 2.0)[0].permute(1, 2, 0)


def _quantise(unit: Tensor, dtype: np.dtype[Any]) -> NDArray[Any]:
    scale = _max_value(dtype)
    return (unit * scale).round().clamp(0, scale).numpy().astype(dtype)


def from_tensor(tensor: Tensor, dtype: type[np.uint8] | type[np.uint16] = np.uint8) -> NDArray[Any]:
    """``1 x 3 x H x W`` RGB in ``[-1, 1]`` -> ``H x W x 3`` uint8/uint16 RGB.

    Values are clipped to ``[-1, 1]`` and rounded to nearest: ``round((y + 1) / 2 * M)``.
    """
    return _quantise(_to_unit(tensor), np.dtype(dtype))


def _luma(tensor: Tensor, dtype: np.dtype[Any]) -> NDArray[Any]:
    """``1 x 3 x H x W`` in ``[-1, 1]`` -> ``H x W`` grey by ITU-R 601 luma, computed before rounding."""
    unit = _to_unit(tensor)
    weights = torch.tensor(LUMA_WEIGHTS, dtype=unit.dtype)
    return _quantise((unit * weights).sum(dim=-1), dtype)


@dataclass
class PreparedImage:
    """An image split into what the generator sees and what is kept aside.

    Attributes:
        tensor: ``1 x 3 x H x W`` float32 RGB in ``[-1, 1]`` (greyscale repeated on three channels).
        restore: turns an enhanced tensor of the same shape into the image's own type, size and mode.
    """

    tensor: Tensor
    restore: Callable[[Tensor], Image.Image | NDArray[Any]]


def _split_array(array: NDArray[Any]) -> tuple[NDArray[Any], bool, NDArray[Any] | None]:
    """``(colour H x W x 3, is_grey, alpha H x W or None)`` of an H x W (x 1..4) array."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"expected an H x W, H x W x 3 (RGB) or H x W x 4 (RGBA) array, got shape {array.shape}"
        )
    channels = array.shape[2]
    grey = channels in (1, 2)
    colour = np.repeat(array[..., :1], 3, axis=2) if grey else array[..., :3]
    alpha = array[..., -1].copy() if channels in (2, 4) else None
    return colour, grey, alpha


def _prepare_array(array: NDArray[Any]) -> PreparedImage:
    dtype = array.dtype
    _max_value(dtype)
    if array.size == 0:
        raise ValueError(f"the image is empty (shape {array.shape})")
    shape = array.shape
    colour, grey, alpha = _split_array(array)

    def restore(tensor: Tensor) -> NDArray[Any]:
        out = _luma(tensor, dtype)[..., None] if grey else from_tensor(tensor, dtype.type)
        if alpha is not None:
            out = np.concatenate([out, alpha[..., None]], axis=2)
        return out.reshape(shape)

    return PreparedImage(to_tensor(colour), restore)


def _normalise_mode(image: Image.Image) -> Image.Image:
    """Bring the rarer modes to one of L, LA, RGB, RGBA, I;16 (the module docstring's table)."""
    mode = image.mode
    if mode == "1":
        return image.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode == "RGBa":
        return image.convert("RGBA")
    if mode in _TO_RGB_MODES:
        return image.convert("RGB")
    return image


def _prepare_pil(image: Image.Image) -> PreparedImage:
    if image.mode not in SUPPORTED_MODES:
        raise ValueError(
            f"unsupported image mode {image.mode!r}; supported: {', '.join(sorted(SUPPORTED_MODES))}"
        )
    if image.width == 0 or image.height == 0:
        raise ValueError(f"the image is empty ({image.width} x {image.height})")
    image = _normalise_mode(image)
    mode = image.mode
    if mode in _GREY16_MODES or mode == "I":
        array = np.asarray(image).astype(np.int64)
        if mode == "I" and (array.min() < 0 or array.max() > 65535):
            raise ValueError("mode 'I' images must hold values in 0..65535 (16-bit greyscale)")
        prepared = _prepare_array(array.astype(np.uint16))

        def restore16(tensor: Tensor) -> Image.Image:
            grey = np.asarray(prepared.restore(tensor))
            return Image.fromarray(grey.astype(np.int32) if mode == "I" else grey)

        return PreparedImage(prepared.tensor, restore16)

    prepared = _prepare_array(np.asarray(image))

    def restore(tensor: Tensor) -> Image.Image:
        return Image.fromarray(np.asarray(prepared.restore(tensor)), mode=mode)

    return PreparedImage(prepared.tensor, restore)


def prepare(image: Image.Image | NDArray[Any]) -> PreparedImage:
    """Split a PIL image or a uint8/uint16 array (RGB order) into the generator's tensor and a restorer.

    Args:
        image: a PIL image of a mode in :data:`SUPPORTED_MODES`, or an ``H x W``, ``H x W x 1``,
            ``H x W x 2`` (grey + alpha), ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA) uint8/uint16 array.

    Returns:
        A :class:`PreparedImage`; ``restore`` gives back the same type, size and mode (palette,
        CMYK and other colour modes come back as RGB/RGBA, bilevel as L).

    Raises:
        ValueError: another dtype, shape or mode.
    """
    if isinstance(image, Image.Image):
        return _prepare_pil(image)
    if isinstance(image, np.ndarray):
        return _prepare_array(image)
    raise TypeError(f"expected a PIL.Image.Image or a numpy array, got {type(image).__name__}")


# --- writing -------------------------------------------------------------------------------------


def default_write_format(read_format: str | None) -> str | None:
    """The format a photo read as ``read_format`` is written in when no other is asked for.

    The same format, except: a camera's multi-picture JPEG (``MPO``) is written as JPEG, and a camera
    RAW file (nothing can write RAW) as TIFF, which holds its 16 bits and its EXIF.
    """
    if is_raw_format(read_format):
        return "TIFF"
    if read_format is None:
        return None
    return _WRITE_AS.get(read_format.upper(), read_format.upper())


def _is_16bit(image: Image.Image | NDArray[Any]) -> bool:
    if isinstance(image, np.ndarray):
        return bool(image.dtype == np.uint16)
    return image.mode in _GREY16_MODES or image.mode == "I"


def fit_to_format(image: Image.Image | NDArray[Any], file_format: str) -> Image.Image | NDArray[Any]:
    """Convert an image, if need be, into something ``file_format`` can hold.

    - 16-bit data (``uint16`` arrays, ``I;16`` and ``I`` images) for a format without high bit depth
      (anything but PNG, TIFF and HEIF) is reduced to 8 bits, ``round(v / 257)``;
    - for JPEG, alpha is dropped (RGBA -> RGB, LA -> L: the colour is kept as it is, not composited)
      and other modes become RGB;
    - everything else is returned unchanged (Pillow's own writers convert what they must).

    Args:
        image: a PIL image, or a ``uint8``/``uint16`` array ``H x W``, ``H x W x 3`` or ``H x W x 4``.
        file_format: the Pillow format name it will be written as (``"JPEG"``, ``"PNG"``, ``"HEIF"``, ...).

    Returns:
        ``image`` itself, or the converted image (a PIL image whenever bits were reduced).
    """
    file_format = _WRITE_AS.get(file_format.upper(), file_format.upper())
    if _is_16bit(image) and file_format not in _HIGH_DEPTH_FORMATS:
        array = np.asarray(image)
        if array.dtype != np.uint16:  # mode I: 32-bit integers holding 16-bit grey
            array = np.clip(array, 0, 65535).astype(np.uint16)
        image = Image.fromarray(_reduce_to_8bit(array))
    if file_format != "JPEG":
        return image
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode in ("RGB", "L", "CMYK"):
        return image
    return image.convert("L" if image.mode in ("LA", "1") else "RGB")


def _format_for(path: Path, file_format: str | None) -> str:
    if file_format is None:
        file_format = _SUFFIX_FORMATS.get(path.suffix.lower()) or Image.registered_extensions().get(
            path.suffix.lower()
        )
        if file_format is None:
            raise ValueError(f"cannot tell the image format from the name {path.name}: pass format=")
    return _WRITE_AS.get(file_format.upper(), file_format.upper())


def _icc_fits(profile: bytes | None, mode: str) -> bool:
    """True when the profile's colour space suits ``mode`` (a CMYK profile on an RGB output would not)."""
    return profile is not None and len(profile) >= 20 and _ICC_SPACES.get(mode) == profile[16:20]


def _colour_mode(image: Image.Image | NDArray[Any]) -> str:
    """``"L"`` for grey images (with or without alpha, any depth), else ``"RGB"``: the ICC space they need."""
    if isinstance(image, np.ndarray):
        return "L" if image.ndim == 2 or image.shape[2] in (1, 2) else "RGB"
    return "L" if image.mode in ("1", "L", "LA", "I", *_GREY16_MODES) else "RGB"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _encode_png16(array: NDArray[np.uint16], icc: bytes | None, exif: bytes | None) -> bytes:
    """Encode 16-bit RGB(A) as PNG with OpenCV, adding the iCCP and eXIf chunks OpenCV cannot write."""
    import cv2

    code = cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(array, code))
    if not ok:
        raise OSError(f"OpenCV could not encode a {array.shape} 16-bit PNG")
    data = encoded.tobytes()
    chunks = b""
    if icc is not None:
        chunks += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif is not None:
        chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    ihdr_end = 8 + 8 + 13 + 4  # signature, then IHDR: length + type, 13 bytes of data, CRC
    return data[:ihdr_end] + chunks + data[ihdr_end:]


def _tiff_exif_tags(exif: bytes | None) -> dict[int, Any]:
    """The TIFF main-IFD entries an EXIF block contributes: descriptive tags and the Exif/GPS sub-IFDs."""
    if not exif:
        return {}
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        tags: dict[int, Any] = {tag: parsed[tag] for tag in _TIFF_EXIF_TAGS if tag in parsed}
        for pointer in (_EXIF_IFD, _GPS_IFD):
            sub = dict(parsed.get_ifd(pointer))
            if sub:
                tags[pointer] = sub
    except Exception:  # malformed EXIF: the pixels are still good, the metadata is dropped
        return {}
    return tags


def _encode_tiff16(array: NDArray[np.uint16], icc: bytes | None, exif: bytes | None) -> bytes:
    """Encode 16-bit RGB(A) as a little-endian TIFF: Deflate with a horizontal predictor, strips of about
    1 MB, and the ICC profile (tag 34675) and EXIF (descriptive tags, Exif and GPS sub-IFDs) in the IFD."""
    height, width, channels = array.shape
    samples = np.ascontiguousarray(array, dtype="<u2")
    predicted = samples.copy()
    predicted[:, 1:] -= samples[:, :-1]  # TIFF predictor 2: differences along each row, modulo 2**16
    rows = max(1, min(height, (1 << 20) // (width * channels * 2)))
    strips = [zlib.compress(predicted[y : y + rows].tobytes(), 6) for y in range(0, height, rows)]
    header = b"II*\x00" + struct.pack("<I", 8)
    try:
        ifd = _tiff16_ifd(array.shape, rows, strips, icc, _tiff_exif_tags(exif))
    except Exception:  # EXIF values Pillow cannot write back: the pixels are still good, EXIF dropped
        ifd = _tiff16_ifd(array.shape, rows, strips, icc, {})
    return header + ifd + b"".join(strips)


def _tiff16_ifd(
    shape: tuple[int, ...], rows: int, strips: list[bytes], icc: bytes | None, exif_tags: dict[int, Any]
) -> bytes:
    """The IFD of :func:`_encode_tiff16` (strips of ``rows`` rows), at offset 8, its strips to follow it."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    height, width, channels = shape
    starts = np.concatenate([[0], np.cumsum([len(strip) for strip in strips])[:-1]])
    ifd = ImageFileDirectory_v2(prefix=b"II")

    def put(tag: int, kind: int, value: Any) -> None:
        ifd.tagtype[tag] = kind
        ifd[tag] = value

    for tag, value in exif_tags.items():
        ifd[tag] = value  # types as Pillow knows or guesses them; the sub-IFD pointers are LONG
    put(256, 4, width)  # ImageWidth
    put(257, 4, height)  # ImageLength
    put(258, 3, (16,) * channels)  # BitsPerSample
    put(259, 3, 8)  # Compression: Deflate
    put(262, 3, 2)  # PhotometricInterpretation: RGB
    # StripOffsets, relative here: Pillow adds the end of the IFD and its data, where the strips go
    put(273, 4, tuple(int(start) for start in starts))
    put(277, 3, channels)  # SamplesPerPixel
    put(278, 4, rows)  # RowsPerStrip
    put(279, 4, tuple(len(strip) for strip in strips))  # StripByteCounts
    put(284, 3, 1)  # PlanarConfiguration: interleaved
    put(317, 3, 2)  # Predictor: horizontal differencing
    if channels == 4:
        put(338, 3, (2,))  # ExtraSamples: unassociated alpha
    if icc is not None:
        put(34675, 7, icc)  # InterColorProfile
    return bytes(ifd.tobytes(8))


def write_image(
    image: Image.Image | NDArray[Any],
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int = DEFAULT_QUALITY,
    bit_depth: int | None = None,
) -> Path:
    """Write an image atomically (temporary file beside ``path``, then rename).

    Args:
        image: a PIL image, or a uint8/uint16 array (``H x W`` grey, ``H x W x 3`` RGB, ``H x W x 4``
            RGBA). 16-bit RGB(A) arrays are written as 16-bit PNG (OpenCV) or TIFF, or as 10/12-bit
            HEIF; 16-bit grey as Pillow ``I;16`` (16-bit PNG/TIFF) or 10/12-bit HEIF. For other
            formats convert first with :func:`fit_to_format`.
        path: destination; its folder must exist.
        format: Pillow format name (``"JPEG"``, ``"PNG"``, ``"HEIF"``, ...); default: from the suffix
            (``.heic``/``.heif``/``.hif`` are HEIF). ``MPO`` (multi-picture JPEG from cameras) is
            written as JPEG. HEIF needs pillow-heif (the extra ``heif``).
        icc_profile: embedded when the format can hold one and its colour space suits the output
            (an input's CMYK profile is dropped from the RGB result).
        exif: embedded when the format can hold it (JPEG, PNG, WebP, TIFF, HEIF). In 16-bit TIFF only
            its descriptive main-IFD tags and its Exif and GPS sub-IFDs are kept.
        quality: JPEG/WebP/HEIF quality, 1 to 100.
        bit_depth: bits per sample of a HEIF output of 16-bit data, 10 (default) or 12; ignored otherwise.

    Returns:
        ``path``. On any error nothing is left at ``path`` or beside it.

    Raises:
        ValueError: a format that cannot hold 16-bit RGB, an unknown format, a quality outside 1..100.
        OptionalDependencyError: HEIF without pillow-heif.
    """
    path = Path(path)
    file_format = _format_for(path, format)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer from 1 to 100, got {quality!r}")
    if file_format == "HEIF":
        data = _heif.encode_heif(
            image,
            bit_depth=bit_depth or _HEIF_HIGH_DEPTH,
            quality=quality,
            icc_profile=icc_profile if _icc_fits(icc_profile, _colour_mode(image)) else None,
            exif=exif,
        )
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path
    if isinstance(image, np.ndarray) and image.dtype == np.uint16 and image.ndim == 3 and image.shape[2] >= 3:
        icc = icc_profile if _icc_fits(icc_profile, "RGB") else None
        if file_format == "PNG":
            data = _encode_png16(image, icc, exif)
        elif file_format == "TIFF":
            data = _encode_tiff16(image, icc, exif)
        else:
            raise ValueError(f"16-bit RGB images can be written as PNG, TIFF or HEIF, not {file_format}")
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    options: dict[str, Any] = {}
    if file_format in _QUALITY_FORMATS:
        options["quality"] = quality
    if file_format in _ICC_FORMATS and _icc_fits(icc_profile, image.mode):
        options["icc_profile"] = icc_profile
    if file_format in _EXIF_FORMATS and exif is not None:
        options["exif"] = exif
    with atomic_path(path) as tmp:
        image.save(tmp, format=file_format, **options)
    return path

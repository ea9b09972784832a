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
with OpenCV (``IMREAD_UNCHANGED``, converted from BGR to RGB) into a ``uint16`` array, and written back
with OpenCV. All writes are atomic (:func:`enlightengan._atomic.atomic_path`).
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
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ._atomic import atomic_path
from .formats import DEFAULT_MAX_PIXELS, LUMA_WEIGHTS

__all__ = [
    "NEAR_BLACK_LEVELS",
    "NEAR_BLACK_MEAN",
    "SUPPORTED_MODES",
    "ImageReadError",
    "LoadedImage",
    "PreparedImage",
    "from_tensor",
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
_QUALITY_FORMATS = frozenset({"JPEG", "WEBP"})
_ICC_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})
_EXIF_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})
#: Formats Pillow reads but should be written as another (a camera's multi-picture JPEG is a JPEG).
_WRITE_AS = {"MPO": "JPEG"}


class ImageReadError(ValueError):
    """A file that cannot be read as an image; ``reason`` says why (without the path)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass
class LoadedImage:
    """A photo read by :func:`read_image`, ready to enhance and to write back in kind.

    Attributes:
        image: the decoded image with its EXIF orientation applied (upright). For 16-bit RGB(A)
            files this is Pillow's 8-bit reduction; the full data is in ``array16``.
        format: Pillow's format name (``"JPEG"``, ``"PNG"``, ``"TIFF"``, ...).
        icc_profile: the embedded ICC profile, or ``None``.
        exif: the EXIF block with its orientation reset to 1 (the pixels are upright now), or ``None``.
        array16: ``H x W x 3`` (or ``x 4``) ``uint16`` RGB(A) for 16-bit colour PNG/TIFF, else ``None``.
    """

    image: Image.Image
    format: str | None
    icc_profile: bytes | None
    exif: bytes | None
    array16: NDArray[np.uint16] | None = None

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
    luma = colour @ np.array([0.299, 0.587, 0.114])
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


def _upright_exif(image: Image.Image) -> bytes | None:
    """The EXIF block with its orientation reset to 1 (``image``'s own EXIF is changed: call last)."""
    try:
        exif = image.getexif()
        if not exif:
            return None
        if _ORIENTATION_TAG in exif:
            exif[_ORIENTATION_TAG] = 1
        return exif.tobytes()
    except Exception:  # malformed EXIF: the pixels are still good, the metadata is dropped
        return None


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
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
        raise ImageReadError(path, f"too many pixels ({exc})") from exc
    except OSError as exc:
        raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from exc
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise ImageReadError(
            path,
            f"too many pixels: {image.width} x {image.height} = {pixels:,}, over the limit of {max_pixels:,} "
            "(raise it with --max-pixels / max_pixels if the image is genuine)",
        )
    return image


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read a photo completely and upright, with its ICC profile and EXIF.

    The whole image is decoded here (a truncated or corrupt file fails now, not later while
    writing), multi-frame files give their first frame, and the EXIF orientation is applied.

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (decompression bombs, absurd sizes).

    Returns:
        A :class:`LoadedImage`.

    Raises:
        ImageReadError: missing file, folder, empty file, not an image, corrupt or truncated data,
            too many pixels, permission denied, or an unsupported pixel mode; ``reason`` says which.
    """
    path = Path(path)
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
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
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception as exc:
            raise ImageReadError(path, f"cannot apply the EXIF orientation ({exc})") from exc
        exif = _upright_exif(image)
    return LoadedImage(upright, file_format, icc, exif, array16)


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


def _format_for(path: Path, file_format: str | None) -> str:
    if file_format is None:
        file_format = Image.registered_extensions().get(path.suffix.lower())
        if file_format is None:
            raise ValueError(f"cannot tell the image format from the name {path.name}: pass format=")
    return _WRITE_AS.get(file_format.upper(), file_format.upper())


def _icc_fits(profile: bytes | None, mode: str) -> bool:
    """True when the profile's colour space suits ``mode`` (a CMYK profile on an RGB output would not)."""
    return profile is not None and len(profile) >= 20 and _ICC_SPACES.get(mode) == profile[16:20]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _encode_16bit(
    array: NDArray[np.uint16], file_format: str, icc: bytes | None, exif: bytes | None
) -> bytes:
    """Encode 16-bit RGB(A) with OpenCV; for PNG, add the iCCP and eXIf chunks OpenCV cannot write."""
    import cv2

    if file_format not in ("PNG", "TIFF"):
        raise ValueError(f"16-bit RGB images can be written as PNG or TIFF, not {file_format}")
    code = cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    ok, encoded = cv2.imencode(".png" if file_format == "PNG" else ".tiff", cv2.cvtColor(array, code))
    if not ok:
        raise OSError(f"OpenCV could not encode a {array.shape} 16-bit {file_format}")
    data = encoded.tobytes()
    if file_format != "PNG":
        return data
    chunks = b""
    if icc is not None:
        chunks += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif is not None:
        chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    ihdr_end = 8 + 8 + 13 + 4  # signature, then IHDR: length + type, 13 bytes of data, CRC
    return data[:ihdr_end] + chunks + data[ihdr_end:]


def write_image(
    image: Image.Image | NDArray[Any],
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int = 95,
) -> Path:
    """Write an image atomically (temporary file beside ``path``, then rename).

    Args:
        image: a PIL image, or a uint8/uint16 array (``H x W`` grey, ``H x W x 3`` RGB, ``H x W x 4``
            RGBA). 16-bit RGB(A) arrays are written by OpenCV as 16-bit PNG or TIFF; 16-bit grey as
            Pillow ``I;16`` (16-bit PNG/TIFF).
        path: destination; its folder must exist.
        format: Pillow format name (``"JPEG"``, ``"PNG"``, ...); default: from the suffix. ``MPO``
            (multi-picture JPEG from cameras) is written as JPEG.
        icc_profile: embedded when the format can hold one and its colour space suits the output
            (an input's CMYK profile is dropped from the RGB result).
        exif: embedded when the format can hold it (JPEG, PNG, WebP, TIFF; not 16-bit TIFF).
        quality: JPEG/WebP quality.

    Returns:
        ``path``. On any error nothing is left at ``path`` or beside it.
    """
    path = Path(path)
    file_format = _format_for(path, format)
    if isinstance(image, np.ndarray) and image.dtype == np.uint16 and image.ndim == 3 and image.shape[2] >= 3:
        icc = icc_profile if _icc_fits(icc_profile, "RGB") else None
        data = _encode_16bit(image, file_format, icc, exif)
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

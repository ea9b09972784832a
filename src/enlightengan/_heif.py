"""HEIC/HEIF photos through pillow-heif (the optional extra ``heif``): decoding and encoding.

Phones save HEIC at 8 bits per sample, or at 10 bits (HDR-capable models). pillow-heif hands high bit
depths over as ``uint16`` with the samples in the top bits (a 10-bit value ``v`` arrives as ``v << 6``).
Here they are brought to the full 16-bit range, ``u = round(v * 65535 / (2**d - 1))``, so that the rest
of the package treats them as any 16-bit image, and reduced again when written,
``v = round(u * (2**d - 1) / 65535)``: the two conversions are exact inverses, so a 10-bit picture read
and written unchanged keeps every value (before the encoder's own loss).

HEIF stores the rotation of a picture in its container (the ``irot`` and ``imir`` properties), and
libheif applies it while decoding: the pixels come out upright, and the EXIF orientation, informative
only in HEIF, must not be applied a second time (:mod:`enlightengan.image_io` resets it to 1).

:mod:`enlightengan.image_io` is the only user: it turns the ``ValueError`` raised here into its
:class:`~enlightengan.image_io.ImageReadError` with the file's path.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from ._optional import require
from .formats import too_many_pixels

__all__ = ["HeifPicture", "encode_heif", "from_full_range", "looks_like_heif", "read_heif", "to_full_range"]

#: ISO-BMFF brands (bytes 8-12, after ``ftyp``) of HEVC-coded HEIF files: single images, sequences,
#: and the generic MIAF/HEIF brands phones write first.
_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)

#: pillow-heif's modes for ``uint16`` data, by number of channels.
_MODES16 = {1: "I;16", 3: "RGB;16", 4: "RGBA;16"}
#: Pillow modes handed to pillow-heif as they are (8 bits); others are converted first.
_MODES8 = frozenset({"L", "LA", "RGB", "RGBA"})


def looks_like_heif(head: bytes) -> bool:
    """True when a file's first 12 bytes are an ISO-BMFF ``ftyp`` box of a HEIF/HEIC brand."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _BRANDS


def _pillow_heif() -> Any:
    """The ``pillow_heif`` module, or :class:`~enlightengan._optional.OptionalDependencyError`."""
    return require("pillow_heif", "heif")


def to_full_range(array: NDArray[np.uint16], bit_depth: int) -> NDArray[np.uint16]:
    """pillow-heif's ``uint16`` samples of a ``bit_depth``-bit picture (top-aligned) -> full 16-bit range.

    Args:
        array: any shape, ``uint16``, samples ``v << (16 - bit_depth)``.
        bit_depth: 9 to 16.

    Returns:
        The same shape, ``round(v * 65535 / (2**bit_depth - 1))``.
    """
    top = (1 << bit_depth) - 1
    values = (array >> (16 - bit_depth)).astype(np.uint32)
    return ((values * 65535 + top // 2) // top).astype(np.uint16)


def from_full_range(array: NDArray[np.uint16], bit_depth: int) -> NDArray[np.uint16]:
    """Full-range 16-bit samples -> pillow-heif's top-aligned ``bit_depth``-bit samples.

    The inverse of :func:`to_full_range`: ``round(u * (2**bit_depth - 1) / 65535) << (16 - bit_depth)``.
    """
    top = (1 << bit_depth) - 1
    values = (array.astype(np.uint32) * top + 65535 // 2) // 65535
    return (values << (16 - bit_depth)).astype(np.uint16)


@dataclass
class HeifPicture:
    """The primary picture of a HEIF file, decoded and upright.

    Attributes:
        pixels: an 8-bit PIL image (``L``, ``LA``, ``RGB`` or ``RGBA``), or for more than 8 bits a full-range
            ``uint16`` array, ``H x W`` (grey), ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA).
        bit_depth: bits per sample in the file (8, 10 or 12).
        icc_profile: the embedded ICC profile, or ``None``.
        exif: the EXIF block as stored (its orientation tag is informative only: see the module docstring).
    """

    pixels: Image.Image | NDArray[np.uint16]
    bit_depth: int
    icc_profile: bytes | None
    exif: bytes | None


def read_heif(path: Path, max_pixels: int) -> HeifPicture:
    """Decode the primary picture of a HEIC/HEIF file completely.

    Raises:
        OptionalDependencyError: pillow-heif is not installed.
        ValueError: too many pixels, or not a readable HEIF file (corrupt, truncated, an unsupported
            codec); the message is the reason, without the path.
    """
    pillow_heif = _pillow_heif()
    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)
    except (ValueError, RuntimeError, OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt, truncated or unsupported HEIF data ({exc})") from exc
    width, height = heif.size
    if width * height > max_pixels:
        raise ValueError(too_many_pixels(width, height, max_pixels))
    bit_depth = int(heif.info.get("bit_depth") or 8)
    try:
        if bit_depth > 8:
            pixels: Image.Image | NDArray[np.uint16] = to_full_range(np.asarray(heif), bit_depth)
        else:
            image = heif.to_pillow()
            image.load()
            pixels = image
    except (ValueError, RuntimeError, OSError, SyntaxError) as exc:
        raise ValueError(f"corrupt or truncated HEIF data ({exc})") from exc
    if isinstance(pixels, np.ndarray) and pixels.ndim == 3 and pixels.shape[2] == 2:
        raise ValueError("unsupported pixel layout: high bit depth grey with alpha")
    return HeifPicture(pixels, bit_depth, heif.info.get("icc_profile") or None, heif.info.get("exif") or None)


def encode_heif(
    image: Image.Image | NDArray[Any],
    *,
    bit_depth: int = 10,
    quality: int = 95,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    """Encode a picture as HEIC (HEVC in HEIF).

    Args:
        image: an 8-bit PIL image or ``uint8`` array (written at 8 bits), or a full-range ``uint16`` array
            or ``I;16`` image (written at ``bit_depth`` bits): ``H x W``, ``H x W x 3`` or ``H x W x 4``.
        bit_depth: 10 or 12, for 16-bit data.
        quality: 1 (smallest) to 100 (best) for the HEVC encoder.
        icc_profile: embedded as given.
        exif: embedded as given; a non-upright orientation in it becomes the container's rotation.

    Returns:
        The file's bytes.

    Raises:
        OptionalDependencyError: pillow-heif is not installed.
        ValueError: a bit depth other than 10 or 12, or data of another shape or type.
    """
    if bit_depth not in (10, 12):
        raise ValueError(f"HEIF is written at 10 or 12 bits for 16-bit data, not {bit_depth}")
    pillow_heif = _pillow_heif()
    if isinstance(image, Image.Image) and image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = np.asarray(image).astype(np.uint16)
    if isinstance(image, np.ndarray):
        array = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        channels = 1 if array.ndim == 2 else array.shape[2]
        if array.dtype == np.uint8:
            image = Image.fromarray(array)
        elif array.dtype == np.uint16 and channels in _MODES16:
            data = from_full_range(np.ascontiguousarray(array), bit_depth)
            size = (array.shape[1], array.shape[0])
            heif = pillow_heif.from_bytes(mode=_MODES16[channels], size=size, data=data.tobytes())
            return _save(heif, quality=quality, bit_depth=bit_depth, icc_profile=icc_profile, exif=exif)
        else:
            raise ValueError(f"cannot write a {array.dtype} array of shape {image.shape} as HEIF")
    if image.mode not in _MODES8:
        has_alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("L" if image.mode == "1" else "RGBA" if has_alpha else "RGB")
    # from_bytes, not from_pillow: the picture's own info (an old EXIF, say) must not travel along.
    heif = pillow_heif.from_bytes(mode=image.mode, size=image.size, data=image.tobytes())
    return _save(heif, quality=quality, bit_depth=8, icc_profile=icc_profile, exif=exif)


def _save(heif: Any, *, quality: int, bit_depth: int, icc_profile: bytes | None, exif: bytes | None) -> bytes:
    options: dict[str, Any] = {"quality": quality}
    if bit_depth > 8:
        options["bit_depth"] = bit_depth
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    if exif is not None:
        options["exif"] = exif
    buffer = io.BytesIO()
    heif.save(buffer, **options)
    return buffer.getvalue()

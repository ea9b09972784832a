"""Camera RAW files through rawpy (LibRaw; the optional extra ``raw``): recognising, developing, their EXIF.

Development (:func:`develop`) is LibRaw's, with these choices:

- the camera's own white balance (``use_camera_wb``; LibRaw's daylight balance when the file has none);
- no automatic brightening (``no_auto_bright``): brightening is the model's job, and a per-photo
  exposure push before it would hide how dark the photo was;
- sRGB primaries and the sRGB tone curve (``gamma=(2.4, 12.92)``: power 1/2.4 with a linear toe of slope
  12.92), so that the result is what an 8-bit photo of the scene would have been, with more bits;
- 16 bits per sample (``output_bps=16``), AHD demosaicing, highlights clipped, the picture turned
  upright by the camera's orientation flag.

EXIF: LibRaw gives none, so :func:`raw_exif` reads it from the file where the file is a TIFF structure
(DNG, CR2, NEF, ARW, and ORF and RW2, TIFF with their own magic numbers) or, for RAF, from the JPEG
preview the file carries. CR3 files (ISO-BMFF boxes) give none. Carried over: the descriptive tags of
the main IFD (:data:`MAIN_TAGS`: make, model, date and time, software, artist, copyright, description),
the Exif sub-IFD (exposure, aperture, ISO, lens, dates; also such tags found in the main IFD, as
TIFF/EP raws store them there) without the maker note, whose offsets point into the RAW file, and the
GPS sub-IFD. The orientation is set to 1: the developed pixels are upright.

:mod:`enlightengan.image_io` is the only user: it turns the ``ValueError`` raised here into its
:class:`~enlightengan.image_io.ImageReadError` with the file's path.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, TiffImagePlugin

from ._optional import require
from .formats import RAW_SUFFIXES, too_many_pixels

__all__ = ["MAIN_TAGS", "develop", "raw_exif", "raw_format"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
#: TIFF structures under another magic number: Olympus ORF and Panasonic RW2.
_TIFF_LIKE_MAGIC = {b"IIRO": b"II*\x00", b"IIRS": b"II*\x00", b"MMOR": b"MM\x00*", b"IIU\x00": b"II*\x00"}
_DNG_VERSION = 50706
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_ORIENTATION = 0x0112
#: Exif sub-IFD tags that are not carried: the maker note (offsets into the RAW file), the
#: interoperability pointer, Microsoft's padding.
_DROPPED = frozenset({0x927C, 0xA005, 0xEA1C})

#: Main-IFD tags carried over: ImageDescription, Make, Model, Software, DateTime, Artist, Copyright.
MAIN_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)

#: Exif tags that TIFF/EP raws (and some DNGs) keep in the main IFD; moved to the Exif sub-IFD.
_EXIF_TAGS_IN_MAIN = frozenset(
    {
        0x829A,  # ExposureTime
        0x829D,  # FNumber
        0x8822,  # ExposureProgram
        0x8827,  # ISOSpeedRatings
        0x9003,  # DateTimeOriginal
        0x9004,  # DateTimeDigitized
        0x9201,  # ShutterSpeedValue
        0x9202,  # ApertureValue
        0x9204,  # ExposureBiasValue
        0x9205,  # MaxApertureValue
        0x9207,  # MeteringMode
        0x9209,  # Flash
        0x920A,  # FocalLength
        0xA405,  # FocalLengthIn35mmFilm
        0xA431,  # BodySerialNumber
        0xA433,  # LensMake
        0xA434,  # LensModel
    }
)

#: Encoded EXIF larger than this is dropped: a JPEG APP1 segment holds at most 65,533 bytes.
_MAX_EXIF = 65_000


def _read_ifd(fp: Any, head: bytes, offset: int, group: int | None = None) -> dict[int, Any]:
    ifd = TiffImagePlugin.ImageFileDirectory_v2(head, group=group)
    fp.seek(offset)
    ifd.load(fp)
    return dict(ifd)


def _tiff_head(head: bytes) -> bytes | None:
    """The 8-byte TIFF header of a TIFF-structured file (ORF/RW2 magic replaced by TIFF's), or ``None``."""
    if head[:4] in _TIFF_MAGIC:
        return head[:8]
    magic = _TIFF_LIKE_MAGIC.get(head[:4])
    return None if magic is None else magic + head[4:8]


def raw_format(path: Path, head: bytes) -> str | None:
    """The RAW format of a file, from its suffix or, failing that, its content; ``None`` if not RAW.

    Args:
        path: the file (its suffix is trusted first: NEF and ARW have no signature of their own).
        head: the file's first 16 bytes or more.

    Returns:
        ``"DNG"``, ``"CR2"``, ``"CR3"``, ``"NEF"``, ... (the suffix in capitals), or ``None``.
    """
    suffix = path.suffix.lower()
    if suffix in RAW_SUFFIXES:
        return suffix[1:].upper()
    if head[:4] in _TIFF_MAGIC and head[8:10] == b"CR":
        return "CR2"
    if head[4:12] == b"ftypcrx ":
        return "CR3"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "ORF"
    if head[:4] == b"IIU\x00":
        return "RW2"
    if head[:4] in _TIFF_MAGIC:
        with contextlib.suppress(Exception), warnings.catch_warnings(), path.open("rb") as fp:
            warnings.simplefilter("ignore")
            main = TiffImagePlugin.ImageFileDirectory_v2(head[:8])
            fp.seek(main.next)
            main.load(fp)
            if _DNG_VERSION in main:
                return "DNG"
    return None


def _has_raw_signature(head: bytes) -> bool:
    """True when a file starts as a RAW format LibRaw reads: TIFF (DNG, CR2, NEF, ARW, ...), ORF, RW2, RAF,
    CR3 (ISO-BMFF ``ftyp`` of brand ``crx``)."""
    return _tiff_head(head) is not None or head.startswith(b"FUJIFILMCCD-RAW") or head[4:12] == b"ftypcrx "


def develop(path: Path, max_pixels: int) -> NDArray[np.uint16]:
    """Develop a RAW file to 16-bit sRGB as the module docstring says.

    Args:
        path: the RAW file.
        max_pixels: refuse a sensor with more pixels than this, before developing.

    Returns:
        ``H x W x 3`` ``uint16`` RGB (``H x W`` for a monochrome sensor), upright, full range 0..65535.

    Raises:
        OptionalDependencyError: rawpy is not installed.
        ValueError: too many pixels, a file LibRaw does not recognise, or corrupt or truncated data; the
            message is the reason, without the path.
    """
    rawpy = require("rawpy", "raw")
    with path.open("rb") as fp:
        head = fp.read(16)
    if not _has_raw_signature(head):
        raise ValueError(f"not a camera RAW file: its content (starting {head[:8]!r}) is no RAW format")
    try:
        with rawpy.imread(str(path)) as raw:
            width, height = int(raw.sizes.width), int(raw.sizes.height)
            if width * height > max_pixels:
                raise ValueError(too_many_pixels(width, height, max_pixels))
            rgb = raw.postprocess(
                use_camera_wb=True,
                no_auto_bright=True,
                output_bps=16,
                gamma=(2.4, 12.92),
                output_color=rawpy.ColorSpace.sRGB,
            )
    except rawpy.LibRawFileUnsupportedError as exc:
        raise ValueError(
            "not a camera RAW file LibRaw can read (an unsupported camera, or not RAW data)"
        ) from exc
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as exc:
        raise ValueError(f"corrupt or truncated RAW data (LibRaw: {_message(exc)})") from exc
    except rawpy.LibRawError as exc:
        raise ValueError(f"cannot develop the RAW file (LibRaw: {_message(exc)})") from exc
    array = np.asarray(rgb)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype != np.uint16 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"LibRaw developed an unexpected {array.dtype} array of shape {array.shape}")
    return np.ascontiguousarray(array)


def _message(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else type(exc).__name__
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _tiff_tags(path: Path, head: bytes) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]] | None:
    """(main IFD, Exif sub-IFD, GPS sub-IFD) of a TIFF-structured RAW file, or ``None``."""
    tiff_head = _tiff_head(head)
    if tiff_head is None:
        return None
    with path.open("rb") as fp:
        first = TiffImagePlugin.ImageFileDirectory_v2(tiff_head)
        main = _read_ifd(fp, tiff_head, first.next)
        exif = _read_ifd(fp, tiff_head, main[_EXIF_IFD], _EXIF_IFD) if _EXIF_IFD in main else {}
        gps = _read_ifd(fp, tiff_head, main[_GPS_IFD], _GPS_IFD) if _GPS_IFD in main else {}
    return main, exif, gps


def _raf_tags(path: Path) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]]:
    """The EXIF of a RAF file's JPEG preview (its offset and length: big-endian at bytes 84 and 88)."""
    with path.open("rb") as fp:
        fp.seek(84)
        offset, length = struct.unpack(">II", fp.read(8))
        fp.seek(offset)
        jpeg = fp.read(length)
    with Image.open(io.BytesIO(jpeg)) as preview:
        exif = preview.getexif()
        return dict(exif), dict(exif.get_ifd(_EXIF_IFD)), dict(exif.get_ifd(_GPS_IFD))


def raw_exif(path: Path) -> bytes | None:
    """The EXIF block to carry from a RAW file into its developed image (see the module docstring).

    Returns:
        ``Exif\\0\\0``-prefixed EXIF bytes with orientation 1, or ``None`` when the file gives none (CR3,
        unreadable or malformed metadata: the pixels are still good, only the metadata is dropped).
    """
    try:
        with path.open("rb") as fp:
            head = fp.read(16)
        with warnings.catch_warnings():  # Pillow warns of corrupt EXIF: that case is handled below
            warnings.simplefilter("ignore")
            found = _raf_tags(path) if head.startswith(b"FUJIFILMCCD-RAW") else _tiff_tags(path, head)
        if found is None:
            return None
        main, exif_ifd, gps = found
        out = Image.Exif()
        for tag in MAIN_TAGS:
            if tag in main:
                out[tag] = main[tag]
        exif_tags = {tag: value for tag, value in exif_ifd.items() if tag not in _DROPPED}
        for tag in _EXIF_TAGS_IN_MAIN & main.keys():
            exif_tags.setdefault(tag, main[tag])
        if not out and not exif_tags and not gps:
            return None
        out[_ORIENTATION] = 1
        if exif_tags:
            out[_EXIF_IFD] = exif_tags
        if gps:
            out[_GPS_IFD] = gps
        data = out.tobytes()
    except Exception:  # malformed metadata of any kind: keep the pixels, drop the EXIF
        return None
    return data if len(data) <= _MAX_EXIF else None

"""One request's work: check and decode the uploaded file, enhance it, encode it in the same format.

Runs in a worker thread (:mod:`enlightengan.server.jobs`). Decoding and encoding go through
:mod:`enlightengan.image_io`, exactly as ``enlightengan enhance`` does: the photo is turned upright by its
EXIF orientation, and the result keeps the input's format, size, pixel mode, bit depth, ICC profile and
EXIF (JPEG at quality 95). A format Pillow can read but not write (PSD, for instance) comes back as PNG,
and so do HEIC/HEIF and camera RAW uploads, which most browsers cannot show: a 10-bit HEIC or a RAW file
comes back as 16-bit PNG, with its EXIF.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from .rejection import Rejected

__all__ = ["EnhancedFile", "ImageRejected", "check_pixels", "enhance_file", "output_format"]

#: Formats a camera or scanner writes under one name but that are written as another.
_WRITE_AS = {"MPO": "JPEG"}

#: Formats read here but answered as PNG: browsers other than Safari do not show HEIF.
_ANSWER_AS_PNG = frozenset({"HEIF"})

#: File name suffixes of the common formats; others take the first suffix Pillow registers.
_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}

Pixels = Image.Image | NDArray[Any]


class ImageRejected(Rejected):
    """An upload that is not an image this server will enhance: ``status`` 400, 413 or 415, and why."""


@dataclass(frozen=True)
class EnhancedFile:
    """An encoded result: its bytes, Pillow format name, media type, file suffix and size in pixels."""

    data: bytes
    format: str
    media_type: str
    suffix: str
    width: int
    height: int


def output_format(read_format: str | None) -> str:
    """The Pillow format to answer in for an input read as ``read_format``: the same, or PNG (for formats
    that cannot be written, HEIF and camera RAW)."""
    from ..image_io import is_raw_format

    Image.init()
    name = _WRITE_AS.get(read_format or "", read_format or "")
    if is_raw_format(name) or name in _ANSWER_AS_PNG:
        return "PNG"
    return name if name in Image.SAVE else "PNG"


def _suffix(file_format: str) -> str:
    if file_format in _SUFFIXES:
        return _SUFFIXES[file_format]
    for suffix, name in Image.registered_extensions().items():
        if name == file_format:
            return suffix
    return ".img"


def check_pixels(path: Path, max_pixels: int) -> None:
    """Refuse, from the header alone, an image over ``max_pixels`` (413) or one that is no image (400).

    Raises:
        ImageRejected: with status 413 or 400.
    """
    from ..image_io import declared_size

    try:
        width, height = declared_size(path)  # whatever its size: Pillow's own limit does not answer
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return  # not this check's business: read_image names the problem precisely
    if width * height > max_pixels:
        raise ImageRejected(
            413,
            f"too many pixels: {width} x {height} = {width * height:,}, over the server's limit of "
            f"{max_pixels:,} (the server's --max-pixels)",
        )


def enhance_file(
    source: Path, work_dir: Path, enhance: Callable[[Pixels], Pixels], max_pixels: int
) -> EnhancedFile:
    """Decode ``source``, enhance it with ``enhance`` and encode the result in the input's format.

    Args:
        source: the uploaded file.
        work_dir: a folder for the encoded result (the caller removes it).
        enhance: maps a PIL image or a 16-bit RGB(A) array to its enhanced version in kind
            (:meth:`enlightengan.inference.Enhancer.enhance`).
        max_pixels: largest ``width * height`` accepted.

    Raises:
        ImageRejected: 413 for too many pixels; 400 for a file that is not an image, or is corrupt,
            truncated, or of an unsupported pixel mode (the message says which); 415 for a HEIC or RAW
            file when the server lacks the optional package that reads it.
    """
    from ..image_io import CodecMissingError, ImageReadError, read_image, write_image

    check_pixels(source, max_pixels)
    try:
        loaded = read_image(source, max_pixels=max_pixels)
    except CodecMissingError as exc:
        raise ImageRejected(415, f"this server cannot read the upload: {exc.reason}") from exc
    except ImageReadError as exc:
        status = 413 if exc.reason.startswith("too many pixels") else 400
        raise ImageRejected(status, exc.reason) from exc
    result = enhance(loaded.pixels)
    file_format = output_format(loaded.format)
    target = work_dir / f"result{_suffix(file_format)}"
    try:
        write_image(
            result, target, format=file_format, icc_profile=loaded.icc_profile, exif=loaded.exif, quality=95
        )
    except (OSError, ValueError, KeyError):
        if file_format == "PNG":
            raise
        # A format whose writer refuses this mode: answer losslessly rather than not at all.
        file_format = "PNG"
        target = work_dir / "result.png"
        write_image(result, target, format="PNG", icc_profile=loaded.icc_profile, exif=loaded.exif)
    width, height = loaded.size
    return EnhancedFile(
        data=target.read_bytes(),
        format=file_format,
        media_type=Image.MIME.get(file_format, "application/octet-stream"),
        suffix=_suffix(file_format),
        width=width,
        height=height,
    )

"""What the package reads and writes, as torch-free constants: file suffixes, output formats, pixel limits,
luma weights, the strength range, folder listing.

The command-line faces list folders and build their ``--help`` from these without importing the
inference stack; :mod:`enlightengan.image_io`, the models and the Enhancer use the same values.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY",
    "HEIF_SUFFIXES",
    "IMAGE_SUFFIXES",
    "LUMA_WEIGHTS",
    "MAX_STRENGTH",
    "OUTPUT_FORMATS",
    "PHOTO_SUFFIXES",
    "RAW_SUFFIXES",
    "VIDEO_SUFFIXES",
    "OutputFormat",
    "list_files",
    "parse_exposure_fade",
    "too_many_pixels",
]

#: Default pixel limit of :func:`enlightengan.image_io.read_image` (about 120 megapixels: every camera
#: photo, not a decompression bomb). It is the only limit: an image over Pillow's own
#: (``2 * Image.MAX_IMAGE_PIXELS``, 179 MP) is read when a larger ``max_pixels`` allows it, and refused
#: with its size and this limit otherwise.
DEFAULT_MAX_PIXELS = 120_000_000

#: File suffixes (lower case) of the formats Pillow reads, taken as images when a folder is listed for
#: training, evaluation and enhancement.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")

#: HEIC/HEIF photos (phones), read and written with pillow-heif (extra ``heif``).
HEIF_SUFFIXES = (".heic", ".heif", ".hif")

#: Camera RAW files, developed with rawpy/LibRaw (extra ``raw``): Adobe DNG, Canon CR2/CR3, Nikon NEF,
#: Sony ARW, Fujifilm RAF, Olympus ORF, Panasonic RW2.
RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2")

#: Everything ``enlightengan enhance`` and ``enlightengan serve`` take as a photo. Training and evaluation
#: keep to :data:`IMAGE_SUFFIXES` (their datasets are 8-bit images).
PHOTO_SUFFIXES = (*IMAGE_SUFFIXES, *HEIF_SUFFIXES, *RAW_SUFFIXES)

#: Quality of lossy outputs (JPEG, WebP, HEIC) unless ``--quality`` says otherwise.
DEFAULT_QUALITY = 95


@dataclass(frozen=True)
class OutputFormat:
    """An output format that ``enlightengan enhance --format`` can choose.

    Attributes:
        pillow: the format's Pillow name (``"JPEG"``, ``"HEIF"``, ...), as
            :mod:`enlightengan.image_io` writes it (:func:`~enlightengan.image_io.fit_to_format` says what
            each can hold: 16 bits in PNG, TIFF and HEIC; alpha in all but JPEG).
        suffix: the file suffix given to outputs in this format.
    """

    pillow: str
    suffix: str


#: ``--format`` choices (besides ``same``), by name.
OUTPUT_FORMATS = {
    "jpg": OutputFormat("JPEG", ".jpg"),
    "png": OutputFormat("PNG", ".png"),
    "tiff": OutputFormat("TIFF", ".tif"),
    "webp": OutputFormat("WEBP", ".webp"),
    "heic": OutputFormat("HEIF", ".heic"),
}

#: File suffixes (lower case) treated as videos by ``enlightengan enhance``.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")

#: ITU-R BT.601 luma weights for R, G, B: Pillow's ``convert("L")`` and the generator's attention map
#: (``1 - luminance``, Jiang et al., IEEE TIP 2021, Sec. III-C).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


#: The largest enhancement strength (the scale of the generator's residual: 0 leaves the photo
#: unchanged, 1 is the published model). One range, 0 to this, is checked alike by the Enhancer,
#: ``enhance --strength``, ``serve --strength``, the API's ``?strength=`` and the page's slider; beyond
#: twice the model's own brightening the shadows burn out to flat white.
MAX_STRENGTH = 2.0


def parse_exposure_fade(text: str) -> tuple[float, float] | None:
    """An exposure fade written as ``LOW,HIGH`` (mean brightnesses, ``0 <= LOW < HIGH <= 1``), or ``none``.

    One syntax for ``--exposure-fade`` and the API's ``?exposure_fade=``: ``"0.25,0.35"`` ->
    ``(0.25, 0.35)``; ``"none"`` (any case) -> ``None`` (every photo enhanced fully).

    Raises:
        ValueError: anything else, with the expected form in the message.
    """
    if text.strip().lower() == "none":
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected LOW,HIGH such as 0.25,0.35 or none, got {text!r}") from None
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"needs 0 <= LOW < HIGH <= 1, got {text!r}")
    return low, high


def too_many_pixels(width: int, height: int, limit: int) -> str:
    """The reason given for an image over the pixel limit (the server answers 413 when it starts so)."""
    return (
        f"too many pixels: {width} x {height} = {width * height:,}, over the limit of {limit:,} "
        "(raise it with --max-pixels / max_pixels if the image is genuine)"
    )


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_files(
    folder: str | os.PathLike[str], suffixes: Collection[str], *, recursive: bool = False
) -> list[Path]:
    """The files in ``folder`` whose suffix is one of ``suffixes`` (lower case; matched in any case).

    Hidden files and folders below ``folder`` (names starting with ``.``, among them the temporary
    ``.name.part`` files of :func:`enlightengan._atomic.atomic_path`) are skipped.

    Args:
        folder: an existing folder.
        suffixes: accepted suffixes with the dot, e.g. :data:`IMAGE_SUFFIXES`.
        recursive: include sub-folders.

    Returns:
        The paths, sorted.
    """
    root = Path(folder)
    candidates = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        p for p in candidates if p.suffix.lower() in suffixes and p.is_file() and not _hidden(p, root)
    )

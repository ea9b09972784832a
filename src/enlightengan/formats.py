"""What the package reads, as torch-free constants: file suffixes, pixel limits, luma weights, the
strength range, folder listing.

The command-line faces list folders and build their ``--help`` from these without importing the
inference stack; :mod:`enlightengan.image_io`, the models and the Enhancer use the same values.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "LUMA_WEIGHTS",
    "MAX_STRENGTH",
    "VIDEO_SUFFIXES",
    "list_files",
]

#: Default pixel limit of :func:`enlightengan.image_io.read_image` (about 120 megapixels: every camera
#: photo, not a decompression bomb). It is the only limit: an image over Pillow's own
#: (``2 * Image.MAX_IMAGE_PIXELS``, 179 MP) is read when a larger ``max_pixels`` allows it, and refused
#: with its size and this limit otherwise.
DEFAULT_MAX_PIXELS = 120_000_000

#: File suffixes (lower case) taken as images when a folder is listed.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")

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

"""Finding training images in folders.

A folder of images is listed once, before any work starts: a missing folder, a file given as a
folder, or a folder without image files is a :class:`DataError` naming the folder and the accepted
extensions, so a typo in ``--low`` fails in a second, not after the networks are built.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..image_io import IMAGE_SUFFIXES

__all__ = ["IMAGE_EXTENSIONS", "DataError", "list_images"]

#: File extensions (lower case, with the dot) taken as images; matched case-insensitively.
IMAGE_EXTENSIONS: tuple[str, ...] = IMAGE_SUFFIXES


class DataError(ValueError):
    """Training data that cannot be used (a missing folder, no images, no readable images)."""


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_images(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """The image files under ``folder``, sorted by path.

    Args:
        folder: the folder to list.
        recursive: include sub-folders (hidden files and folders, starting with ``.``, are skipped).

    Returns:
        Paths of the files whose extension is in :data:`IMAGE_EXTENSIONS` (case-insensitive).

    Raises:
        DataError: the folder does not exist, is not a folder, or holds no image files.
    """
    root = Path(folder)
    if not root.exists():
        raise DataError(f"image folder does not exist: {root}")
    if not root.is_dir():
        raise DataError(f"expected a folder of images, got a file: {root}")
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = sorted(
        p for p in candidates if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not _hidden(p, root)
    )
    if not files:
        where = "in it or its sub-folders" if recursive else "directly in it (sub-folders were not searched)"
        raise DataError(
            f"no image files {where}: {root}; accepted extensions: {' '.join(IMAGE_EXTENSIONS)} (any case)"
        )
    return files

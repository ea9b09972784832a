"""Finding training images in folders.

A folder of images is listed once, before any work starts: a missing folder, a file given as a
folder, or a folder without image files is a :class:`DataError` naming the folder and the accepted
extensions, so a typo in ``--low`` fails in a second, not after the networks are built.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..formats import IMAGE_SUFFIXES, list_files

__all__ = ["DataError", "list_images"]


class DataError(ValueError):
    """Training data that cannot be used (a missing folder, no images, no readable images)."""


def list_images(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """The image files under ``folder``, sorted by path.

    Args:
        folder: the folder to list.
        recursive: include sub-folders (hidden files and folders, starting with ``.``, are skipped).

    Returns:
        Paths of the files whose extension is in :data:`~enlightengan.formats.IMAGE_SUFFIXES`
        (case-insensitive).

    Raises:
        DataError: the folder does not exist, is not a folder, or holds no image files.
    """
    root = Path(folder)
    if not root.exists():
        raise DataError(f"image folder does not exist: {root}")
    if not root.is_dir():
        raise DataError(f"expected a folder of images, got a file: {root}")
    files = list_files(root, IMAGE_SUFFIXES, recursive=recursive)
    if not files:
        where = "in it or its sub-folders" if recursive else "directly in it (sub-folders were not searched)"
        raise DataError(
            f"no image files {where}: {root}; accepted extensions: {' '.join(IMAGE_SUFFIXES)} (any case)"
        )
    return files

"""Finding training images in folders."""

from __future__ import annotations

from pathlib import Path

from ..image_io import IMAGE_SUFFIXES

__all__ = ["IMAGE_EXTENSIONS", "DataError", "list_images"]

IMAGE_EXTENSIONS = IMAGE_SUFFIXES


class DataError(ValueError):
    """Training data that cannot be used (a missing folder, no images)."""


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Sorted image files (by extension, case-insensitive) under ``folder``; hidden files are ignored.

    Raises:
        DataError: the folder does not exist, is a file, or holds no image files.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder does not exist: {folder}")
    if not folder.is_dir():
        raise DataError(f"not a folder: {folder}")
    pattern = "**/*" if recursive else "*"
    files = sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise DataError(
            f"no image files in {folder}{' (searched recursively)' if recursive else ''}; "
            f"accepted extensions: {' '.join(IMAGE_EXTENSIONS)}"
        )
    return files

"""Atomic file writes: a reader never sees a half-written file, an interrupted run leaves none."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    The temporary file lives in the target's folder (so the final ``os.replace`` is atomic on the
    same file system) and keeps the target's suffix (so writers that pick a format from the suffix,
    like Pillow or safetensors, behave). On any exception the temporary file is removed and the
    target is left untouched.

    Example:
        >>> with atomic_path("out.png") as tmp:  # doctest: +SKIP
        ...     image.save(tmp)
    """
    target = Path(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise

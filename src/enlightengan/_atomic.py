"""Atomic file writes: a reader never sees a half-written file, an interrupted run leaves none."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]

#: Names tried for the temporary file before giving up (each has 32 random bits).
_ATTEMPTS = 100


def _create_beside(target: Path) -> tuple[Path, os.stat_result]:
    """A new, empty, hidden file beside ``target`` that keeps its suffix: ``.stem.<random>.part.suffix``.

    It is created with mode ``0o666``, so the process umask (and a default ACL of the folder) decide
    its permissions, as for a plain ``open()``. (``tempfile.mkstemp`` creates ``0o600`` files, and
    reading the umask to widen them means changing it for a moment, for every thread.) Returns the
    path and its ``stat`` result.
    """
    for _ in range(_ATTEMPTS):
        tmp = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.part{target.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            created = os.fstat(fd)
        finally:
            os.close(fd)
        return tmp, created
    raise FileExistsError(f"no free temporary name beside {target} after {_ATTEMPTS} attempts")


def _restore_mode(tmp: Path, created: os.stat_result) -> None:
    """Give ``tmp`` the permission bits it was created with if the writer put another file there."""
    now = tmp.stat()
    if (now.st_dev, now.st_ino) == (created.st_dev, created.st_ino):
        return  # the writer wrote into the file it was given: nothing changed
    mode = stat.S_IMODE(created.st_mode)
    if stat.S_IMODE(now.st_mode) != mode:
        os.chmod(tmp, mode)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    The temporary file lives in the target's folder (so the final ``os.replace`` is atomic on the
    same file system), is hidden (a leading dot: folder listings skip it) and keeps the target's
    suffix (so writers that pick a format from the suffix, like Pillow or safetensors, behave). Its
    permissions are those a plain ``open()`` would give (``0o666`` less the umask), also when the
    writer replaces the temporary file by one of its own (safetensors >= 0.7 writes a private ``0o600``
    file and renames it onto the path it is given): its permission bits are set back before the rename.
    On any exception the temporary file is removed and the target is left untouched.

    Example:
        >>> with atomic_path("out.png") as tmp:  # doctest: +SKIP
        ...     image.save(tmp)
    """
    target = Path(target)
    tmp, created = _create_beside(target)
    try:
        yield tmp
        _restore_mode(tmp, created)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise

"""Atomic writes: the target appears whole or not at all, nothing is left behind, permissions as open()."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from enlightengan._atomic import atomic_path


class WriterFailed(RuntimeError):
    pass


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask that a test sets."""
    previous = os.umask(0o022)
    os.umask(previous)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_target_appears_only_when_the_writer_is_done(tmp_path: Path) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"old")
    reader = target.open("rb")  # a reader holding the old file while it is replaced
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        assert target.read_bytes() == b"old"  # not touched while the writer works
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".png"
        tmp.write_bytes(b"new, complete")
    assert target.read_bytes() == b"new, complete"
    assert reader.read() == b"old"  # replaced by a rename, not rewritten in place
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


@pytest.mark.parametrize("error", [WriterFailed("disk full"), KeyboardInterrupt()])
def test_a_failing_writer_leaves_no_file_and_the_old_target(tmp_path: Path, error: BaseException) -> None:
    existing, fresh = tmp_path / "kept.txt", tmp_path / "never.txt"
    existing.write_text("old")
    for target in (existing, fresh):
        with pytest.raises(type(error)), atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise error
    assert existing.read_text() == "old"
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]  # no temporary file left


def test_a_writer_that_removed_its_file_still_raises_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(WriterFailed), atomic_path(tmp_path / "x.bin") as tmp:
        tmp.unlink()
        raise WriterFailed("gave up")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask_as_a_plain_open(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with atomic_path(tmp_path / "atomic.txt") as tmp:
        tmp.write_text("x")
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == 0o666 & ~mask  # 0o644, 0o600, 0o664: not mkstemp's 0o600 whatever the umask
    assert mode == stat.S_IMODE(plain.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_writer_that_replaces_the_file_still_gets_the_umask_mode(tmp_path: Path, umask: None) -> None:
    # What safetensors >= 0.7 does with the path it is given: write a private file, rename it there.
    os.umask(0o022)
    with atomic_path(tmp_path / "weights.safetensors") as tmp:
        fd, private = tempfile.mkstemp(dir=tmp_path)  # mode 0o600
        os.write(fd, b"tensors")
        os.close(fd)
        os.replace(private, tmp)
    written = tmp_path / "weights.safetensors"
    assert written.read_bytes() == b"tensors"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644


def test_each_write_gets_its_own_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "same.txt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer block finishes last
    assert [p.name for p in tmp_path.iterdir()] == ["same.txt"]

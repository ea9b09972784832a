"""The torch-free constants and the one folder lister behind data, enhance and evaluate (the
import contract ``torch-free-formats`` keeps them free of torch)."""

from __future__ import annotations

from pathlib import Path

from enlightengan.formats import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_files


def test_list_files_case_hidden_recursive_sorted(tmp_path: Path) -> None:
    for name in (
        "b.PNG",
        "a.jpg",
        "notes.txt",
        ".hidden.png",
        "sub/c.tif",
        ".cache/d.png",
        "sub/.e.part.png",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a folder named like an image is not a file
    assert list_files(tmp_path, IMAGE_SUFFIXES) == [tmp_path / "a.jpg", tmp_path / "b.PNG"]
    assert list_files(tmp_path, IMAGE_SUFFIXES, recursive=True) == [
        tmp_path / "a.jpg",
        tmp_path / "b.PNG",
        tmp_path / "sub" / "c.tif",
    ]
    assert list_files(tmp_path, (".txt",)) == [tmp_path / "notes.txt"]


def test_suffixes_are_lower_case_with_a_dot_and_disjoint() -> None:
    for suffix in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES):
        assert suffix.startswith(".") and suffix == suffix.lower()
    assert not set(IMAGE_SUFFIXES) & set(VIDEO_SUFFIXES)

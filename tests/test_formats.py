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


def test_photo_suffixes_and_output_formats() -> None:
    from enlightengan.formats import HEIF_SUFFIXES, OUTPUT_FORMATS, PHOTO_SUFFIXES, RAW_SUFFIXES

    for suffix in (*HEIF_SUFFIXES, *RAW_SUFFIXES):
        assert suffix.startswith(".") and suffix == suffix.lower()
    assert PHOTO_SUFFIXES == (*IMAGE_SUFFIXES, *HEIF_SUFFIXES, *RAW_SUFFIXES)
    assert len(set(PHOTO_SUFFIXES)) == len(PHOTO_SUFFIXES) and not set(PHOTO_SUFFIXES) & set(VIDEO_SUFFIXES)
    # every output can be read again: its suffix is listed, and RAW is never an output
    for output in OUTPUT_FORMATS.values():
        assert output.suffix in PHOTO_SUFFIXES and output.suffix not in RAW_SUFFIXES
    assert {name: output.pillow for name, output in OUTPUT_FORMATS.items()} == {
        "jpg": "JPEG",
        "png": "PNG",
        "tiff": "TIFF",
        "webp": "WEBP",
        "heic": "HEIF",
    }

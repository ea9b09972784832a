"""``enlightengan enhance`` end to end on images the tests make, good and broken."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from enlightengan import formats
from enlightengan.cli import main
from enlightengan.image_io import read_image
from enlightengan.inference import Enhancer
from enlightengan.weights import bundled as weights_module

from .conftest import make_dark_rgb, png_declaring

pytestmark = pytest.mark.usefixtures("no_weights_env")  # the weights come from each test


def _jpeg_bytes(rgb: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=92, **options)
    return buffer.getvalue()


def _orientation6() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def make_mixed_folder(folder: Path) -> dict[str, Path]:
    """Good photos of several kinds next to broken files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "rotated": folder / "rotated.jpg",
        "png": folder / "plain.png",
        "rgba": folder / "alpha.png",
        "grey": folder / "grey.png",
        "corrupt": folder / "corrupt.jpg",
        "text": folder / "notes.png",
        "empty": folder / "empty.jpg",
    }
    files["rotated"].write_bytes(_jpeg_bytes(make_dark_rgb(24, 40), exif=_orientation6()))
    Image.fromarray(make_dark_rgb(19, 23, seed=1)).save(files["png"])
    alpha = np.random.default_rng(2).integers(0, 256, (12, 15, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([make_dark_rgb(12, 15, seed=2), alpha], axis=2)).save(files["rgba"])
    Image.fromarray(make_dark_rgb(9, 30, seed=3)[..., 0]).save(files["grey"])
    files["corrupt"].write_bytes(_jpeg_bytes(make_dark_rgb(64, 64, seed=4))[:900])
    files["text"].write_text("this is not a picture\n")
    files["empty"].write_bytes(b"")
    (folder / "README.txt").write_text("ignored: not an image suffix")
    return files


def no_part_files(folder: Path) -> bool:
    return not any(".part" in p.name for p in folder.rglob("*"))


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    status = main(["enhance", *map(str, argv)])
    return status, capsys.readouterr().err


# --- the acceptance case: a mixed folder ------------------------------------------------------------


def test_mixed_folder(
    tmp_path: Path, weights: Path, enhancer: Enhancer, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    status, err = run(capsys, tmp_path / "in", tmp_path / "missing.jpg", "-o", out, "--weights", weights)
    assert status == 1
    written = sorted(p.name for p in out.iterdir())
    assert written == ["alpha.png", "grey.png", "plain.png", "rotated.jpg"]
    assert no_part_files(out)

    # right size, orientation, format and mode
    with Image.open(out / "rotated.jpg") as image:
        assert image.format == "JPEG" and image.size == (24, 40)  # stored 40x24 turned upright
        assert image.getexif().get(0x0112, 1) == 1  # not applied a second time by viewers
    with Image.open(out / "grey.png") as image:
        assert image.mode == "L" and image.size == (30, 9)
    with Image.open(out / "alpha.png") as image:
        assert image.mode == "RGBA"
        assert np.array_equal(np.asarray(image)[..., 3], np.asarray(Image.open(files["rgba"]))[..., 3])
    # the pixels are those of the inference API
    expected = enhancer.enhance(read_image(files["png"]).pixels)
    assert np.array_equal(np.asarray(Image.open(out / "plain.png")), np.asarray(expected))

    # every broken input named with its reason, then the summary
    assert "corrupt.jpg: corrupt or truncated" in err
    assert "notes.png: not an image" in err
    assert "empty.jpg: empty file (0 bytes)" in err
    assert "missing.jpg: no such file or folder" in err
    assert "4 enhanced, 0 skipped, 4 failed" in err
    assert "README" not in err


def test_overwrite(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(make_dark_rgb(10, 10)).save(src)
    out = tmp_path / "out"
    assert run(capsys, src, "-o", out, "--weights", weights)[0] == 0
    good = (out / "a.png").read_bytes()
    Image.new("RGB", (3, 3)).save(out / "a.png")  # an older result of another size
    stale = (out / "a.png").read_bytes()

    status, err = run(capsys, src, "-o", out, "--weights", weights)
    assert status == 0 and (out / "a.png").read_bytes() == stale
    assert "skipped (exists" in err and "0 enhanced, 1 skipped, 0 failed" in err

    status, err = run(capsys, src, "-o", out, "--weights", weights, "--overwrite")
    assert status == 0 and (out / "a.png").read_bytes() == good
    assert "1 enhanced, 0 skipped, 0 failed" in err


def test_recursive_keeps_structure(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "photos"
    for rel in ("top.png", "trip/day1/a.png", "trip/b.jpg", ".hidden/c.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(make_dark_rgb(8, 8)).save(root / rel)
    flat, deep = tmp_path / "flat", tmp_path / "deep"
    assert run(capsys, root, "-o", flat, "--weights", weights)[0] == 0
    assert sorted(str(p.relative_to(flat)) for p in flat.rglob("*") if p.is_file()) == ["top.png"]
    assert run(capsys, root, "-o", deep, "--weights", weights, "--recursive")[0] == 0
    found = sorted(str(p.relative_to(deep)) for p in deep.rglob("*") if p.is_file())
    assert found == ["top.png", "trip/b.jpg", "trip/day1/a.png"]
    # results written inside the input tree are not enhanced again on the next run
    inside = root / "enhanced"
    assert run(capsys, root, "-o", inside, "--weights", weights, "--recursive")[0] == 0
    status, err = run(capsys, root, "-o", inside, "--weights", weights, "--recursive")
    assert status == 0 and "0 enhanced, 3 skipped, 0 failed" in err


def test_globs_expanded_by_the_tool(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for name in ("x1.png", "x2.png", "y.jpg"):
        Image.fromarray(make_dark_rgb(8, 8)).save(folder / name)
    out = tmp_path / "out"
    status, err = run(capsys, f"{folder}/*.png", f"{tmp_path}/nothing/*.png", "-o", out, "--weights", weights)
    assert status == 1
    assert sorted(p.name for p in out.iterdir()) == ["x1.png", "x2.png"]
    assert "nothing/*.png: no files match this pattern" in err


def test_conflicting_outputs(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / sub / "same.png")
    status, err = run(capsys, tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", "--weights", weights)
    assert status == 1 and "same output name as" in err
    status, err = run(capsys, tmp_path / "a", "-o", tmp_path / "a", "--weights", weights, "--overwrite")
    assert status == 1 and "would overwrite the input" in err


def test_16bit_and_icc_through_the_cli(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rgb16 = (make_dark_rgb(9, 11).astype(np.uint16) * 257)[..., ::-1]  # BGR for OpenCV
    cv2.imwrite(str(folder / "deep.png"), np.ascontiguousarray(rgb16))
    Image.fromarray(make_dark_rgb(7, 5)[..., 0].astype(np.uint16) * 300).save(folder / "grey16.png")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(make_dark_rgb(8, 8)).save(folder / "profiled.jpg", icc_profile=icc)
    Image.new("CMYK", (6, 4), (0, 30, 60, 200)).save(folder / "print.jpg")
    out = tmp_path / "out"
    assert run(capsys, folder, "-o", out, "--weights", weights)[0] == 0
    deep = cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep is not None and deep.dtype == np.uint16 and deep.shape == (9, 11, 3)
    with Image.open(out / "grey16.png") as image:
        assert image.mode == "I;16" and image.size == (5, 7)
    with Image.open(out / "profiled.jpg") as image:
        assert image.info["icc_profile"] == icc
    with Image.open(out / "print.jpg") as image:
        assert image.mode == "RGB" and image.size == (6, 4)


# --- usage errors: exit status 2 ---------------------------------------------------------------------


def test_output_folder_under_a_file(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / "a.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    status, err = run(capsys, tmp_path / "a.png", "-o", blocker / "out", "--weights", weights)
    assert status == 2 and "cannot create the output folder" in err
    status, err = run(capsys, tmp_path / "a.png", "-o", blocker, "--weights", weights)
    assert status == 2 and "is not a folder" in err


def test_no_input_found_leaves_no_output_folder(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out" / "nested"
    for inputs in (["missing.png"], [str(tmp_path / "empty")], [str(tmp_path / "*.jpg")]):
        status, err = run(capsys, *inputs, "-o", out, "--weights", weights)
        assert status == 1 and "0 enhanced, 0 skipped, 1 failed" in err
    # a shard that gets no job writes nothing either
    Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / "a.png")
    status, err = run(capsys, tmp_path / "a.png", "-o", out, "--weights", weights, "--shard", "2/2")
    assert status == 0 and "0 enhanced" in err
    # inputs that all fail (here: not images) leave nothing behind either
    (tmp_path / "empty" / "notes.png").write_text("not a picture")
    status, err = run(capsys, tmp_path / "empty", "-o", out, "--weights", weights)
    assert status == 1 and "0 enhanced, 0 skipped, 1 failed (nothing written)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "empty"]  # no out/ nor out/nested/
    status, err = run(capsys, tmp_path / "a.png", "-o", out, "--weights", weights)
    assert status == 0 and (out / "a.png").is_file()


def test_unwritable_output_folder(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / "a.png")
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):
            # root ignores permission bits: make the folder refuse files the way the kernel would
            import tempfile

            def refuse(*args: object, **kwargs: object) -> None:
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
        status, err = run(capsys, tmp_path / "a.png", "-o", out, "--weights", weights)
    finally:
        out.chmod(0o700)
    assert status == 2 and "cannot write into the output folder" in err and "Permission denied" in err
    assert list(out.iterdir()) == []


def test_weights_resolved_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / "a.png")
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path / "no_bundle")
    status, err = run(capsys, tmp_path / "a.png", "-o", tmp_path / "out")
    assert status == 2 and "missing from this installation" in err and "--weights" in err
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.pth"
    bad.write_text("not weights")
    status, err = run(capsys, tmp_path / "a.png", "-o", tmp_path / "out", "--weights", bad)
    assert status == 2 and "not a PyTorch checkpoint" in err
    status, err = run(capsys, tmp_path / "a.png", "-o", tmp_path / "out", "--weights", tmp_path / "nope.pth")
    assert status == 2 and "does not exist" in err


def test_weights_from_environment(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / "a.png")
    monkeypatch.setenv(weights_module.ENV_VAR, str(weights))
    assert run(capsys, tmp_path / "a.png", "-o", tmp_path / "out")[0] == 0
    assert (tmp_path / "out" / "a.png").is_file()


@pytest.mark.parametrize(
    "bad",
    [
        ["--strength", "-1"],
        ["--strength", "nan"],
        ["--strength", "5"],
        ["--max-pixels", "0"],
        ["--device", "gpu"],
    ],
    ids=["negative-strength", "nan-strength", "strength-over-2", "zero-pixels", "unknown-device"],
)
def test_bad_options_exit_2(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], bad: list[str]
) -> None:
    Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / "a.png")
    argv = ["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", str(weights), *bad]
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse rejects it while parsing
        status = int(exc.code or 0)
    assert status == 2
    assert capsys.readouterr().err.strip()


def test_help_documents_everything(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["enhance", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--output", "--weights", "--device", "--strength", "--recursive", "--overwrite"):
        assert option in text
    for option in ("--max-pixels", "--quiet", "ENLIGHTENGAN_WEIGHTS", "examples:", "exit status"):
        assert option in text
    assert f"{formats.DEFAULT_MAX_PIXELS:,}" in text
    assert all(suffix in text for suffix in (*formats.PHOTO_SUFFIXES, *formats.VIDEO_SUFFIXES))
    for option in ("--format", "--quality", *formats.OUTPUT_FORMATS, "enlightengan[heif]", "[raw]"):
        assert option in text


# --- failures while writing, --max-pixels, --quiet ----------------------------------------------------


def test_failure_while_writing_leaves_nothing(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        Image.fromarray(make_dark_rgb(16, 16)).save(folder / name)
    real_save = Image.Image.save

    def dies_midway(self: Image.Image, fp: object, *args: Any, **kwargs: Any) -> None:
        buffer = io.BytesIO()
        real_save(self, buffer, *args, **kwargs)
        Path(str(fp)).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", dies_midway)
    out = tmp_path / "out"
    status, err = run(capsys, folder, "-o", out, "--weights", weights)
    assert status == 1
    assert "cannot write the output" in err and "No space left on device" in err
    assert "0 enhanced, 0 skipped, 2 failed (nothing written)" in err
    assert not out.exists()  # no partial image, no temporary file, and no empty folder


def test_max_pixels_and_quiet(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_dark_rgb(10, 10)).save(folder / "small.png")
    Image.fromarray(make_dark_rgb(10, 11)).save(folder / "large.png")
    out = tmp_path / "out"
    status, err = run(capsys, folder, "-o", out, "--weights", weights, "--max-pixels", "100", "--quiet")
    assert status == 1
    assert "large.png: too many pixels: 11 x 10 = 110, over the limit of 100" in err
    assert sorted(p.name for p in out.iterdir()) == ["small.png"]
    status, err = run(capsys, folder / "small.png", "-o", out, "--weights", weights, "--quiet")
    assert status == 0 and err == ""  # quiet and nothing went wrong: silence


def test_a_decompression_bomb_gets_the_projects_message(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(100_000, 100_000))
    status, err = run(capsys, bomb, "-o", tmp_path / "out", "--weights", weights)
    assert status == 1
    assert (
        "bomb.png: too many pixels: 100000 x 100000 = 10,000,000,000, over the limit of 120,000,000 "
        "(raise it with --max-pixels" in err
    )
    assert "DOS" not in err and "decompression bomb" not in err  # not Pillow's own words


def test_a_large_photo_shows_its_tiles(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from enlightengan.inference import tiling

    Image.fromarray(make_dark_rgb(420, 520)).save(tmp_path / "large.png")
    Image.fromarray(make_dark_rgb(40, 40)).save(tmp_path / "small.png")
    monkeypatch.setattr(tiling, "DEFAULT_MEMORY_CAP", 8 << 20)  # the large photo needs several tiles
    status, err = run(capsys, tmp_path / "large.png", "-o", tmp_path / "out", "--weights", weights)
    assert status == 0
    totals = {int(total) for total in re.findall(r"tiles: +\d+%\|[^|]*\| *\d+/(\d+)", err)}
    assert len(totals) == 1 and totals.pop() > 1, err
    status, err = run(capsys, tmp_path / "small.png", "-o", tmp_path / "out", "--weights", weights)
    assert status == 0 and "tiles" not in err  # one piece: no tile bar
    status, err = run(capsys, tmp_path / "large.png", "-o", tmp_path / "q", "--weights", weights, "--quiet")
    assert status == 0 and err == ""


# --- the installed console script ---------------------------------------------------------------------


def _console_script() -> str:
    found = shutil.which("enlightengan") or shutil.which(
        "enlightengan", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.skip("the enlightengan console script is not installed (pip install -e .)")
    return found


def test_console_script(tmp_path: Path, weights: Path) -> None:
    script = _console_script()
    files = make_mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            script,
            "enhance",
            str(tmp_path / "in"),
            "-o",
            str(out),
            "--weights",
            str(weights),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 1, result.stderr
    assert "4 enhanced, 0 skipped, 3 failed" in result.stderr
    assert "corrupt.jpg: corrupt or truncated" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "grey.png", "plain.png", "rotated.jpg"]
    with Image.open(out / "rotated.jpg") as image:
        assert image.size == (24, 40)
    assert files["corrupt"].exists() and no_part_files(out)


def test_a_nearly_black_photo_is_enhanced_with_a_warning(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(5)
    Image.fromarray(np.clip(rng.normal(1.5, 1.0, (40, 48, 3)), 0, 255).astype(np.uint8)).save(
        tmp_path / "b.png"
    )
    Image.fromarray(make_dark_rgb(40, 48)).save(tmp_path / "d.png")
    out = tmp_path / "out"
    common = ["--weights", str(weights), "--device", "cpu", "--quiet", "-o", str(out)]
    assert main(["enhance", str(tmp_path / "b.png"), str(tmp_path / "d.png"), *common]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "b.png: nearly black" in err and "d.png: nearly" not in err
    assert (out / "b.png").is_file() and (out / "d.png").is_file()  # a warning, not a failure


@pytest.mark.parametrize("workers", ["1", "2"])
def test_overlapped_workers_write_what_the_sequential_loop_writes(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    files = make_mixed_folder(tmp_path / "in")
    common = [tmp_path / "in", "--weights", weights, "--device", "cpu", "--quiet"]
    status0, err0 = run(capsys, *common, "-o", tmp_path / "seq", "--workers", "0")
    status, err = run(capsys, *common, "-o", tmp_path / "par", "--workers", workers)
    assert status == status0 == 1  # the broken files fail alike
    for name in ("corrupt.jpg", "notes.png", "empty.jpg"):
        assert name in err and name in err0
    written = sorted(p.name for p in (tmp_path / "seq").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "par").iterdir())
    assert len(written) == 4 and no_part_files(tmp_path / "par")
    for name in written:
        seq, par = Image.open(tmp_path / "seq" / name), Image.open(tmp_path / "par" / name)
        assert seq.mode == par.mode
        np.testing.assert_array_equal(np.asarray(seq), np.asarray(par))
    del files


def test_workers_must_be_a_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["enhance", str(tmp_path), "-o", str(tmp_path / "o"), "--workers", "-1"])
    assert "--workers" in capsys.readouterr().err

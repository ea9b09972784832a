"""``enlightengan enhance`` on HEIC and camera RAW files the tests make, ``--format`` and ``--quality``,
broken files of each kind, the missing extras, and what RAW's bits buy in the shadows."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms
from PIL.TiffImagePlugin import IFDRational

from enlightengan.cli import main
from enlightengan.image_io import read_image
from enlightengan.inference import Enhancer
from enlightengan.models.checkpoint import save_generator

from .conftest import (
    bayer_mosaic,
    brightening_generator,
    dark_scene,
    make_dark_rgb,
    write_dng,
    write_heic,
)

MAKE, ORIENTATION, EXIF_IFD, DATE_ORIGINAL = 0x010F, 0x0112, 0x8769, 0x9003


pytestmark = pytest.mark.usefixtures("no_weights_env")  # the weights come from each test


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    status = main(["enhance", *map(str, argv)])
    return status, capsys.readouterr().err


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "PhoneCo"
    return exif.tobytes()


def parse_exif(data: bytes | None) -> Image.Exif:
    assert data is not None
    exif = Image.Exif()
    exif.load(data)
    return exif


def night_dng(path: Path, height: int = 40, width: int = 56) -> Path:
    """A 14-bit DNG of :func:`dark_scene` with camera EXIF: make, model, an Exif sub-IFD."""
    mosaic = np.round(bayer_mosaic(dark_scene(height, width)) * 16383).astype(np.uint16)
    exif = {DATE_ORIGINAL: "2026:01:02 03:04:05", 0x8827: 6400, 0x829A: IFDRational(1, 8)}
    return write_dng(path, mosaic, main_tags={MAKE: "Synthetic", 0x0110: "Bayer 14"}, exif=exif)


def round16to8(array: np.ndarray) -> np.ndarray:
    return np.floor(array.astype(np.float64) / 257 + 0.5).astype(np.uint8)


def no_part_files(folder: Path) -> bool:
    return not any(".part" in p.name for p in folder.rglob("*"))


# --- HEIC in, HEIC out ----------------------------------------------------------------------------------


def test_heic_written_as_heic_upright_with_exif_and_icc(
    tmp_path: Path, weights: Path, enhancer: Enhancer, capsys: pytest.CaptureFixture[str], heif: object
) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = write_heic(
        tmp_path / "IMG_0042.heic", make_dark_rgb(24, 40), exif=exif_bytes(6), icc_profile=icc
    )
    status, err = run(capsys, source, "-o", tmp_path / "out", "--weights", weights)
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG_0042.heic"]
    result = read_image(tmp_path / "out" / "IMG_0042.heic")
    assert result.format == "HEIF" and result.bit_depth == 8 and result.size == (24, 40)  # upright
    assert result.icc_profile == icc
    exif = parse_exif(result.exif)
    assert exif[MAKE] == "PhoneCo" and exif[ORIENTATION] == 1
    expected = np.asarray(enhancer.enhance(read_image(source).pixels)).astype(int)
    assert np.abs(np.asarray(result.image).astype(int) - expected).mean() < 2.5  # HEVC at quality 95


def test_10bit_heic_stays_10bit(
    tmp_path: Path, weights: Path, enhancer: Enhancer, capsys: pytest.CaptureFixture[str], heif: object
) -> None:
    import pillow_heif

    samples = make_dark_rgb(32, 48).astype(np.uint16) * 4 + (np.arange(48, dtype=np.uint16) % 4)[:, None]
    source = write_heic(tmp_path / "hdr.heic", samples, bit_depth=10)
    assert run(capsys, source, "-o", tmp_path / "out", "--weights", weights)[0] == 0
    written = pillow_heif.open_heif(tmp_path / "out" / "hdr.heic", convert_hdr_to_8bit=False)
    assert written.info["bit_depth"] == 10
    values = (np.asarray(written) >> 6).astype(int)
    expected16 = enhancer.enhance(read_image(source).array16)
    assert expected16.dtype == np.uint16
    expected10 = np.floor(expected16.astype(np.float64) * 1023 / 65535 + 0.5)
    assert np.abs(values - expected10).mean() < 10  # lossy HEVC, on the 0..1023 scale
    # about four times the levels an 8-bit result of the same range holds
    as_8bit = np.floor(values * 255 / 1023 + 0.5)
    assert len(np.unique(values[..., 1])) > 3 * len(np.unique(as_8bit[..., 1]))


# --- RAW in, 16-bit TIFF (or PNG) out -----------------------------------------------------------------------


@pytest.mark.parametrize(("output_format", "name"), [("same", "night.tif"), ("png", "night.png")])
def test_dng_written_at_16_bits_with_its_exif(
    tmp_path: Path,
    weights: Path,
    enhancer: Enhancer,
    capsys: pytest.CaptureFixture[str],
    rawpy: object,
    output_format: str,
    name: str,
) -> None:
    source = night_dng(tmp_path / "night.dng")
    status, err = run(capsys, source, "-o", tmp_path / "out", "--weights", weights, "--format", output_format)
    assert status == 0, err
    out = tmp_path / "out" / name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [name]
    decoded = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.dtype == np.uint16 and decoded.shape == (40, 56, 3)
    expected = enhancer.enhance(read_image(source).pixels)
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), expected)  # lossless, every bit
    with Image.open(out) as image:
        exif = image.getexif()
        assert image.format == ("TIFF" if name.endswith(".tif") else "PNG")
        assert exif[MAKE] == "Synthetic" and exif.get(ORIENTATION, 1) == 1
        assert exif.get_ifd(EXIF_IFD)[DATE_ORIGINAL] == "2026:01:02 03:04:05"


# --- --format and --quality ------------------------------------------------------------------------------


def make_mixed(folder: Path) -> dict[str, Path]:
    """An 8-bit RGBA PNG, a 16-bit RGB PNG, a JPEG, an 8-bit HEIC and a DNG."""
    folder.mkdir(parents=True)
    alpha = np.random.default_rng(2).integers(0, 256, (12, 16, 1), dtype=np.uint8)
    files = {name: folder / name for name in ("alpha.png", "deep.png", "plain.jpg", "phone.heic", "cam.dng")}
    Image.fromarray(np.concatenate([make_dark_rgb(12, 16, seed=2), alpha], axis=2)).save(files["alpha.png"])
    deep = make_dark_rgb(10, 14, seed=3).astype(np.uint16) * 257 + 77
    cv2.imwrite(str(files["deep.png"]), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    Image.fromarray(make_dark_rgb(16, 16, seed=4)).save(files["plain.jpg"], quality=90)
    write_heic(files["phone.heic"], make_dark_rgb(14, 18, seed=5))
    night_dng(files["cam.dng"], 24, 32)  # LibRaw needs 22 pixels a side
    return files


def test_format_jpg_and_quality_for_a_mixed_folder(
    tmp_path: Path,
    weights: Path,
    enhancer: Enhancer,
    capsys: pytest.CaptureFixture[str],
    heif: object,
    rawpy: object,
) -> None:
    files = make_mixed(tmp_path / "in")
    out = tmp_path / "out"
    status, err = run(
        capsys, tmp_path / "in", "-o", out, "--weights", weights, "--format", "jpg", "--quality", "70"
    )
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha.jpg",
        "cam.jpg",
        "deep.jpg",
        "phone.jpg",
        "plain.jpg",
    ]
    for path in out.iterdir():
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"

    def jpeg70(rgb8: np.ndarray, exif: bytes | None = None) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rgb8).save(buffer, format="JPEG", quality=70, **({"exif": exif} if exif else {}))
        return buffer.getvalue()

    # alpha dropped, colour kept as it is; written at quality 70: Pillow's own bytes for that image
    rgba = np.asarray(enhancer.enhance(read_image(files["alpha.png"]).pixels))
    assert (out / "alpha.jpg").read_bytes() == jpeg70(rgba[..., :3])
    # 16-bit results reduced to 8 bits by rounding v / 257
    deep16 = enhancer.enhance(read_image(files["deep.png"]).pixels)
    assert (out / "deep.jpg").read_bytes() == jpeg70(round16to8(deep16))
    raw = read_image(files["cam.dng"])
    assert (out / "cam.jpg").read_bytes() == jpeg70(round16to8(enhancer.enhance(raw.pixels)), raw.exif)
    # the camera's EXIF goes along into the JPEG
    with Image.open(out / "cam.jpg") as image:
        assert image.getexif()[MAKE] == "Synthetic"


def test_format_png_webp_and_heic(
    tmp_path: Path,
    weights: Path,
    enhancer: Enhancer,
    capsys: pytest.CaptureFixture[str],
    heif: object,
    rawpy: object,
) -> None:
    import pillow_heif

    files = make_mixed(tmp_path / "in")
    assert (
        run(capsys, tmp_path / "in", "-o", tmp_path / "png", "--weights", weights, "--format", "png")[0] == 0
    )
    # HEIC to PNG: lossless, so exactly the enhanced pixels
    phone = np.asarray(enhancer.enhance(read_image(files["phone.heic"]).pixels))
    with Image.open(tmp_path / "png" / "phone.png") as image:
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), phone)
    deep = cv2.imread(str(tmp_path / "png" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep is not None and deep.dtype == np.uint16  # 16-bit stays 16-bit in PNG

    assert (
        run(capsys, tmp_path / "in", "-o", tmp_path / "webp", "--weights", weights, "--format", "webp")[0]
        == 0
    )
    with Image.open(tmp_path / "webp" / "alpha.webp") as image:
        assert image.format == "WEBP" and image.mode == "RGBA"  # WebP keeps alpha
    with Image.open(tmp_path / "webp" / "deep.webp") as image:
        assert image.mode == "RGB"  # 8 bits

    assert (
        run(capsys, tmp_path / "in", "-o", tmp_path / "heic", "--weights", weights, "--format", "heic")[0]
        == 0
    )
    assert sorted(p.suffix for p in (tmp_path / "heic").iterdir()) == [".heic"] * 5
    for name, depth in (("deep", 10), ("cam", 10), ("plain", 8), ("alpha", 8)):
        assert pillow_heif.open_heif(tmp_path / "heic" / f"{name}.heic").info["bit_depth"] == depth


def test_format_makes_names_collide(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_dark_rgb(8, 8)).save(folder / "a.jpg")
    Image.fromarray(make_dark_rgb(8, 8)).save(folder / "a.png")
    status, err = run(capsys, folder, "-o", tmp_path / "out", "--weights", weights, "--format", "webp")
    assert status == 1 and "same output name as" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.webp"]


@pytest.mark.parametrize(
    "bad", [["--quality", "0"], ["--quality", "101"], ["--quality", "x"], ["--format", "gif"]]
)
def test_bad_format_or_quality_exit_2(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], bad: list[str]
) -> None:
    Image.fromarray(make_dark_rgb(8, 8)).save(tmp_path / "a.png")
    with pytest.raises(SystemExit) as info:
        main(
            ["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", str(weights), *bad]
        )
    assert info.value.code == 2 and bad[0] in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- broken files, missing extras ------------------------------------------------------------------------


def test_corrupt_heic_and_dng_are_named_and_the_rest_processed(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], heif: object, rawpy: object
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_dark_rgb(10, 10)).save(folder / "good.png")
    heic = write_heic(tmp_path / "x.heic", make_dark_rgb(64, 64), lossless=False).read_bytes()
    (folder / "cut.heic").write_bytes(heic[:-300])
    dng = night_dng(tmp_path / "x.dng").read_bytes()
    (folder / "cut.dng").write_bytes(dng[: len(dng) // 2])
    (folder / "text.cr2").write_text("not a raw file")
    out = tmp_path / "out"
    status, err = run(capsys, folder, "-o", out, "--weights", weights)
    assert status == 1
    assert [p.name for p in out.iterdir()] == ["good.png"] and no_part_files(out)
    assert "cut.heic: corrupt, truncated or unsupported HEIF data" in err
    assert "cut.dng: corrupt or truncated RAW data" in err
    assert "text.cr2: not a camera RAW file" in err
    assert "1 enhanced, 0 skipped, 3 failed" in err


def test_missing_extras_are_named_with_their_install_command(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(make_dark_rgb(10, 10)).save(folder / "good.png")
    (folder / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    (folder / "cam.arw").write_bytes(b"II*\x00" + bytes(64))
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # importing them now fails
    monkeypatch.setitem(sys.modules, "rawpy", None)
    out = tmp_path / "out"
    status, err = run(capsys, folder, "-o", out, "--weights", weights)
    assert status == 1
    assert [p.name for p in out.iterdir()] == ["good.png"]
    assert "phone.heic: reading HEIC/HEIF files needs the optional package pillow-heif" in err
    assert "pip install 'enlightengan[heif]'" in err
    assert "cam.arw: reading camera RAW files needs the optional package rawpy" in err
    assert "pip install 'enlightengan[raw]'" in err

    # writing HEIC without pillow-heif: refused before any work
    status, err = run(
        capsys, folder / "good.png", "-o", tmp_path / "heic", "--weights", weights, "--format", "heic"
    )
    assert status == 2 and "pip install 'enlightengan[heif]'" in err
    assert not (tmp_path / "heic").exists()


# --- what RAW buys in the dark ---------------------------------------------------------------------------


def distinct_levels(image: np.ndarray, mask: np.ndarray) -> list[int]:
    """Distinct values of each channel over the masked pixels."""
    return [len(np.unique(image[..., c][mask])) for c in range(image.shape[2])]


def test_dark_14bit_dng_keeps_its_shadows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rawpy: object
) -> None:
    weights = save_generator(brightening_generator(), tmp_path / "bright.safetensors")
    folder = tmp_path / "in"
    folder.mkdir()
    linear = dark_scene(64, 96)
    noise = np.random.default_rng(0).normal(0, 2.0, linear.shape[:2])  # read noise, 2 of 16383
    mosaic = np.clip(np.round(bayer_mosaic(linear) * 16383 + noise), 0, 16383).astype(np.uint16)
    write_dng(folder / "dark.dng", mosaic)
    developed = read_image(folder / "dark.dng").array16
    assert developed is not None
    # the same scene quantised to 8 bits first, as an 8-bit camera JPEG would hold it (PNG: no other loss)
    Image.fromarray(round16to8(developed)).save(folder / "dark8.png")

    assert run(capsys, folder, "-o", tmp_path / "out", "--weights", weights)[0] == 0
    from_raw = cv2.cvtColor(
        cv2.imread(str(tmp_path / "out" / "dark.tif"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB
    )
    from_8bit = np.asarray(Image.open(tmp_path / "out" / "dark8.png"))
    assert from_raw.dtype == np.uint16 and from_8bit.dtype == np.uint8

    luma = developed.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    darkest = luma <= np.quantile(luma, 0.1)
    assert distinct_levels(developed, darkest) > distinct_levels(round16to8(developed), darkest)
    raw_levels, eight_bit_levels = distinct_levels(from_raw, darkest), distinct_levels(from_8bit, darkest)
    # the 8-bit input has a handful of levels there, and so has its result; RAW's result has hundreds
    assert max(eight_bit_levels) <= 12
    assert min(raw_levels) >= 10 * max(eight_bit_levels)

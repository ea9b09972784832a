"""HEIC/HEIF and camera RAW through image_io: depth, orientation, metadata, development, errors, missing
extras, 16-bit TIFF with EXIF, and what ``--format`` conversion does (``fit_to_format``).

The HEIC files are written by pillow-heif itself and the DNG files by Pillow's TIFF directory
(``tests/conftest.py``), independently of the writers under test.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms
from PIL.TiffImagePlugin import IFDRational

from enlightengan._optional import OptionalDependencyError
from enlightengan.image_io import (
    CodecMissingError,
    ImageReadError,
    default_write_format,
    fit_to_format,
    read_image,
    write_image,
)

from .conftest import bayer_mosaic, make_dark_rgb, srgb_encode, write_dng, write_heic

ORIENTATION, MAKE, MODEL, DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
EXIF_IFD, DATE_ORIGINAL, ISO, EXPOSURE, MAKER_NOTE = 0x8769, 0x9003, 0x8827, 0x829A, 0x927C


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation: int = 1, make: str = "PhoneCo") -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = make
    return exif.tobytes()


def parse_exif(data: bytes | None) -> Image.Exif:
    assert data is not None
    exif = Image.Exif()
    exif.load(data)
    return exif


def smooth10(height: int, width: int) -> np.ndarray:
    """10-bit RGB samples with every level of a ramp: more than 256 distinct values per channel."""
    yy, xx = np.mgrid[0:height, 0:width]
    ramp = (xx * height + yy) * 1023 // (height * width - 1)
    return np.stack([ramp, 1023 - ramp, (ramp // 2 + 200)], axis=-1).astype(np.uint16)


# --- HEIC ------------------------------------------------------------------------------------------


def test_heic_8bit_read_exactly_and_written_back(tmp_path: Path, heif: object) -> None:
    rgb = make_dark_rgb(24, 40)
    loaded = read_image(write_heic(tmp_path / "a.heic", rgb))
    assert loaded.format == "HEIF" and loaded.bit_depth == 8 and loaded.array16 is None
    assert loaded.image.mode == "RGB" and loaded.size == (40, 24)
    assert np.array_equal(np.asarray(loaded.image), rgb)  # lossless file: every value

    out = write_image(loaded.image, tmp_path / "b.heic")  # the format from the suffix
    again = read_image(out)
    assert again.format == "HEIF" and again.bit_depth == 8 and again.size == (40, 24)
    # lossy HEVC at quality 95: close to the original, not equal
    assert np.abs(np.asarray(again.image).astype(int) - rgb).mean() < 2.0


@pytest.mark.parametrize("bit_depth", [10, 12])
def test_heic_high_bit_depth_kept(tmp_path: Path, heif: object, bit_depth: int) -> None:
    samples = smooth10(32, 48) << (bit_depth - 10)
    top = (1 << bit_depth) - 1
    loaded = read_image(write_heic(tmp_path / "deep.heic", samples, bit_depth=bit_depth))
    assert loaded.format == "HEIF" and loaded.bit_depth == bit_depth
    assert loaded.array16 is not None and loaded.pixels is loaded.array16
    # full 16-bit range: v * 65535 / (2**d - 1), rounded
    expected = np.floor(samples.astype(np.float64) * 65535 / top + 0.5).astype(np.uint16)
    assert np.array_equal(loaded.array16, expected)
    assert loaded.array16.max() == 65535 or samples.max() < top
    assert len(np.unique(loaded.array16[..., 0])) > 256  # more levels than 8 bits hold

    out = write_image(loaded.array16, tmp_path / "out.heic", bit_depth=loaded.bit_depth)
    import pillow_heif

    written = pillow_heif.open_heif(out, convert_hdr_to_8bit=False)
    assert written.info["bit_depth"] == bit_depth
    values = np.asarray(written) >> (16 - bit_depth)
    assert len(np.unique(values[..., 0])) > 256
    assert np.abs(values.astype(int) - samples).mean() < 0.01 * top  # lossy, at the file's depth


def test_heic_grey_and_alpha(tmp_path: Path, heif: object) -> None:
    grey = make_dark_rgb(16, 20)[..., 1]
    loaded = read_image(write_heic(tmp_path / "g.heic", grey))
    assert loaded.image.mode == "L" and np.array_equal(np.asarray(loaded.image), grey)
    alpha = np.arange(16 * 20, dtype=np.uint8).reshape(16, 20, 1)
    rgba = np.concatenate([make_dark_rgb(16, 20), alpha], axis=2)
    loaded = read_image(write_heic(tmp_path / "a.heic", rgba))
    assert loaded.image.mode == "RGBA" and np.array_equal(np.asarray(loaded.image), rgba)


def test_heic_orientation_applied_once_and_metadata_kept(tmp_path: Path, heif: object) -> None:
    rgb = make_dark_rgb(24, 40)
    icc = srgb_profile()
    # as phones do: the rotation in the container (irot) and the EXIF orientation 6 beside it
    path = write_heic(tmp_path / "sideways.heic", rgb, exif=exif_bytes(6), icc_profile=icc)
    loaded = read_image(path)
    assert loaded.size == (24, 40)  # stored 40 x 24, shown upright
    assert np.array_equal(np.asarray(loaded.image), np.rot90(rgb, k=-1))  # turned once, clockwise
    assert loaded.icc_profile == icc
    exif = parse_exif(loaded.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "PhoneCo"

    out = write_image(loaded.image, tmp_path / "out.heic", icc_profile=loaded.icc_profile, exif=loaded.exif)
    again = read_image(out)
    assert again.size == (24, 40)  # not turned a second time
    assert again.icc_profile == icc
    exif = parse_exif(again.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "PhoneCo"


def test_heic_recognised_by_content_whatever_its_name(tmp_path: Path, heif: object) -> None:
    rgb = make_dark_rgb(8, 8)
    path = write_heic(tmp_path / "photo.heic", rgb).rename(tmp_path / "upload")
    loaded = read_image(path)
    assert loaded.format == "HEIF" and np.array_equal(np.asarray(loaded.image), rgb)


@pytest.mark.parametrize("damage", ["truncated", "header only"])
def test_corrupt_heic_is_refused(tmp_path: Path, heif: object, damage: str) -> None:
    data = write_heic(tmp_path / "good.heic", make_dark_rgb(64, 64), lossless=False).read_bytes()
    path = tmp_path / "bad.heic"
    path.write_bytes(data[:-200] if damage == "truncated" else data[:40])
    with pytest.raises(ImageReadError, match="HEIF data") as info:
        read_image(path)
    assert "corrupt" in info.value.reason and info.value.path == path


def test_heic_pixel_limit(tmp_path: Path, heif: object) -> None:
    path = write_heic(tmp_path / "big.heic", make_dark_rgb(10, 20))
    assert read_image(path, max_pixels=200).size == (20, 10)
    with pytest.raises(ImageReadError, match=r"too many pixels: 20 x 10 = 200, over the limit of 199"):
        read_image(path, max_pixels=199)


# --- camera RAW ------------------------------------------------------------------------------------


def grey_card_dng(path: Path, *, orientation: int = 1, exif: dict[int, object] | None = None) -> Path:
    """A 14-bit DNG of a dark scene: a grey ramp (0 .. 5 % of white, linear) and a grey card at 2 %,
    from a camera whose red and blue are less sensitive than green (as-shot neutral 0.5, 1, 0.8)."""
    height, width = 40, 64
    linear = np.tile(np.linspace(0.0, 0.05, width), (height, 1))
    linear[10:30, 20:44] = 0.02  # the grey card
    gains = np.array([0.5, 1.0, 0.8])
    raw_rgb = linear[..., None] * gains  # what the sensor records of a grey scene
    mosaic = np.round(bayer_mosaic(raw_rgb) * 16383).astype(np.uint16)
    return write_dng(
        path,
        mosaic,
        neutral=(0.5, 1.0, 0.8),
        orientation=orientation,
        main_tags={MAKE: "Synthetic", MODEL: "Bayer 14", DATETIME: "2026:01:02 03:04:05"},
        exif=exif,
    )


def test_dng_developed_to_16bit_srgb_with_camera_white_balance(tmp_path: Path, rawpy: object) -> None:
    loaded = read_image(grey_card_dng(tmp_path / "night.dng"))
    assert loaded.format == "DNG" and loaded.bit_depth == 16
    rgb = loaded.array16
    assert rgb is not None and rgb.dtype == np.uint16 and rgb.shape == (40, 64, 3)
    assert loaded.size == (64, 40)
    card = rgb[14:26, 24:40].reshape(-1, 3).astype(np.float64) / 65535
    # the camera's white balance makes the grey card grey: R = G = B
    assert np.abs(card.mean(axis=0) - card.mean()).max() < 0.01
    # no automatic brightening: 2 % linear is sRGB 0.1523 (a push would have made the ramp's top white)
    assert card.mean() == pytest.approx(float(srgb_encode(np.array(0.02))), abs=0.01)
    assert rgb.max() < 0.3 * 65535  # the brightest point, 5 % linear, is sRGB 0.2474


def test_dng_orientation(tmp_path: Path, rawpy: object) -> None:
    upright = read_image(grey_card_dng(tmp_path / "a.dng")).array16
    turned = read_image(grey_card_dng(tmp_path / "b.dng", orientation=6))
    assert turned.size == (40, 64) and turned.array16 is not None and upright is not None
    assert np.array_equal(turned.array16, np.rot90(upright, k=-1))


def test_dng_exif_carried(tmp_path: Path, rawpy: object) -> None:
    exif = {
        DATE_ORIGINAL: "2026:01:02 03:04:05",
        ISO: 3200,
        EXPOSURE: IFDRational(1, 4),
        MAKER_NOTE: b"x" * 40,
    }
    loaded = read_image(grey_card_dng(tmp_path / "a.dng", orientation=6, exif=exif))
    parsed = parse_exif(loaded.exif)
    assert parsed[MAKE] == "Synthetic" and parsed[MODEL] == "Bayer 14"
    assert parsed[DATETIME] == "2026:01:02 03:04:05"
    assert parsed[ORIENTATION] == 1  # the developed pixels are upright
    sub = parsed.get_ifd(EXIF_IFD)
    assert sub[DATE_ORIGINAL] == "2026:01:02 03:04:05" and sub[ISO] == 3200 and sub[EXPOSURE] == 0.25
    assert MAKER_NOTE not in sub  # its offsets point into the RAW file
    # structural DNG tags stay behind
    assert not {0x0100, 0x0111, 0xC612, 0xC621} & set(parsed)


def test_dng_recognised_by_content(tmp_path: Path, rawpy: object) -> None:
    path = grey_card_dng(tmp_path / "night.dng").rename(tmp_path / "upload")
    assert read_image(path).format == "DNG"


@pytest.mark.parametrize(
    ("content", "reason"),
    [("truncated", "corrupt or truncated RAW data"), ("junk", "not a camera RAW file")],
)
def test_corrupt_dng_is_refused(tmp_path: Path, rawpy: object, content: str, reason: str) -> None:
    data = grey_card_dng(tmp_path / "good.dng").read_bytes()
    path = tmp_path / "bad.dng"
    path.write_bytes(data[: len(data) // 2] if content == "truncated" else b"II*\x00" + b"\x00" * 200)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert info.value.path == path


def test_dng_pixel_limit(tmp_path: Path, rawpy: object) -> None:
    path = grey_card_dng(tmp_path / "a.dng")
    with pytest.raises(ImageReadError, match=r"too many pixels: 64 x 40 = 2,560, over the limit of 2,559"):
        read_image(path, max_pixels=2559)


def test_default_write_formats() -> None:
    assert default_write_format("DNG") == "TIFF" and default_write_format("NEF") == "TIFF"
    assert default_write_format("HEIF") == "HEIF" and default_write_format("MPO") == "JPEG"
    assert default_write_format("PNG") == "PNG" and default_write_format(None) is None


# --- missing extras --------------------------------------------------------------------------------


def test_missing_pillow_heif_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif now fails
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    with pytest.raises(CodecMissingError) as info:
        read_image(path)
    assert "pip install 'enlightengan[heif]'" in info.value.reason and info.value.extra == "heif"
    assert isinstance(info.value, ImageReadError)
    with pytest.raises(OptionalDependencyError, match=r"enlightengan\[heif\]"):
        write_image(make_dark_rgb(4, 4), tmp_path / "out.heic")
    assert list(tmp_path.iterdir()) == [path]


def test_missing_rawpy_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rawpy", None)
    path = tmp_path / "photo.nef"  # NEF has no signature of its own: known by its suffix
    path.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(CodecMissingError) as info:
        read_image(path)
    assert "pip install 'enlightengan[raw]'" in info.value.reason and info.value.extra == "raw"


# --- 16-bit TIFF with metadata, and fitting an image to a format ---------------------------------------


@pytest.mark.parametrize(("channels", "height", "width"), [(3, 70, 33), (4, 70, 33), (3, 400, 1000)])
def test_16bit_tiff_written_exactly_with_icc_and_exif(
    tmp_path: Path, channels: int, height: int, width: int
) -> None:
    rng = np.random.default_rng(5)
    # 400 x 1000: strips of 174 rows (about 1 MB), the last one shorter
    array = rng.integers(0, 65536, (height, width, channels), dtype=np.uint16)
    icc = srgb_profile()
    exif = Image.Exif()
    exif[MAKE] = "Synthetic"
    exif[0x0100] = 9999  # an ImageWidth in an EXIF block must not replace the TIFF's own
    exif[EXIF_IFD] = {DATE_ORIGINAL: "2026:01:02 03:04:05"}
    out = write_image(array, tmp_path / "deep.tif", icc_profile=icc, exif=exif.tobytes())
    raw = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    code = cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGBA
    assert raw is not None and raw.dtype == np.uint16 and np.array_equal(cv2.cvtColor(raw, code), array)
    loaded = read_image(out)
    assert loaded.array16 is not None and np.array_equal(loaded.array16, array)
    assert loaded.icc_profile == icc and loaded.bit_depth == 16
    parsed = parse_exif(loaded.exif)
    assert parsed[MAKE] == "Synthetic" and parsed[0x0100] == width
    assert parsed.get_ifd(EXIF_IFD)[DATE_ORIGINAL] == "2026:01:02 03:04:05"


def test_fit_to_format_reduces_depth_and_drops_alpha_for_jpeg() -> None:
    rgba16 = np.array([[[0, 128, 129, 7], [65535, 32896, 385, 65535]]], np.uint16)
    for file_format in ("PNG", "TIFF", "HEIF"):
        assert fit_to_format(rgba16, file_format) is rgba16  # these hold 16 bits and alpha
    webp = fit_to_format(rgba16, "WEBP")
    assert isinstance(webp, Image.Image) and webp.mode == "RGBA"
    # round(v / 257): 128 -> 0, 129 -> 1 (128.5 levels is half of one), 32896 = 128 * 257 -> 128
    assert np.asarray(webp).tolist() == [[[0, 0, 1, 0], [255, 128, 1, 255]]]
    jpeg = fit_to_format(rgba16, "jpeg")
    assert isinstance(jpeg, Image.Image) and jpeg.mode == "RGB"
    assert np.asarray(jpeg).tolist() == [[[0, 0, 1], [255, 128, 1]]]
    grey16 = Image.fromarray(np.array([[0, 257, 65535]], np.uint16))
    grey8 = fit_to_format(grey16, "JPEG")
    assert isinstance(grey8, Image.Image) and grey8.mode == "L"
    assert np.asarray(grey8).tolist() == [[0, 1, 255]]
    la = Image.new("LA", (2, 2), (40, 7))
    assert fit_to_format(la, "JPEG").mode == "L" and fit_to_format(la, "PNG") is la
    rgb8 = Image.new("RGB", (2, 2))
    assert fit_to_format(rgb8, "JPEG") is rgb8


def test_write_rejects_bad_quality(tmp_path: Path) -> None:
    for quality in (0, 101):
        with pytest.raises(ValueError, match="quality"):
            write_image(Image.new("RGB", (4, 4)), tmp_path / "a.jpg", quality=quality)
    assert list(tmp_path.iterdir()) == []
    # and the quality reaches the encoder: Pillow's own encoding at the same setting
    image = Image.fromarray(make_dark_rgb(32, 32))
    expected = io.BytesIO()
    image.save(expected, format="JPEG", quality=60)
    assert write_image(image, tmp_path / "q.jpg", quality=60).read_bytes() == expected.getvalue()


# --- EXIF of RAW formats other than DNG (their containers, without pixels LibRaw could develop) ----------


def _tiff_with_exif(magic: bytes) -> bytes:
    """A TIFF structure with Make and an Exif sub-IFD, under another magic number (ORF, RW2)."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    ifd = ImageFileDirectory_v2(prefix=b"II")
    ifd[MAKE] = "OLYMPUS"
    ifd.tagtype[EXIF_IFD] = 4
    ifd[EXIF_IFD] = {DATE_ORIGINAL: "2026:01:02 03:04:05", MAKER_NOTE: b"OLYMP" * 8}
    return magic + (8).to_bytes(4, "little") + ifd.tobytes(8)


@pytest.mark.parametrize(("magic", "name"), [(b"IIRO", "a.orf"), (b"IIU\x00", "a.rw2")])
def test_exif_of_tiff_like_raw_files(tmp_path: Path, magic: bytes, name: str) -> None:
    from enlightengan._camera_raw import raw_exif, raw_format

    path = tmp_path / name
    path.write_bytes(_tiff_with_exif(magic))
    parsed = parse_exif(raw_exif(path))
    assert parsed[MAKE] == "OLYMPUS" and parsed[ORIENTATION] == 1
    assert parsed.get_ifd(EXIF_IFD) == {DATE_ORIGINAL: "2026:01:02 03:04:05"}
    # recognised by content as well as by name
    renamed = path.rename(tmp_path / "upload")
    assert raw_format(renamed, renamed.read_bytes()[:16]) == name[2:].upper()


def test_exif_of_raf_comes_from_its_jpeg_preview(tmp_path: Path) -> None:
    from enlightengan._camera_raw import raw_exif, raw_format

    exif = Image.Exif()
    exif[MAKE] = "FUJIFILM"
    exif[EXIF_IFD] = {ISO: 800}
    preview = io.BytesIO()
    Image.fromarray(make_dark_rgb(16, 16)).save(preview, format="JPEG", exif=exif.tobytes())
    header = b"FUJIFILMCCD-RAW 0201FF393001" + bytes(56)  # 84 bytes, then the preview's offset and length
    data = header + (100).to_bytes(4, "big") + len(preview.getvalue()).to_bytes(4, "big")
    path = tmp_path / "upload"
    path.write_bytes(data + bytes(100 - len(data)) + preview.getvalue())
    assert raw_format(path, data[:16]) == "RAF"
    parsed = parse_exif(raw_exif(path))
    assert parsed[MAKE] == "FUJIFILM" and parsed.get_ifd(EXIF_IFD)[ISO] == 800


def test_cr3_gives_no_exif_and_garbage_none(tmp_path: Path) -> None:
    from enlightengan._camera_raw import raw_exif, raw_format

    cr3 = tmp_path / "upload"
    cr3.write_bytes(b"\x00\x00\x00\x18ftypcrx " + bytes(64))
    assert raw_format(cr3, cr3.read_bytes()[:16]) == "CR3" and raw_exif(cr3) is None
    broken = tmp_path / "broken.nef"
    broken.write_bytes(b"II*\x00\xff\xff\xff\x00")  # its IFD lies beyond the end
    assert raw_exif(broken) is None

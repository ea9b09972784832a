"""Reading and writing photos: errors, orientation, ICC/EXIF, 16-bit, atomic writes, tensor conversions."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from enlightengan.image_io import (
    ImageReadError,
    LoadedImage,
    declared_size,
    from_tensor,
    prepare,
    read_image,
    to_tensor,
    write_image,
)

from .conftest import make_dark_rgb, png_declaring

ORIENTATION = 0x0112


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = value
    exif[0x010F] = "TestCam"  # Make: a second tag that must survive
    return exif.tobytes()


def no_part_files(folder: Path) -> bool:
    return not any(".part" in p.name for p in folder.rglob("*"))


# --- tensor conversions --------------------------------------------------------------------------


def test_to_tensor_values_and_layout() -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1] = (0, 51, 255)
    x = to_tensor(rgb)
    assert x.shape == (1, 3, 2, 3) and x.dtype == torch.float32
    # 2 v / 255 - 1 per channel, channel-first
    assert x[0, :, 0, 1].tolist() == pytest.approx([-1.0, 2 * 51 / 255 - 1, 1.0])
    assert x[0, :, 1, 2].tolist() == pytest.approx([-1.0, -1.0, -1.0])


def test_uint8_and_uint16_round_trips_are_exact() -> None:
    all8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(from_tensor(to_tensor(all8), np.uint8), all8)
    all16 = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1).repeat(3, axis=2)
    assert np.array_equal(from_tensor(to_tensor(all16), np.uint16), all16)


def test_from_tensor_rounds_to_nearest_and_clips() -> None:
    # y chosen so that (y + 1) / 2 * 255 is 10.4, 10.6, beyond the range, below it
    levels = torch.tensor([10.4, 10.6, 300.0, -20.0]) / 255 * 2 - 1
    t = levels.view(1, 1, 1, 4).repeat(1, 3, 1, 1)
    assert from_tensor(t, np.uint8)[0, :, 0].tolist() == [10, 11, 255, 0]


def test_prepare_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        prepare(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        prepare(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        prepare(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="unsupported image mode 'F'"):
        prepare(Image.new("F", (4, 4)))
    with pytest.raises(TypeError, match="PIL"):
        prepare([[1, 2]])  # type: ignore[arg-type]


# --- read errors ---------------------------------------------------------------------------------


def _jpeg_bytes(size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(make_dark_rgb(size, size)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("missing.jpg", None, "no such file"),
        ("folder.png", "dir", "is a folder"),
        ("empty.jpg", b"", "empty file (0 bytes)"),
        ("text.png", b"hello, I am not a picture\n", "not an image"),
        ("truncated.jpg", "truncated", "corrupt or truncated"),
        ("garbled.png", "garbled", "corrupt or truncated"),
    ],
)
def test_read_errors_name_the_reason(tmp_path: Path, name: str, make: object, reason: str) -> None:
    path = tmp_path / name
    if make == "dir":
        path.mkdir()
    elif make == "truncated":
        path.write_bytes(_jpeg_bytes()[:700])
    elif make == "garbled":
        buffer = io.BytesIO()
        Image.fromarray(make_dark_rgb(32, 32)).save(buffer, format="PNG")
        data = bytearray(buffer.getvalue())
        data[60:80] = b"\x00" * 20  # inside the IDAT data: CRC and zlib stream broken
        path.write_bytes(bytes(data))
    elif isinstance(make, bytes):
        path.write_bytes(make)
    with pytest.raises(ImageReadError, match=re.escape(reason)) as info:
        read_image(path)
    assert info.value.path == path
    assert reason in info.value.reason
    assert isinstance(info.value, ValueError)


def test_truncated_jpeg_is_not_accepted_silently(tmp_path: Path) -> None:
    # Pillow's global LOAD_TRUNCATED_IMAGES must stay off: the read fails instead of padding with grey
    from PIL import ImageFile

    path = tmp_path / "cut.jpg"
    path.write_bytes(_jpeg_bytes()[:-200])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_too_many_pixels(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(path)
    assert read_image(path, max_pixels=200).size == (20, 10)
    with pytest.raises(ImageReadError, match=r"too many pixels: 20 x 10 = 200, over the limit of 199"):
        read_image(path, max_pixels=199)


def test_a_header_beyond_pillows_limit_gets_the_projects_message(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(100_000, 100_000))  # 10 gigapixels: past Pillow's 179 MP as well
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert caught.value.reason == (
        "too many pixels: 100000 x 100000 = 10,000,000,000, over the limit of 120,000,000 "
        "(raise it with --max-pixels / max_pixels if the image is genuine)"
    )
    assert declared_size(path) == (100_000, 100_000)


def test_max_pixels_is_the_only_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(make_dark_rgb(10, 20)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow refuses more than twice this at open
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    # max_pixels allows it: read whole and correct, although Pillow's own limit would refuse it
    assert np.array_equal(np.asarray(read_image(path, max_pixels=10**9).image), make_dark_rgb(10, 20))
    assert declared_size(path) == (20, 10)
    with pytest.raises(ImageReadError, match=r"too many pixels: 20 x 10 = 200, over the limit of 150 \("):
        read_image(path, max_pixels=150)
    assert Image.MAX_IMAGE_PIXELS == 50  # Pillow's setting is left as it was


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(path)
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads everything: make the open itself fail as it would for a normal user

        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(ImageReadError, match="permission denied"):
        read_image(path)


def test_unsupported_mode(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(path)
    with pytest.raises(ImageReadError, match="unsupported pixel mode 'F'"):
        read_image(path)


# --- orientation, metadata -----------------------------------------------------------------------


def test_exif_orientation_applied_and_reset(tmp_path: Path) -> None:
    pixels = make_dark_rgb(4, 6)
    path = tmp_path / "o.png"  # PNG keeps the pixels exact, so the rotation can be checked exactly
    Image.fromarray(pixels).save(path, exif=exif_with_orientation(6))
    loaded = read_image(path)
    # orientation 6: the stored image must be turned 90 degrees clockwise to be upright
    assert np.array_equal(np.asarray(loaded.image), np.rot90(pixels, k=-1))
    assert loaded.size == (4, 6)
    assert loaded.exif is not None
    exif = Image.Exif()
    exif.load(loaded.exif)
    assert exif[ORIENTATION] == 1 and exif[0x010F] == "TestCam"
    # written and read again, it is not turned a second time
    write_image(loaded.image, tmp_path / "again.png", exif=loaded.exif)
    assert np.array_equal(np.asarray(read_image(tmp_path / "again.png").image), np.rot90(pixels, k=-1))


def test_jpeg_orientation_gives_transposed_size(tmp_path: Path) -> None:
    path = tmp_path / "o.jpg"
    Image.fromarray(make_dark_rgb(24, 40)).save(path, exif=exif_with_orientation(6))
    loaded = read_image(path)
    assert loaded.format == "JPEG" and loaded.size == (24, 40)


def test_icc_profile_kept_byte_equal(tmp_path: Path) -> None:
    icc = srgb_profile()
    src = tmp_path / "in.jpg"
    Image.fromarray(make_dark_rgb(16, 16)).save(src, icc_profile=icc)
    loaded = read_image(src)
    assert loaded.icc_profile == icc
    out = write_image(
        loaded.image, tmp_path / "out.jpg", format=loaded.format, icc_profile=loaded.icc_profile
    )
    assert Image.open(out).info["icc_profile"] == icc


def test_cmyk_profile_not_attached_to_rgb_output(tmp_path: Path) -> None:
    fake_cmyk = bytearray(srgb_profile())
    fake_cmyk[16:20] = b"CMYK"
    out = write_image(Image.new("RGB", (4, 4)), tmp_path / "out.jpg", icc_profile=bytes(fake_cmyk))
    assert "icc_profile" not in Image.open(out).info


def test_cmyk_jpeg_reads_as_cmyk(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 5), (10, 20, 30, 40)).save(path)
    loaded = read_image(path)
    assert loaded.image.mode == "CMYK" and loaded.size == (8, 5)


# --- 16-bit --------------------------------------------------------------------------------------


def _rgb16(h: int = 5, w: int = 7, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 65536, (h, w, channels), dtype=np.uint16)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_read_exactly(tmp_path: Path, suffix: str, channels: int) -> None:
    array = _rgb16(channels=channels)
    path = tmp_path / f"a{suffix}"
    code = cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA
    assert cv2.imwrite(str(path), cv2.cvtColor(array, code))
    loaded = read_image(path)
    assert loaded.array16 is not None and loaded.array16.dtype == np.uint16
    assert np.array_equal(loaded.array16, array)  # RGB order, every bit
    assert loaded.pixels is loaded.array16


def test_16bit_png_written_with_icc_and_exif(tmp_path: Path) -> None:
    array = _rgb16(6, 4)
    icc = srgb_profile()
    out = write_image(array, tmp_path / "o.png", icc_profile=icc, exif=exif_with_orientation(6))
    raw = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert (
        raw is not None
        and raw.dtype == np.uint16
        and np.array_equal(cv2.cvtColor(raw, cv2.COLOR_BGR2RGB), array)
    )
    with Image.open(out) as image:
        assert image.info["icc_profile"] == icc
        assert image.getexif()[ORIENTATION] == 6
    # and the orientation is applied to the 16-bit data on reading, as Pillow does for 8-bit
    loaded = read_image(out)
    assert loaded.array16 is not None
    assert np.array_equal(loaded.array16, np.rot90(array, k=-1))
    assert loaded.size == (6, 4)


def test_16bit_rgba_png_written_exactly(tmp_path: Path) -> None:
    array = _rgb16(3, 8, channels=4)
    loaded = read_image(write_image(array, tmp_path / "a.png"))
    assert loaded.array16 is not None and np.array_equal(loaded.array16, array)


def test_16bit_grey_png_round_trip(tmp_path: Path) -> None:
    grey = np.random.default_rng(1).integers(0, 65536, (5, 9), dtype=np.uint16)
    out = write_image(Image.fromarray(grey), tmp_path / "g.png")
    loaded = read_image(out)
    assert loaded.image.mode == "I;16" and loaded.array16 is None
    assert np.array_equal(np.asarray(loaded.image), grey)


def test_16bit_rgb_refuses_jpeg(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PNG, TIFF or HEIF"):
        write_image(_rgb16(), tmp_path / "x.jpg")
    assert list(tmp_path.iterdir()) == []


# --- writing -------------------------------------------------------------------------------------


def test_write_same_format_and_quality(tmp_path: Path) -> None:
    image = Image.fromarray(make_dark_rgb(32, 32))
    out = write_image(image, tmp_path / "a.jpg", format="JPEG")
    default = io.BytesIO()
    image.save(default, format="JPEG", quality=95)
    assert out.read_bytes() == default.getvalue()
    with pytest.raises(ValueError, match="format"):
        write_image(image, tmp_path / "noext")


def test_write_is_atomic_when_the_writer_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(target)
    before = target.read_bytes()

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"\x89PNG half an ima")  # something partial is on disk ...
        raise OSError("disk full")  # ... when the writer dies

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(Image.new("RGB", (4, 4)), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]
    assert no_part_files(tmp_path)


def test_loaded_image_pixels_is_pil_for_8bit(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("P", (3, 2)).save(path)
    loaded = read_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.pixels is loaded.image and loaded.image.mode == "P" and loaded.format == "PNG"


def test_near_black_flags_few_levels_not_darkness_alone() -> None:
    from enlightengan.image_io import near_black

    rng = np.random.default_rng(0)
    black8 = np.clip(rng.normal(1.5, 1.0, (60, 80, 3)), 0, 255).astype(np.uint8)  # mean ~1.6, ~6 levels
    reason = near_black(black8)
    assert reason is not None and "nearly black" in reason and "grey levels" in reason
    assert near_black(Image.fromarray(black8)) == reason  # PIL and arrays alike
    dim8 = np.clip(rng.normal(20, 8, (60, 80, 3)), 0, 255).astype(np.uint8)  # dark, but not near black
    assert near_black(dim8) is None
    # the same darkness recorded at 16 bits holds thousands of levels: nothing to warn about
    black16 = np.clip(rng.normal(1.5 * 257, 257, (60, 80, 3)), 0, 65535).astype(np.uint16)
    assert near_black(black16) is None
    grey = np.zeros((10, 10), np.uint8)  # greyscale and a flat black frame
    assert near_black(grey) is not None

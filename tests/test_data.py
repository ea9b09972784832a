"""Training data: folder listing, file checks, unpaired random crops with darkening, local patches."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from enlightengan.data import (
    DataError,
    UnpairedImageDataset,
    crop_patches,
    list_images,
    load_rgb,
    random_patch_boxes,
    scan_images,
)

from .conftest import make_dark_rgb


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1) / 2


def flips(a: np.ndarray) -> list[np.ndarray]:
    """The four flip variants of an H x W x C array: none, horizontal, vertical, both."""
    return [a, a[:, ::-1], a[::-1, :], a[::-1, ::-1]]


def as_hwc01(x: torch.Tensor) -> np.ndarray:
    return unit(x).permute(1, 2, 0).numpy()


def variant(crop: torch.Tensor, image: np.ndarray) -> int | None:
    """Which flip variant of the uint8 ``image`` the [-1, 1] crop is (None if none matches)."""
    got = as_hwc01(crop)
    for k, v in enumerate(flips(image.astype(np.float32) / 255)):
        if np.allclose(got, v, atol=1e-6):
            return k
    return None


# --- folders ------------------------------------------------------------------------------------


def test_list_images_sorted_recursive_case_insensitive(tmp_path: Path) -> None:
    rgb = make_dark_rgb(8, 8)
    b = write_png(tmp_path / "b.png", rgb)
    a = tmp_path / "a.JPG"
    Image.fromarray(rgb).save(a, format="JPEG")
    sub = write_png(tmp_path / "sub" / "c.png", rgb)
    write_png(tmp_path / ".hidden" / "d.png", rgb)
    write_png(tmp_path / ".e.png", rgb)
    (tmp_path / "notes.txt").write_text("not an image")
    assert list_images(tmp_path) == [a, b, sub]
    assert list_images(tmp_path, recursive=False) == [a, b]


def test_list_images_errors_name_the_folder_and_extensions(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist: .*missing"):
        list_images(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="got a file"):
        list_images(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no image files .*empty.*\.png .*\.jpg"):
        list_images(empty)
    (empty / "readme.txt").write_text("hello")
    write_png(empty / "deeper" / "x.png", make_dark_rgb(8, 8))
    with pytest.raises(DataError, match="sub-folders were not searched"):
        list_images(empty, recursive=False)
    assert issubclass(DataError, ValueError)


# --- file checks and decoding -------------------------------------------------------------------


def test_scan_images_separates_damaged_files(tmp_path: Path) -> None:
    good_png = write_png(tmp_path / "good.png", make_dark_rgb(16, 16))
    good_jpg = tmp_path / "good.jpg"
    Image.fromarray(make_dark_rgb(16, 16)).save(good_jpg)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x00\x01 definitely not an image" * 10)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good_png.read_bytes()[:-40])
    floats = tmp_path / "float.tif"
    Image.fromarray(np.zeros((8, 8), np.float32)).save(floats)
    good, bad = scan_images([good_png, garbage, empty, good_jpg, truncated, floats])
    assert good == [good_png, good_jpg]
    reasons = dict(bad)
    assert list(reasons) == [garbage, empty, truncated, floats]
    assert "empty file" in reasons[empty]
    assert "unsupported pixel mode 'F'" in reasons[floats]
    assert all(reasons[p] for p in (garbage, truncated))


def test_load_rgb_applies_exif_orientation(tmp_path: Path) -> None:
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: the picture must be rotated 90 degrees clockwise
    path = tmp_path / "turned.png"
    Image.fromarray(rgb).save(path, exif=exif)
    upright = load_rgb(path)
    assert upright.shape == (6, 4, 3)
    np.testing.assert_array_equal(upright, np.rot90(rgb, k=-1))


def test_load_rgb_converts_any_mode(tmp_path: Path) -> None:
    grey = np.array([[0, 100], [200, 255]], np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, axis=2))

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "alpha.png"), rgba[..., :3])

    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "palette.png"), [[[10, 20, 30], [40, 50, 60]]])

    grey16 = np.array([[0, 1000], [40000, 65535]], np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    out = load_rgb(tmp_path / "grey16.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[..., 1], grey16)

    rgb16 = np.array([[[1, 2, 60000], [300, 40000, 5]]], np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    out = load_rgb(tmp_path / "rgb16.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb16)


# --- the dataset --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    """6 low-light images (40 x 44 .. 48 x 52) and 3 normal-light ones (brighter, 48 x 40)."""
    root = tmp_path_factory.mktemp("data")
    low = [
        write_png(root / "low" / f"{i}.png", make_dark_rgb(40 + 4 * (i % 3), 44 + 4 * i, seed=i))
        for i in range(6)
    ]
    normal = [
        write_png(
            root / "normal" / f"{i}.png",
            np.clip(make_dark_rgb(48, 40, seed=10 + i) * 4, 0, 255).astype(np.uint8),
        )
        for i in range(3)
    ]
    return low, normal


def test_items_have_the_documented_shapes_ranges_and_attention(
    folders: tuple[list[Path], list[Path]],
) -> None:
    ds = UnpairedImageDataset(*folders, crop_size=32)
    assert len(ds) == 6
    item = ds[0]
    assert set(item) == {"low", "input", "gray", "normal"}
    for key in ("low", "input", "normal"):
        assert item[key].shape == (3, 32, 32) and item[key].dtype == torch.float32
        assert item[key].min() >= -1 and item[key].max() <= 1
    assert item["gray"].shape == (1, 32, 32)
    r, g, b = (item["input"][c] + 1 for c in range(3))
    torch.testing.assert_close(item["gray"][0], 1 - (0.299 * r + 0.587 * g + 0.114 * b) / 2)
    # the low crop is a window of its image (up to flips)
    assert item["low"].mean() < item["normal"].mean()


def test_items_are_deterministic_per_seed_epoch_and_index(folders: tuple[list[Path], list[Path]]) -> None:
    a = UnpairedImageDataset(*folders, crop_size=24, seed=7)
    b = UnpairedImageDataset(*folders, crop_size=24, seed=7)
    first = [a[i] for i in range(len(a))]
    for i in reversed(range(len(b))):  # order does not matter
        for key in first[i]:
            assert torch.equal(first[i][key], b[i][key])
    a.set_epoch(1)
    assert any(not torch.equal(first[i]["low"], a[i]["low"]) for i in range(len(a)))
    a.set_epoch(0)
    assert torch.equal(first[3]["normal"], a[3]["normal"])
    c = UnpairedImageDataset(*folders, crop_size=24, seed=8)
    assert any(not torch.equal(first[i]["low"], c[i]["low"]) for i in range(len(c)))


def test_darkening_divides_the_low_crop_by_a_factor_in_range(folders: tuple[list[Path], list[Path]]) -> None:
    ds = UnpairedImageDataset(*folders, crop_size=16, darken_prob=0.5, darken_range=(2.0, 4.0))
    factors, unchanged = [], 0
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            if torch.equal(item["input"], item["low"]):
                unchanged += 1
                continue
            low01, in01 = unit(item["low"]), unit(item["input"])
            factor = (low01.sum() / in01.sum()).item()
            torch.testing.assert_close(in01 * factor, low01, rtol=0, atol=2e-6)
            factors.append(factor)
    assert unchanged > 0 and len(factors) > 0  # 36 draws with probability 0.5: both kinds occur
    assert all(2.0 <= f <= 4.0 for f in factors)
    assert max(factors) - min(factors) > 0.3  # drawn, not fixed

    never = UnpairedImageDataset(*folders, crop_size=16, darken_prob=0.0)
    always = UnpairedImageDataset(*folders, crop_size=16, darken_prob=1.0, darken_range=(3.0, 3.0))
    for i in range(len(never)):
        assert torch.equal(never[i]["input"], never[i]["low"])
        item = always[i]
        torch.testing.assert_close(unit(item["input"]) * 3, unit(item["low"]), rtol=0, atol=2e-6)


def test_flips_are_random_and_shared_by_low_input_and_gray(tmp_path: Path) -> None:
    """Images of exactly the crop size: the only randomness left in the low crop is the flips."""
    rng = np.random.default_rng(0)
    low_img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    normal_imgs = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    low_file = write_png(tmp_path / "low.png", low_img)
    normal_files = [write_png(tmp_path / f"normal{i}.png", im) for i, im in enumerate(normal_imgs)]
    ds = UnpairedImageDataset([low_file], normal_files, crop_size=16, darken_prob=1.0)
    low_variants, normal_variants, normal_sources = [], [], []
    for epoch in range(24):
        ds.set_epoch(epoch)
        item = ds[0]
        k = variant(item["low"], low_img)
        assert k is not None
        # input is the darkened low crop, so it carries the same flips; gray is computed from it
        factor = (unit(item["low"]).sum() / unit(item["input"]).sum()).item()
        torch.testing.assert_close(unit(item["input"]) * factor, unit(item["low"]), rtol=0, atol=2e-6)
        r, g, b = (item["input"][c] + 1 for c in range(3))
        torch.testing.assert_close(item["gray"][0], 1 - (0.299 * r + 0.587 * g + 0.114 * b) / 2)
        matches = [(j, variant(item["normal"], im)) for j, im in enumerate(normal_imgs)]
        source, normal_k = next((j, v) for j, v in matches if v is not None)
        low_variants.append(k)
        normal_variants.append(normal_k)
        normal_sources.append(source)
    assert set(low_variants) == {0, 1, 2, 3}
    assert set(normal_variants) == {0, 1, 2, 3}
    assert set(normal_sources) == {0, 1, 2}  # the normal image is drawn anew for the same low image
    assert any(a != b for a, b in zip(low_variants, normal_variants, strict=True))  # flipped independently

    no_flip = UnpairedImageDataset([low_file], normal_files, crop_size=16, flip=False)
    for epoch in range(4):
        no_flip.set_epoch(epoch)
        assert variant(no_flip[0]["low"], low_img) == 0


def test_normal_draws_are_independent_of_the_low_index(folders: tuple[list[Path], list[Path]]) -> None:
    low, normal = folders
    ds = UnpairedImageDataset(low * 4, normal, crop_size=40, flip=False, darken_prob=0.0)  # 24 items
    # a 48 x 40 normal image at crop 40: its crop is a vertical window; identify the source by content
    sources = []
    images = [np.asarray(Image.open(p)).astype(np.float32) / 255 for p in normal]
    for i in range(len(ds)):
        got = as_hwc01(ds[i]["normal"])
        hits = [
            j
            for j, im in enumerate(images)
            if any(np.allclose(got, im[t : t + 40], atol=1e-6) for t in range(9))
        ]
        assert len(hits) == 1
        sources.append(hits[0])
    assert set(sources) == {0, 1, 2}
    # the same low image (i, i + 6, ...) meets different normal images
    assert any(len({sources[i + 6 * k] for k in range(4)}) > 1 for i in range(6))


def test_small_images_are_upscaled_so_the_shorter_side_equals_the_crop(tmp_path: Path) -> None:
    half = np.zeros((8, 8, 3), np.uint8)
    half[:, 4:] = 255  # left half black, right half white
    flat = np.full((5, 7, 3), 90, np.uint8)
    tall = np.zeros((12, 8, 3), np.uint8)
    tall[6:] = 255  # top half black, bottom half white
    files = [
        write_png(tmp_path / n, im) for n, im in (("half.png", half), ("flat.png", flat), ("tall.png", tall))
    ]
    ds = UnpairedImageDataset(files, files, crop_size=16, flip=False, darken_prob=0.0)
    halves = as_hwc01(ds[0]["low"])
    assert halves.shape == (16, 16, 3)
    assert halves[:, :6].max() < 0.1 and halves[:, 10:].min() > 0.9  # 8 -> 16: the edge stays in the middle
    np.testing.assert_allclose(as_hwc01(ds[1]["low"]), 90 / 255, atol=1e-5)  # bicubic keeps a flat image flat
    # 12 x 8 -> 24 x 16 (aspect ratio kept): the 16 x 16 window slides vertically over the black/white edge
    windows = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        window = as_hwc01(ds[2]["low"])[:, :, 0]
        assert window.shape == (16, 16)
        np.testing.assert_allclose(window, window[:, :1].repeat(16, axis=1), atol=1e-6)  # rows stay flat
        windows.append(round(float(window.mean()), 4))
    assert len(set(windows)) > 1


def test_undecodable_file_is_replaced_by_the_next_one_with_a_warning(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(make_dark_rgb(64, 64, seed=3)).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # header intact, data cut: passes the scan, fails decoding
    other = write_png(tmp_path / "other.png", make_dark_rgb(40, 40, seed=4))
    assert scan_images([truncated])[0] == [truncated]
    ds = UnpairedImageDataset([truncated, other], [other], crop_size=32)
    reference = UnpairedImageDataset([other, other], [other], crop_size=32)
    with pytest.warns(RuntimeWarning, match=r"truncated\.jpg.*cannot be decoded"):
        item = ds[0]
    for key in item:
        assert torch.equal(item[key], reference[0][key])  # same file, same random draws
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known-bad file is skipped quietly the second time
        ds[0]

    broken = UnpairedImageDataset([truncated], [other], crop_size=32)
    with pytest.warns(RuntimeWarning), pytest.raises(DataError, match="none of the 1 low-light"):
        broken[0]


def test_dataset_argument_errors(folders: tuple[list[Path], list[Path]]) -> None:
    low, normal = folders
    with pytest.raises(DataError, match="low-light"):
        UnpairedImageDataset([], normal, 16)
    with pytest.raises(DataError, match="normal-light"):
        UnpairedImageDataset(low, [], 16)
    with pytest.raises(ValueError, match="crop_size"):
        UnpairedImageDataset(low, normal, 0)
    with pytest.raises(ValueError, match="darken_prob"):
        UnpairedImageDataset(low, normal, 16, darken_prob=1.5)
    with pytest.raises(ValueError, match="darken_range"):
        UnpairedImageDataset(low, normal, 16, darken_range=(4.0, 2.0))
    ds = UnpairedImageDataset(low, normal, 16)
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)


def test_sixteen_bit_images_keep_their_scale(tmp_path: Path) -> None:
    grey16 = np.full((16, 16), 16384, np.uint16)  # a quarter of full scale
    path = tmp_path / "grey16.png"
    Image.fromarray(grey16).save(path)
    item = UnpairedImageDataset([path], [path], crop_size=16, darken_prob=0.0)[0]
    torch.testing.assert_close(unit(item["low"]), torch.full((3, 16, 16), 16384 / 65535))


def test_dataset_is_lazy_and_gives_the_same_batches_with_workers(
    folders: tuple[list[Path], list[Path]],
) -> None:
    ds = UnpairedImageDataset(*folders, crop_size=32, seed=3)
    ds[0]
    assert len(pickle.dumps(ds)) < 4096  # paths only: no decoded image travels to the workers

    def batches(workers: int) -> list[dict[str, torch.Tensor]]:
        out = []
        for epoch in range(2):
            ds.set_epoch(epoch)
            out.extend(DataLoader(ds, batch_size=2, shuffle=False, num_workers=workers))
        return out

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 6
    for a, b in zip(serial, parallel, strict=True):
        for key in a:
            assert torch.equal(a[key], b[key])


# --- patches ------------------------------------------------------------------------------------


def test_random_patch_boxes_bounds_and_determinism() -> None:
    boxes = random_patch_boxes(200, 32, 40, 50, torch.Generator().manual_seed(0))
    assert len(boxes) == 200
    tops, lefts = zip(*boxes, strict=True)
    assert min(tops) == 0 and max(tops) == 8  # every position from 0 to H - patch is reachable
    assert min(lefts) == 0 and max(lefts) == 18
    assert random_patch_boxes(6, 32, 40, 50, torch.Generator().manual_seed(1)) == random_patch_boxes(
        6, 32, 40, 50, torch.Generator().manual_seed(1)
    )
    assert random_patch_boxes(6, 32, 40, 50, torch.Generator().manual_seed(1)) != random_patch_boxes(
        6, 32, 40, 50, torch.Generator().manual_seed(2)
    )
    assert random_patch_boxes(0, 32, 40, 50, torch.Generator()) == []
    assert random_patch_boxes(3, 32, 32, 32, torch.Generator()) == [(0, 0)] * 3


def test_random_patch_boxes_errors() -> None:
    with pytest.raises(ValueError, match="exceeds the image size"):
        random_patch_boxes(6, 32, 31, 64, torch.Generator())
    with pytest.raises(ValueError, match="count"):
        random_patch_boxes(-1, 32, 64, 64, torch.Generator())
    with pytest.raises(ValueError, match="positive"):
        random_patch_boxes(1, 0, 64, 64, torch.Generator())


def test_crop_patches_is_box_major_by_hand() -> None:
    # image 0 holds r * 6 + c at (r, c); image 1 the same plus 100
    base = torch.arange(36.0).view(1, 1, 6, 6)
    images = torch.cat([base, base + 100])
    patches = crop_patches(images, [(0, 0), (2, 3)], 3)
    assert patches.shape == (4, 1, 3, 3)
    assert patches[0, 0, 0].tolist() == [0.0, 1.0, 2.0]  # box 0, image 0
    assert patches[1, 0, 0].tolist() == [100.0, 101.0, 102.0]  # box 0, image 1
    assert patches[2, 0, 0].tolist() == [15.0, 16.0, 17.0]  # box 1 (row 2, column 3), image 0
    assert patches[3, 0, 2].tolist() == [127.0, 128.0, 129.0]  # box 1, image 1, row 4
    # the same boxes cut from two aligned tensors stay aligned
    torch.testing.assert_close(crop_patches(images * 2, [(2, 3)], 3), 2 * crop_patches(images, [(2, 3)], 3))


def test_crop_patches_errors() -> None:
    images = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match="outside"):
        crop_patches(images, [(0, 6)], 4)
    with pytest.raises(ValueError, match="no patch boxes"):
        crop_patches(images, [], 4)
    with pytest.raises(ValueError, match="N x C x H x W"):
        crop_patches(images[0], [(0, 0)], 4)


def test_resize_range_shrinks_before_cropping_never_below_the_crop(tmp_path: Path) -> None:
    # 64 x 64 stripes of period 2 px: any antialiased 2x shrink averages each pair to grey
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255
    files = [write_png(tmp_path / "stripes.png", stripes)]
    plain = UnpairedImageDataset(files, files, crop_size=16, flip=False, darken_prob=0.0)
    assert np.ptp(as_hwc01(plain[0]["low"])) == pytest.approx(1.0)  # no resize: the stripes stay
    shrunk = UnpairedImageDataset(
        files, files, crop_size=16, flip=False, darken_prob=0.0, resize_range=(2.0, 2.0)
    )
    np.testing.assert_allclose(as_hwc01(shrunk[0]["low"]), 0.5, atol=0.01)
    # a factor that would go below the crop size stops at it: 64 / 16 = 4 at most, the whole image seen
    huge = UnpairedImageDataset(
        files, files, crop_size=16, flip=False, darken_prob=0.0, resize_range=(10.0, 10.0)
    )
    np.testing.assert_allclose(as_hwc01(huge[0]["low"]), 0.5, atol=0.05)  # (border columns: 0.54)
    with pytest.raises(ValueError, match="resize_range"):
        UnpairedImageDataset(files, files, crop_size=16, resize_range=(0.5, 1.0))

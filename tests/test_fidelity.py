"""PSNR, SSIM and brightness against hand computation and scikit-image (a test-only dependency)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enlightengan.metrics import brightness, psnr, ssim

from .conftest import data_file, make_dark_rgb


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    metrics = pytest.importorskip("skimage.metrics")
    channel_axis = -1 if a.ndim == 3 else None
    return float(
        metrics.structural_similarity(
            a,
            b,
            channel_axis=channel_axis,
            gaussian_weights=True,
            use_sample_covariance=False,
            data_range=255,
        )
    )


def _skimage_psnr(a: np.ndarray, b: np.ndarray) -> float:
    metrics = pytest.importorskip("skimage.metrics")
    return float(metrics.peak_signal_noise_ratio(b, a, data_range=255))


def _synthetic_pair(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = make_dark_rgb(shape[0], shape[1], seed=seed).astype(np.float64) * 3
    if len(shape) == 2:
        ref = ref[:, :, 1]
    pred = ref * rng.uniform(0.6, 1.2) + rng.normal(0, 12, ref.shape)
    return (np.clip(pred, 0, 255).astype(np.uint8), np.clip(ref, 0, 255).astype(np.uint8))


def test_psnr_hand_value() -> None:
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 255
    # MSE = 255^2 / 16, so PSNR = 10 log10(16).
    assert psnr(a, b) == pytest.approx(10 * math.log10(16), abs=1e-12)
    assert psnr(a, b, data_range=1) == pytest.approx(10 * math.log10(16 / 255**2), abs=1e-12)


def test_identical_images_give_inf_psnr_and_unit_ssim() -> None:
    image = make_dark_rgb(40, 50)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_a_uniform_shift_is_the_luminance_term() -> None:
    # Flat images: no variance, so SSIM reduces to (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    a = np.full((20, 20), 100, np.uint8)
    b = np.full((20, 20), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 140 + c1) / (100**2 + 140**2 + c1), abs=1e-12)


@pytest.mark.parametrize(("seed", "shape"), [(0, (64, 80, 3)), (1, (33, 47, 3)), (2, (50, 61))])
def test_matches_scikit_image_on_synthetic_pairs(seed: int, shape: tuple[int, ...]) -> None:
    pred, ref = _synthetic_pair(seed, shape)
    assert ssim(pred, ref) == pytest.approx(_skimage_ssim(pred, ref), abs=1e-10)
    assert psnr(pred, ref) == pytest.approx(_skimage_psnr(pred, ref), abs=1e-10)


def test_matches_scikit_image_on_lol_pairs(shared_dir: Path) -> None:
    low_dir = data_file(shared_dir, "datasets", "lol_eval15", "low")
    names = sorted(p.name for p in low_dir.iterdir())[:3]
    assert names
    for name in names:
        low = np.asarray(Image.open(low_dir / name).convert("RGB"))
        high = np.asarray(Image.open(low_dir.parent / "high" / name).convert("RGB"))
        assert ssim(low, high) == pytest.approx(_skimage_ssim(low, high), abs=1e-10)
        assert psnr(low, high) == pytest.approx(_skimage_psnr(low, high), abs=1e-10)
        # A brighter copy of the dark input gets closer to the reference on both metrics.
        brighter = np.clip(low.astype(np.float64) * 4, 0, 255).astype(np.uint8)
        assert psnr(brighter, high) > psnr(low, high)


def test_pil_images_are_accepted() -> None:
    pred, ref = _synthetic_pair(3, (40, 40, 3))
    assert ssim(Image.fromarray(pred), Image.fromarray(ref)) == ssim(pred, ref)
    assert psnr(Image.fromarray(pred), Image.fromarray(ref)) == psnr(pred, ref)


def test_size_mismatch_is_a_clear_error() -> None:
    a = np.zeros((40, 50, 3), np.uint8)
    b = np.zeros((40, 51, 3), np.uint8)
    with pytest.raises(ValueError, match=r"differ in size: 50x40 RGB vs 51x40 RGB"):
        psnr(a, b)
    with pytest.raises(ValueError, match="differ in size"):
        ssim(a, b)
    with pytest.raises(ValueError, match="differ in size"):
        ssim(a, a[:, :, 0])


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 30), np.uint8), np.zeros((10, 30), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        psnr(np.zeros((20, 20)), np.zeros((20, 20)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.zeros((20, 20), np.uint8), np.ones((20, 20), np.uint8), data_range=0)


def test_brightness_is_mean_matlab_luminance() -> None:
    image = np.array([[[10, 200, 30], [255, 255, 255]]], dtype=np.uint8)
    # rgb2gray: 124 and 255 (see test_niqe), mean 189.5.
    assert brightness(image) == pytest.approx(189.5)
    assert brightness(np.full((3, 3), 7, np.uint8)) == pytest.approx(7.0)

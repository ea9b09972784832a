"""NIQE: MATLAB-exact pieces checked by hand, the AGGD fit on synthetic samples, the published DICM score."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.special import gamma as gamma_fn

from enlightengan.metrics import imresize, niqe, niqe_features, rgb2gray
from enlightengan.metrics.niqe import estimate_aggd_params, pristine_params

from .conftest import data_file

# Interior taps of MATLAB imresize(x, 0.5) (bicubic, antialiased): 0.5 * cubic(0.5 * t) at
# t = +-0.5, +-1.5, +-2.5, +-3.5, with Keys' cubic (a = -0.5) worked out by hand.
HALF_TAPS = {0.5: 0.43359375, 1.5: 0.11328125, 2.5: -0.03515625, 3.5: -0.01171875}


def _natural_image() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.asarray(data.astronaut(), dtype=np.uint8)  # 512 x 512 RGB photo, bundled offline


# --- rgb2gray -------------------------------------------------------------------------------------


def test_rgb2gray_hand_values_and_rounding() -> None:
    pixels = np.array([[[10, 200, 30], [2, 0, 0], [1, 0, 0], [0, 0, 5]]], dtype=np.uint8)
    # 0.298936*10 + 0.587043*200 + 0.114021*30 = 123.82 -> 124; 0.598 -> 1 (rounded, not truncated);
    # 0.299 -> 0; 0.570 -> 1.
    np.testing.assert_array_equal(rgb2gray(pixels), [[124, 1, 0, 1]])


def test_rgb2gray_keeps_grey_levels() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.repeat(levels[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(rgb2gray(rgb), levels)
    np.testing.assert_array_equal(rgb2gray(levels), levels)


def test_rgb2gray_accepts_pil_and_rejects_floats() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb2gray(Image.fromarray(rgb)), rgb2gray(rgb))
    with pytest.raises(ValueError, match="uint8"):
        rgb2gray(rgb.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="HxWx3"):
        rgb2gray(np.zeros((4, 4, 4), np.uint8))


# --- MATLAB imresize ------------------------------------------------------------------------------


def test_imresize_constant_stays_constant() -> None:
    out = imresize(np.full((7, 9), 42.5), 0.5)
    assert out.shape == (4, 5)  # ceil(7 / 2), ceil(9 / 2)
    np.testing.assert_allclose(out, 42.5, rtol=0, atol=1e-12)


def test_imresize_half_impulse_response() -> None:
    # A unit impulse at 1-based sample 8 of 16; output x sits at input 2x - 0.5, so the response
    # at x is the tap at distance t = 2x - 0.5 - 8.
    signal = np.zeros((1, 16))
    signal[0, 7] = 1.0
    expected = [0, 0, HALF_TAPS[2.5], HALF_TAPS[0.5], HALF_TAPS[1.5], HALF_TAPS[3.5], 0, 0]
    np.testing.assert_allclose(imresize(signal, 0.5)[0], expected, rtol=0, atol=1e-15)
    # Taps sum to one, so no renormalisation happens in the interior.
    assert 2 * sum(HALF_TAPS.values()) == pytest.approx(1.0, abs=1e-15)


def test_imresize_half_ramp_with_mirrored_border() -> None:
    ramp = np.arange(1, 17, dtype=np.float64)[None, :]  # f(i) = i, 1-based
    out = imresize(ramp, 0.5)[0]
    # Interior: symmetric taps reproduce a linear signal at the sample position 2x - 0.5.
    np.testing.assert_allclose(out[2:6], [2 * x - 0.5 for x in range(3, 7)], atol=1e-12)
    # x = 1 uses inputs -2..5, mirrored half-sample symmetrically: -2 -> 3, -1 -> 2, 0 -> 1.
    w = HALF_TAPS
    first = (
        w[3.5] * 3 + w[2.5] * 2 + w[1.5] * 1 + w[0.5] * 1 + w[0.5] * 2 + w[1.5] * 3 + w[2.5] * 4 + w[3.5] * 5
    )
    assert out[0] == pytest.approx(first, abs=1e-12)


def test_imresize_without_antialiasing_uses_plain_bicubic_taps() -> None:
    signal = np.zeros((1, 16))
    signal[0, 7] = 1.0
    # Kernel not stretched: cubic(0.5) = 0.5625, cubic(1.5) = -0.0625, at x = 4 and 5 (t = -0.5, 1.5).
    expected = [0, 0, 0, 0.5625, -0.0625, 0, 0, 0]
    np.testing.assert_allclose(imresize(signal, 0.5, antialiasing=False)[0], expected, atol=1e-15)


def test_imresize_scale_one_is_identity_and_2d_is_separable() -> None:
    image = np.random.default_rng(2).normal(size=(10, 12))
    np.testing.assert_allclose(imresize(image, 1.0), image, atol=1e-12)
    # A single row is left alone along its length-1 axis, so 1-D resizes can be composed by hand.
    along_columns = np.stack([imresize(row[None, :], 0.5)[0] for row in image])
    both = np.stack([imresize(col[None, :], 0.5)[0] for col in along_columns.T]).T
    assert both.shape == (5, 6)
    np.testing.assert_allclose(imresize(image, 0.5), both, atol=1e-12)


def test_imresize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        imresize(np.zeros((4, 4)), 0.0)
    with pytest.raises(ValueError, match="2-D"):
        imresize(np.zeros((4, 4, 3)), 0.5)


# --- AGGD fit ------------------------------------------------------------------------------------


def _sample_aggd(alpha: float, beta_l: float, beta_r: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # |x| / beta follows Gamma(1 / alpha) ** (1 / alpha) on each side; the side is left with
    # probability beta_l / (beta_l + beta_r), as the AGGD density is continuous at zero.
    magnitude = rng.gamma(1.0 / alpha, 1.0, n) ** (1.0 / alpha)
    left = rng.random(n) < beta_l / (beta_l + beta_r)
    return np.where(left, -beta_l * magnitude, beta_r * magnitude)


@pytest.mark.parametrize(("alpha", "beta_l", "beta_r"), [(0.8, 0.3, 0.6), (1.5, 0.5, 1.2), (3.0, 1.0, 1.0)])
def test_aggd_fit_recovers_parameters(alpha: float, beta_l: float, beta_r: float) -> None:
    samples = np.stack([_sample_aggd(alpha, beta_l, beta_r, 200_000, seed) for seed in range(2)])
    a, bl, br = estimate_aggd_params(samples)
    np.testing.assert_allclose(a, alpha, rtol=0.05)
    np.testing.assert_allclose(bl, beta_l, rtol=0.05)
    np.testing.assert_allclose(br, beta_r, rtol=0.05)


def test_aggd_fit_of_a_gaussian() -> None:
    samples = np.random.default_rng(3).normal(0.0, 0.7, (1, 300_000))
    a, bl, br = estimate_aggd_params(samples)
    # N(0, s^2) is the generalised Gaussian with alpha = 2 and beta = s * sqrt(2).
    assert a[0] == pytest.approx(2.0, abs=0.05)
    assert bl[0] == pytest.approx(0.7 * np.sqrt(2), rel=0.02)
    assert br[0] == pytest.approx(0.7 * np.sqrt(2), rel=0.02)


def test_aggd_shape_is_the_nearest_grid_point_like_matlab_scan() -> None:
    grid = np.arange(200, 10001) / 1000.0
    rho = gamma_fn(2 / grid) ** 2 / (gamma_fn(1 / grid) * gamma_fn(3 / grid))
    rng = np.random.default_rng(4)
    rows = rng.standard_t(df=rng.uniform(2.5, 30, 64)[:, None], size=(64, 500)) * rng.uniform(0.1, 3, (64, 1))
    rows += rng.normal(0, 0.3, (64, 1))
    alpha, _, _ = estimate_aggd_params(rows)
    # MATLAB: min((r_gam - rhatnorm).^2) over the whole grid, computed here independently.
    left = np.sqrt(np.array([np.mean(r[r < 0] ** 2) for r in rows]))
    right = np.sqrt(np.array([np.mean(r[r > 0] ** 2) for r in rows]))
    g = left / right
    r_hat = np.mean(np.abs(rows), axis=1) ** 2 / np.mean(rows**2, axis=1)
    r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    expected = grid[np.argmin((rho[None, :] - r_norm[:, None]) ** 2, axis=1)]
    np.testing.assert_array_equal(alpha, expected)


def test_aggd_fit_of_flat_block_is_nan_with_first_grid_shape() -> None:
    alpha, bl, br = estimate_aggd_params(np.zeros((2, 50)))
    np.testing.assert_array_equal(alpha, [0.2, 0.2])  # MATLAB's min over all-NaN picks entry 1
    assert np.isnan(bl).all() and np.isnan(br).all()


# --- NIQE -----------------------------------------------------------------------------------------


def test_pristine_params_shapes_and_read_only() -> None:
    mu, cov = pristine_params()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    with pytest.raises(ValueError):
        mu[0] = 0.0


def test_pristine_params_match_live_release(shared_dir: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    mat = scipy_io.loadmat(data_file(shared_dir, "niqe", "live_modelparameters.mat"))
    mu, cov = pristine_params()
    np.testing.assert_array_equal(mu, mat["mu_prisparam"].reshape(-1))
    np.testing.assert_array_equal(cov, mat["cov_prisparam"])


def test_features_one_row_per_block_and_crop() -> None:
    image = _natural_image()[:300, :500]
    features = niqe_features(image)
    assert features.shape == ((300 // 96) * (500 // 96), 36)
    # Pixels beyond the last whole block are ignored.
    assert niqe(image) == niqe(image[:288, :480].copy())


def test_niqe_accepts_rgb_grey_and_pil_alike() -> None:
    image = _natural_image()
    grey = rgb2gray(image)
    score = niqe(image)
    assert np.isfinite(score) and score > 0
    assert niqe(grey) == score
    assert niqe(Image.fromarray(image)) == score


def test_noise_scores_worse_than_clean() -> None:
    image = _natural_image()
    noisy = np.clip(image + np.random.default_rng(5).normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    assert niqe(noisy) > niqe(image) + 1.0


def test_niqe_equals_distance_formula_on_features() -> None:
    image = _natural_image()
    features = niqe_features(image)
    assert not np.isnan(features).any()
    mu_p, cov_p = pristine_params()
    d = mu_p - features.mean(axis=0)
    expected = np.sqrt(d @ np.linalg.pinv((cov_p + np.cov(features.T)) / 2) @ d)
    assert niqe(image) == pytest.approx(expected, rel=1e-9)


def test_flat_areas_give_exact_zero_mscn_at_both_scales() -> None:
    mscn = importlib.import_module("enlightengan.metrics.niqe")._mscn
    image = _natural_image()[:192, :192, 0].astype(np.float64)
    # A flat right half (an over-exposed sky); with 201 (unlike 255 or 37) the Gaussian window leaves
    # rounding noise in floating point, at both scales.
    image[:, 96:] = 201.0
    full = mscn(image)
    half = mscn(imresize(image, 0.5))
    # Away from the edge (the 7x7 window, plus the 8-tap resize kernel at half scale) both are 0 exactly.
    assert (full[:, 100:] == 0).all()
    assert (half[:, 56:] == 0).all()
    assert (np.abs(full[:, :90]) > 0).mean() > 0.9  # texture is kept


def test_single_block_image_scores() -> None:
    image = _natural_image()[200:296, 200:296]
    assert np.isfinite(niqe(image))


def test_niqe_rejects_small_flat_and_float_images() -> None:
    with pytest.raises(ValueError, match="smaller than one 96x96"):
        niqe(np.zeros((95, 300, 3), np.uint8))
    with pytest.raises(ValueError, match="no texture"):
        niqe(np.full((200, 200), 128, np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        niqe(np.zeros((200, 200, 3), np.float64))


def _mean_niqe(folder: Path) -> tuple[float, int]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".bmp", ".png"))
    scores = []
    for path in files:
        with Image.open(path) as image:
            scores.append(niqe(image.convert("RGB")))
    return float(np.mean(scores)), len(scores)


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize(
    ("folder", "count", "expected"),
    [
        ("dicm", 64, 4.255),  # EnlightenGAN paper (Jiang et al. 2021), Table 1, input row
        ("lime", 9, 4.562),  # the project's reference measurement on its 9 LIME images
    ],
)
def test_dataset_mean_matches_reference(shared_dir: Path, folder: str, count: int, expected: float) -> None:
    path = data_file(shared_dir, "datasets", folder)
    mean, n = _mean_niqe(path)
    assert n == count
    assert mean == pytest.approx(expected, abs=0.005)

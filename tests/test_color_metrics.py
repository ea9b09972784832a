"""Colour measures: CIEDE2000 against scikit-image, false colour on images made with and without it."""

from __future__ import annotations

import numpy as np
import pytest

from enlightengan.metrics import color_difference, false_color
from enlightengan.metrics.color import _linear, _srgb


def _dark_neutral(seed: int = 0, h: int = 120, w: int = 180) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = 12 + rng.normal(0, 3, (h, w, 1))
    return np.clip(grey.repeat(3, axis=2), 0, 255).astype(np.uint8)


def _gamma(image: np.ndarray, power: float = 0.4) -> np.ndarray:
    return np.round((image / 255.0) ** power * 255).astype(np.uint8)


def test_color_difference_is_skimage_ciede2000() -> None:
    from skimage.color import deltaE_ciede2000, rgb2lab

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = deltaE_ciede2000(rgb2lab(a / 255.0), rgb2lab(b / 255.0)).mean()
    assert color_difference(a, b) == pytest.approx(expected, rel=1e-9)
    assert color_difference(a, a) == 0.0
    # Sharma et al. 2005, Table 1, pair 1: L*a*b* (50, 2.6772, -79.7751) vs (50, 0, -82.7485): 2.0425
    from skimage.color import lab2rgb

    pair = np.array([[[50, 2.6772, -79.7751]], [[50, 0.0, -82.7485]]])
    assert deltaE_ciede2000(pair[0], pair[1])[0] == pytest.approx(2.0425, abs=1e-4)
    assert lab2rgb(pair).shape == (2, 1, 3)


def test_color_difference_errors() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        color_difference(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        color_difference(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))


def test_false_color_is_zero_for_neutral_brightening() -> None:
    dark = _dark_neutral()
    assert false_color(_gamma(dark), dark) < 0.1


def test_false_color_allows_a_gain_and_a_desaturating_curve_of_a_coloured_input() -> None:
    red = np.zeros((64, 64, 3), np.uint8)
    red[...] = (40, 10, 8)
    gained = np.round(_srgb(_linear(red / 255.0) * 6) * 255).astype(np.uint8)
    assert false_color(gained, red) < 3.0  # a gain keeps the chromaticity (up to rounding)
    assert false_color(_gamma(red), red) < 1.0  # a curve desaturates: losing colour is allowed


def test_false_color_sees_a_green_blob_in_proportion_to_its_area() -> None:
    dark = _dark_neutral()
    bright = _gamma(dark)
    yy, xx = np.mgrid[: dark.shape[0], : dark.shape[1]]
    small = ((yy - 60) / 20) ** 2 + ((xx - 90) / 30) ** 2 < 1
    large = ((yy - 60) / 40) ** 2 + ((xx - 90) / 60) ** 2 < 1
    scores = []
    for mask in (small, large):
        blob = bright.copy()
        blob[mask] = (90, 140, 60)
        scores.append(false_color(blob, dark))
    assert scores[0] > 1.0
    # the blob's chroma is the same: the score grows with the share of the dark area it covers
    assert scores[1] / scores[0] == pytest.approx(large.mean() / small.mean(), rel=0.15)


def test_false_color_sees_a_teal_cast_and_ignores_bright_inputs() -> None:
    dark = _dark_neutral()
    teal = _gamma(dark).astype(np.int32) + np.array([-15, 0, 10])
    assert false_color(np.clip(teal, 0, 255).astype(np.uint8), dark) > 5.0
    bright_input = np.full((40, 40, 3), 150, np.uint8)  # no dark pixel: nothing can be invented there
    assert false_color(np.full((40, 40, 3), (90, 160, 60), np.uint8), bright_input) == 0.0


def test_false_color_is_resolution_independent() -> None:
    dark = _dark_neutral(h=200, w=300)
    blob = _gamma(dark)
    blob[50:150, 100:200] = (120, 150, 40)
    big_dark = dark.repeat(3, axis=0).repeat(3, axis=1)
    big_blob = blob.repeat(3, axis=0).repeat(3, axis=1)
    assert false_color(big_blob, big_dark) == pytest.approx(false_color(blob, dark), rel=0.05)


def test_an_unchanged_photo_invents_nothing() -> None:
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 80, (60, 90, 3), dtype=np.uint8)
    assert false_color(photo, photo) == pytest.approx(0.0, abs=1e-9)
    assert color_difference(photo, photo) == 0.0

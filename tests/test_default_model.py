"""The bundled default model brightens real photos: checks against measured scores (docs/MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enlightengan import Enhancer
from enlightengan.metrics import brightness, psnr, ssim

from .conftest import REPO


@pytest.fixture(scope="module")
def default_enhancer() -> Enhancer:
    return Enhancer(device="cpu")  # no weights: the bundled model


def test_example_photo_is_brightened_towards_the_original(default_enhancer: Enhancer) -> None:
    # docs/examples/dark.jpg is scikit-image's coffee photo darkened (scripts/make_example.py): the
    # original is the independent expectation for exposure and colour balance
    data = pytest.importorskip("skimage.data")
    original = data.coffee().astype(np.float64)
    dark = np.asarray(Image.open(REPO / "docs" / "examples" / "dark.jpg").convert("RGB"))
    out = default_enhancer.enhance(dark)
    assert out.shape == dark.shape and out.dtype == np.uint8
    assert brightness(dark) < 25
    assert abs(brightness(out) - brightness(original.astype(np.uint8))) < 30  # measured: 103 vs 98
    # colour balance (channel means over the overall mean): same order as the original's (R > G > B),
    # and within 0.4 of it (measured: 1.27/0.97/0.76 vs 1.61/0.87/0.52: the model desaturates, no cast)
    balance = out.reshape(-1, 3).mean(0) / out.mean()
    truth = original.reshape(-1, 3).mean(0) / original.mean()
    assert list(np.argsort(balance)) == list(np.argsort(truth))
    assert np.abs(balance - truth).max() < 0.4


@pytest.mark.shared
@pytest.mark.parametrize(("name", "min_psnr", "min_ssim"), [("1.png", 14.5, 0.70), ("22.png", 14.0, 0.60)])
def test_lol_pairs_score_as_measured(
    default_enhancer: Enhancer, shared_dir: Path, name: str, min_psnr: float, min_ssim: float
) -> None:
    # measured with the bundled model: 1.png 15.28 dB / 0.762, 22.png 14.76 dB / 0.656 (inputs ~8 dB)
    low = np.asarray(Image.open(shared_dir / "datasets" / "lol_eval15" / "low" / name).convert("RGB"))
    ref = np.asarray(Image.open(shared_dir / "datasets" / "lol_eval15" / "high" / name).convert("RGB"))
    out = default_enhancer.enhance(low)
    assert psnr(out, ref) >= min_psnr and ssim(out, ref) >= min_ssim
    assert psnr(low, ref) < 11  # the input is far off: the margin is the model's work

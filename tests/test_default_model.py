"""The bundled default model on real photos: regression floors under its recorded scores.

The scores measured with the bundled model live beside it
(``src/enlightengan/weights/enlightengan-default.scores.json``, :data:`conftest.BUNDLED_SCORES`);
a retrained model updates them there, and these floors follow. Independent expectations (the photo
the example was darkened from, the LOL references) come from the data, not from the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from enlightengan import Enhancer
from enlightengan.metrics import brightness, psnr, ssim
from enlightengan.weights import DEFAULT_MODEL

from .conftest import REPO, data_file

#: How far below its recorded scores the bundled model may fall on another machine (BLAS, threads).
PSNR_MARGIN_DB = 0.75
SSIM_MARGIN = 0.06
BRIGHTNESS_MARGIN = 3.0
BALANCE_MARGIN = 0.03


@pytest.fixture(scope="module")
def default_enhancer() -> Enhancer:
    return Enhancer(device="cpu")  # no weights: the bundled model


def test_recorded_scores_belong_to_the_bundled_model(bundled_scores: dict[str, Any]) -> None:
    # a new bundled model must come with its own measured scores, not inherit the old ones
    assert bundled_scores["model"] == DEFAULT_MODEL.filename
    assert bundled_scores["sha256"] == DEFAULT_MODEL.sha256


def test_example_photo_regression_floor(default_enhancer: Enhancer, bundled_scores: dict[str, Any]) -> None:
    # docs/examples/dark.jpg is scikit-image's coffee photo darkened (scripts/make_example.py): the
    # original is the independent expectation for exposure and colour balance
    data = pytest.importorskip("skimage.data")
    recorded = bundled_scores["example"]
    original = data.coffee().astype(np.float64)
    dark = np.asarray(Image.open(REPO / recorded["file"]).convert("RGB"))
    out = default_enhancer.enhance(dark)
    assert out.shape == dark.shape and out.dtype == np.uint8
    assert brightness(dark) < 25
    assert abs(brightness(out) - brightness(original.astype(np.uint8))) < 30  # exposure near the original's
    assert abs(brightness(out) - recorded["brightness"]) <= BRIGHTNESS_MARGIN
    # colour balance (channel means over the overall mean): same order as the original's (R > G > B)
    # and within 0.4 of it (the model desaturates, no cast), and where it was recorded
    balance = out.reshape(-1, 3).mean(0) / out.mean()
    truth = original.reshape(-1, 3).mean(0) / original.mean()
    assert list(np.argsort(balance)) == list(np.argsort(truth))
    assert np.abs(balance - truth).max() < 0.4
    assert np.abs(balance - np.array(recorded["channel_balance"])).max() <= BALANCE_MARGIN


@pytest.mark.shared
@pytest.mark.parametrize("name", ["1.png", "22.png"])
def test_lol_pairs_regression_floor(
    default_enhancer: Enhancer, bundled_scores: dict[str, Any], shared_dir: Path, name: str
) -> None:
    recorded = bundled_scores["lol_eval15"][name]
    lol = data_file(shared_dir, "datasets", "lol_eval15")
    low = np.asarray(Image.open(lol / "low" / name).convert("RGB"))
    ref = np.asarray(Image.open(lol / "high" / name).convert("RGB"))
    out = default_enhancer.enhance(low)
    assert psnr(out, ref) >= recorded["psnr"] - PSNR_MARGIN_DB
    assert ssim(out, ref) >= recorded["ssim"] - SSIM_MARGIN
    assert psnr(low, ref) < 11  # the input is far off: the margin is the model's work

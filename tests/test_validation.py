"""Whole-image validation while training: which images, which criterion, in eval mode, and "best".

The generator is :func:`conftest.brightening_generator`, whose output is known in closed form
(:func:`conftest.expected_brightening`), so the PSNR the validator reports is checked against a
hand computation on the images written here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from enlightengan.config import DataConfig
from enlightengan.metrics import niqe
from enlightengan.training.validation import ValidationResult, Validator

from .conftest import brightening_generator, expected_brightening, make_dark_rgb

#: NIQE needs at least 96 x 96 pixels.
SIZE = (96, 104)


def _write(folder: Path, images: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb in images.items():
        Image.fromarray(rgb).save(folder / name)
    return folder


@pytest.fixture
def low_and_refs(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    lows = {f"img{i}.png": make_dark_rgb(*SIZE, seed=i) for i in range(3)}
    # references: the brightened image plus a known offset per image, so each PSNR is known by hand
    refs = {
        name: np.clip(expected_brightening(rgb, 1.0).astype(int) + 4 * (i + 1), 0, 255).astype(np.uint8)
        for i, (name, rgb) in enumerate(lows.items())
    }
    return _write(tmp_path / "low", lows), _write(tmp_path / "ref", refs), lows, refs


def _psnr_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / mse)


class RecordingMode(nn.Module):
    """The brightening generator, noting whether it runs in training mode at each call."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = brightening_generator()
        self.modes: list[bool] = []

    def forward(self, image: torch.Tensor) -> object:
        self.modes.append(self.training)
        return self.inner(image)


def test_with_references_the_criterion_is_psnr_by_hand(
    low_and_refs: tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    low, ref, lows, refs = low_and_refs
    validator = Validator(DataConfig(val_low=str(low), val_ref=str(ref)), torch.device("cpu"))
    assert validator.criterion == "psnr"
    result = validator.evaluate(brightening_generator())
    outputs = {name: expected_brightening(rgb, 1.0) for name, rgb in lows.items()}
    expected_psnr = np.mean([_psnr_by_hand(outputs[name], refs[name]) for name in lows])
    assert result.criterion == "psnr"
    assert set(result.metrics) == {"psnr", "ssim", "niqe", "brightness"}
    assert result.metrics["psnr"] == pytest.approx(expected_psnr, abs=0.05)  # outputs within 1 level
    assert 0 < result.metrics["ssim"] <= 1
    expected_brightness = np.mean([o.astype(np.float64) @ [0.299, 0.587, 0.114] for o in outputs.values()])
    assert result.metrics["brightness"] == pytest.approx(expected_brightness, abs=0.5)


def test_without_references_the_criterion_is_niqe(
    low_and_refs: tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    low, _, lows, _ = low_and_refs
    validator = Validator(DataConfig(val_low=str(low), val_max_images=2), torch.device("cpu"))
    assert validator.criterion == "niqe" and [p.name for p in validator.low] == ["img0.png", "img1.png"]
    result = validator.evaluate(brightening_generator())
    assert result.criterion == "niqe" and set(result.metrics) == {"niqe", "brightness"}
    # the mean over the first two images (val_max_images) of the metric on the expected outputs
    expected = np.mean([niqe(expected_brightening(lows[f"img{i}.png"], 1.0)) for i in range(2)])
    assert result.metrics["niqe"] == pytest.approx(expected, abs=0.05)


def test_evaluation_runs_in_eval_mode_and_restores_the_mode(
    low_and_refs: tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    low, _, _, _ = low_and_refs
    generator = RecordingMode().train()
    Validator(DataConfig(val_low=str(low), val_max_images=1), torch.device("cpu")).evaluate(generator)
    assert generator.modes == [False]  # whole images in eval mode, as users run the model
    assert generator.training  # and back to training afterwards


def test_missing_references_are_named(tmp_path: Path) -> None:
    low = _write(tmp_path / "low", {"a.png": make_dark_rgb(8, 8), "b.png": make_dark_rgb(8, 8)})
    ref = _write(tmp_path / "ref", {"a.jpg": make_dark_rgb(8, 8)})  # matched by name without suffix
    with pytest.raises(ValueError, match=r"missing .*\['b.png'\]"):
        Validator(DataConfig(val_low=str(low), val_ref=str(ref)), torch.device("cpu"))


def test_better_than_follows_the_criterion() -> None:
    assert ValidationResult({"psnr": 20.0}, "psnr").better_than({"psnr": 19.5})
    assert not ValidationResult({"psnr": 19.5}, "psnr").better_than({"psnr": 19.5})  # ties keep the old
    assert ValidationResult({"niqe": 3.9}, "niqe").better_than({"niqe": 4.2})  # lower NIQE is better
    assert not ValidationResult({"niqe": 4.2}, "niqe").better_than({"niqe": 3.9})

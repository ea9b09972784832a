"""Whole-image validation while training: the measures of each set, the criterion, eval mode, "best".

:func:`conftest.brightening_generator` has an output known in closed form
(:func:`conftest.expected_brightening`), so the PSNR the validator reports is checked against a hand
computation; an identity generator makes every measure the inputs' own.
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
from enlightengan.metrics import color_difference, false_color, niqe, psnr
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.training.trainer import init_identity_generator
from enlightengan.training.validation import ValidationResult, Validator, composite_score

from .conftest import brightening_generator, expected_brightening, make_dark_rgb


def _identity() -> EnlightenGenerator:
    generator = EnlightenGenerator(GeneratorConfig(base_width=4))
    init_identity_generator(generator)  # output = input exactly
    return generator


def _write(folder: Path, images: dict[str, np.ndarray]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb in images.items():
        Image.fromarray(rgb).save(folder / name)
    return str(folder)


def test_each_set_gives_its_measures_and_the_combined_score(tmp_path: Path) -> None:
    lows = {f"{i}.png": make_dark_rgb(100, 120, seed=i) for i in range(2)}
    refs = {name: np.clip(rgb.astype(np.int32) * 3, 0, 255).astype(np.uint8) for name, rgb in lows.items()}
    normal = {"n.png": np.clip(make_dark_rgb(100, 100, seed=7).astype(np.int32) * 5, 0, 255).astype(np.uint8)}
    data = DataConfig(
        val_low=_write(tmp_path / "low", lows),
        val_ref=_write(tmp_path / "ref", refs),
        val_dim=_write(tmp_path / "dim", lows),
        val_normal=_write(tmp_path / "normal", normal),
        val_max_images=5,
    )
    validator = Validator(data, torch.device("cpu"))
    assert validator.criterion == "score"
    result = validator.evaluate(_identity())
    m = result.metrics
    # an identity generator: its outputs are the inputs, so every measure is the inputs' own
    assert m["psnr"] == pytest.approx(np.mean([psnr(lows[n], refs[n]) for n in lows]), rel=1e-6)
    assert m["de_ref"] == pytest.approx(np.mean([color_difference(lows[n], refs[n]) for n in lows]), rel=1e-6)
    assert m["niqe_dim"] == pytest.approx(np.mean([niqe(rgb) for rgb in lows.values()]), rel=1e-6)
    assert m["false_color_dim"] == pytest.approx(0.0, abs=1e-9) == false_color(lows["0.png"], lows["0.png"])
    assert m["de_normal"] == 0.0 == m["de_lowkey"]  # nothing changed, the references as inputs neither
    assert m["score"] == pytest.approx(m["niqe_dim"] + m["false_color_dim"] / 5 + 0 / 5 - m["psnr"] / 2)
    # the montage: input above output for each image shown (2 LOL, 2 dim, 1 normal), 128 px panels
    assert result.montage is not None and result.montage.shape[0] == 256 and result.montage.dtype == np.uint8
    np.testing.assert_array_equal(result.montage[:128], result.montage[128:])  # identity: same halves


def test_criterion_without_extra_sets_is_psnr_or_niqe(tmp_path: Path) -> None:
    lows = {"a.png": make_dark_rgb(100, 100, seed=1)}
    low_dir = _write(tmp_path / "low", lows)
    assert Validator(DataConfig(val_low=low_dir), torch.device("cpu")).criterion == "niqe"
    with_ref = DataConfig(val_low=low_dir, val_ref=_write(tmp_path / "ref", lows))
    assert Validator(with_ref, torch.device("cpu")).criterion == "psnr"
    with pytest.raises(ValueError, match="references missing"):
        Validator(
            DataConfig(val_low=low_dir, val_ref=_write(tmp_path / "other", {"b.png": lows["a.png"]})),
            torch.device("cpu"),
        )
    with pytest.raises(ValueError, match=r"needs data\.val_low"):
        Validator(DataConfig(), torch.device("cpu"))


def test_better_than_follows_the_criterion_direction() -> None:
    assert ValidationResult({"psnr": 18.0}, "psnr").better_than({"psnr": 17.0})
    assert not ValidationResult({"niqe": 4.0}, "niqe").better_than({"niqe": 3.9})
    assert ValidationResult({"score": 1.0}, "score").better_than({"score": 1.5})


def test_composite_score_by_hand() -> None:
    assert composite_score({"niqe_dim": 3.5, "false_color_dim": 10.0, "de_normal": 15.0, "psnr": 16.0}) == (
        pytest.approx(3.5 + 2.0 + 3.0 - 8.0)
    )
    assert composite_score({"de_normal": 5.0}) == pytest.approx(1.0)


#: NIQE needs at least 96 x 96 pixels.
SIZE = (96, 104)


@pytest.fixture
def low_and_refs(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    lows = {f"img{i}.png": make_dark_rgb(*SIZE, seed=i) for i in range(3)}
    # references: the brightened image plus a known offset per image, so each PSNR is known by hand
    refs = {
        name: np.clip(expected_brightening(rgb, 1.0).astype(int) + 4 * (i + 1), 0, 255).astype(np.uint8)
        for i, (name, rgb) in enumerate(lows.items())
    }
    return Path(_write(tmp_path / "low", lows)), Path(_write(tmp_path / "ref", refs)), lows, refs


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
    assert set(result.metrics) == {"psnr", "ssim", "de_ref", "niqe", "brightness", "de_lowkey"}
    # the references given as inputs (low-key photos) change by the CIEDE2000 to their brightened selves
    lowkey = np.mean([color_difference(expected_brightening(rgb, 1.0), rgb) for rgb in refs.values()])
    assert result.metrics["de_lowkey"] == pytest.approx(lowkey, abs=0.05) and lowkey > 1.0
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
    low = Path(_write(tmp_path / "low", {"a.png": make_dark_rgb(8, 8), "b.png": make_dark_rgb(8, 8)}))
    ref = Path(_write(tmp_path / "ref", {"a.jpg": make_dark_rgb(8, 8)}))  # matched by name without suffix
    with pytest.raises(ValueError, match=r"missing .*\['b.png'\]"):
        Validator(DataConfig(val_low=str(low), val_ref=str(ref)), torch.device("cpu"))


def test_validation_applies_the_exposure_fade_as_the_enhancer_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    bright = {
        "n.png": np.clip(make_dark_rgb(100, 100, seed=7).astype(np.int32) * 6 + 90, 0, 255).astype(np.uint8)
    }
    data = DataConfig(val_normal=_write(tmp_path / "normal", bright))
    plain = EnlightenGenerator(GeneratorConfig(base_width=4))
    faded = EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45)))
    faded.load_state_dict(plain.state_dict())
    validator = Validator(data, torch.device("cpu"))
    assert validator.evaluate(plain).metrics["de_normal"] > 0.5  # a random network changes the photo
    assert validator.evaluate(faded).metrics["de_normal"] == 0.0  # well exposed: left as it is

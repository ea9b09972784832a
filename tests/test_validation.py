"""Whole-image validation: the measures of each set, the combined score and the montage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enlightengan.config import DataConfig
from enlightengan.metrics import color_difference, false_color, niqe, psnr
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.training.trainer import init_identity_generator
from enlightengan.training.validation import ValidationResult, Validator, composite_score

from .conftest import make_dark_rgb


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
    assert m["de_normal"] == 0.0
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

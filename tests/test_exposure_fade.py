"""The exposure fade: well-exposed photos are left as they are, dim ones get the whole enhancement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from enlightengan.cli import main
from enlightengan.inference import Enhancer
from enlightengan.models.checkpoint import load_generator, save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig, exposure_fade_factor

from .conftest import make_dark_rgb


def _grey(level: float) -> torch.Tensor:
    return torch.full((1, 3, 8, 8), level * 2 - 1)


def test_factor_by_hand() -> None:
    fade = (0.35, 0.45)
    assert exposure_fade_factor(_grey(0.2), fade).item() == pytest.approx(1.0)
    assert exposure_fade_factor(_grey(0.35), fade).item() == pytest.approx(1.0)
    assert exposure_fade_factor(_grey(0.40), fade).item() == pytest.approx(0.5, abs=1e-5)  # smoothstep(0.5)
    # t = 0.25 -> 3 t^2 - 2 t^3 = 0.15625
    assert exposure_fade_factor(_grey(0.425), fade).item() == pytest.approx(0.15625, abs=1e-5)
    assert exposure_fade_factor(_grey(0.6), fade).item() == pytest.approx(0.0)
    batch = torch.cat([_grey(0.1), _grey(0.9)])
    assert exposure_fade_factor(batch, fade).flatten().tolist() == pytest.approx([1.0, 0.0])  # per image


def test_config_checks_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exposure_fade"):
        GeneratorConfig(exposure_fade=(0.5, 0.4))
    torch.manual_seed(0)
    model = EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval()
    loaded = load_generator(save_generator(model, tmp_path / "g.safetensors"))
    assert loaded.config.exposure_fade == (0.35, 0.45)


def test_enhancer_leaves_bright_photos_and_enhances_dark_ones(tmp_path: Path) -> None:
    torch.manual_seed(3)
    plain = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    faded = EnlightenGenerator(GeneratorConfig(base_width=4, exposure_fade=(0.35, 0.45))).eval()
    faded.load_state_dict(plain.state_dict())
    dark = make_dark_rgb(40, 48)  # mean well below 0.35
    bright = np.clip(dark.astype(np.int32) * 12 + 60, 0, 255).astype(np.uint8)  # mean above 0.45
    assert bright.mean() / 255 > 0.45
    with_fade, without = Enhancer(model=faded, device="cpu"), Enhancer(model=plain, device="cpu")
    np.testing.assert_array_equal(with_fade.enhance(dark), without.enhance(dark))
    np.testing.assert_array_equal(with_fade.enhance(bright), bright)  # untouched
    assert not np.array_equal(without.enhance(bright), bright)


def test_export_records_and_removes_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = save_generator(
        EnlightenGenerator(GeneratorConfig(base_width=4)).eval(), tmp_path / "g.safetensors"
    )
    out = tmp_path / "faded.safetensors"
    assert (
        main(["export", "--weights", str(source), "--safetensors", str(out), "--exposure-fade", "0.3,0.5"])
        == 0
    )
    assert load_generator(out).config.exposure_fade == (0.3, 0.5)
    back = tmp_path / "plain.safetensors"
    assert main(["export", "--weights", str(out), "--safetensors", str(back), "--exposure-fade", "none"]) == 0
    assert load_generator(back).config.exposure_fade is None
    with pytest.raises(SystemExit):
        main(["export", "--weights", str(source), "--safetensors", str(back), "--exposure-fade", "0.6,0.5"])

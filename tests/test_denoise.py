"""Attention-guided denoising: where it acts, what it computes, and how it is switched on."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enlightengan.cli import main
from enlightengan.commands._args import DENOISE_STRENGTH
from enlightengan.inference import Enhancer
from enlightengan.inference.denoise import DenoiseConfig, attention_denoise, denoise_weight
from enlightengan.models.checkpoint import save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig

from .conftest import make_dark_rgb

cv2 = pytest.importorskip("cv2")


def _half_dark_scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input: left half near black, right half bright. Output: flat grey plus noise everywhere."""
    g = torch.Generator().manual_seed(seed)
    source = torch.full((1, 3, 64, 128), -0.9)
    source[..., 64:] = 0.8
    clean = torch.zeros(1, 3, 64, 128)
    noisy = (clean + 0.15 * torch.randn(clean.shape, generator=g)).clamp(-1, 1)
    return source, clean, noisy


def test_weight_is_attention_to_the_power_gamma() -> None:
    # luminance of (R, G, B) = (0.2, 0.4, 0.6) in [0, 1]: 0.299*0.2 + 0.587*0.4 + 0.114*0.6 = 0.3630
    pixel = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1) * 2 - 1
    assert denoise_weight(pixel, 2.0).item() == pytest.approx((1 - 0.3630) ** 2, abs=1e-6)
    assert denoise_weight(torch.full((1, 3, 1, 1), -1.0)).item() == pytest.approx(1.0)
    assert denoise_weight(torch.full((1, 3, 1, 1), 1.0)).item() == pytest.approx(0.0, abs=1e-6)


def test_strong_where_the_input_was_dark_and_off_where_bright() -> None:
    source, clean, noisy = _half_dark_scene()
    out = attention_denoise(noisy, source)
    err_before = (noisy - clean).abs()
    err_after = (out - clean).abs()
    dark, bright = (slice(None), slice(None), slice(None), slice(0, 64)), (..., slice(64, None))
    # the dark half: most of the noise is gone
    assert err_after[dark].mean() < 0.35 * err_before[dark].mean()
    # the bright half (attention 0.1 -> weight 0.01): at most 1% of a filter's change, i.e. untouched
    assert (out - noisy)[bright].abs().max() < 0.01 * 2 + 1e-6
    assert out.shape == noisy.shape and out.dtype == noisy.dtype


def _signed(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_on_a_neutral_input_the_result_is_nl_means_of_the_luma_in_every_channel() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    rgb[..., 0] //= 3  # coloured speckle: none of it may survive where the input was black
    source = np.zeros((40, 50, 3), np.uint8)  # black and neutral: weight 1, ratios (0 + 1) / (0 + 1) = 1
    luma = np.clip(np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)), 0, 255)
    nlm = cv2.fastNlMeansDenoising(luma.astype(np.uint8), None, 9.0, 7, 21).astype(np.float32)
    expected = _signed(np.repeat(nlm[..., None], 3, axis=2) / 1.0).clamp(-1, 1)
    out = attention_denoise(_signed(rgb), _signed(source), DenoiseConfig(strength=9.0, gamma=1.5))
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_colour_comes_from_the_input_and_its_speckle_is_gone() -> None:
    rng = np.random.default_rng(4)
    h, w = 64, 80
    tint = np.array([30.0, 15.0, 10.0])  # a dark warm input, with its own colour noise
    source = np.clip(tint + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)
    # the enhanced image: brighter, but green-tinted and speckled (what a model may invent in the dark)
    enhanced = np.clip(np.array([90.0, 140.0, 80.0]) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    out = attention_denoise(_signed(enhanced), _signed(source), DenoiseConfig(strength=10.0, gamma=1.0))
    rgb = (out[0].permute(1, 2, 0).numpy() + 1) * 127.5
    ratio = rgb / rgb.mean(axis=2, keepdims=True)
    src_ratio = (tint + 1) / (tint.mean() + 1)
    weight = 1 - (tint / 255) @ np.array([0.299, 0.587, 0.114])  # the blend keeps (1 - A) of the output
    expected = weight * src_ratio + (1 - weight) * (np.array([90.0, 140.0, 80.0]) / 103.3)
    np.testing.assert_allclose(ratio[8:-8, 8:-8].mean(axis=(0, 1)), expected, atol=0.08)
    before = (enhanced / enhanced.mean(axis=2, keepdims=True)).std(axis=(0, 1)).mean()
    assert ratio[8:-8, 8:-8].std(axis=(0, 1)).mean() < 0.25 * before


def test_guided_filter_keeps_constants_and_the_guides_edges() -> None:
    from enlightengan.inference.denoise import guided_filter

    flat = np.full((20, 30), 0.4, np.float32)
    guide = np.zeros((20, 30), np.float32)
    guide[:, 15:] = 1.0
    np.testing.assert_allclose(guided_filter(guide, flat, 4, 1e-3, cv2), 0.4, atol=1e-5)
    step = guided_filter(guide, guide.copy(), 4, 1e-4, cv2)  # filtering the guide itself: the edge stays
    assert step[:, :13].max() < 0.05 and step[:, 17:].min() > 0.95


def test_cli_default_strength_is_the_configs() -> None:
    assert DenoiseConfig().strength == DENOISE_STRENGTH


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"strength": 0.0}, "strength"), ({"gamma": -1.0}, "gamma"), ({"search": 20}, "odd")],
)
def test_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DenoiseConfig(**kwargs)  # type: ignore[arg-type]


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        attention_denoise(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def test_missing_opencv_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        Enhancer(model=EnlightenGenerator(GeneratorConfig(base_width=4)), device="cpu", denoise=True)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(2)
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    return save_generator(model, tmp_path_factory.mktemp("w") / "g4.safetensors")


def test_enhancer_applies_it_after_the_network(weights: Path) -> None:
    x = torch.from_numpy(make_dark_rgb(48, 40)).permute(2, 0, 1)[None].float() / 127.5 - 1
    plain = Enhancer(weights, device="cpu").enhance_tensor(x)
    denoised = Enhancer(weights, device="cpu", denoise=5.0).enhance_tensor(x)
    torch.testing.assert_close(denoised, attention_denoise(plain, x, DenoiseConfig(strength=5.0)))
    assert Enhancer(weights, device="cpu", denoise=0).denoise is None  # 0 means off


def test_16_bit_stays_16_bit(weights: Path) -> None:
    deep = make_dark_rgb(32, 32).astype(np.uint16) * 257 + 3
    out = Enhancer(weights, device="cpu", denoise=True).enhance(deep)
    assert out.dtype == np.uint16 and out.shape == deep.shape
    assert len(np.unique(out % 257)) > 1  # not squashed to 8-bit levels


def test_cli_flag(tmp_path: Path, weights: Path) -> None:
    Image.fromarray(make_dark_rgb(40, 48)).save(tmp_path / "a.png")
    common = [str(tmp_path / "a.png"), "--weights", str(weights), "--device", "cpu", "--quiet"]
    assert main(["enhance", *common, "-o", str(tmp_path / "plain")]) == 0
    assert main(["enhance", *common, "-o", str(tmp_path / "clean"), "--denoise"]) == 0
    assert main(["enhance", *common, "-o", str(tmp_path / "off"), "--denoise", "0"]) == 0
    plain, clean, off = (np.asarray(Image.open(tmp_path / d / "a.png")) for d in ("plain", "clean", "off"))
    np.testing.assert_array_equal(off, plain)
    expected = Enhancer(weights, device="cpu", denoise=DENOISE_STRENGTH).enhance(make_dark_rgb(40, 48))
    np.testing.assert_array_equal(clean, expected)
    assert not np.array_equal(clean, plain)


def test_evaluate_refuses_denoise_without_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pred").mkdir()
    Image.fromarray(make_dark_rgb(100, 100)).save(tmp_path / "pred" / "a.png")
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--denoise"]) == 2
    assert "--denoise applies to a model's output" in capsys.readouterr().err

"""The inference API: every image kind in and out, the strength control, devices, and exact values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enlightengan.inference import Enhancer, enhance
from enlightengan.inference import enhancer as enhancer_module
from enlightengan.models.checkpoint import save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig

from .conftest import make_dark_rgb

LUMA = (0.299, 0.587, 0.114)


def _random_generator(seed: int = 0) -> EnlightenGenerator:
    """A narrow generator whose BatchNorm statistics are not the identity, so the test sees them used."""
    torch.manual_seed(seed)
    model = EnlightenGenerator(GeneratorConfig(base_width=8))
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
        model.conv10.weight.mul_(0.3)  # a residual of moderate size: few pixels clip
    return model.eval()


@pytest.fixture(scope="module")
def model() -> EnlightenGenerator:
    return _random_generator()


@pytest.fixture(scope="module")
def enhancer(model: EnlightenGenerator) -> Enhancer:
    return Enhancer(model=model, device="cpu")


def expected_rgb(model: EnlightenGenerator, rgb: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Hand computation: scale to [-1, 1], run the generator, rescale, round to nearest, clip."""
    scale = 255.0 if rgb.dtype == np.uint8 else 65535.0
    x = torch.from_numpy(rgb.astype(np.float32) / scale * 2 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        out = model(x)
    y = x + strength * out.latent if strength != 1.0 else out.output
    v = ((y[0].permute(1, 2, 0).numpy().astype(np.float64).clip(-1, 1) + 1) / 2) * scale
    return np.rint(v).clip(0, scale).astype(rgb.dtype)


def expected_grey(model: EnlightenGenerator, grey: np.ndarray) -> np.ndarray:
    """Grey as three equal channels through the generator, back to one channel by BT.601 luma."""
    scale = 255.0 if grey.dtype == np.uint8 else 65535.0
    x = torch.from_numpy(np.repeat(grey[..., None], 3, axis=2).astype(np.float32) / scale * 2 - 1)
    with torch.no_grad():
        y = model(x.permute(2, 0, 1)[None]).output[0].permute(1, 2, 0).numpy().astype(np.float64)
    unit = (y.clip(-1, 1) + 1) / 2
    luma = unit[..., 0] * LUMA[0] + unit[..., 1] * LUMA[1] + unit[..., 2] * LUMA[2]
    return np.rint(luma * scale).clip(0, scale).astype(grey.dtype)


def assert_close_levels(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32-vs-float64 rounding at exact .5 boundaries (at most one level, rarely)."""
    diff = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.99


def grey16(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(1000, 15000, (h, w))).astype(np.uint16)


# --- exact values ----------------------------------------------------------------------------------


def test_rgb_output_equals_hand_computation(model: EnlightenGenerator, enhancer: Enhancer) -> None:
    rgb = make_dark_rgb(21, 34)
    out = enhancer.enhance(rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    expected = expected_rgb(model, rgb)
    assert not np.array_equal(expected, rgb)  # the model does change the image ...
    assert 0.5 < ((expected > 0) & (expected < 255)).mean()  # ... without clipping it all away
    assert_close_levels(out, expected)


def test_pil_rgb_matches_array(enhancer: Enhancer) -> None:
    rgb = make_dark_rgb(16, 24, seed=2)
    out = enhancer.enhance(Image.fromarray(rgb))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (24, 16)
    assert np.array_equal(np.asarray(out), enhancer.enhance(rgb))


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (13, 7), (3, 40)])
def test_tiny_and_odd_sizes(model: EnlightenGenerator, enhancer: Enhancer, size: tuple[int, int]) -> None:
    rgb = make_dark_rgb(*size, seed=5)
    out = enhancer.enhance(rgb)
    assert out.shape == rgb.shape
    assert_close_levels(out, expected_rgb(model, rgb))


def test_strength(model: EnlightenGenerator, enhancer: Enhancer) -> None:
    rgb = make_dark_rgb(20, 20, seed=3)
    assert np.array_equal(enhancer.enhance(rgb, strength=0.0), rgb)  # the identity, bit-exact
    assert_close_levels(enhancer.enhance(rgb, strength=0.5), expected_rgb(model, rgb, strength=0.5))
    half = Enhancer(model=model, device="cpu", strength=0.5)
    assert np.array_equal(half.enhance(rgb), enhancer.enhance(rgb, strength=0.5))
    with pytest.raises(ValueError, match="strength"):
        enhancer.enhance(rgb, strength=-0.1)
    with pytest.raises(ValueError, match="strength"):
        Enhancer(model=model, device="cpu", strength=float("nan"))


@pytest.mark.parametrize(
    "image",
    [
        make_dark_rgb(9, 11),
        make_dark_rgb(9, 11)[..., 0],
        np.random.default_rng(0).integers(0, 256, (9, 11, 4), dtype=np.uint8),
        np.random.default_rng(0).integers(0, 65536, (9, 11, 3), dtype=np.uint16),
        np.random.default_rng(0).integers(0, 65536, (9, 11), dtype=np.uint16),
    ],
    ids=["rgb8", "grey8", "rgba8", "rgb16", "grey16"],
)
def test_strength_zero_round_trips_every_kind(enhancer: Enhancer, image: np.ndarray) -> None:
    out = enhancer.enhance(image, strength=0)
    assert out.dtype == image.dtype and np.array_equal(out, image)


# --- image kinds ------------------------------------------------------------------------------------


def test_greyscale_l_in_l_out(model: EnlightenGenerator, enhancer: Enhancer) -> None:
    grey = make_dark_rgb(12, 17)[..., 1]
    out = enhancer.enhance(Image.fromarray(grey, "L"))
    assert out.mode == "L" and out.size == (17, 12)
    assert_close_levels(np.asarray(out), expected_grey(model, grey))
    assert np.array_equal(np.asarray(out), enhancer.enhance(grey))


def test_rgba_keeps_alpha_bit_exact(enhancer: Enhancer) -> None:
    rgb = make_dark_rgb(10, 14)
    alpha = np.random.default_rng(7).integers(0, 256, (10, 14), dtype=np.uint8)
    rgba = np.dstack([rgb, alpha])
    out = enhancer.enhance(Image.fromarray(rgba, "RGBA"))
    assert out.mode == "RGBA"
    result = np.asarray(out)
    assert np.array_equal(result[..., 3], alpha)
    assert np.array_equal(result[..., :3], enhancer.enhance(rgb))  # colour enhanced as without alpha


def test_la_keeps_alpha(enhancer: Enhancer) -> None:
    la = np.dstack([make_dark_rgb(6, 5)[..., 0], np.arange(30, dtype=np.uint8).reshape(6, 5)])
    out = enhancer.enhance(Image.fromarray(la, "LA"))
    assert out.mode == "LA"
    assert np.array_equal(np.asarray(out)[..., 1], la[..., 1])
    assert np.array_equal(np.asarray(out)[..., 0], enhancer.enhance(la[..., 0]))


def test_16bit_grey_i16_out(model: EnlightenGenerator, enhancer: Enhancer) -> None:
    grey = grey16(8, 19)
    out = enhancer.enhance(Image.fromarray(grey))
    assert out.mode == "I;16" and out.size == (19, 8)
    assert_close_levels(np.asarray(out), expected_grey(model, grey))


def test_16bit_rgb_array(model: EnlightenGenerator, enhancer: Enhancer) -> None:
    rgb = make_dark_rgb(11, 9).astype(np.uint16) * 257 + 100
    out = enhancer.enhance(rgb)
    assert out.dtype == np.uint16 and out.shape == rgb.shape
    assert_close_levels(out, expected_rgb(model, rgb))
    assert np.abs(out.astype(np.int64) // 257 - enhancer.enhance((rgb // 257).astype(np.uint8))).max() <= 2


def test_palette_becomes_rgb_or_rgba(enhancer: Enhancer) -> None:
    palette = Image.fromarray(make_dark_rgb(8, 8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out = enhancer.enhance(palette)
    assert out.mode == "RGB" and out.size == (8, 8)
    assert np.array_equal(np.asarray(out), enhancer.enhance(np.asarray(palette.convert("RGB"))))
    palette.info["transparency"] = 0
    out = enhancer.enhance(palette)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(palette.convert("RGBA"))[..., 3])


def test_cmyk_becomes_rgb(enhancer: Enhancer) -> None:
    cmyk = Image.new("CMYK", (5, 4), (200, 180, 150, 100))
    out = enhancer.enhance(cmyk)
    assert out.mode == "RGB" and out.size == (5, 4)
    assert np.array_equal(np.asarray(out), enhancer.enhance(np.asarray(cmyk.convert("RGB"))))


def test_bilevel_treated_as_l(enhancer: Enhancer) -> None:
    bits = Image.fromarray((np.indices((6, 6)).sum(0) % 2 * 255).astype(np.uint8)).convert("1")
    out = enhancer.enhance(bits)
    assert out.mode == "L" and np.array_equal(
        np.asarray(out), enhancer.enhance(np.asarray(bits.convert("L")))
    )


# --- tensors, batches, the network call -------------------------------------------------------------


def test_enhance_tensor_batch_and_clipping(model: EnlightenGenerator, enhancer: Enhancer) -> None:
    x = torch.rand(2, 3, 10, 18) * 2 - 1
    y = enhancer.enhance_tensor(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
    assert y.min() >= -1 and y.max() <= 1
    with torch.no_grad():
        raw = model(x).output
    assert raw.abs().max() > 1  # some values do need the clipping
    direct = raw.clamp(-1, 1)
    torch.testing.assert_close(y, direct)
    torch.testing.assert_close(enhancer.enhance_tensor(x[1]), direct[1])  # 3 x H x W accepted
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        enhancer.enhance_tensor(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        enhancer.enhance_tensor(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_network_called_only_through_run(enhancer: Enhancer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []

    def zero_residual(image: torch.Tensor, progress: object = None, fade: object = None) -> torch.Tensor:
        calls.append(tuple(image.shape))
        return torch.zeros_like(image)

    monkeypatch.setattr(enhancer, "_run", zero_residual)
    rgb = make_dark_rgb(5, 7)
    assert np.array_equal(enhancer.enhance(rgb), rgb)
    assert calls == [(1, 3, 5, 7)]


def test_rejects_bad_arrays(enhancer: Enhancer) -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        enhancer.enhance(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        enhancer.enhance(np.zeros((4, 4, 5), np.uint8))


# --- weights files and the module-level function ----------------------------------------------------


def test_enhancer_from_file_equals_model(
    tmp_path: Path, model: EnlightenGenerator, enhancer: Enhancer
) -> None:
    path = save_generator(model, tmp_path / "g.safetensors")
    from_file = Enhancer(path, device="cpu")
    assert from_file.weights == path
    rgb = make_dark_rgb(9, 9)
    assert np.array_equal(from_file.enhance(rgb), enhancer.enhance(rgb))
    with pytest.raises(ValueError, match="not both"):
        Enhancer(path, model=model)


def test_module_enhance_caches_the_model(
    tmp_path: Path, model: EnlightenGenerator, enhancer: Enhancer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_generator(model, tmp_path / "g.safetensors")
    loads: list[Path] = []
    real_load = enhancer_module.load_generator

    def counting_load(source: Path, **kwargs: object) -> EnlightenGenerator:
        loads.append(Path(source))
        return real_load(source, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(enhancer_module, "load_generator", counting_load)
    monkeypatch.setattr(enhancer_module, "_CACHE", {})
    rgb = make_dark_rgb(6, 6)
    first = enhance(Image.fromarray(rgb), weights=path, device="cpu")
    second = enhance(rgb, weights=str(path), device="cpu", strength=0.0)
    assert isinstance(first, Image.Image) and np.array_equal(np.asarray(first), enhancer.enhance(rgb))
    assert np.array_equal(second, rgb)
    assert len(loads) == 1


# --- the released model -----------------------------------------------------------------------------


@pytest.mark.shared
def test_released_weights_file_reproduces_the_fixture(
    tmp_path: Path, official_fixture: dict[str, torch.Tensor]
) -> None:
    # the released checkpoint's layout: DataParallel "module." keys, legacy (pre-zip) serialisation
    legacy = tmp_path / "200_net_G_A.pth"
    released_state: dict[str, torch.Tensor] = official_fixture["state_dict"]  # type: ignore[assignment]
    state = {(k if k.startswith("module.") else f"module.{k}"): v for k, v in released_state.items()}
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    released = Enhancer(legacy, device="cpu")
    x = official_fixture["input"]
    reference = official_fixture["output"]
    torch.testing.assert_close(released.enhance_tensor(x), reference.clamp(-1, 1), atol=1e-4, rtol=0)
    # the fixture's input is an 8-bit image: through the array API the result is the rounded reference
    rgb = np.rint((x[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).astype(np.uint8)
    out = released.enhance(rgb)
    want = np.rint((reference[0].permute(1, 2, 0).clamp(-1, 1).numpy().astype(np.float64) + 1) / 2 * 255)
    assert_close_levels(out, want.astype(np.uint8))

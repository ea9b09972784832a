"""Backends compute exactly what the faithful module computes, whole or as placed tiles."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F

from enlightengan.inference import make_backend
from enlightengan.inference.backend import BACKENDS
from enlightengan.inference.enhancer import choose_backend
from enlightengan.inference.onnxruntime_backend import OnnxRuntimeBackend
from enlightengan.inference.placement import Placement, upsample_at
from enlightengan.inference.torch_backend import EagerBackend, TorchBackend
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.models.ops import attention_map

from .conftest import make_dark_rgb, randomised_generator


def _inputs(n: int, h: int, w: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return image, attention_map(image)


def _reference(
    model: EnlightenGenerator, image: torch.Tensor, gray: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model.forward_aligned(image, gray)
    return out.output, out.latent


@pytest.mark.parametrize("negative_scales", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"fold_batchnorm": True},
        {"fold_batchnorm": True, "channels_last": False},
        {"fold_batchnorm": True, "fuse_activation": False},
        {"channels_last": False, "fuse_activation": False},
    ],
)
def test_torch_backend_equals_the_module(options: dict[str, bool], negative_scales: bool) -> None:
    model = randomised_generator(negative_scales=negative_scales)
    image, gray = _inputs(2, 48, 80)
    expected_out, expected_latent = _reference(model, image, gray)
    out, latent = TorchBackend(model, **options).run(image, gray)
    assert out.shape == latent.shape == image.shape
    # Borders included: the folded BatchNorm's padding is corrected there.
    torch.testing.assert_close(out, expected_out, atol=2e-5, rtol=0)
    torch.testing.assert_close(latent, expected_latent, atol=2e-5, rtol=0)


@pytest.mark.parametrize("band_min_pixels", [0, 1 << 40])
def test_decoder_bands_equal_the_module(monkeypatch: pytest.MonkeyPatch, band_min_pixels: int) -> None:
    # large images run each decoder level in row bands (memory), small ones in one piece (speed)
    from enlightengan.inference import torch_backend

    monkeypatch.setattr(torch_backend, "BAND_MIN_PIXELS", band_min_pixels)
    model = randomised_generator()
    image, gray = _inputs(1, 64, 48)
    expected_out, _ = _reference(model, image, gray)
    out, _ = TorchBackend(model).run(image, gray)
    torch.testing.assert_close(out, expected_out, atol=2e-5, rtol=0)


def test_folding_is_really_exercised() -> None:
    """BatchNorms are folded (with a border correction) where they feed a convolution directly."""
    model = randomised_generator(negative_scales=False)
    steps = TorchBackend(model, fold_batchnorm=True)._convs
    folded = {key for key, step in steps.items() if step.neutral is not None}
    assert folded == {f"{lv}_2" for lv in (1, 2, 3, 4, 6, 7, 8, 9)} | {f"deconv{lv}" for lv in (5, 6, 7, 8)}
    explicit = {key for key, step in steps.items() if step.explicit_bn is not None}
    assert explicit == {"1_2", "2_2", "3_2", "4_2", "5_1"}  # gated by the attention map
    unfolded = TorchBackend(model)._convs  # the default: every BatchNorm explicit
    assert all(step.neutral is None for step in unfolded.values())
    assert sum(step.explicit_bn is not None for step in unfolded.values()) == 17


@pytest.mark.parametrize(("h", "w"), [(16, 16), (16, 48)])
def test_smallest_inputs(h: int, w: int) -> None:
    model = randomised_generator()
    image, gray = _inputs(1, h, w)
    expected, _ = _reference(model, image, gray)
    out, _ = TorchBackend(model).run(image, gray)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=0)


def test_upsample_at_whole_is_interpolate() -> None:
    x = torch.randn(2, 5, 8, 12)
    expected = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
    torch.testing.assert_close(upsample_at(x, 4, None), expected, atol=0, rtol=0)
    whole = Placement(0, 0, 16 * 4, 24 * 4)
    torch.testing.assert_close(upsample_at(x, 4, whole), expected, atol=0, rtol=0)
    # a band of output rows is the same rows of the whole result
    torch.testing.assert_close(
        upsample_at(x, 4, None, rows=(5, 12)), expected[..., 5:12, :], atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("scale_level", [1, 2, 8])
def test_upsample_at_tile_samples_where_the_whole_image_does(scale_level: int) -> None:
    """A tile's upsampling equals the same window of the whole image's (away from the tile border)."""
    coarse = 32 // scale_level  # whole image: 16 * coarse pixels at this level's input
    x = torch.randn(1, 3, 2 * coarse, 3 * coarse)
    whole = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
    full_h, full_w = 4 * coarse * scale_level, 6 * coarse * scale_level
    # a tile starting at a 16-aligned full-resolution offset
    top, left = 16 * max(1, 2 // scale_level), 32
    t0, l0 = top // (2 * scale_level), left // (2 * scale_level)  # tile origin at the input level
    h, w = coarse // 2, coarse
    tile = x[..., t0 : t0 + h, l0 : l0 + w]
    out = upsample_at(tile, scale_level, Placement(top, left, full_h, full_w))
    window = whole[..., 2 * t0 : 2 * t0 + 2 * h, 2 * l0 : 2 * l0 + 2 * w]
    torch.testing.assert_close(out[..., 1:-1, 1:-1], window[..., 1:-1, 1:-1], atol=1e-5, rtol=0)
    # the naive alternative (a tile treated as a whole image) samples elsewhere
    naive = F.interpolate(tile, scale_factor=2.0, mode="bilinear", align_corners=True)
    assert (naive[..., 1:-1, 1:-1] - window[..., 1:-1, 1:-1]).abs().max() > 1e-3


def test_placed_tile_matches_the_whole_image_in_its_interior() -> None:
    model = randomised_generator()
    image, gray = _inputs(1, 96, 128)
    expected, _ = _reference(model, image, gray)
    backend = TorchBackend(model)
    tile_img, tile_gray = image[..., 32:96, 48:128], gray[..., 32:96, 48:128]
    out, _ = backend.run(tile_img, tile_gray, Placement(32, 48, 96, 128))
    # the image's own bottom/right borders are the tile's too; the top/left ones are cut
    torch.testing.assert_close(out[..., 24:, 24:], expected[..., 56:, 72:], atol=1e-3, rtol=0)


def test_eager_backend_is_the_module() -> None:
    model = randomised_generator()
    image, gray = _inputs(1, 32, 32)
    expected, _ = _reference(model, image, gray)
    out, _ = EagerBackend(model).run(image, gray)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="whole images only"):
        EagerBackend(model).run(image, gray, Placement(16, 0, 64, 32))


def test_onnxruntime_backend_equals_torch() -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = randomised_generator()
    image, gray = _inputs(1, 64, 96)
    expected, expected_latent = _reference(model, image, gray)
    backend = OnnxRuntimeBackend(model, threads=1)
    out, latent = backend.run(image, gray)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(latent, expected_latent, atol=1e-4, rtol=0)
    # placed tiles: ONNX Runtime's Resize is steered to the whole image's sampling positions
    placement = Placement(32, 48, 160, 192)
    torch_out, _ = TorchBackend(model).run(image, gray, placement)
    ort_out, _ = backend.run(image, gray, placement)
    torch.testing.assert_close(ort_out, torch_out, atol=1e-4, rtol=0)


def test_errors_are_clear() -> None:
    model = randomised_generator()
    backend = TorchBackend(model)
    image, gray = _inputs(1, 20, 32)
    with pytest.raises(ValueError, match="multiples of 16"):
        backend.run(image, gray)
    image, gray = _inputs(1, 32, 32)
    with pytest.raises(ValueError, match="gray must be"):
        backend.run(image, gray[..., :16])
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        backend.run(image[:, :2], gray)
    with pytest.raises(ValueError, match="does not fit"):
        backend.run(image, gray, Placement(16, 0, 32, 32))
    with pytest.raises(ValueError, match="multiple of 16"):
        Placement(8, 0, 32, 32)
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tensorrt", model)
    with pytest.raises(TypeError, match="EnlightenGenerator"):
        TorchBackend(torch.nn.Conv2d(3, 3, 1))  # type: ignore[arg-type]
    assert set(BACKENDS) == {"torch", "onnxruntime", "openvino", "auto"}


def test_auto_is_the_faster_backend_for_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    from enlightengan.inference import Enhancer
    from enlightengan.inference.openvino_backend import OpenVinoBackend

    per_image = EnlightenGenerator(GeneratorConfig(base_width=4, batchnorm="per-image")).eval()
    fixed = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    # per-image statistics: ONNX Runtime; fixed statistics: OpenVINO (each measured fastest)
    assert isinstance(make_backend("auto", per_image), OnnxRuntimeBackend)
    assert isinstance(make_backend("auto", fixed), OpenVinoBackend)
    assert Enhancer(model=per_image, device="cpu").backend_name == "onnxruntime"  # auto is the default
    assert Enhancer(model=fixed, device="cpu").backend_name == "openvino"
    assert Enhancer(model=fixed, device="cpu", backend="onnxruntime").backend_name == "onnxruntime"
    assert Enhancer(model=fixed, device="cpu", backend="torch").backend_name == "torch"
    # a package that is not installed is never chosen
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert isinstance(make_backend("auto", per_image), TorchBackend)
    assert isinstance(make_backend("auto", fixed), TorchBackend)
    # other devices run PyTorch, whatever is installed
    assert choose_backend("auto", fixed, torch.device("cuda")) == "torch"


def test_the_command_lines_backend_choices_are_the_backends() -> None:
    from enlightengan.commands._args import BACKEND_CHOICES

    assert BACKEND_CHOICES == BACKENDS  # the same names, the default first


def test_enhancer_options_choose_the_path() -> None:
    from enlightengan.inference import Enhancer
    from enlightengan.inference.fast import FastConfig, fast_forward

    model = randomised_generator(negative_scales=False)
    image, _ = _inputs(1, 50, 70)
    with torch.no_grad():
        expected = model(image).output.clamp(-1, 1)
    torch.testing.assert_close(
        Enhancer(model=model, device="cpu").enhance_tensor(image), expected, atol=2e-5, rtol=0
    )
    # 50 x 280: two tiles of at most 272 px
    wide = torch.cat((image, image.flip(-1), image, image.flip(-1)), -1)
    with torch.no_grad():
        wide_expected = model(wide).output.clamp(-1, 1)
    tiled = Enhancer(model=model, device="cpu", tile=272).enhance_tensor(wide)
    torch.testing.assert_close(tiled, wide_expected, atol=1e-4, rtol=0)
    fast = Enhancer(model=model, device="cpu", fast=FastConfig(scale=2.0)).enhance_tensor(image)
    torch.testing.assert_close(
        fast, fast_forward(TorchBackend(model), image, FastConfig(2.0)).output.clamp(-1, 1)
    )
    with pytest.raises(ValueError, match="unknown backend"):
        Enhancer(model=model, device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="at least 272"):
        Enhancer(model=model, device="cpu", tile=64)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        via_ort = Enhancer(model=model, device="cpu", backend="onnxruntime").enhance_tensor(image)
        torch.testing.assert_close(via_ort, expected, atol=1e-4, rtol=0)


def test_onnxruntime_backend_binds_per_image_statistics() -> None:
    """Per-image BatchNorm models (the bundled default) on ONNX Runtime: the statistics graph measures
    each image, the tiles graph uses them; the result equals the torch path, tiled or not."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from enlightengan.inference import Enhancer

    model = randomised_generator(negative_scales=False)
    model.config = GeneratorConfig(base_width=8, batchnorm="per-image")
    images = torch.cat(
        [
            torch.from_numpy(make_dark_rgb(130, 300, seed=s)).permute(2, 0, 1)[None].float() / 127.5 - 1
            for s in (0, 7)
        ]
    )
    for tile in (None, 272):  # whole, and tiles sharing the whole image's statistics
        expected = Enhancer(model=model, device="cpu", tile=tile, backend="torch").enhance_tensor(images)
        got = Enhancer(model=model, device="cpu", tile=tile, backend="onnxruntime").enhance_tensor(images)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    backend = OnnxRuntimeBackend(model, threads=1)
    image, gray = _inputs(1, 32, 32)
    with pytest.raises(ValueError, match="with_statistics"):
        backend.run(image, gray)  # unbound: no statistics to normalise with
    measured, measured_latent = backend.measuring().run(image, gray)  # one pass, its own statistics
    expected, expected_latent = TorchBackend(model, statistics="measured").run(image, gray)
    torch.testing.assert_close(measured, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(measured_latent, expected_latent, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="one whole image"):
        backend.measuring().run(image, gray, Placement(0, 0, 64, 32))
    with pytest.raises(ValueError, match="per-image"):
        OnnxRuntimeBackend(randomised_generator(), threads=1).with_statistics(image)


def test_onnxruntime_backend_bounds_its_memory_like_the_torch_backend() -> None:
    """What keeps ONNX Runtime's peak at the torch backend's (2.4 GB before, on an 8 MP photo): tiles
    planned with its own, larger bytes per pixel against the same budget, no per-shape memory pattern,
    and the arena shrunk after every run (memory is measured by benchmarks/bench_backend_memory.py,
    never asserted here)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from enlightengan.inference.onnxruntime_backend import ARENA_SHRINKAGE
    from enlightengan.inference.tiling import BYTES_PER_PIXEL_PER_WIDTH, runs_whole

    model = randomised_generator(negative_scales=False)
    model.config = GeneratorConfig(base_width=8, batchnorm="per-image")
    ort_backend, torch_backend = OnnxRuntimeBackend(model, threads=1), TorchBackend(model)
    assert ort_backend.bytes_per_pixel_per_width == 2 * BYTES_PER_PIXEL_PER_WIDTH == 48  # torch's: 24
    for session in (ort_backend.session, ort_backend._statistics_session):
        assert session.get_session_options().enable_mem_pattern is False
        assert session.get_session_options().enable_cpu_mem_arena is True  # 40% faster with it
    for view in (ort_backend, ort_backend.measuring(), ort_backend.with_statistics(_inputs(1, 32, 32)[0])):
        assert view._run_options.get_run_config_entry(ARENA_SHRINKAGE) == "cpu:0"
    # the same budget runs a photo whole on torch and in tiles on ONNX Runtime (its pixels cost more)
    photo = torch.empty(1, 3, 400, 560, device="meta")  # shapes only: nothing is computed
    budget = 3 * photo.numel() * 4 + 24 * 8 * 416 * 560  # the input's buffers, then one torch pass
    assert runs_whole(torch_backend, photo, budget=budget, base_width=8)
    assert not runs_whole(ort_backend, photo, budget=budget, base_width=8)
    assert runs_whole(ort_backend, photo, budget=budget + 24 * 8 * 416 * 560, base_width=8)

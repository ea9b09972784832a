"""ONNX export: a valid graph with dynamic size that computes what the module computes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from enlightengan.cli import main
from enlightengan.inference.onnx_export import build_onnx, export_onnx
from enlightengan.inference.placement import tile_roi
from enlightengan.models.batchnorm import per_image_model
from enlightengan.models.checkpoint import save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig

from .conftest import make_dark_rgb, randomised_generator

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("shape", [(1, 3, 45, 67), (2, 3, 16, 32), (1, 3, 9, 9)])
def test_parity_with_torch_at_any_size(tmp_path: Path, shape: tuple[int, int, int, int]) -> None:
    model = randomised_generator()
    path = export_onnx(model, tmp_path / "g.onnx")
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    rgb01 = torch.rand(*shape, generator=torch.Generator().manual_seed(shape[2]))
    (result,) = session.run(None, {"input": rgb01.numpy()})
    with torch.no_grad():
        expected = model(rgb01 * 2 - 1).output.clamp(-1, 1)
    assert result.shape == shape and result.dtype == np.float32
    assert 0.0 <= result.min() and result.max() <= 1.0  # clipped inside the graph
    # the criterion: <= 1e-4 on the [-1, 1] scale
    np.testing.assert_allclose(2 * result - 1, expected.numpy(), atol=1e-4, rtol=0)


def test_graph_is_valid_and_dynamic() -> None:
    proto = build_onnx(randomised_generator(), graph="full")
    onnx.checker.check_model(proto, full_check=True)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    ops = {node.op_type for node in proto.graph.node}
    assert {"Pad", "Resize", "Clip", "Slice"} <= ops  # padding, upsampling, clip, crop: all in the graph
    with pytest.raises(ValueError, match="graph must be"):
        build_onnx(randomised_generator(), graph="half")  # type: ignore[arg-type]


def test_tile_roi_for_the_whole_image_is_the_identity_crop() -> None:
    roi = tile_roi(64, 96, None)
    assert roi.shape == (4, 8)
    length = np.array([[4, 6], [8, 12], [16, 24], [32, 48]])  # input samples per axis at each step
    np.testing.assert_allclose(roi[:, 2:4], 1 / (length + 1), rtol=1e-6)
    # a whole axis starts at (0 + 1) / (L + 1) (one replicated sample) and ends at L / (L + 1)
    np.testing.assert_allclose(roi[:, 6:8], 1 - roi[:, 2:4], atol=1e-6)


def test_export_command_writes_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = randomised_generator()
    weights = tmp_path / "g.safetensors"
    save_generator(model, weights)
    out = tmp_path / "model.onnx"
    assert main(["export", "--weights", str(weights), "--onnx", str(out)]) == 0
    assert out.is_file() and not list(tmp_path.glob(".*part*"))
    onnx.checker.check_model(str(out))
    assert "onnx.checker: ok" in capsys.readouterr().err
    # an output folder that does not exist is a usage error, and nothing is written
    assert main(["export", "--weights", str(weights), "--onnx", str(tmp_path / "no" / "m.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "missing.pth"), "--onnx", str(out)]) == 2


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o007], ids=["umask-022", "umask-007"])
def test_exported_files_follow_the_umask(tmp_path: Path, mask: int) -> None:
    weights = save_generator(randomised_generator(), tmp_path / "g.safetensors")
    previous = os.umask(mask)
    try:
        status = main(
            ["export", "--weights", str(weights), "--safetensors", str(tmp_path / "out.safetensors"),
             "--onnx", str(tmp_path / "out.onnx")]
        )  # fmt: skip
    finally:
        os.umask(previous)
    assert status == 0
    for name in ("out.safetensors", "out.onnx"):  # as a plain open() would create them
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def _per_image(model: EnlightenGenerator) -> EnlightenGenerator:
    """``model`` as a per-image BatchNorm generator; its running statistics stay (and must be ignored)."""
    model.config = GeneratorConfig(base_width=model.config.base_width, batchnorm="per-image")
    return model


def _dark(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A dark photo-like RGB image in [0, 1], 1 x 3 x H x W."""
    return torch.from_numpy(make_dark_rgb(height, width, seed=seed)).permute(2, 0, 1)[None].float() / 255


def test_per_image_graph_normalises_each_image_with_its_own_statistics(tmp_path: Path) -> None:
    model = _per_image(randomised_generator())
    path = export_onnx(model, tmp_path / "pi.onnx")
    rgb01 = torch.cat((_dark(45, 67, seed=1), _dark(45, 67, seed=2) * 2.5))  # two exposures, one batch
    (result,) = _session(path).run(None, {"input": rgb01.numpy()})
    for i in range(2):
        image = rgb01[i : i + 1] * 2 - 1
        with torch.no_grad():
            expected = per_image_model(model, image)(image).output.clamp(-1, 1)
        np.testing.assert_allclose(2 * result[i : i + 1] - 1, expected.numpy(), atol=1e-4, rtol=0)
    with torch.no_grad():  # the running statistics (eval mode) give another result: they were not used
        running = model.eval()(rgb01[:1] * 2 - 1).output.clamp(-1, 1)
    assert np.abs(2 * result[:1] - 1 - running.numpy()).max() > 0.1


def test_per_image_graph_measures_large_images_on_a_shrunk_copy() -> None:
    model = _per_image(randomised_generator(negative_scales=False))
    rgb01 = _dark(100, 150, seed=3)
    image = rgb01 * 2 - 1
    proto = build_onnx(model, graph="full", stats_max_pixels=6_000)  # 15,000 pixels: shrunk to 63 x 95
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (result,) = session.run(None, {"input": rgb01.numpy()})
    with torch.no_grad():
        expected = per_image_model(model, image, max_pixels=6_000)(image).output.clamp(-1, 1)
        whole = per_image_model(model, image)(image).output.clamp(-1, 1)
    # ONNX Runtime's antialiased resize differs from PyTorch's by ~1e-5, the statistics by less
    np.testing.assert_allclose(2 * result - 1, expected.numpy(), atol=1e-3, rtol=0)
    assert np.abs(2 * result - 1 - whole.numpy()).max() > 10 * np.abs(2 * result - 1 - expected.numpy()).max()


def test_statistics_graph_gives_the_per_image_statistics() -> None:
    from enlightengan.models.ops import attention_map, pad_to_multiple

    model = _per_image(randomised_generator())
    image, _ = pad_to_multiple(_dark(40, 70, seed=4) * 2 - 1)
    proto = build_onnx(model, graph="statistics")
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = dict(
        zip(
            names,
            session.run(names, {"image": image.numpy(), "gray": attention_map(image).numpy()}),
            strict=True,
        )
    )
    measured_model = per_image_model(model, image)
    measured = measured_model.state_dict()
    keys = [k[: -len(".running_mean")] for k in measured if k.endswith(".running_mean")]
    assert names[:2] == ["output", "latent"]
    assert len(names) == 2 + 2 * len(keys) == 2 + 2 * 17  # every BatchNorm of the generator
    with torch.no_grad():  # the result is the image normalised with its own statistics (one pass)
        expected, expected_latent = model.train()(image)
    model.eval()
    np.testing.assert_allclose(values["output"], expected.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(values["latent"], expected_latent.numpy(), atol=1e-4, rtol=0)
    for key in keys:
        np.testing.assert_allclose(
            values[f"{key}.mean"], measured[f"{key}.running_mean"], rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(values[f"{key}.var"], measured[f"{key}.running_var"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="per-image"):
        build_onnx(randomised_generator(), graph="statistics")


def test_export_command_verifies_a_per_image_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = save_generator(_per_image(randomised_generator()), tmp_path / "pi.safetensors")
    out = tmp_path / "pi.onnx"
    assert main(["export", "--weights", str(weights), "--onnx", str(out), "--verify"]) == 0
    assert "verify: largest difference" in capsys.readouterr().err
    assert out.is_file()


def test_per_image_graph_enlarges_thumbnails_for_statistics(tmp_path: Path) -> None:
    model = _per_image(randomised_generator(negative_scales=False))
    path = export_onnx(model, tmp_path / "pi.onnx")
    rgb01 = _dark(12, 10, seed=5)
    (result,) = _session(path).run(None, {"input": rgb01.numpy()})
    image = rgb01 * 2 - 1
    with torch.no_grad():  # statistics_image enlarges it to 32 x 32 (test_batchnorm.py)
        expected = per_image_model(model, image)(image).output.clamp(-1, 1)
    np.testing.assert_allclose(2 * result - 1, expected.numpy(), atol=1e-4, rtol=0)


def test_exposure_fade_is_inside_the_graph(tmp_path: Path) -> None:
    # the bundled model's fade (well-exposed photos left alone) must travel with the ONNX file: a dim
    # photo is enhanced in full, a bright one left as it is, one in between in part, as the Enhancer does
    from enlightengan import Enhancer

    model = randomised_generator(negative_scales=False)
    model.config = GeneratorConfig(base_width=8, exposure_fade=(0.35, 0.45))
    session = _session(export_onnx(model, tmp_path / "g.onnx"))
    enhancer = Enhancer(model=model, device="cpu", backend="torch")
    dim = _dark(40, 56, seed=3)
    for rgb01, factor in ((dim, 1.0), (dim.clamp(0.6, 1.0), 0.0), (dim * 0 + 0.4, None)):
        (result,) = session.run(None, {"input": rgb01.numpy()})
        expected = enhancer.enhance_tensor(rgb01 * 2 - 1)
        np.testing.assert_allclose(2 * result - 1, expected.numpy(), atol=1e-4, rtol=0)
        if factor == 0.0:  # bright: the output is the input
            np.testing.assert_allclose(result, rgb01.numpy(), atol=1e-6)

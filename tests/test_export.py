"""ONNX export: a valid graph with dynamic size that computes what the module computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from enlightengan.cli import main
from enlightengan.export import build_onnx, export_onnx, tile_roi
from enlightengan.models.checkpoint import save_generator

from .test_backends import randomised_generator

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

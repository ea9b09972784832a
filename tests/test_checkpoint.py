"""Loading released, DataParallel, plain and project-format generator files; every bad file."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from enlightengan.models import (
    CheckpointError,
    EnlightenGenerator,
    GeneratorConfig,
    convert_legacy_state_dict,
    global_discriminator,
    load_generator,
    save_generator,
)
from enlightengan.models.checkpoint import read_generator_file


def _released_layout(model: EnlightenGenerator) -> OrderedDict[str, torch.Tensor]:
    """What torch 0.3.1 + DataParallel wrote: 'module.' prefix, no num_batches_tracked."""
    return OrderedDict(
        (f"module.{k}", v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    )


def _randomised(width: int = 8) -> EnlightenGenerator:
    model = EnlightenGenerator(GeneratorConfig(base_width=width))
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return model.eval()


def _same_outputs(a: EnlightenGenerator, b: EnlightenGenerator) -> None:
    x = torch.rand(1, 3, 21, 35) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(a(x).output, b(x).output, atol=0, rtol=0)


def test_legacy_serialisation_with_dataparallel_prefix(tmp_path: Path) -> None:
    model = _randomised()
    path = tmp_path / "200_net_G_A.pth"
    torch.save(_released_layout(model), path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] == b"\x80\x02"  # the pre-zip pickle format, like torch 0.3.1
    loaded = load_generator(path)
    assert loaded.config == GeneratorConfig(base_width=8)
    assert not loaded.training
    _same_outputs(model, loaded)


def test_official_fixture_file_loads_and_reproduces(shared_dir: Path, official_fixture: dict) -> None:
    loaded = load_generator(shared_dir / "fixtures" / "official_generator_fixture.pt")  # {'state_dict': ...}
    assert loaded.config.base_width == 32
    with torch.no_grad():
        out = loaded(official_fixture["input"])
    torch.testing.assert_close(out.output, official_fixture["output"], atol=1e-4, rtol=0)


def test_plain_and_nested_state_dicts(tmp_path: Path) -> None:
    model = _randomised()
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    torch.save({"generator": model.state_dict(), "step": 3}, tmp_path / "nested.pt")
    _same_outputs(model, load_generator(tmp_path / "plain.pth"))
    _same_outputs(model, load_generator(tmp_path / "nested.pt"))
    _same_outputs(model, load_generator(model.state_dict()))


def test_own_format_round_trip(tmp_path: Path) -> None:
    model = _randomised(width=4)
    path = save_generator(model, tmp_path / "g.safetensors", metadata={"step": 12})
    state, config, metadata = read_generator_file(path)
    assert config == GeneratorConfig(base_width=4)
    assert metadata["format"] == "enlightengan.generator"
    assert metadata["step"] == "12"
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(state[key], value), key
    _same_outputs(model, load_generator(path))
    assert not list(tmp_path.glob("*.part*"))


def test_half_precision_storage(tmp_path: Path) -> None:
    model = _randomised(width=8)
    full = save_generator(model, tmp_path / "g32.safetensors")
    half = save_generator(model, tmp_path / "g16.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded = load_generator(half)
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            restored = loaded.state_dict()[key]
            assert restored.dtype == torch.float32, key  # computes in float32 after loading
            # the nearest float16: relative error at most 2**-11 (plus the subnormal step near 0)
            assert torch.all((restored - value).abs() <= value.abs() * 2**-11 + 2**-24), key
    with pytest.raises(ValueError, match="float32 or float16"):
        save_generator(model, tmp_path / "g.safetensors", dtype=torch.bfloat16)


def test_convert_strips_prefix_and_checks_everything() -> None:
    model = _randomised()
    state, config = convert_legacy_state_dict(_released_layout(model))
    assert config.base_width == 8
    assert all(not k.startswith("module.") for k in state)
    broken = _released_layout(model)
    del broken["module.conv10.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \['conv10.bias'\]"):
        convert_legacy_state_dict(broken)
    extra = _released_layout(model)
    extra["module.tanh.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        convert_legacy_state_dict(extra)
    bad_shape = _released_layout(model)
    bad_shape["module.conv5_2.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(CheckpointError, match="wrong shapes"):
        convert_legacy_state_dict(bad_shape)


def test_discriminator_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "200_net_D_A.pth"
    torch.save(OrderedDict((f"module.{k}", v) for k, v in global_discriminator(8).state_dict().items()), path)
    with pytest.raises(CheckpointError, match="discriminator"):
        load_generator(path)


def test_truncated_downloads(tmp_path: Path) -> None:
    model = _randomised()
    for name, kwargs in (("legacy.pth", {"_use_new_zipfile_serialization": False}), ("zip.pth", {})):
        full = tmp_path / f"full_{name}"
        torch.save(model.state_dict(), full, **kwargs)
        cut = tmp_path / name
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_generator(cut)
    save_generator(model, tmp_path / "full.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "full.safetensors").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(cut)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"This is a README, not a checkpoint.\n", "not a PyTorch checkpoint"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200), "not a PyTorch checkpoint"),
    ],
)
def test_non_checkpoint_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)


def test_missing_path_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="folder"):
        load_generator(tmp_path)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _randomised().state_dict(), "config": GeneratorConfig(8)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_generator(path)


def test_width_mismatch(tmp_path: Path) -> None:
    path = save_generator(_randomised(width=4), tmp_path / "g.safetensors")
    with pytest.raises(CheckpointError, match="base width 4, but width 32"):
        load_generator(path, expected_width=32)


def test_safetensors_metadata_must_agree(tmp_path: Path) -> None:
    state = {
        k: v for k, v in _randomised(width=4).state_dict().items() if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "g.safetensors"
    save_file(state, str(path), metadata={"format": "enlightengan.generator", "config": '{"base_width": 8}'})
    with pytest.raises(CheckpointError, match="metadata says"):
        load_generator(path)


def test_export_to_safetensors_from_a_released_style_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from enlightengan.cli import main
    from enlightengan.weights import sha256_file

    model = _randomised(width=8)
    legacy = tmp_path / "200_net_G_A.pth"
    torch.save(_released_layout(model), legacy, _use_new_zipfile_serialization=False)
    full, half = tmp_path / "g32.safetensors", tmp_path / "g16.safetensors"
    assert main(["export", "--weights", str(legacy), "--safetensors", str(full)]) == 0
    _same_outputs(model, load_generator(full))
    assert main(["export", "--weights", str(legacy), "--safetensors", str(half), "--half"]) == 0
    assert f"sha256 {sha256_file(half)}" in capsys.readouterr().err
    assert read_generator_file(half)[2]["source"] == "200_net_G_A.pth"
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        difference = (load_generator(half)(x).output - model(x).output).abs().max().item()
    assert 0 < difference < 2 / 255  # float16 storage: within one 8-bit grey level
    for argv, message in [
        ([], "--onnx OUT.onnx and/or --safetensors"),
        (["--onnx", str(tmp_path / "g.onnx"), "--half"], "--half applies to --safetensors"),
        (["--safetensors", str(tmp_path / "x.safetensors"), "--verify"], "give --onnx too"),
        (["--safetensors", str(tmp_path / "no" / "x.safetensors")], "does not exist"),
    ]:
        assert main(["export", "--weights", str(legacy), *argv]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()

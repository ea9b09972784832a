"""Default weights resolution: explicit > $ENLIGHTENGAN_WEIGHTS > bundled, and the bundled file's checksum."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from enlightengan.inference import Enhancer
from enlightengan.weights import (
    DEFAULT_MODEL,
    ENV_VAR,
    NoDefaultWeightsError,
    WeightsError,
    WeightsSpec,
    bundled_path,
    resolve_weights,
    sha256_file,
)
from enlightengan.weights import bundled as weights_module


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(weights_module, "_VERIFIED", set())


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in package folder holding a 'default model' whose sha256 is declared."""
    folder = tmp_path / "package_weights"
    folder.mkdir()
    path = folder / DEFAULT_MODEL.filename
    path.write_bytes(b"pretend weights")
    info = dataclasses.replace(DEFAULT_MODEL, sha256=hashlib.sha256(b"pretend weights").hexdigest())
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", folder)
    monkeypatch.setattr(weights_module, "DEFAULT_MODEL", info)
    return path


def test_default_model_is_declared_as_data() -> None:
    assert isinstance(DEFAULT_MODEL, WeightsSpec) and DEFAULT_MODEL.url is None
    assert DEFAULT_MODEL.filename == "enlightengan-default.safetensors"
    assert bundled_path().parent == Path(weights_module.__file__).resolve().parent
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_MODEL.sha256 = "x"  # type: ignore[misc]
    assert "[-1, 1]" in DEFAULT_MODEL.input_format


def test_order_explicit_then_env_then_bundled(
    tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"a")
    from_env = tmp_path / "env.safetensors"
    from_env.write_bytes(b"b")
    assert resolve_weights(None) == bundle
    monkeypatch.setenv(ENV_VAR, str(from_env))
    assert resolve_weights(None) == from_env
    assert resolve_weights(explicit) == explicit
    assert resolve_weights(str(explicit)) == explicit
    monkeypatch.setenv(ENV_VAR, "  ")  # blank counts as unset
    assert resolve_weights(None) == bundle


def test_missing_default_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(NoDefaultWeightsError) as info:
        resolve_weights(None)
    message = str(info.value)
    for needed in ("is missing from this installation", "reinstall", "--weights", ENV_VAR, "200_net_G_A.pth"):
        assert needed in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(NoDefaultWeightsError):
        Enhancer(device="cpu")


def test_the_bundled_default_model() -> None:
    # the package ships its default model: it resolves, passes its checksum and loads as declared
    assert bundled_path().is_file()
    assert resolve_weights(None) == bundled_path()
    assert DEFAULT_MODEL.sha256 == sha256_file(bundled_path())
    assert bundled_path().stat().st_size < 5_000_000  # "a few MB at most"
    from enlightengan.models.checkpoint import load_generator
    from enlightengan.models.generator import GeneratorConfig

    # fixed BatchNorm statistics (exact tiles, one pass) and the exposure fade of docs/MODEL_CARD.md
    assert load_generator(bundled_path()).config == GeneratorConfig(
        base_width=16, batchnorm="running", exposure_fade=(0.35, 0.45)
    )


def test_checksum_mismatch_is_an_error(bundle: Path) -> None:
    bundle.write_bytes(b"pretend weights, damaged")
    with pytest.raises(WeightsError, match="damaged: its sha256 is"):
        resolve_weights(None)


def test_undeclared_checksum_is_an_error(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights_module, "DEFAULT_MODEL", dataclasses.replace(DEFAULT_MODEL, sha256=None))
    with pytest.raises(WeightsError, match=hashlib.sha256(b"pretend weights").hexdigest()):
        resolve_weights(None)


def test_checksum_computed_once(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = weights_module.sha256_file

    def counting(path: Path, chunk_size: int = 1 << 20) -> str:
        calls.append(Path(path))
        return real(path, chunk_size)

    monkeypatch.setattr(weights_module, "sha256_file", counting)
    resolve_weights(None)
    resolve_weights(None)
    assert calls == [bundle]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_missing_explicit_and_env_paths(
    tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(WeightsError, match=r"nope\.pth \(given explicitly\) does not exist"):
        resolve_weights(tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="is a folder"):
        resolve_weights(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsError, match=f"gone.pth \\(from the environment variable {ENV_VAR}\\)"):
        resolve_weights(None)

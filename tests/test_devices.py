"""Device choice: auto prefers CUDA, then MPS, then the CPU; an unavailable device is an error."""

from __future__ import annotations

import pytest
import torch

from enlightengan.devices import resolve_device


def test_resolve_device_auto_and_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")  # CUDA first
    with pytest.raises(ValueError, match="1 CUDA device"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("name", ["gpu", "tpu:0", ""])
def test_resolve_device_unknown(name: str) -> None:
    with pytest.raises(ValueError, match="device"):
        resolve_device(name)

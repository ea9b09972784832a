"""Discriminator shapes, key names and layer structure."""

from __future__ import annotations

import pytest
import torch

from enlightengan.models.discriminator import (
    DiscriminatorConfig,
    PatchDiscriminator,
    global_discriminator,
    local_discriminator,
)


def _out_size(size: int, n_layers: int) -> int:
    # k=4, p=2: stride 2 -> floor((s + 4 - 4) / 2) + 1; stride 1 -> s + 1
    for _ in range(n_layers):
        size = size // 2 + 1
    return size + 2


@pytest.mark.parametrize(
    ("make", "size", "n_layers"), [(global_discriminator, 320, 5), (local_discriminator, 32, 4)]
)
def test_output_shapes(make: object, size: int, n_layers: int) -> None:
    d = make(base_width=8)  # type: ignore[operator]
    out = d(torch.randn(2, 3, size, size))
    expected = _out_size(size, n_layers)
    assert out.shape == (2, 1, expected, expected)
    assert expected == {320: 13, 32: 5}[size]


def test_published_widths_and_key_names() -> None:
    d = global_discriminator()
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items()}
    assert shapes["model.0.weight"] == (64, 3, 4, 4)
    assert shapes["model.6.weight"] == (512, 256, 4, 4)  # 4th stride-2 conv: 256 -> 512
    assert shapes["model.8.weight"] == (512, 512, 4, 4)  # 5th stride-2 conv: width capped at 8 x 64
    assert shapes["model.10.weight"] == (512, 512, 4, 4)  # stride-1 conv to min(2^5, 8) * 64
    assert shapes["model.12.weight"] == (1, 512, 4, 4)
    local = {k: tuple(v.shape) for k, v in local_discriminator().state_dict().items()}
    assert local["model.8.weight"] == (512, 512, 4, 4)  # stride-1 conv to min(2^4, 8) * 64
    assert local["model.10.weight"] == (1, 512, 4, 4)
    assert len(local) == 12


def test_no_normalisation_layers_and_strides() -> None:
    d = local_discriminator()
    kinds = {type(m).__name__ for m in d.modules()}
    assert not any("Norm" in k for k in kinds)
    strides = [m.stride[0] for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 2, 2, 2, 1, 1]


def test_rejects_bad_input_and_config() -> None:
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        PatchDiscriminator()(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="n_layers"):
        DiscriminatorConfig(n_layers=0)

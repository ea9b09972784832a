"""The optional training priors, against hand computations."""

from __future__ import annotations

import pytest
import torch

from enlightengan.losses.priors import color_loss, exposure_loss, structure_loss


def _from_unit(x: torch.Tensor) -> torch.Tensor:
    return x * 2 - 1


def test_exposure_by_hand() -> None:
    image = _from_unit(torch.full((1, 3, 32, 32), 0.3))
    assert exposure_loss(image, level=0.5).item() == pytest.approx(0.2, abs=1e-5)
    half = torch.cat([torch.full((1, 3, 16, 16), 0.1), torch.full((1, 3, 16, 16), 0.9)], dim=3)
    # two 16x16 cells at 0.1 and 0.9: |0.1 - 0.5| and |0.9 - 0.5| average to 0.4
    assert exposure_loss(_from_unit(half), level=0.5).item() == pytest.approx(0.4, abs=1e-5)


def test_color_by_hand() -> None:
    grey = _from_unit(torch.full((1, 3, 4, 4), 0.5))
    red = _from_unit(torch.zeros(1, 3, 4, 4).index_fill_(1, torch.tensor([0]), 1.0))
    # angle between (1, 0, 0) and (1, 1, 1): cos = 1 / sqrt(3)
    assert color_loss(red, grey).item() == pytest.approx(1 - 3**-0.5, abs=1e-5)
    darker_grey = _from_unit(torch.full((1, 3, 4, 4), 0.1))
    assert color_loss(darker_grey, grey).item() == pytest.approx(0.0, abs=1e-5)  # brightness is free
    tinted = _from_unit(torch.tensor([0.2, 0.1, 0.1]).view(1, 3, 1, 1).expand(1, 3, 4, 4))
    bright_tinted = _from_unit(torch.tensor([0.8, 0.4, 0.4]).view(1, 3, 1, 1).expand(1, 3, 4, 4))
    assert color_loss(bright_tinted, tinted).item() == pytest.approx(0.0, abs=1e-5)
    # (0.8, 0.4, 0.4) vs grey: cos = 1.6 / (sqrt(0.96) * sqrt(3))
    expected = 1 - 1.6 / (0.96**0.5 * 3**0.5)
    assert color_loss(bright_tinted, grey).item() == pytest.approx(expected, abs=1e-5)


def test_structure_is_zero_for_a_gain_and_sees_edges() -> None:
    torch.manual_seed(0)
    base = torch.rand(1, 3, 16, 16) * 0.2 + 0.05
    brighter = base * 3  # a pure gain
    assert structure_loss(_from_unit(brighter), _from_unit(base), offset=0.0).item() == pytest.approx(
        0, abs=1e-5
    )
    flat = torch.full_like(base, base.mean())
    assert structure_loss(_from_unit(flat), _from_unit(base)).item() > 0.05


def test_structure_by_hand() -> None:
    # a 1 x 1 x 2 x 4 luminance after pooling: reference columns (0.1, 0.1, 0.4, 0.4), output flat 0.2
    ref = torch.tensor([0.1, 0.1, 0.4, 0.4]).repeat_interleave(2).view(1, 1, 1, 8).expand(1, 3, 4, 8)
    out = torch.full((1, 3, 4, 8), 0.2)
    step = torch.log(torch.tensor(0.45)) - torch.log(torch.tensor(0.15))
    # dx: 3 horizontal differences per row, one of them the step; dy: all zero
    expected = step.item() / 3
    assert structure_loss(_from_unit(out), _from_unit(ref)).item() == pytest.approx(expected, abs=1e-5)


def test_priors_give_gradients() -> None:
    x = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    ref = torch.rand(2, 3, 16, 16) * 2 - 1
    (structure_loss(x, ref) + color_loss(x, ref) + exposure_loss(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

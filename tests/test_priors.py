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
    # cell 0: the image's mean (0.5) is on target, whatever its contrast; two images average
    assert exposure_loss(_from_unit(half), level=0.5, cell=0).item() == pytest.approx(0.0, abs=1e-5)
    pair = torch.cat([_from_unit(half), image[..., :16, :]])
    assert exposure_loss(pair, level=0.5, cell=0).item() == pytest.approx(0.1, abs=1e-5)


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


def test_color_floor_makes_dark_cells_count() -> None:
    # one 4 x 4 cell nearly black and neutral, one bright and neutral; the output turns the dark one green
    ref = _from_unit(torch.cat([torch.full((1, 3, 4, 4), 0.01), torch.full((1, 3, 4, 4), 0.5)], dim=3))
    out = ref.clone()
    out[:, :, :, :4] = _from_unit(torch.tensor([0.1, 0.3, 0.1]).view(1, 3, 1, 1).expand(1, 3, 4, 4))
    cos = 0.5 / (0.11**0.5 * 3**0.5)  # (0.1, 0.3, 0.1) against (1, 1, 1)
    dark_norm, bright_norm = 0.01 * 3**0.5, 0.5 * 3**0.5
    without = (1 - cos) * dark_norm / (dark_norm + bright_norm)
    with_floor = (1 - cos) * (dark_norm + 0.1) / (dark_norm + bright_norm + 0.2)
    assert color_loss(out, ref).item() == pytest.approx(without, rel=2e-3)
    assert color_loss(out, ref, floor=0.1).item() == pytest.approx(with_floor, rel=2e-3)
    assert with_floor > 4 * without


def test_chroma_noise_by_hand_and_luminance_detail_is_free() -> None:
    from enlightengan.losses.priors import chroma_noise_loss

    grey_detail = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8)  # strong luminance texture, no chroma
    assert chroma_noise_loss(_from_unit(grey_detail)).item() == pytest.approx(0.0, abs=1e-6)
    flat_tint = torch.tensor([0.6, 0.4, 0.5]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    assert chroma_noise_loss(_from_unit(flat_tint)).item() == pytest.approx(0.0, abs=1e-6)
    # a checkerboard of +-d on red, -+d on green: chroma (d, -d, 0) alternating; a 3x3 box average of a
    # checkerboard is 1/9 of the centre's sign at interior pixels, so |chroma - smooth| = (8/9) d there
    d = 0.1
    sign = (torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2 * 2 - 1.0
    image = torch.full((1, 3, 8, 8), 0.5)
    image[0, 0] += d * sign
    image[0, 1] -= d * sign
    interior = (8 / 9) * d * 2 / 3  # mean over 3 channels of (8/9)(d, d, 0)
    value = chroma_noise_loss(_from_unit(image)).item()
    assert value == pytest.approx(interior, rel=0.1)  # borders (reflected) differ slightly


def test_correlation_structure_is_free_for_uneven_brightening_and_sees_lost_texture() -> None:
    from enlightengan.losses.priors import correlation_structure_loss

    torch.manual_seed(0)
    texture = torch.rand(1, 1, 32, 32).expand(1, 3, 32, 32) * 0.05 + 0.02
    ramp = torch.linspace(1.0, 3.0, 32).view(1, 1, 1, 32)  # a gain varying smoothly across the photo
    unevenly = (texture * ramp + 0.05).clamp(0, 1)  # and an offset
    assert correlation_structure_loss(_from_unit(texture), _from_unit(texture)).item() == pytest.approx(
        0, abs=1e-6
    )
    assert correlation_structure_loss(_from_unit(unevenly), _from_unit(texture)).item() < 0.03
    flat = torch.full_like(texture, 0.3)  # texture gone
    assert correlation_structure_loss(_from_unit(flat), _from_unit(texture)).item() > 0.5
    inverted = 0.1 - texture  # the texture's contrast reversed: the worst structure, 1 - (-1)
    assert correlation_structure_loss(_from_unit(inverted), _from_unit(texture)).item() > 1.5


def test_correlation_structure_by_hand_on_one_window() -> None:
    from enlightengan.losses.priors import correlation_structure_loss

    ref = torch.tensor([[0.1, 0.2], [0.3, 0.4]]).expand(1, 3, 2, 2)
    out = torch.tensor([[0.2, 0.1], [0.3, 0.5]]).expand(1, 3, 2, 2)
    a, b = out[0, 0].flatten(), ref[0, 0].flatten()
    cov = ((a - a.mean()) * (b - b.mean())).mean()
    var_a, var_b = a.var(unbiased=False), b.var(unbiased=False)
    expected = 1 - (cov + 1e-5) / ((var_a + 1e-5) * (var_b + 1e-5)).sqrt()
    value = correlation_structure_loss(_from_unit(out), _from_unit(ref), window=2).item()
    assert value == pytest.approx(expected.item(), abs=1e-5)


def _srgb(linear: torch.Tensor) -> torch.Tensor:
    return torch.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(1e-12) ** (1 / 2.4) - 0.055
    )


def test_chromaticity_is_free_for_a_linear_gain_and_charges_a_cast_in_the_dark() -> None:
    from enlightengan.losses.priors import chromaticity_loss

    dark_linear = torch.tensor([0.02, 0.01, 0.005]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    dark = _from_unit(_srgb(dark_linear))
    brighter = _from_unit(_srgb(dark_linear * 10))
    assert chromaticity_loss(brighter, dark).item() < 1e-3  # up to the 0.3 % pull to neutral (w = 0.997)
    # a teal cast of the same brightness: chromaticity (0.1, 0.45, 0.45) against (4/7, 2/7, 1/7)
    teal = _from_unit(_srgb(torch.tensor([0.035, 0.1575, 0.1575]).view(1, 3, 1, 1).expand(1, 3, 16, 16)))
    w = 0.035**2 / (0.035**2 + 0.002**2)
    target = torch.tensor([w * 4 / 7 + (1 - w) / 3, w * 2 / 7 + (1 - w) / 3, w * 1 / 7 + (1 - w) / 3])
    expected = (torch.tensor([0.1, 0.45, 0.45]) - target).abs().mean().item()
    assert chromaticity_loss(teal, dark).item() == pytest.approx(expected, abs=1e-4)


def test_chromaticity_pulls_nearly_black_cells_to_neutral() -> None:
    from enlightengan.losses.priors import chromaticity_loss

    black = torch.full((1, 3, 8, 8), -1.0)  # sum 0: the target is neutral grey
    grey = _from_unit(torch.full((1, 3, 8, 8), 0.5))
    green = _from_unit(torch.tensor([0.3, 0.6, 0.3]).view(1, 3, 1, 1).expand(1, 3, 8, 8))
    assert chromaticity_loss(grey, black).item() == pytest.approx(0.0, abs=1e-5)
    assert chromaticity_loss(green, black).item() > 0.1


def test_contrast_loss_frees_a_gain_and_penalises_a_haze() -> None:
    from enlightengan.losses.priors import contrast_loss

    torch.manual_seed(0)
    dark = torch.rand(1, 3, 64, 64) * 0.1  # a dark scene in [0, 0.1]
    assert contrast_loss(_from_unit(dark * 5), _from_unit(dark)).item() == pytest.approx(0.0, abs=1e-6)
    assert contrast_loss(_from_unit(dark), _from_unit(dark)).item() == pytest.approx(0.0, abs=1e-6)
    hazy = dark + 0.4  # the same brightening by an offset: contrast gone
    assert contrast_loss(_from_unit(hazy), _from_unit(dark)).item() > 0.1
    # by hand for one cell: input two halves at 0.0 and 0.2 (mean 0.1, std 0.1), output the same + 0.3
    halves = torch.cat([torch.zeros(1, 3, 32, 16), torch.full((1, 3, 32, 16), 0.2)], dim=3)
    cv_in, cv_out = 0.1 / (0.1 + 0.02), 0.1 / (0.4 + 0.02)
    expected = 0.7 * cv_in - cv_out
    got = contrast_loss(_from_unit(halves + 0.3), _from_unit(halves)).item()
    assert got == pytest.approx(expected, abs=1e-4)

"""The generator against the official fixture, hand-checked pieces and gradient flow."""

from __future__ import annotations

import pytest
import torch

from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.models.ops import attention_map, crop_padding, pad_to_multiple


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def test_reproduces_official_fixture(official_fixture: dict[str, torch.Tensor]) -> None:
    model = EnlightenGenerator().eval()
    model.load_state_dict(_strip(official_fixture["state_dict"]), strict=True)
    with torch.no_grad():
        out = model(official_fixture["input"], official_fixture["gray"])
    assert out.output.shape == official_fixture["output"].shape
    torch.testing.assert_close(out.output, official_fixture["output"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.latent, official_fixture["latent"], atol=1e-4, rtol=0)


def test_fixture_attention_map_matches_formula(official_fixture: dict[str, torch.Tensor]) -> None:
    torch.testing.assert_close(
        attention_map(official_fixture["input"]), official_fixture["gray"], atol=1e-6, rtol=0
    )


def test_gray_defaults_to_attention_map(official_fixture: dict[str, torch.Tensor]) -> None:
    model = EnlightenGenerator().eval()
    model.load_state_dict(_strip(official_fixture["state_dict"]))
    with torch.no_grad():
        out = model(official_fixture["input"])
    torch.testing.assert_close(out.output, official_fixture["output"], atol=1e-4, rtol=0)


def test_align_corners_false_would_not_match(official_fixture: dict[str, torch.Tensor]) -> None:
    """The fixture discriminates the upsampling convention (guards against a silent regression)."""
    model = EnlightenGenerator().eval()
    model.load_state_dict(_strip(official_fixture["state_dict"]))
    original = torch.nn.functional.interpolate

    def wrong(*args: object, **kwargs: object) -> torch.Tensor:
        kwargs["align_corners"] = False
        return original(*args, **kwargs)  # type: ignore[arg-type]

    torch.nn.functional.interpolate = wrong  # type: ignore[assignment]
    try:
        with torch.no_grad():
            out = model(official_fixture["input"], official_fixture["gray"])
    finally:
        torch.nn.functional.interpolate = original
    assert (out.output - official_fixture["output"]).abs().max() > 1e-2


def test_parameter_count_of_published_model() -> None:
    assert sum(p.numel() for p in EnlightenGenerator().parameters()) == 8_636_675


def test_attention_map_by_hand() -> None:
    image = torch.tensor([[[[1.0, -1.0]], [[0.0, -1.0]], [[-1.0, 1.0]]]])  # 1x3x1x2
    # pixel 0: (R,G,B)+1 = (2, 1, 0) -> 1 - (0.598 + 0.587) / 2 = 0.4075
    # pixel 1: (0, 0, 2) -> 1 - 0.228 / 2 = 0.886
    expected = torch.tensor([[[[0.4075, 0.886]]]])
    torch.testing.assert_close(attention_map(image), expected, atol=1e-6, rtol=0)


def test_attention_map_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        attention_map(torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize(("h", "w"), [(157, 203), (16, 32), (1, 1), (5, 3), (17, 9)])
def test_padding_round_trip(h: int, w: int) -> None:
    x = torch.randn(2, 3, h, w)
    padded, pads = pad_to_multiple(x)
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    torch.testing.assert_close(crop_padding(padded, pads), x)


def test_padding_split_and_reflection() -> None:
    x = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 16, 10)
    padded, pads = pad_to_multiple(x)
    assert pads == (3, 3, 0, 0)  # 6 columns: left gets the smaller half (equal here)
    assert padded[0, 0, 0].tolist() == [3, 2, 1, *range(10), 8, 7, 6]
    _, pads = pad_to_multiple(torch.zeros(1, 1, 157, 203))
    assert pads == (2, 3, 1, 2)  # 203 -> 208 (5 = 2 + 3), 157 -> 160 (3 = 1 + 2)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (7, 13), (33, 20)])
def test_any_size_keeps_shape(h: int, w: int) -> None:
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, h, w) * 2 - 1)
    assert out.output.shape == (1, 3, h, w)
    assert torch.isfinite(out.output).all()


def test_output_is_input_plus_latent_and_latent_vanishes_on_white() -> None:
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    white = torch.ones(1, 3, 16, 16)  # attention 0 everywhere -> latent 0 -> identity
    with torch.no_grad():
        out = model(torch.rand(1, 3, 24, 24) * 2 - 1)
        white_out = model(white)
    assert torch.equal(white_out.latent, torch.zeros_like(white))
    assert torch.equal(white_out.output, white)
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out.output, x + out.latent)


def test_every_parameter_receives_a_gradient() -> None:
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).train()
    out = model(torch.rand(2, 3, 32, 32) * 2 - 1)
    (out.output.square().mean() + out.latent.abs().mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_batch_items_are_independent_in_eval_mode() -> None:
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    x = torch.rand(3, 3, 20, 20) * 2 - 1
    with torch.no_grad():
        batched = model(x).output
        single = model(x[1:2]).output
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=0)


def test_rejects_bad_shapes() -> None:
    model = EnlightenGenerator(GeneratorConfig(base_width=4))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        model(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match="gray"):
        model(torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 8, 8))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="base_width"):
        GeneratorConfig(base_width=0)
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({"base_width": 8, "tanh": True})
    assert GeneratorConfig.from_dict(GeneratorConfig(16).to_dict()) == GeneratorConfig(16)

"""Fast mode: the guided filter by hand, exact transfer of affine latents, quality against exact output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from enlightengan.inference.fast import FastConfig, box_filter, fast_forward, guided_coefficients
from enlightengan.inference.placement import Placement
from enlightengan.inference.tiling import tiled_forward
from enlightengan.inference.torch_backend import TorchBackend
from enlightengan.models.ops import attention_map

from .conftest import dark_tensor, randomised_generator


class _AffineLatent:
    """A stand-in network whose latent is ``0.6 * gray - 0.2``: the guided filter must carry it exactly."""

    name = "affine"

    def run(
        self, image: torch.Tensor, gray: torch.Tensor, placement: Placement | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        latent = (0.6 * gray - 0.2).expand_as(image)
        return image + latent, latent


def test_box_filter_by_hand() -> None:
    x = torch.arange(9.0).view(1, 1, 3, 3)
    out = box_filter(x, 1)
    # corner (0,0): mean of 0,1,3,4 = 2; centre: mean of 0..8 = 4; edge (0,1): mean of 0,1,2,3,4,5 = 2.5
    assert out[0, 0, 0, 0] == 2.0 and out[0, 0, 1, 1] == 4.0 and out[0, 0, 0, 1] == 2.5


def test_guided_coefficients_recover_an_affine_relation() -> None:
    guide = torch.rand(1, 1, 20, 30)
    target = torch.cat((3 * guide + 1, -guide, 0 * guide + 0.5), dim=1)
    a, b = guided_coefficients(guide, target, radius=2, eps=1e-8)
    torch.testing.assert_close(a[0, :, 5, 5], torch.tensor([3.0, -1.0, 0.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(a * guide + b, target, atol=1e-3, rtol=0)


def test_affine_latent_carried_exactly_to_full_resolution() -> None:
    image = dark_tensor(120, 180)
    out = fast_forward(_AffineLatent(), image, FastConfig(scale=3.0, eps=1e-8))
    expected = 0.6 * attention_map(image) - 0.2
    assert out.output.shape == image.shape
    torch.testing.assert_close(out.latent, expected.expand_as(image), atol=2e-3, rtol=0)
    torch.testing.assert_close(out.output, image + out.latent)


def test_scale_one_is_exact() -> None:
    model = randomised_generator()
    image = dark_tensor(40, 56)
    backend = TorchBackend(model)
    fast = fast_forward(backend, image, FastConfig(scale=1.0))
    torch.testing.assert_close(fast.output, tiled_forward(backend, image).output, atol=1e-6, rtol=0)


def test_close_to_exact_and_better_than_resizing_the_small_result() -> None:
    model = randomised_generator(negative_scales=False)
    image = dark_tensor(160, 224)
    backend = TorchBackend(model)
    exact = tiled_forward(backend, image).output
    fast = fast_forward(backend, image, FastConfig(scale=2.0)).output
    small = F.interpolate(image, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
    resized = F.interpolate(tiled_forward(backend, small).output, size=image.shape[-2:], mode="bilinear")

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).square().mean()
        return float(-10 * torch.log10(mse))

    assert psnr(fast, exact) > 30.0
    assert psnr(fast, exact) > psnr(resized, exact) + 3.0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="scale"):
        FastConfig(scale=0.5)
    with pytest.raises(ValueError, match="radius"):
        FastConfig(radius=0)
    with pytest.raises(ValueError, match="eps"):
        FastConfig(eps=0.0)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        fast_forward(_AffineLatent(), torch.zeros(3, 32, 32))


def test_enhance_command_fast_options(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from enlightengan.cli import main
    from enlightengan.inference import Enhancer
    from enlightengan.models.checkpoint import save_generator

    from .conftest import make_dark_rgb

    model = randomised_generator(negative_scales=False)
    weights = save_generator(model, tmp_path / "g.safetensors")
    rgb = make_dark_rgb(60, 90)
    Image.fromarray(rgb).save(tmp_path / "dark.png")
    argv = ["enhance", str(tmp_path / "dark.png"), "--weights", str(weights), "--quiet"]
    assert main([*argv, "-o", str(tmp_path / "a"), "--fast-scale", "3"]) == 0
    expected = Enhancer(model=model, device="cpu", fast=FastConfig(scale=3.0)).enhance(rgb)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "dark.png")), expected)
    assert main([*argv, "-o", str(tmp_path / "b"), "--fast"]) == 0
    default = Enhancer(model=model, device="cpu", fast=True).enhance(rgb)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b" / "dark.png")), default)
    with pytest.raises(SystemExit):
        main([*argv, "-o", str(tmp_path / "c"), "--fast-scale", "0.5"])

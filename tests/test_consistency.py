"""Resolution and exposure consistency: hand-computed values, detached anchors, the trainer uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from enlightengan.config import ConfigError
from enlightengan.losses.consistency import exposure_consistency_loss, resolution_consistency_loss
from enlightengan.models.ops import attention_map, shrink
from enlightengan.training.trainer import Trainer

from .conftest import tiny_config


def _brightening_by_size(image: Tensor, gray: Tensor) -> tuple[Tensor, Tensor]:
    """A 'generator' whose residual grows with the image height: 0.1 at 64 rows, 0.05 at 32."""
    latent = torch.full_like(image, 0.1 * image.shape[-2] / 64)
    return image + latent, latent


def test_hand_computed_value_for_a_resolution_dependent_generator() -> None:
    image = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    output, _ = _brightening_by_size(image, image[:, :1])
    # shrink(image + 0.1) = shrink(image) + 0.1 (resampling weights sum to 1); on 32 rows G adds 0.05
    loss = resolution_consistency_loss(_brightening_by_size, image, output, 2.0)
    assert loss.item() == pytest.approx(0.05, abs=1e-6)


def test_a_pointwise_affine_generator_is_consistent() -> None:
    def affine(image: Tensor, gray: Tensor) -> tuple[Tensor, Tensor]:
        latent = 0.3 * image + 0.2
        return image + latent, latent

    image = torch.rand(1, 3, 90, 70, generator=torch.Generator().manual_seed(1)) * 2 - 1
    output, _ = affine(image, image[:, :1])
    assert resolution_consistency_loss(affine, image, output, 2.37).item() < 1e-6
    assert shrink(image, 2.37).shape[-2:] == (38, 30)  # round(90 / 2.37), round(70 / 2.37)


def test_only_the_shrunk_pass_is_trained() -> None:
    scale = torch.tensor(1.0, requires_grad=True)

    def generator(image: Tensor, gray: Tensor) -> tuple[Tensor, Tensor]:
        latent = scale * image.mean() * torch.ones_like(image)
        return image + latent, latent

    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    output, _ = generator(image, image[:, :1])
    full_output = output.detach().requires_grad_(True)
    resolution_consistency_loss(generator, image, full_output, 2.0).backward()
    assert full_output.grad is None  # the full-resolution output is the anchor, not pulled
    assert scale.grad is not None and scale.grad.abs() > 0


def test_bad_arguments() -> None:
    image = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="scale must be > 1"):
        resolution_consistency_loss(_brightening_by_size, image, image, 1.0)
    with pytest.raises(ValueError, match="must match"):
        resolution_consistency_loss(_brightening_by_size, image, image[..., :16], 2.0)


def test_trainer_adds_it_to_the_generator_loss(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    config = tiny_config(*tiny_data, **{"optim.max_steps": 2, "loss.scale_weight": 1.0})
    trainer = Trainer(config, tmp_path / "run", progress=False)
    logs = trainer.train_step(next(_batches(trainer)))
    assert logs["g_scale"] > 0
    with pytest.raises(ConfigError, match="scale_range"):
        tiny_config(*tiny_data, **{"loss.scale_range": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="scale_weight"):
        tiny_config(*tiny_data, **{"loss.scale_weight": -1.0})


def _batches(trainer: Trainer):  # type: ignore[no-untyped-def]
    from enlightengan.training.objective import Batch

    for data in trainer._batches(0, 0):
        yield Batch.from_dict(data, trainer.device)


def _gain_from_darkness(image: Tensor, gray: Tensor) -> tuple[Tensor, Tensor]:
    """A 'generator' that adds 0.5 x the mean attention: darker inputs get a larger residual."""
    latent = 0.5 * gray.mean(dim=(1, 2, 3), keepdim=True).expand_as(image)
    return image + latent, latent


def test_exposure_consistency_hand_computed_value_over_darkened_items_only() -> None:
    low = torch.full((2, 3, 8, 8), 0.2)  # [0, 1] value 0.6
    image = low.clone()
    image[1] = (low[1] + 1) / 2 / 3 * 2 - 1  # item 1 darkened by 3: [0, 1] value 0.2, i.e. -0.6
    output, _ = _gain_from_darkness(image, attention_map(image))
    # item 1: output -0.6 + 0.5 * (1 - 0.2) = -0.2; its anchor 0.2 + 0.5 * (1 - 0.6) = 0.4; item 0 ignored
    loss = exposure_consistency_loss(_gain_from_darkness, low, image, output)
    assert loss.item() == pytest.approx(0.6, abs=1e-6)


def test_exposure_consistency_is_zero_for_an_exposure_invariant_generator_and_without_darkening() -> None:
    def normalise(image: Tensor, gray: Tensor) -> tuple[Tensor, Tensor]:
        unit = (image + 1) / 2
        out = unit / unit.mean(dim=(1, 2, 3), keepdim=True) * 0.5 * 2 - 1
        return out, out - image

    low = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    image = (low + 1) / 2 / torch.tensor([2.0, 1.0, 4.0]).view(3, 1, 1, 1) * 2 - 1
    output, _ = normalise(image, attention_map(image))
    assert exposure_consistency_loss(normalise, low, image, output).item() < 1e-5
    # nothing darkened: 0, and still a tensor that can be added to the generator loss
    same, _ = _gain_from_darkness(low, attention_map(low))
    zero = exposure_consistency_loss(_gain_from_darkness, low, low, same)
    assert zero.item() == 0.0 and zero.ndim == 0


def test_exposure_consistency_pulls_only_the_darkened_output() -> None:
    gain = torch.tensor(1.0, requires_grad=True)

    def generator(image: Tensor, gray: Tensor) -> tuple[Tensor, Tensor]:
        latent = gain * gray.mean() * torch.ones_like(image)
        return image + latent, latent

    low = torch.zeros(1, 3, 8, 8)
    image = (low + 1) / 2 / 2 * 2 - 1
    output, _ = generator(image, attention_map(image))
    exposure_consistency_loss(generator, low, image, output).backward()
    # the anchor G(low) is computed without gradients: only the darkened pass moves the gain
    assert gain.grad is not None and gain.grad.abs() > 0
    with pytest.raises(ValueError, match="same shape"):
        exposure_consistency_loss(generator, low, image[..., :4], output)


def test_trainer_adds_exposure_consistency(tiny_data: tuple[Path, Path], tmp_path: Path) -> None:
    config = tiny_config(
        *tiny_data,
        **{"optim.max_steps": 2, "loss.exposure_consistency_weight": 1.0, "data.darken_prob": 1.0},
    )
    trainer = Trainer(config, tmp_path / "run", progress=False)
    logs = trainer.train_step(next(_batches(trainer)))
    assert logs["g_exposure_consistency"] > 0
    with pytest.raises(ConfigError, match="exposure_consistency_weight"):
        tiny_config(*tiny_data, **{"loss.exposure_consistency_weight": -1.0})

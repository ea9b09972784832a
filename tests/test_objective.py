"""The objective of one training step: loss weights by hand, the path without local patches, and which
networks each step's gradients reach (the generator step must leave the discriminators alone, and the
discriminator step the generator).

Tiny stand-in networks make every term a number computable by hand:

* the generator adds a learnable constant ``p = 0.25`` to its input (``latent = p``);
* a discriminator scores an image as ``w * mean(image)`` with a learnable ``w``;
* the feature "network" compares ``mean((output - reference)^2)`` (the objective only weighs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from enlightengan.config import LossConfig
from enlightengan.losses.priors import chroma_noise_loss
from enlightengan.models.generator import GeneratorOutput
from enlightengan.models.ops import attention_map
from enlightengan.training.objective import Batch, EnlightenGANObjective
from enlightengan.training.trainer import Trainer

from .conftest import tiny_config

N, S, PATCH = 2, 8, 4
BOX = (0, 0)  # the one local patch: the top-left 4 x 4


class AddConstant(nn.Module):
    """``output = input + p``, ``latent = p``: the generator's residual is one learnable number."""

    def __init__(self, p: float = 0.25) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))
        self.calls = 0

    def forward(self, image: Tensor, gray: Tensor) -> GeneratorOutput:
        self.calls += 1
        latent = self.p.expand_as(image)
        return GeneratorOutput(image + latent, latent)


class MeanScore(nn.Module):
    """A discriminator scoring each image ``w * mean(image)`` (shape ``N``)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.w * x.mean(dim=(1, 2, 3))


class SquaredDifference(nn.Module):
    """Stands in for the self feature preserving loss: ``mean((output - reference)^2)``."""

    def forward(self, output: Tensor, reference: Tensor) -> Tensor:
        return (output - reference).square().mean()


def constant_batch() -> Batch:
    """input -0.5, normal 0.5; low -0.5 except -1 in the patch, so whole-image and patch differ."""
    image = torch.full((N, 3, S, S), -0.5)
    low = image.clone()
    low[:, :, :PATCH, :PATCH] = -1.0
    return Batch(low=low, input=image, gray=attention_map(image), normal=torch.full((N, 3, S, S), 0.5))


def objective(
    config: LossConfig, feature: bool = True
) -> tuple[EnlightenGANObjective, AddConstant, MeanScore, MeanScore]:
    generator, d_global, d_local = AddConstant(), MeanScore(2.0), MeanScore(4.0)
    features = SquaredDifference() if feature else None
    loss = EnlightenGANObjective(generator, d_global, d_local, features, config)  # type: ignore[arg-type]
    return loss, generator, d_global, d_local


def paper_weights(**extra: float) -> LossConfig:
    return LossConfig(
        patch_size=PATCH,
        global_adv_weight=1.0,
        local_adv_weight=0.5,
        feature_weight=2.0,
        patch_feature_weight=3.0,
        **extra,  # type: ignore[arg-type]
    )


# By hand, with output = -0.5 + 0.25 = -0.25 everywhere:
#   global: fake = 2 * -0.25 = -0.5, real = 2 * 0.5 = 1.0
#           G: 0.5 * ((fake - real - 1)^2 + (real - fake)^2) = 0.5 * (6.25 + 2.25) = 4.25
#           D: 0.5 * ((real - fake - 1)^2 + (fake - real)^2) = 0.5 * (0.25 + 2.25) = 1.25
#   local:  fake patches 4 * -0.25 = -1, real patches 4 * 0.5 = 2
#           G: (fake - 1)^2 = 4;  D: 0.5 * ((real - 1)^2 + fake^2) = 1
#   feature: whole image (16 pixels at (-0.25 + 1)^2 = 0.5625, 48 at (-0.25 + 0.5)^2 = 0.0625) = 0.1875
#            patch: 0.5625
G_GLOBAL, G_LOCAL, FEATURE, FEATURE_PATCH = 4.25, 4.0, 0.1875, 0.5625
D_GLOBAL, D_LOCAL = 1.25, 1.0


def test_generator_loss_is_the_weighted_sum_by_hand() -> None:
    loss, *_ = objective(paper_weights())
    step = loss.generator_step(constant_batch(), [BOX])
    logs = {k: float(v) for k, v in step.logs.items()}
    assert logs == pytest.approx(
        {
            "g_adv_global": G_GLOBAL,
            "g_adv_local": G_LOCAL,
            "g_feature": FEATURE,
            "g_feature_patch": FEATURE_PATCH,
            "g_total": 1.0 * G_GLOBAL + 0.5 * G_LOCAL + 2.0 * FEATURE + 3.0 * FEATURE_PATCH,  # 8.3125
        }
    )
    assert float(step.loss.detach()) == pytest.approx(8.3125)
    torch.testing.assert_close(step.output, torch.full((N, 3, S, S), -0.25))
    torch.testing.assert_close(step.latent, torch.full((N, 3, S, S), 0.25))


def test_discriminator_losses_by_hand() -> None:
    loss, *_ = objective(paper_weights())
    batch = constant_batch()
    step = loss.generator_step(batch, [BOX])
    d_global, d_local, logs = loss.discriminator_losses(batch, step.output, [BOX])
    assert float(d_global) == pytest.approx(D_GLOBAL)
    assert d_local is not None and float(d_local) == pytest.approx(D_LOCAL)
    assert {k: float(v) for k, v in logs.items()} == pytest.approx({"d_global": D_GLOBAL, "d_local": D_LOCAL})


def test_without_local_patches_the_local_terms_are_left_out() -> None:
    loss, _, d_global, d_local = objective(paper_weights(local_patches=0))
    batch = constant_batch()
    step = loss.generator_step(batch, [])
    assert set(step.logs) == {"g_adv_global", "g_feature", "g_total"}
    assert float(step.loss.detach()) == pytest.approx(1.0 * G_GLOBAL + 2.0 * FEATURE)
    d_global_loss, d_local_loss, logs = loss.discriminator_losses(batch, step.output, [])
    assert d_local_loss is None and set(logs) == {"d_global"}
    assert float(d_global_loss) == pytest.approx(D_GLOBAL)
    assert d_local.calls == 0 and d_global.calls == 3  # fake and real in the G step, one pass in the D step


def test_without_a_feature_network_the_feature_terms_are_left_out() -> None:
    loss, *_ = objective(paper_weights(), feature=False)
    step = loss.generator_step(constant_batch(), [BOX])
    assert set(step.logs) == {"g_adv_global", "g_adv_local", "g_total"}
    assert float(step.loss.detach()) == pytest.approx(1.0 * G_GLOBAL + 0.5 * G_LOCAL)


def test_identity_and_chroma_terms_come_with_their_weights() -> None:
    # one reddish pixel (R + 0.5 on the [-1, 1] scale, +0.25 in [0, 1]) inside a grey input: its chroma
    # is (2/3, -1/3, -1/3) * 0.25; minus the 3 x 3 mean it leaves 8/9 of that at the pixel and -1/9 at
    # its 8 neighbours, so sum |high-frequency chroma| = 16/9 * (2/3 + 1/3 + 1/3) * 0.25 = 64/27 * 0.25
    # over 3 x 8 x 8 values per image: chroma = 0.25 / 81
    batch = constant_batch()
    batch.input[:, 0, 3, 3] += 0.5
    batch.gray = attention_map(batch.input)
    config = paper_weights(identity_weight=0.5, chroma_weight=0.3)
    loss, generator, *_ = objective(config, feature=False)
    step = loss.generator_step(batch, [])
    logs = {k: float(v) for k, v in step.logs.items()}
    assert logs["g_identity"] == pytest.approx(0.25)  # |G(normal) - normal| = |p|
    assert logs["g_chroma"] == pytest.approx(0.25 / 81)
    assert logs["g_chroma"] == pytest.approx(float(chroma_noise_loss(step.output)))
    assert logs["g_total"] == pytest.approx(logs["g_adv_global"] + 0.5 * 0.25 + 0.3 * 0.25 / 81)
    assert generator.calls == 2  # the batch, then the normal-light crop for the identity term
    plain = objective(paper_weights(), feature=False)[0].generator_step(batch, [])
    assert "g_identity" not in plain.logs and "g_chroma" not in plain.logs  # weight 0: left out


def test_the_generator_step_leaves_the_discriminators_without_gradients() -> None:
    loss, generator, d_global, d_local = objective(paper_weights())
    batch = constant_batch()
    for d in (d_global, d_local):
        d.requires_grad_(False)  # as the trainer does before the generator step
    step = loss.generator_step(batch, [BOX])
    step.loss.backward()
    assert generator.p.grad is not None and float(generator.p.grad) != 0
    assert d_global.w.grad is None and d_local.w.grad is None

    for d in (d_global, d_local):
        d.requires_grad_(True)
    generator.zero_grad(set_to_none=True)
    d_global_loss, d_local_loss, _ = loss.discriminator_losses(batch, step.output, [BOX])
    assert d_local_loss is not None
    (d_global_loss + d_local_loss).backward()
    assert generator.p.grad is None  # the fake is detached: nothing flows back into the generator
    assert d_global.w.grad is not None and d_local.w.grad is not None
    # by hand: real - fake = 0.75 w, so d/dw of 0.5 * ((0.75 w - 1)^2 + (0.75 w)^2) = 0.75 (1.5 w - 1),
    # 1.5 at w = 2
    assert float(d_global.w.grad) == pytest.approx(1.5)


def test_a_training_step_updates_each_network_only_from_its_own_loss(
    tiny_data: tuple[Path, Path], tmp_path: Path
) -> None:
    """Through the trainer: gradient hooks record which step's backward reaches which network."""
    trainer = Trainer(tiny_config(*tiny_data), tmp_path / "run", progress=False)
    phase = {"now": ""}
    reached: dict[str, set[str]] = {"generator": set(), "discriminators": set()}

    def record(network: str) -> None:
        for module in [trainer.generator] if network == "generator" else [trainer.d_global, trainer.d_local]:
            for param in module.parameters():
                param.register_hook(lambda grad, net=network: reached[net].add(phase["now"]))  # type: ignore[misc]

    record("generator")
    record("discriminators")
    generator_step, discriminator_losses = (
        trainer.objective.generator_step,
        trainer.objective.discriminator_losses,
    )

    def g_phase(*args: object, **kwargs: object) -> object:
        phase["now"] = "generator step"
        return generator_step(*args, **kwargs)  # type: ignore[arg-type]

    def d_phase(*args: object, **kwargs: object) -> object:
        phase["now"] = "discriminator step"
        return discriminator_losses(*args, **kwargs)  # type: ignore[arg-type]

    trainer.objective.generator_step = g_phase  # type: ignore[method-assign]
    trainer.objective.discriminator_losses = d_phase  # type: ignore[method-assign]
    trainer.fit(stop_at=2)
    assert reached == {"generator": {"generator step"}, "discriminators": {"discriminator step"}}

"""Adversarial and self feature preserving losses, checked against hand computations on small tensors."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from enlightengan.data.patches import crop_patches, random_patch_boxes
from enlightengan.losses import (
    LSGANLoss,
    PatchLSGANDiscriminatorLoss,
    PatchLSGANGeneratorLoss,
    RelativisticLSGANDiscriminatorLoss,
    RelativisticLSGANGeneratorLoss,
    SelfFeaturePreservingLoss,
    instance_normalize,
    lsgan_loss,
    patch_lsgan_d_loss,
    patch_lsgan_g_loss,
    relativistic_lsgan_d_loss,
    relativistic_lsgan_g_loss,
    self_feature_preserving_loss,
)
from enlightengan.models.discriminator import local_discriminator
from enlightengan.models.vgg import random_vgg16_features

# --- adversarial: hand computations ---------------------------------------------------------------


def test_lsgan_loss_by_hand() -> None:
    # ((0 - 1)^2 + (2 - 1)^2) / 2 = 1
    assert lsgan_loss(torch.tensor([0.0, 2.0]), 1.0).item() == pytest.approx(1.0)
    # (1 + 9 + 1 + 0) / 4 = 2.75
    assert lsgan_loss(torch.tensor([[1.0, 3.0], [-1.0, 0.0]]), 0.0).item() == pytest.approx(2.75)
    assert LSGANLoss(0.0)(torch.tensor([[1.0, 3.0], [-1.0, 0.0]])).item() == pytest.approx(2.75)


REAL = torch.tensor([1.0, 3.0])  # mean 2
FAKE = torch.tensor([0.0, 2.0])  # mean 1


def test_relativistic_d_loss_by_hand() -> None:
    # real - mean(fake) - 1 = [-1, 1] -> mean square 1; fake - mean(real) = [-2, 0] -> mean square 2
    # D loss = (1 + 2) / 2 = 1.5
    assert relativistic_lsgan_d_loss(REAL, FAKE).item() == pytest.approx(1.5)
    assert RelativisticLSGANDiscriminatorLoss()(REAL, FAKE).item() == pytest.approx(1.5)


def test_relativistic_g_loss_by_hand() -> None:
    # fake - mean(real) - 1 = [-3, -1] -> mean square 5; real - mean(fake) = [0, 2] -> mean square 2
    # G loss = (5 + 2) / 2 = 3.5
    assert relativistic_lsgan_g_loss(REAL, FAKE).item() == pytest.approx(3.5)
    assert RelativisticLSGANGeneratorLoss()(REAL, FAKE).item() == pytest.approx(3.5)


def test_relativistic_losses_accept_score_maps_of_different_batch_sizes() -> None:
    real = torch.tensor([[[[2.0]]]])  # mean 2
    fake = torch.tensor([0.0, 1.0, 5.0]).view(3, 1, 1, 1)  # mean 2
    # D: (2 - 2 - 1)^2 = 1; fake - 2 = [-2, -1, 3] -> (4 + 1 + 9) / 3 = 14/3; D = (1 + 14/3) / 2
    assert relativistic_lsgan_d_loss(real, fake).item() == pytest.approx((1 + 14 / 3) / 2)


def test_relativistic_mean_function_is_used_for_centring_only() -> None:
    # a "mean" returning 0 removes the centring: D = (mean((real - 1)^2) + mean(fake^2)) / 2
    # real - 1 = [0, 2] -> 2; fake^2 = [0, 4] -> 2; D = 2. The outer means stay plain batch means.
    zero = lambda x: x.sum() * 0.0  # noqa: E731
    assert relativistic_lsgan_d_loss(REAL, FAKE, mean=zero).item() == pytest.approx(2.0)
    assert RelativisticLSGANDiscriminatorLoss(zero)(REAL, FAKE).item() == pytest.approx(2.0)
    # G with zero centring: mean((fake - 1)^2) = (1 + 1) / 2 = 1; mean(real^2) = (1 + 9) / 2 = 5; G = 3
    assert RelativisticLSGANGeneratorLoss(zero)(REAL, FAKE).item() == pytest.approx(3.0)


PATCH_REAL = torch.tensor([0.5, 1.5, 1.0, 0.0])
PATCH_FAKE = torch.tensor([0.0, 2.0, 1.0, 0.0])


def test_patch_d_loss_by_hand() -> None:
    # mse(real, 1) = (0.25 + 0.25 + 0 + 1) / 4 = 0.375; mse(fake, 0) = (0 + 4 + 1 + 0) / 4 = 1.25
    # D = (0.375 + 1.25) / 2 = 0.8125
    assert patch_lsgan_d_loss(PATCH_REAL, PATCH_FAKE).item() == pytest.approx(0.8125)
    assert PatchLSGANDiscriminatorLoss()(PATCH_REAL, PATCH_FAKE).item() == pytest.approx(0.8125)


def test_patch_g_loss_by_hand() -> None:
    # mse(fake, 1) = (1 + 1 + 0 + 1) / 4 = 0.75
    assert patch_lsgan_g_loss(PATCH_FAKE).item() == pytest.approx(0.75)
    assert PatchLSGANGeneratorLoss()(PATCH_FAKE).item() == pytest.approx(0.75)


def test_stacked_patch_losses_equal_the_average_over_patches() -> None:
    """The paper averages each patch's (halved) loss over the 6 patches; the stack gives the same number."""
    n, count = 2, 6
    generator = torch.Generator().manual_seed(3)
    real = torch.randn(count * n, 1, 3, 3, generator=generator)  # box-major, as crop_patches stacks them
    fake = torch.randn(count * n, 1, 3, 3, generator=generator)
    per_patch_d = [
        0.5 * (((real[k * n : (k + 1) * n] - 1) ** 2).mean() + (fake[k * n : (k + 1) * n] ** 2).mean())
        for k in range(count)
    ]
    per_patch_g = [((fake[k * n : (k + 1) * n] - 1) ** 2).mean() for k in range(count)]
    assert patch_lsgan_d_loss(real, fake).item() == pytest.approx(sum(per_patch_d).item() / count, rel=1e-6)
    assert patch_lsgan_g_loss(fake).item() == pytest.approx(sum(per_patch_g).item() / count, rel=1e-6)


def test_local_discriminator_on_stacked_patches_equals_patch_by_patch() -> None:
    """With the real local discriminator: one forward on the stack == 6 forwards, loss by loss."""
    torch.manual_seed(0)
    d_local = local_discriminator(base_width=8).eval()
    output = torch.rand(2, 3, 48, 48) * 2 - 1
    normal = torch.rand(2, 3, 48, 48) * 2 - 1
    boxes = random_patch_boxes(6, 32, 48, 48, torch.Generator().manual_seed(1))
    with torch.no_grad():
        stacked_d = patch_lsgan_d_loss(
            d_local(crop_patches(normal, boxes, 32)), d_local(crop_patches(output, boxes, 32))
        )
        stacked_g = patch_lsgan_g_loss(d_local(crop_patches(output, boxes, 32)))
        d_each, g_each = [], []
        for top, left in boxes:
            real_s = d_local(normal[:, :, top : top + 32, left : left + 32])
            fake_s = d_local(output[:, :, top : top + 32, left : left + 32])
            d_each.append(0.5 * (((real_s - 1) ** 2).mean() + (fake_s**2).mean()))
            g_each.append(((fake_s - 1) ** 2).mean())
    assert stacked_d.item() == pytest.approx(torch.stack(d_each).mean().item(), rel=1e-5)
    assert stacked_g.item() == pytest.approx(torch.stack(g_each).mean().item(), rel=1e-5)


# --- adversarial: gradients and errors ----------------------------------------------------------


def test_lsgan_gradient_matches_the_derivative() -> None:
    scores = torch.tensor([0.0, 2.0, -1.0, 0.5], requires_grad=True)
    lsgan_loss(scores, 1.0).backward()
    # d/ds mean((s - 1)^2) = 2 (s - 1) / 4
    expected = torch.tensor([-0.5, 0.5, -1.0, -0.25])
    assert scores.grad is not None
    torch.testing.assert_close(scores.grad, expected)


@pytest.mark.parametrize(
    "loss",
    [relativistic_lsgan_d_loss, relativistic_lsgan_g_loss, patch_lsgan_d_loss],
)
def test_two_sided_losses_pass_gradcheck(loss: Callable[[Tensor, Tensor], Tensor]) -> None:
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(3, 1, 2, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(3, 1, 2, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(loss, (real, fake))
    value = loss(real.float(), fake.float())
    value.backward()
    assert real.grad is not None and fake.grad is not None
    assert real.grad.abs().sum() > 0 and fake.grad.abs().sum() > 0


def test_patch_g_loss_gradient() -> None:
    fake = torch.tensor([0.0, 2.0, 1.0, 0.0], requires_grad=True)
    patch_lsgan_g_loss(fake).backward()
    assert fake.grad is not None
    torch.testing.assert_close(fake.grad, torch.tensor([-0.5, 0.5, 0.0, -0.5]))


def test_empty_scores_are_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        relativistic_lsgan_d_loss(torch.empty(0), FAKE)
    with pytest.raises(ValueError, match="empty"):
        patch_lsgan_g_loss(torch.empty(0, 1, 2, 2))


# --- self feature preserving loss ---------------------------------------------------------------


def test_instance_normalize_by_hand() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    # mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    s = math.sqrt(1.25 + 1e-5)
    expected = torch.tensor([[-1.5 / s, -0.5 / s], [0.5 / s, 1.5 / s]]).view(1, 1, 2, 2)
    torch.testing.assert_close(instance_normalize(x), expected)


def test_instance_normalize_matches_instance_norm_2d_per_sample_and_channel() -> None:
    x = torch.randn(3, 5, 4, 6) * torch.arange(1, 6).view(1, 5, 1, 1) + 7
    torch.testing.assert_close(instance_normalize(x), nn.InstanceNorm2d(5, affine=False)(x))
    # each sample and channel on its own: normalising one slice alone gives the same values
    torch.testing.assert_close(instance_normalize(x)[1:2, 2:3], instance_normalize(x[1:2, 2:3]))


def test_instance_normalize_runs_in_float32_for_half_inputs() -> None:
    x = (torch.randn(1, 2, 4, 4) * 300).half()  # squares overflow float16 (max 65504)
    y = instance_normalize(x)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_instance_normalize_errors() -> None:
    with pytest.raises(ValueError, match="N x C x H x W"):
        instance_normalize(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="more than one position"):
        instance_normalize(torch.zeros(2, 512, 1, 1))


def test_self_feature_preserving_loss_by_hand() -> None:
    out = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)  # mean 1, variance 1 -> [-a, a], a = 1/sqrt(1+eps)
    inp = torch.tensor([5.0, 1.0]).view(1, 1, 1, 2)  # mean 3, variance 4 -> [b, -b], b = 2/sqrt(4+eps)
    a = 1 / math.sqrt(1 + 1e-5)
    b = 2 / math.sqrt(4 + 1e-5)
    # differences [-a - b, a + b] -> mean square (a + b)^2
    assert self_feature_preserving_loss(out, inp).item() == pytest.approx((a + b) ** 2, rel=1e-6)


def test_self_feature_preserving_loss_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="feature shapes differ"):
        self_feature_preserving_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 3))


def test_module_ignores_per_channel_gain_and_offset_of_features() -> None:
    """With identity 'features', a per-channel affine change of the image costs (almost) nothing."""
    loss = SelfFeaturePreservingLoss(nn.Identity())
    reference = torch.rand(2, 3, 8, 8) * 2 - 1
    brighter = 0.5 * reference + torch.tensor([0.3, 0.2, 0.1]).view(1, 3, 1, 1)
    assert loss(brighter, reference).item() < 1e-4
    assert loss(torch.rand(2, 3, 8, 8) * 2 - 1, reference).item() > 0.5


def test_module_equals_function_on_features_and_detaches_the_reference() -> None:
    torch.manual_seed(0)
    features = nn.Conv2d(3, 4, 3, padding=1)
    loss = SelfFeaturePreservingLoss(features)
    output = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_(True)
    reference = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_(True)
    value = loss(output, reference)
    expected = self_feature_preserving_loss(features(output), features(reference))
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    features.zero_grad()
    value.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert reference.grad is None  # a fixed target: no gradient through the reference


def test_module_with_vgg_features_gives_gradients_to_the_output_only() -> None:
    with pytest.warns(UserWarning, match="RANDOMLY"):
        vgg = random_vgg16_features(seed=0)
    loss = SelfFeaturePreservingLoss(vgg)
    output = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    reference = torch.rand(2, 3, 16, 16) * 2 - 1
    value = loss(output, reference)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())
    assert loss(reference, reference).item() == pytest.approx(0.0, abs=1e-10)


def test_module_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        SelfFeaturePreservingLoss(nn.Identity())(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))

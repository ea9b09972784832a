"""Adversarial losses of EnlightenGAN (Jiang et al., IEEE TIP 2021, Sec. III-B, Eqs. 1-4).

* Global discriminator: relativistic average least-squares GAN. With ``C(x)`` the discriminator's
  scores and ``mean`` over the batch (and over all processes in a distributed run):

  ``L_D = 1/2 [ mean((C(real) - mean C(fake) - 1)^2) + mean((C(fake) - mean C(real))^2) ]``
  ``L_G = 1/2 [ mean((C(fake) - mean C(real) - 1)^2) + mean((C(real) - mean C(fake))^2) ]``

* Local discriminator: plain least-squares GAN on random patches (real -> 1, fake -> 0 for D;
  fake -> 1 for G). Scores of all patches are stacked in the batch dimension; since the patches have
  equal sizes, the mean over the stack equals the average over patches of each patch's loss.

Scores are any-shaped tensors of unbounded discriminator outputs (no sigmoid).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "PatchLSGANLoss",
    "RelativisticLSGANLoss",
    "lsgan_loss",
    "patch_lsgan_d_loss",
    "patch_lsgan_g_loss",
    "relativistic_lsgan_d_loss",
    "relativistic_lsgan_g_loss",
]

MeanFn = Callable[[Tensor], Tensor]


def lsgan_loss(scores: Tensor, target: float) -> Tensor:
    """Least-squares GAN loss ``mean((scores - target)^2)``."""
    return (scores - target).square().mean()


def relativistic_lsgan_d_loss(real_scores: Tensor, fake_scores: Tensor, mean: MeanFn = torch.mean) -> Tensor:
    """Discriminator loss of the relativistic average LSGAN (real should exceed the average fake by 1).

    Args:
        real_scores: ``D(normal-light images)``.
        fake_scores: ``D(generator outputs)``.
        mean: the batch mean used for the relativistic centring; pass a cross-process mean in
            distributed training so the loss equals that of one process holding the global batch.
    """
    return 0.5 * (lsgan_loss(real_scores - mean(fake_scores), 1.0) + lsgan_loss(fake_scores - mean(real_scores), 0.0))


def relativistic_lsgan_g_loss(real_scores: Tensor, fake_scores: Tensor, mean: MeanFn = torch.mean) -> Tensor:
    """Generator loss of the relativistic average LSGAN: the discriminator loss with real and fake swapped."""
    return relativistic_lsgan_d_loss(fake_scores, real_scores, mean)


def patch_lsgan_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Local discriminator loss: ``1/2 [mse(real, 1) + mse(fake, 0)]`` over the stacked patch scores."""
    return 0.5 * (lsgan_loss(real_scores, 1.0) + lsgan_loss(fake_scores, 0.0))


def patch_lsgan_g_loss(fake_scores: Tensor) -> Tensor:
    """Generator's local adversarial loss: ``mse(fake, 1)`` over the stacked patch scores."""
    return lsgan_loss(fake_scores, 1.0)


class RelativisticLSGANLoss(nn.Module):
    """Module form: ``forward(real_scores, fake_scores, for_discriminator)``."""

    def __init__(self, mean: MeanFn = torch.mean) -> None:
        super().__init__()
        self.mean = mean

    def forward(self, real_scores: Tensor, fake_scores: Tensor, for_discriminator: bool) -> Tensor:
        fn = relativistic_lsgan_d_loss if for_discriminator else relativistic_lsgan_g_loss
        return fn(real_scores, fake_scores, self.mean)


class PatchLSGANLoss(nn.Module):
    """Module form: ``forward(fake_scores, real_scores=None)``; with ``real_scores`` it is the D loss."""

    def forward(self, fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
        if real_scores is None:
            return patch_lsgan_g_loss(fake_scores)
        return patch_lsgan_d_loss(real_scores, fake_scores)

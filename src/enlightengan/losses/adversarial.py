"""Adversarial losses of EnlightenGAN (Jiang et al., IEEE TIP 2021, Sec. III-A, Eqs. 1-4).

* Global discriminator: relativistic average least-squares GAN. With ``C(x)`` the discriminator's
  raw scores and ``mean`` taken over the batch (the inner, centring means over all processes in a
  distributed run)::

      L_D = 1/2 [ mean((C(real) - mean C(fake) - 1)^2) + mean((C(fake) - mean C(real))^2) ]
      L_G = 1/2 [ mean((C(fake) - mean C(real) - 1)^2) + mean((C(real) - mean C(fake))^2) ]

* Local discriminator: plain least-squares GAN on random patches (real -> 1, fake -> 0 for D, each
  term halved; fake -> 1 for G). The scores of all patches are stacked in the batch dimension; the
  patches have equal sizes, so the mean over the stack equals the average over patches of each
  patch's own loss, which is how the paper states it.

Scores are tensors of any shape holding unbounded discriminator outputs (no sigmoid); every loss is a
0-dim tensor. Each loss is a plain function with a thin :class:`torch.nn.Module` beside it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "LSGANLoss",
    "MeanFn",
    "PatchLSGANDiscriminatorLoss",
    "PatchLSGANGeneratorLoss",
    "RelativisticLSGANDiscriminatorLoss",
    "RelativisticLSGANGeneratorLoss",
    "lsgan_loss",
    "patch_lsgan_d_loss",
    "patch_lsgan_g_loss",
    "relativistic_lsgan_d_loss",
    "relativistic_lsgan_g_loss",
]

#: Reduces a tensor of scores to their 0-dim mean (``torch.mean``, or a mean across processes).
MeanFn = Callable[[Tensor], Tensor]


def _check_scores(name: str, scores: Tensor) -> None:
    if scores.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(scores.shape)}): the discriminator saw no images")


def lsgan_loss(scores: Tensor, target: float) -> Tensor:
    """Least-squares GAN loss ``mean((scores - target)^2)`` (Mao et al., ICCV 2017).

    Example:
        >>> lsgan_loss(torch.tensor([0.0, 2.0]), 1.0)
        tensor(1.)
    """
    _check_scores("scores", scores)
    return (scores - target).square().mean()


def relativistic_lsgan_d_loss(real_scores: Tensor, fake_scores: Tensor, mean: MeanFn = torch.mean) -> Tensor:
    """Global discriminator loss: real scores should exceed the average fake score by 1 (paper Eq. 1).

    Args:
        real_scores: ``D(normal-light images)``, any shape.
        fake_scores: ``D(generator outputs)``, any shape.
        mean: the batch mean used for the relativistic centring only. In distributed training pass
            a differentiable cross-process mean; the outer means stay local because
            DistributedDataParallel averages the gradients over processes.

    Returns:
        ``0.5 * (mean((real - mean(fake) - 1)^2) + mean((fake - mean(real))^2))``.
    """
    _check_scores("real_scores", real_scores)
    _check_scores("fake_scores", fake_scores)
    real_term = (real_scores - mean(fake_scores) - 1.0).square()
    fake_term = (fake_scores - mean(real_scores)).square()
    return 0.5 * (real_term.mean() + fake_term.mean())


def relativistic_lsgan_g_loss(real_scores: Tensor, fake_scores: Tensor, mean: MeanFn = torch.mean) -> Tensor:
    """Global generator loss (paper Eq. 2): the discriminator loss with real and fake swapped.

    Returns:
        ``0.5 * (mean((fake - mean(real) - 1)^2) + mean((real - mean(fake))^2))``.
    """
    return relativistic_lsgan_d_loss(fake_scores, real_scores, mean)


def patch_lsgan_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Local discriminator loss (paper Eq. 3): ``0.5 * (mse(real, 1) + mse(fake, 0))``.

    Args:
        real_scores: ``D_local`` of the normal-light patches, all patches stacked in dim 0.
        fake_scores: ``D_local`` of the output patches, stacked the same way.
    """
    return 0.5 * (lsgan_loss(real_scores, 1.0) + lsgan_loss(fake_scores, 0.0))


def patch_lsgan_g_loss(fake_scores: Tensor) -> Tensor:
    """Local generator loss (paper Eq. 4): ``mse(fake, 1)`` over the stacked patch scores."""
    return lsgan_loss(fake_scores, 1.0)


class LSGANLoss(nn.Module):
    """Module form of :func:`lsgan_loss` with a fixed ``target``: ``forward(scores) -> 0-dim``."""

    def __init__(self, target: float) -> None:
        super().__init__()
        self.target = target

    def forward(self, scores: Tensor) -> Tensor:
        return lsgan_loss(scores, self.target)


class RelativisticLSGANDiscriminatorLoss(nn.Module):
    """Module form of :func:`relativistic_lsgan_d_loss`: ``forward(real_scores, fake_scores)``."""

    def __init__(self, mean: MeanFn = torch.mean) -> None:
        super().__init__()
        self.mean = mean

    def forward(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return relativistic_lsgan_d_loss(real_scores, fake_scores, self.mean)


class RelativisticLSGANGeneratorLoss(nn.Module):
    """Module form of :func:`relativistic_lsgan_g_loss`: ``forward(real_scores, fake_scores)``."""

    def __init__(self, mean: MeanFn = torch.mean) -> None:
        super().__init__()
        self.mean = mean

    def forward(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return relativistic_lsgan_g_loss(real_scores, fake_scores, self.mean)


class PatchLSGANDiscriminatorLoss(nn.Module):
    """Module form of :func:`patch_lsgan_d_loss`: ``forward(real_scores, fake_scores)``."""

    def forward(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return patch_lsgan_d_loss(real_scores, fake_scores)


class PatchLSGANGeneratorLoss(nn.Module):
    """Module form of :func:`patch_lsgan_g_loss`: ``forward(fake_scores)``."""

    def forward(self, fake_scores: Tensor) -> Tensor:
        return patch_lsgan_g_loss(fake_scores)

"""Self feature preserving loss (Jiang et al., IEEE TIP 2021, Sec. III-C, Eq. 5).

The distance between VGG-16 features (relu5_1, without the 4th max-pool) of the low-light input and
of the enhanced output, after instance normalisation of both: the features are insensitive to the
change of light but keep the content.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SelfFeaturePreservingLoss", "instance_normalize", "self_feature_preserving_loss"]


def instance_normalize(features: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over H, W to zero mean and unit variance (no affine).

    Same as ``nn.InstanceNorm2d(C, affine=False)`` (biased variance, ``eps`` inside the square root).
    ``features``: ``N x C x H x W``.
    """
    return F.instance_norm(features, eps=eps)


def self_feature_preserving_loss(output_features: Tensor, input_features: Tensor) -> Tensor:
    """Mean squared difference of the instance-normalised features (both ``N x C x H x W``)."""
    if output_features.shape != input_features.shape:
        raise ValueError(f"feature shapes differ: {tuple(output_features.shape)} vs {tuple(input_features.shape)}")
    return (instance_normalize(output_features) - instance_normalize(input_features)).square().mean()


class SelfFeaturePreservingLoss(nn.Module):
    """The loss with its feature network.

    Args:
        features: maps RGB ``[-1, 1]`` images ``N x 3 x H x W`` to features (e.g.
            :class:`~enlightengan.models.vgg.VGG16Features`, frozen).

    ``forward(output, reference)``: both RGB in ``[-1, 1]``; the reference (the low-light input before
    darkening) is a fixed target, so its features are computed without gradient.
    """

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, output: Tensor, reference: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.features(reference)
        return self_feature_preserving_loss(self.features(output), target)

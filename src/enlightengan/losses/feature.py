"""Self feature preserving loss (Jiang et al., IEEE TIP 2021, Sec. III-B, Eq. 5).

The distance between VGG-16 features (relu5_1, without the 4th max-pool; see
:mod:`enlightengan.models.vgg`) of the low-light crop and of the enhanced output, after instance
normalisation of both. Normalising each feature channel per image removes most of the effect of the
change in brightness, so the loss keeps the content without asking the output to stay dark. The paper
applies it to the whole image and to the local patches (weight 1 each).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SelfFeaturePreservingLoss", "instance_normalize", "self_feature_preserving_loss"]


def instance_normalize(features: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over H, W to zero mean and unit variance, without affine.

    ``(x - mean_hw(x)) / sqrt(var_hw(x) + eps)`` with the biased variance: the same as
    ``nn.InstanceNorm2d(C, affine=False)``, which the original code applies to the 512 VGG channels.
    Computed in float32 even for half-precision features, whose squares would overflow.

    Args:
        features: ``N x C x H x W`` with ``H * W > 1``.
        eps: added to the variance.

    Returns:
        ``N x C x H x W`` float32.
    """
    if features.ndim != 4:
        raise ValueError(
            f"instance_normalize expects N x C x H x W features, got shape {tuple(features.shape)}"
        )
    if features.shape[2] * features.shape[3] < 2:
        raise ValueError(
            f"instance normalisation needs more than one position per channel, got features of shape "
            f"{tuple(features.shape)}: use larger images or patches (VGG-16 features are H/8 x W/8)"
        )
    return F.instance_norm(features.float(), eps=eps)


def self_feature_preserving_loss(output_features: Tensor, input_features: Tensor) -> Tensor:
    """Mean squared difference of the instance-normalised features (paper Eq. 5).

    Args:
        output_features: features of the enhanced image, ``N x C x H x W``.
        input_features: features of the low-light crop (before the random darkening), same shape.

    Returns:
        0-dim float32 tensor ``mean((IN(output_features) - IN(input_features))^2)``.
    """
    if output_features.shape != input_features.shape:
        raise ValueError(
            f"feature shapes differ: output {tuple(output_features.shape)}, "
            f"input {tuple(input_features.shape)}"
        )
    return (instance_normalize(output_features) - instance_normalize(input_features)).square().mean()


class SelfFeaturePreservingLoss(nn.Module):
    """The self feature preserving loss together with its (frozen) feature network.

    Args:
        features: maps RGB ``[-1, 1]`` images ``N x 3 x H x W`` to ``N x C x h x w`` features, e.g.
            :class:`enlightengan.models.vgg.VGG16Features` (which applies its own preprocessing).

    ``forward(output, reference)``: both RGB ``N x 3 x H x W`` in ``[-1, 1]``; ``reference`` is the
    low-light crop before darkening. It is a fixed target, so its features are computed under
    :func:`torch.no_grad`; the gradient reaches ``output`` only. Returns a 0-dim tensor.
    """

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, output: Tensor, reference: Tensor) -> Tensor:
        if output.shape != reference.shape:
            raise ValueError(
                f"output {tuple(output.shape)} and reference {tuple(reference.shape)} "
                "must have the same shape"
            )
        with torch.no_grad():
            target = self.features(reference)
        return self_feature_preserving_loss(self.features(output), target)

"""Resolution consistency: the same enhancement whatever resolution the generator sees (beyond the paper).

A fully convolutional generator trained on crops of one size responds to a photo differently when it
sees it at another resolution: its filters and receptive fields cover a different amount of content.
Running the network on a shrunk copy (``enhance --fast``) then gives a different exposure and
colour balance, not only a blurrier result. This loss asks the output on a shrunk input to equal the
full-size output shrunk the same way::

    L = mean | G(shrink(x, s)) - shrink(G(x), s) |,     s ~ U(scale_range)

with ``G(x)`` detached: the full-resolution behaviour is the anchor (it is what the other losses
train), and only the response to fewer pixels is pulled towards it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..models.ops import attention_map, shrink

__all__ = ["resolution_consistency_loss"]


def resolution_consistency_loss(
    generator: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    image: Tensor,
    output: Tensor,
    scale: float,
) -> Tensor:
    """L1 between the generator's output on ``image`` shrunk by ``scale`` and ``output`` shrunk alike.

    Args:
        generator: maps ``(image, gray)`` to ``(output, latent)`` (the training generator).
        image: ``N x 3 x H x W`` generator input in ``[-1, 1]``.
        output: ``N x 3 x H x W``, the generator's output on ``image`` (detached here).
        scale: shrink factor per side, > 1 (:func:`enlightengan.models.ops.shrink`).

    Returns:
        A scalar (mean absolute difference on the ``[-1, 1]`` scale).
    """
    if not scale > 1.0:
        raise ValueError(f"scale must be > 1, got {scale}")
    if output.shape != image.shape:
        raise ValueError(f"output {tuple(output.shape)} must match image {tuple(image.shape)}")
    small = shrink(image, scale)
    small_output, _ = generator(small, attention_map(small))
    with torch.no_grad():
        target = shrink(output.detach(), scale)
    return (small_output - target).abs().mean()

"""Consistency losses beyond the paper: the same enhancement whatever resolution or exposure the input has.

Resolution consistency:

A fully convolutional generator trained on crops of one size responds to a photo differently when it
sees it at another resolution: its filters and receptive fields cover a different amount of content.
Running the network on a shrunk copy (``enhance --fast``) then gives a different exposure and
colour balance, not only a blurrier result. This loss asks the output on a shrunk input to equal the
full-size output shrunk the same way::

    L = mean | G(shrink(x, s)) - shrink(G(x), s) |,     s ~ U(scale_range)

with ``G(x)`` detached: the full-resolution behaviour is the anchor (it is what the other losses
train), and only the response to fewer pixels is pulled towards it.

Exposure consistency: the training pipeline already feeds the generator, half of the time, a darker copy
of the low-light crop (its values divided by a factor of 2 to 4, the paper's augmentation). This loss
asks the output on that darker copy to equal the (detached) output on the crop itself::

    L = mean over darkened items | G(x / k) - G(x) |

so a photo taken with less light comes out as the same picture, not a darker or differently coloured
one; the brighter input, which holds more of the scene, is the anchor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..models.ops import attention_map, shrink

__all__ = ["exposure_consistency_loss", "resolution_consistency_loss"]


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


def exposure_consistency_loss(
    generator: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    low: Tensor,
    image: Tensor,
    output: Tensor,
) -> Tensor:
    """L1 between the generator's output on darkened inputs and its (detached) output on the originals.

    Args:
        generator: maps ``(image, gray)`` to ``(output, latent)`` (the training generator).
        low: ``N x 3 x H x W`` low-light crops in ``[-1, 1]`` before the random darkening.
        image: ``N x 3 x H x W`` the generator's inputs in ``[-1, 1]``: an item equal to its ``low`` was
            not darkened and does not count.
        output: ``N x 3 x H x W``, the generator's output on ``image`` (attached: it is what is pulled).

    Returns:
        A scalar (mean absolute difference on the ``[-1, 1]`` scale over the darkened items); 0 when no
        item of the batch was darkened.
    """
    if not low.shape == image.shape == output.shape:
        raise ValueError(
            f"low {tuple(low.shape)}, image {tuple(image.shape)} and output {tuple(output.shape)} "
            "must have the same shape"
        )
    darkened = (image != low).flatten(1).any(dim=1)
    if not bool(darkened.any()):
        return output.sum() * 0.0
    anchor_input = low[darkened]
    with torch.no_grad():
        anchor, _ = generator(anchor_input, attention_map(anchor_input))
    return (output[darkened] - anchor).abs().mean()

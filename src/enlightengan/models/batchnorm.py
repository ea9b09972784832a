"""Precise BatchNorm statistics: recompute a trained generator's running means and variances.

BatchNorm layers normalise with batch statistics while training and with running averages (momentum
0.1 over the last few dozen training batches) at inference. When training batches are small crops of
randomly darkened images (a CPU recipe: batch 4 of 96 px crops), those running averages can be far
from the statistics of whole photos, and an eval-mode generator then produces colour casts that the
train-mode one does not. Re-estimating the statistics on whole representative images after training,
with all weights frozen, fixes this without changing what was learnt ("precise BN", Wu and Johnson,
*Rethinking "Batch" in BatchNorm*, 2021). Only the ``running_mean`` / ``running_var`` buffers change.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "STATS_MAX_PIXELS",
    "FixedStatisticsBatchNorm2d",
    "fix_batchnorm_statistics",
    "per_image_model",
    "recalibrate_batchnorm",
    "replace_batchnorm",
    "statistics_image",
]

#: Largest image (in pixels) whose BatchNorm statistics :func:`per_image_model` measures as it is;
#: larger images are shrunk to this size first (statistics are averages: they change little).
STATS_MAX_PIXELS = 1_000_000

#: Images whose sides are both at most this are enlarged to twice it for their statistics.
THUMBNAIL_SIDE = 16

_Module = TypeVar("_Module", bound=nn.Module)


def recalibrate_batchnorm(model: nn.Module, images: Iterable[Tensor]) -> int:
    """Replace every BatchNorm layer's running statistics by their average over ``images``.

    Each image is one forward pass in training mode under ``torch.no_grad()``; each BatchNorm layer's
    ``running_mean`` becomes the mean over images of the per-image channel means, and ``running_var``
    the mean of the per-image (unbiased) channel variances: PyTorch's cumulative average
    (``momentum=None``). Weights are not touched. The model's mode and the layers' momenta are
    restored afterwards.

    Args:
        model: a generator (any module holding ``nn.BatchNorm2d`` layers), on its device.
        images: ``1 x 3 x H x W`` (or ``N x 3 x H x W``) RGB tensors in ``[-1, 1]``; they are moved to
            the model's device.

    Returns:
        How many forward passes were used.

    Raises:
        ValueError: ``images`` is empty (the statistics would be left reset).
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    momenta = [layer.momentum for layer in layers]
    saved = [(layer.running_mean.clone(), layer.running_var.clone()) for layer in layers]  # type: ignore[union-attr]
    device = next(model.parameters()).device
    count = 0
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average over all batches
        model.train()
        with torch.no_grad():
            for image in images:
                model(image.to(device, torch.float32))
                count += 1
        if count == 0:
            raise ValueError("recalibrate_batchnorm needs at least one image")
    except BaseException:
        with torch.no_grad():
            for layer, (mean, var) in zip(layers, saved, strict=True):
                layer.running_mean.copy_(mean)  # type: ignore[union-attr]
                layer.running_var.copy_(var)  # type: ignore[union-attr]
        raise
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.train(was_training)
    return count


def statistics_image(image: Tensor, max_pixels: int = STATS_MAX_PIXELS) -> Tensor:
    """The copy of ``image`` whose BatchNorm statistics stand for it (:func:`per_image_model`).

    Args:
        image: ``1 x 3 x H x W`` RGB in ``[-1, 1]``.
        max_pixels: images with more pixels are shrunk (antialiased bilinear, sides rounded, at least
            16 pixels) to about this many; smaller ones are returned as they are, except thumbnails
            of at most 16 x 16 pixels, which are enlarged to 32 x 32 (bilinear): padded to 16 x 16
            they would leave one value per channel at the deepest level, which has no variance.

    Returns:
        ``1 x 3 x h x w`` in ``[-1, 1]``.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"per-image statistics take one image, 1 x 3 x H x W, got {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if height <= THUMBNAIL_SIDE and width <= THUMBNAIL_SIDE:
        size = (2 * THUMBNAIL_SIDE, 2 * THUMBNAIL_SIDE)
    elif height * width > max_pixels:
        factor = (max_pixels / (height * width)) ** 0.5
        size = (max(16, round(height * factor)), max(16, round(width * factor)))
    else:
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def per_image_model(model: _Module, image: Tensor, max_pixels: int = STATS_MAX_PIXELS) -> _Module:
    """A copy of ``model`` in eval mode whose BatchNorm statistics are those of ``image``.

    What a generator with ``batchnorm="per-image"`` computes: every image normalised with its own
    statistics (training-mode BatchNorm on a batch of one: the mean and the *biased* variance of each
    channel), the mode of the bundled default model, whose running averages (gathered on small
    training crops) do not describe whole photos. (The released weights are run with their running
    averages: the original test code puts its generator in eval mode.) Measuring the statistics in one
    pass and then running in eval mode keeps tiled inference of large images exact; on the statistics
    image itself the copy computes exactly what the training-mode model computes.

    Args:
        model: the generator (not modified).
        image: ``1 x 3 x H x W`` RGB in ``[-1, 1]``.
        max_pixels: images with more pixels are shrunk (antialiased bilinear) to about this many
            before the statistics are measured, so memory stays bounded (:func:`statistics_image`).

    Returns:
        The copy, on the model's device, in eval mode; its ``running_mean`` and ``running_var`` are
        the statistics each BatchNorm layer normalised with.
    """
    source = statistics_image(image, max_pixels)
    clone = copy.deepcopy(model)
    layers = [m for m in clone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    measured: dict[nn.Module, tuple[Tensor, Tensor]] = {}

    def record(layer: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        var, mean = torch.var_mean(inputs[0], dim=(0, 2, 3), unbiased=False)
        measured[layer] = (mean, var)

    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    device = next(clone.parameters()).device
    try:
        clone.train()
        with torch.no_grad():
            clone(source.to(device, torch.float32))
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for layer in layers:
            mean, var = measured[layer]
            layer.running_mean.copy_(mean)  # type: ignore[union-attr]
            layer.running_var.copy_(var)  # type: ignore[union-attr]
    return clone.eval()


class FixedStatisticsBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm layer that always normalises with its stored statistics, in training mode too.

    With the statistics left at their initial values (mean 0, variance 1) the layer is a learned
    per-channel scale and shift: training and inference then compute the same function, whatever the
    batch, the crop size or the photo. Parameter and buffer names equal ``nn.BatchNorm2d``'s, so a
    generator trained with these layers saves and loads as an ordinary one that runs in eval mode
    (``GeneratorConfig(batchnorm="running")``), and tiles of a large photo are exact.

    Shapes: ``N x C x H x W`` in, the same out.
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.batch_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            False,
            0.0,
            self.eps,
        )


def replace_batchnorm(module: nn.Module, layer: type[nn.BatchNorm2d]) -> nn.Module:
    """Swap every plain ``nn.BatchNorm2d`` of ``module`` (in place, at any depth) for a ``layer``.

    ``layer`` is a subclass with the same constructor (:class:`FixedStatisticsBatchNorm2d`, or the
    cross-process BatchNorm of distributed training). Parameters and buffers are copied under the same
    names, so the state dict is unchanged. Returns ``module``.
    """
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = layer(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            ).to(device=child.weight.device if child.affine else None)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            replace_batchnorm(child, layer)
    return module


def fix_batchnorm_statistics(module: nn.Module) -> nn.Module:
    """Swap every ``nn.BatchNorm2d`` of ``module`` (in place) for a :class:`FixedStatisticsBatchNorm2d`.

    Parameters and buffers are copied, so the state dict is unchanged. Returns ``module``.
    """
    return replace_batchnorm(module, FixedStatisticsBatchNorm2d)

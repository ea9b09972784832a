"""VGG-16 features for the self feature preserving loss (Simonyan & Zisserman 2015; EnlightenGAN Sec. III-C).

Only the layers up to ``relu5_1`` are built, and the 4th max-pool (after conv4_3) is left out, as in
the released EnlightenGAN: features are ``N x 512 x H/8 x W/8``. Two weight files are accepted, and the
input preprocessing follows the file:

* ``"torchvision"``: torchvision's ImageNet ``vgg16-397923af.pth`` (keys ``features.0.weight`` ...):
  RGB in ``[0, 1]`` normalised with the ImageNet mean and standard deviation;
* ``"caffe"``: the original repository's ``vgg16.weight`` (converted from Caffe; keys ``conv1_1.weight``
  ... ``conv5_3.bias``): BGR in ``[0, 255]`` without mean subtraction (REFERENCE.md).

Both take RGB images in ``[-1, 1]``; the conversion happens inside :meth:`VGG16Features.forward`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["VGG16Features", "load_vgg16_features", "random_vgg16_features"]

InputFormat = Literal["torchvision", "caffe"]

#: (name, in, out) of the convolutions up to conv5_1; "pool" marks a 2x2 max-pool
_LAYERS: list[tuple[str, int, int] | str] = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), "pool",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),  # no 4th pool
    ("conv5_1", 512, 512),
]  # fmt: skip
#: index of each conv in torchvision's ``vgg16().features`` Sequential
_TORCHVISION_INDEX = {
    "conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
    "conv4_1": 17, "conv4_2": 19, "conv4_3": 21, "conv5_1": 24,
}  # fmt: skip
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

log = logging.getLogger(__name__)


class VGG16Features(nn.Module):
    """Frozen VGG-16 up to relu5_1 without the 4th max-pool.

    Args:
        input_format: the preprocessing the weights expect (see the module docstring).

    Shapes: ``forward(image)``: RGB ``N x 3 x H x W`` in ``[-1, 1]`` -> ``N x 512 x H/8 x W/8`` (floor).
    """

    def __init__(self, input_format: InputFormat = "torchvision") -> None:
        super().__init__()
        if input_format not in ("torchvision", "caffe"):
            raise ValueError(f"input_format must be 'torchvision' or 'caffe', got {input_format!r}")
        self.input_format: InputFormat = input_format
        self.order: list[str] = []
        for layer in _LAYERS:
            if layer == "pool":
                self.order.append("pool")
            else:
                name, cin, cout = layer
                self.add_module(name, nn.Conv2d(cin, cout, 3, padding=1))
                self.order.append(name)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        # A fixed feature extractor: never switch to training behaviour (it has no such layers, but
        # keep ``.training`` False for clarity).
        return super().train(False)

    def preprocess(self, image: Tensor) -> Tensor:
        """RGB ``[-1, 1]`` -> what the weights expect."""
        unit = (image + 1.0) / 2.0
        if self.input_format == "torchvision":
            return (unit - self.mean) / self.std
        return unit.flip(1) * 255.0  # RGB -> BGR, [0, 255], no mean subtraction

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W RGB, got {tuple(image.shape)}")
        h = self.preprocess(image)
        for name in self.order:
            h = F.max_pool2d(h, 2) if name == "pool" else F.relu(getattr(self, name)(h))
        return h


def _convert(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], InputFormat]:
    """Map a torchvision or caffe-converted VGG-16 state dict onto :class:`VGG16Features` keys."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if "features.0.weight" in state:
        fmt: InputFormat = "torchvision"
        source = {name: f"features.{i}" for name, i in _TORCHVISION_INDEX.items()}
    elif "conv1_1.weight" in state and "conv5_1.weight" in state:
        fmt = "caffe"
        source = {name: name for name in _TORCHVISION_INDEX}
    else:
        raise ValueError(
            "not a VGG-16 state dict: expected torchvision's keys (features.0.weight, ...) or the "
            f"caffe-converted keys (conv1_1.weight, ...); first keys: {sorted(state)[:4]}"
        )
    out: dict[str, Tensor] = {}
    reference = VGG16Features(fmt).state_dict()
    for name, prefix in source.items():
        for kind in ("weight", "bias"):
            key = f"{prefix}.{kind}"
            if key not in state:
                raise ValueError(f"VGG-16 weights lack {key}")
            if state[key].shape != reference[f"{name}.{kind}"].shape:
                raise ValueError(
                    f"VGG-16 weights {key} has shape {tuple(state[key].shape)}, "
                    f"expected {tuple(reference[f'{name}.{kind}'].shape)}"
                )
            out[f"{name}.{kind}"] = state[key].float()
    return out, fmt


def load_vgg16_features(
    path: str | os.PathLike[str] | None,
    *,
    download: bool = True,
    progress: bool = True,
) -> VGG16Features:
    """Build the frozen feature network from a weights file (format detected from its keys).

    Args:
        path: torchvision's ``vgg16-397923af.pth`` or the original ``vgg16.weight``; None fetches
            torchvision's file into the torch hub cache (see :mod:`enlightengan.hub`).
        download: allow that download (else a missing cached file is an error).
        progress: show a download progress bar.

    Raises:
        enlightengan.hub.WeightsUnavailableError: no file given and it cannot be downloaded.
        ValueError: the file is not a VGG-16 state dict.
    """
    from ..hub import VGG16_TORCHVISION, cached_path

    file = Path(path) if path is not None else cached_path(VGG16_TORCHVISION, download=download, progress=progress)
    if not file.is_file():
        raise FileNotFoundError(f"VGG-16 weights not found: {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read VGG-16 weights {file}: {exc}") from exc
    if not isinstance(state, Mapping):
        raise ValueError(f"{file} does not hold a state dict")
    converted, fmt = _convert(state)
    model = VGG16Features(fmt)
    model.load_state_dict(converted, strict=True)
    return model


def random_vgg16_features(seed: int = 0) -> VGG16Features:
    """A RANDOMLY initialised VGG-16 (Kaiming-normal convs): only for trying training without the weights.

    Random features do not keep image content the way ImageNet features do; expect blobs and halos.
    """
    message = (
        "using a RANDOMLY initialised VGG-16 for the self feature preserving loss: it does not keep content "
        "like ImageNet features; results will differ from the paper"
    )
    warnings.warn(message, UserWarning, stacklevel=2)
    log.warning(message)
    generator = torch.Generator().manual_seed(seed)
    model = VGG16Features("torchvision")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * 9
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                module.bias.zero_()
    return model

"""VGG-16 features for the self feature preserving loss (Simonyan & Zisserman 2015; EnlightenGAN Sec. III-B).

Only the layers up to ``relu5_1`` are built, and the 4th max-pool (after conv4_3) is left out, as in
the released EnlightenGAN: three 2 x 2 max-pools, so features are ``N x 512 x H/8 x W/8`` (floor).
Two weight files are accepted, and the input preprocessing follows the file:

* ``"torchvision"``: torchvision's ImageNet ``vgg16-397923af.pth`` (keys ``features.0.weight`` ...
  ``classifier.6.bias``): RGB in ``[0, 1]`` normalised with the ImageNet mean ``(0.485, 0.456, 0.406)``
  and standard deviation ``(0.229, 0.224, 0.225)``, the input it was trained on;
* ``"caffe"``: the original repository's ``vgg16.weight`` (converted from Caffe through Torch7; keys
  ``conv1_1.weight`` ... ``conv5_3.bias``): BGR in ``[0, 255]`` without mean subtraction, which is how
  the released EnlightenGAN was trained.

Either way :meth:`VGG16Features.forward` takes RGB images in ``[-1, 1]`` and converts them itself.
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

from ..weights.downloads import VGG16_TORCHVISION, cached_path

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InputFormat",
    "VGG16Features",
    "load_vgg16_features",
    "random_vgg16_features",
    "vgg16_features_from_state_dict",
]

#: The preprocessing a weights file expects (see the module docstring).
InputFormat = Literal["torchvision", "caffe"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: (name, in channels, out channels) of the convolutions up to conv5_1; "pool" is a 2 x 2 max-pool
_LAYERS: list[tuple[str, int, int] | str] = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), "pool",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),  # no 4th pool
    ("conv5_1", 512, 512),
]  # fmt: skip
_CONVS = [layer for layer in _LAYERS if isinstance(layer, tuple)]

#: index of each conv in torchvision's ``vgg16().features`` Sequential (ReLUs and pools in between)
_TORCHVISION_INDEX = {
    "conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
    "conv4_1": 17, "conv4_2": 19, "conv4_3": 21, "conv5_1": 24, "conv5_2": 26, "conv5_3": 28,
}  # fmt: skip
#: keys of the full files that this truncated network does not use (later convs, the classifier)
_UNUSED = {
    "torchvision": {f"{kind}.{i}.{p}" for kind, ids in (("features", (26, 28)), ("classifier", (0, 3, 6)))
                    for i in ids for p in ("weight", "bias")},
    "caffe": {f"conv5_{i}.{p}" for i in (2, 3) for p in ("weight", "bias")},
}  # fmt: skip

log = logging.getLogger(__name__)


class VGG16Features(nn.Module):
    """Frozen VGG-16 up to relu5_1, without the 4th max-pool.

    Args:
        input_format: the preprocessing the weights expect: ``"torchvision"`` (RGB ``[0, 1]``, ImageNet
            mean/std) or ``"caffe"`` (BGR ``[0, 255]``, no mean subtraction).

    Shapes:
        ``forward(image)``: RGB ``N x 3 x H x W`` in ``[-1, 1]`` (``H, W >= 8``) ->
        ``N x 512 x floor(H/8) x floor(W/8)``, non-negative (after the ReLU).

    The parameters never require gradients and the module stays in eval mode (``train()`` is a no-op),
    but gradients flow through it to the input. Modules are named ``conv1_1`` ... ``conv5_1``.
    """

    input_format: InputFormat
    mean: Tensor
    std: Tensor

    def __init__(self, input_format: InputFormat = "torchvision") -> None:
        super().__init__()
        if input_format not in ("torchvision", "caffe"):
            raise ValueError(f"input_format must be 'torchvision' or 'caffe', got {input_format!r}")
        self.input_format = input_format
        self._order: list[str] = []
        for layer in _LAYERS:
            if isinstance(layer, str):
                self._order.append(layer)
            else:
                name, cin, cout = layer
                self.add_module(name, nn.Conv2d(cin, cout, kernel_size=3, padding=1))
                self._order.append(name)
        # not in the state dict: they follow from input_format, not from the weights file
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGG16Features:
        """Stay in eval mode: a parent's ``.train()`` must not change a fixed feature extractor."""
        return super().train(False)

    def preprocess(self, image: Tensor) -> Tensor:
        """RGB ``[-1, 1]`` -> the input the weights expect (see the class docstring), ``N x 3 x H x W``."""
        unit = (image + 1.0) / 2.0
        if self.input_format == "torchvision":
            return (unit - self.mean) / self.std
        return unit.flip(1) * 255.0  # RGB -> BGR, [0, 255], no mean subtraction (as the original)

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(
                f"VGG16Features expects RGB images N x 3 x H x W, got shape {tuple(image.shape)}"
            )
        if image.shape[2] < 8 or image.shape[3] < 8:
            raise ValueError(
                f"VGG16Features needs images of at least 8 x 8 pixels, got {tuple(image.shape[2:])}"
            )
        h = self.preprocess(image)
        for name in self._order:
            h = F.max_pool2d(h, 2) if name == "pool" else F.relu(getattr(self, name)(h))
        return h


def _convert(state: Mapping[str, object], source: str) -> tuple[dict[str, Tensor], InputFormat]:
    """Map a torchvision or caffe-converted VGG-16 state dict onto :class:`VGG16Features` keys.

    Every key must belong to that VGG-16 layout, every conv up to conv5_1 must be present with its
    torchvision shape; later layers of the full network are accepted and dropped.
    """
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    fmt: InputFormat
    if "features.0.weight" in state:
        fmt = "torchvision"
        names = {name: f"features.{_TORCHVISION_INDEX[name]}" for name, _, _ in _CONVS}
    elif "conv1_1.weight" in state:
        fmt = "caffe"
        names = {name: name for name, _, _ in _CONVS}
    else:
        raise ValueError(
            f"{source} is not a VGG-16 state dict: expected torchvision's keys (features.0.weight, ...) or "
            "the original EnlightenGAN vgg16.weight keys (conv1_1.weight, ...); "
            f"its first keys are {sorted(state)[:4]}"
        )
    expected = {
        f"{names[name]}.{p}": (name, p, cin, cout) for name, cin, cout in _CONVS for p in ("weight", "bias")
    }
    unknown = sorted(set(state) - set(expected) - _UNUSED[fmt])
    if unknown:
        raise ValueError(f"{source} ({fmt} VGG-16 layout) has unexpected keys: {unknown[:6]}")
    out: dict[str, Tensor] = {}
    for key, (name, p, cin, cout) in expected.items():
        if key not in state:
            raise ValueError(f"{source} ({fmt} VGG-16 layout) lacks {key}: the file is incomplete")
        value = state[key]
        shape = (cout, cin, 3, 3) if p == "weight" else (cout,)
        if not isinstance(value, Tensor) or tuple(value.shape) != shape:
            found = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{source}: {key} has shape {found}, expected {shape} for VGG-16's {name}")
        if not value.is_floating_point():
            raise ValueError(f"{source}: {key} holds {value.dtype} values, expected floating point weights")
        out[f"{name}.{p}"] = value.float()
    return out, fmt


def vgg16_features_from_state_dict(state: Mapping[str, object], source: str = "state dict") -> VGG16Features:
    """Build the frozen network from a torchvision or caffe-layout state dict (format from its keys).

    Raises:
        ValueError: unknown layout, unexpected or missing keys, wrong shapes (named in the message).
    """
    converted, fmt = _convert(state, source)
    model = VGG16Features(fmt)
    model.load_state_dict(converted, strict=True)
    return model


def load_vgg16_features(
    path: str | os.PathLike[str] | None,
    *,
    allow_random: bool = False,
    download: bool = True,
    progress: bool = True,
    seed: int = 0,
) -> VGG16Features:
    """Build the frozen feature network from a weights file, its format detected from the keys.

    Args:
        path: torchvision's ``vgg16-397923af.pth`` or the original repository's ``vgg16.weight``
            (``module.`` prefixes are removed). None fetches torchvision's file into the torch hub
            cache (:data:`enlightengan.weights.VGG16_TORCHVISION`, SHA-256 checked). The string
            ``"random"`` asks for :func:`random_vgg16_features` and needs ``allow_random=True``.
        allow_random: accept ``path="random"`` (only when the user asked for it explicitly).
        download: allow the download when ``path`` is None (else a file missing from the cache is an error).
        progress: show a progress bar while downloading.
        seed: the seed of the random initialisation for ``path="random"``.

    Returns:
        A frozen :class:`VGG16Features` whose ``input_format`` follows the file.

    Raises:
        enlightengan.weights.WeightsUnavailableError: ``path`` is None and the file can be neither found in
            the cache nor downloaded; the message says what to fetch and where to put it.
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a VGG-16 state dict (or not loadable with ``weights_only=True``), or
            ``"random"`` without ``allow_random``.
    """
    if path is not None and os.fspath(path) == "random":
        if not allow_random:
            raise ValueError(
                "a randomly initialised VGG-16 must be asked for explicitly (--feature-net random, "
                "or allow_random=True); give the path of vgg16-397923af.pth or vgg16.weight instead"
            )
        return random_vgg16_features(seed)
    if path is None:
        file = cached_path(VGG16_TORCHVISION, download=download, progress=progress)
    else:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(
                f"VGG-16 weights not found: {file} (give torchvision's vgg16-397923af.pth or the original "
                "EnlightenGAN vgg16.weight, or no path to download torchvision's file)"
            )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors come in many types
        raise ValueError(
            f"cannot read VGG-16 weights from {file} with weights_only=True ({type(exc).__name__}: {exc}); "
            "give a state dict file such as torchvision's vgg16-397923af.pth"
        ) from exc
    if not isinstance(state, Mapping):
        raise ValueError(f"{file} holds a {type(state).__name__}, not a VGG-16 state dict")
    model = vgg16_features_from_state_dict(state, str(file))
    log.info("VGG-16 features from %s (%s preprocessing)", file, model.input_format)
    return model


def random_vgg16_features(seed: int = 0) -> VGG16Features:
    """A RANDOMLY initialised VGG-16 (Kaiming-normal convs, zero biases): only for trying training out.

    Random features do not keep image content the way ImageNet features do, so results differ from
    the paper's; the function warns (``warnings`` and ``logging``) every time. Deterministic in ``seed``.
    Uses the ``"torchvision"`` preprocessing.
    """
    message = (
        "the self feature preserving loss uses a RANDOMLY INITIALISED VGG-16, not ImageNet weights: it does "
        "not keep image content like the paper's features, and results will differ from the paper"
    )
    warnings.warn(message, UserWarning, stacklevel=2)
    log.warning(message)
    generator = torch.Generator().manual_seed(seed)
    model = VGG16Features("torchvision")
    with torch.no_grad():
        for name, cin, _ in _CONVS:
            conv: nn.Conv2d = getattr(model, name)
            std = (2.0 / (cin * 9)) ** 0.5  # Kaiming normal, fan-in, for ReLU
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
            if conv.bias is not None:
                conv.bias.zero_()
    return model

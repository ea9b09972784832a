"""The EnlightenGAN generator: an attention-guided U-Net (Jiang et al., IEEE TIP 2021, Sec. III-C).

This is the released configuration of the authors' code (``sid_unet_resize`` with self-attention,
times-residual, BatchNorm and skip = 1). Layer names equal the keys of the released checkpoint
``200_net_G_A.pth`` (after its ``module.`` prefix is removed), so the released weights load with
``strict=True``.

Conventions (those of the released code; docs/ARCHITECTURE.md):

* images are RGB tensors in ``[-1, 1]``, shape ``N x 3 x H x W``;
* the attention map is ``1 - luminance`` in ``[0, 1]``, shape ``N x 1 x H x W``
  (:func:`~enlightengan.models.ops.attention_map`);
* each convolution is followed by LeakyReLU(0.2) and *then* BatchNorm (conv9_2 has no BatchNorm);
* upsampling is bilinear with ``align_corners=True`` (torch 0.3 semantics, which the weights were
  trained with).
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..formats import LUMA_WEIGHTS
from .ops import attention_map, crop_padding, pad_to_multiple

__all__ = [
    "BATCHNORM_MODES",
    "SLOPE",
    "BatchNormMode",
    "EnlightenGenerator",
    "GeneratorConfig",
    "GeneratorOutput",
]

#: Which statistics the generator's BatchNorm layers normalise with at inference (see
#: :class:`GeneratorConfig`): ``"running"`` or ``"per-image"``.
BatchNormMode = Literal["running", "per-image"]

#: The values of :data:`BatchNormMode`, in that order (``--batchnorm`` choices).
BATCHNORM_MODES: tuple[BatchNormMode, ...] = typing.get_args(BatchNormMode)

#: Negative slope of the generator's LeakyReLU (released model).
SLOPE = 0.2


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`EnlightenGenerator`.

    Attributes:
        base_width: channels of the first level; levels use 1, 2, 4, 8, 16 times this.
            32 is the published model; narrower widths (8, 16) give light variants.
        batchnorm: which statistics BatchNorm uses at inference (:data:`BatchNormMode`).
            ``"running"`` (default): the stored running averages, in eval mode. This is how the
            released weights are run (the original test code puts its generator in eval mode) and
            how the official fixture is defined. ``"per-image"``: each image's own statistics (the
            mean and biased variance of each channel: training-mode BatchNorm on a batch of one), for
            generators whose running averages, gathered on small training crops, do not describe
            whole photos (the bundled default model, docs/MODEL_CARD.md). :class:`enlightengan.Enhancer`
            measures them inside the pass for images of at most ``STATS_MAX_PIXELS`` that run in one
            piece, and otherwise first on the image (shrunk beyond that size), then runs the usual
            exact, tiled path with them. The module itself always computes as the mode it is in.
        exposure_fade: ``(low, high)`` mean brightnesses (BT.601 luminance of the ``[0, 1]`` input), or
            ``None`` (the published behaviour). With it, :class:`enlightengan.Enhancer` scales each
            photo's residual by a factor that is 1 for photos darker on average than ``low``, 0 for
            photos brighter than ``high``, and a smoothstep between: a well-exposed photo is left as it
            is, a dim one gets the full enhancement (:func:`exposure_fade_factor`). It is a property of
            the weights (what they were trained and validated for), so it travels in the file; the
            network itself is unchanged.
    """

    base_width: int = 32
    batchnorm: BatchNormMode = "running"
    exposure_fade: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.base_width, int) or self.base_width < 1:
            raise ValueError(f"base_width must be a positive integer, got {self.base_width!r}")
        if self.batchnorm not in BATCHNORM_MODES:
            modes = " or ".join(repr(mode) for mode in BATCHNORM_MODES)
            raise ValueError(f"batchnorm must be {modes}, got {self.batchnorm!r}")
        if self.exposure_fade is not None:
            low, high = (float(v) for v in self.exposure_fade)
            if not 0.0 <= low < high <= 1.0:
                raise ValueError(
                    f"exposure_fade must be (low, high) with 0 <= low < high <= 1, got {self.exposure_fade}"
                )
            object.__setattr__(self, "exposure_fade", (low, high))

    @property
    def per_image(self) -> bool:
        """Whether BatchNorm normalises each image with its own statistics (``batchnorm="per-image"``)."""
        return self.batchnorm == "per-image"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        unknown = set(data) - {"base_width", "batchnorm", "exposure_fade"}
        if unknown:
            raise ValueError(f"unknown generator config keys: {sorted(unknown)}")
        fade = data.get("exposure_fade")
        return cls(**{**data, "exposure_fade": None if fade is None else tuple(fade)})


def exposure_fade_factor(image: Tensor, fade: tuple[float, float]) -> Tensor:
    """Per-image residual scale of :attr:`GeneratorConfig.exposure_fade`.

    Args:
        image: ``N x 3 x H x W`` RGB in ``[-1, 1]``.
        fade: ``(low, high)`` mean brightnesses in ``[0, 1]``.

    Returns:
        ``N x 1 x 1 x 1``: ``smoothstep((high - m) / (high - low))`` of each image's mean BT.601
        luminance ``m``: 1 at or below ``low``, 0 at or above ``high``.
    """
    low, high = fade
    # the mean of the (linear) luminance from the channel means: no full-size map
    means = image.mean(dim=(2, 3), keepdim=True).add(1.0).div(2.0)
    weights = means.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    brightness = (means * weights).sum(dim=1, keepdim=True)
    t = ((high - brightness) / (high - low)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class GeneratorOutput(NamedTuple):
    """What the generator returns; both ``N x 3 x H x W`` at the input's size."""

    #: the enhanced image, ``latent + input``, nominally ``[-1, 1]`` (not clipped; no tanh).
    output: Tensor
    #: the attention-weighted residual ``conv10(...) * gray``.
    latent: Tensor


class EnlightenGenerator(nn.Module):
    """Attention-guided U-Net generator of EnlightenGAN.

    Args:
        config: the architecture; ``GeneratorConfig()`` is the published model (8,636,675 parameters).

    Shapes:
        ``forward(image, gray=None)``: ``image`` is ``N x 3 x H x W`` RGB in ``[-1, 1]`` of any H, W >= 1;
        ``gray`` is ``N x 1 x H x W`` in ``[0, 1]`` (computed with :func:`attention_map` when omitted).
        Returns :class:`GeneratorOutput` with ``output`` and ``latent`` of shape ``N x 3 x H x W``.

    Example:
        >>> g = EnlightenGenerator(GeneratorConfig(base_width=8)).eval()
        >>> g(torch.zeros(1, 3, 20, 30)).output.shape
        torch.Size([1, 3, 20, 30])
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        w = self.config.base_width
        widths = [w, 2 * w, 4 * w, 8 * w, 16 * w]

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 3, padding=1)

        # Encoder: level i has conv{i}_1, conv{i}_2 (each with its own BN).
        cin = 4  # RGB + attention
        for level, cout in enumerate(widths, start=1):
            for j in (1, 2):
                self.add_module(f"conv{level}_{j}", conv(cin if j == 1 else cout, cout))
                self.add_module(f"bn{level}_{j}", nn.BatchNorm2d(cout))
            cin = cout
        # Decoder: deconv{5..8} after upsampling, then conv{6..9}_{1,2}.
        for level, (cdeep, cskip) in enumerate(zip(widths[:0:-1], widths[-2::-1], strict=True), start=6):
            self.add_module(f"deconv{level - 1}", conv(cdeep, cskip))
            self.add_module(f"conv{level}_1", conv(2 * cskip, cskip))
            self.add_module(f"bn{level}_1", nn.BatchNorm2d(cskip))
            self.add_module(f"conv{level}_2", conv(cskip, cskip))
            if level != 9:  # conv9_2 has no BatchNorm in the released model
                self.add_module(f"bn{level}_2", nn.BatchNorm2d(cskip))
        self.conv10 = nn.Conv2d(w, 3, 1)
        self.act = nn.LeakyReLU(SLOPE)

    def _block(self, name: str, x: Tensor) -> Tensor:
        """conv -> LeakyReLU -> BatchNorm (BN after the activation, as released)."""
        x = self.act(getattr(self, f"conv{name}")(x))
        bn = getattr(self, f"bn{name}", None)
        return bn(x) if bn is not None else x

    def forward_aligned(self, image: Tensor, gray: Tensor) -> GeneratorOutput:
        """Run the network on inputs whose H and W are already multiples of 16 (no padding).

        Tiled inference uses this directly on grid-aligned tiles.
        """
        grays = [gray]
        for _ in range(4):
            grays.append(F.max_pool2d(grays[-1], 2))

        skips: list[Tensor] = []
        x = torch.cat((image, gray), dim=1)
        for level in range(1, 5):
            x = self._block(f"{level}_1", x)
            x = self._block(f"{level}_2", x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self._block("5_1", x)
        x = x * grays[4]
        x = self._block("5_2", x)

        for level in range(6, 10):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
            skip = skips[9 - level] * grays[9 - level]
            x = torch.cat((getattr(self, f"deconv{level - 1}")(x), skip), dim=1)
            x = self._block(f"{level}_1", x)
            x = self._block(f"{level}_2", x)

        latent = self.conv10(x) * gray
        return GeneratorOutput(latent + image, latent)

    def forward(self, image: Tensor, gray: Tensor | None = None) -> GeneratorOutput:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an N x 3 x H x W image, got shape {tuple(image.shape)}")
        if gray is None:
            gray = attention_map(image)
        elif gray.shape != (image.shape[0], 1, *image.shape[2:]):
            raise ValueError(f"gray must be N x 1 x H x W matching the image, got {tuple(gray.shape)}")
        padded, pads = pad_to_multiple(image)
        gray_padded, _ = pad_to_multiple(gray)
        output, latent = self.forward_aligned(padded, gray_padded)
        return GeneratorOutput(crop_padding(output, pads), crop_padding(latent, pads))

"""The PyTorch backend: the generator rewritten for speed with exactly the same result, and the reference.

* :class:`TorchBackend`: PyTorch with exact rewrites, each switchable to measure it:
  ``channels_last`` memory layout (oneDNN's fastest convolutions on this class of CPU: the lever
  that pays), the LeakyReLU fused into the convolution (oneDNN post-op), each BatchNorm applied in
  place in one pass and, optionally, BatchNorm folded into the following convolution (measured not
  to pay; kept as an option). The BatchNorm of the released model sits *after* the LeakyReLU, so
  it cannot be folded backwards into its own convolution; it is folded forwards into the next 3x3
  convolution (directly, or through the bilinear upsampling, whose weights sum to one), scaling that
  convolution's input channels by the BN scale and adding the BN shift to its bias. At the borders
  that convolution zero-pads the *normalised* features, which a folded convolution cannot see; the
  one-pixel output frame is therefore recomputed from the input padded with ``-shift / scale`` (the
  value BatchNorm maps to zero). The BatchNorms whose output is gated by the attention map (the
  skips and level 5) are never folded.

  The decoder's concatenations are written into one buffer each (``torch.cat`` of
  ``channels_last`` tensors along channels costs more than the convolution it feeds: 0.36 s against
  0.23 s for the last decoder level of a 1-megapixel image on a 2-core EPYC), and the upsampling and
  convolution that fill it run in row bands, which bounds memory. Tiles are upsampled at the whole
  image's positions (:func:`~enlightengan.inference.placement.upsample_at`).
* :class:`EagerBackend`: the faithful module itself, unchanged (the reference of the benchmarks);
  whole images only.

Both follow :class:`~enlightengan.inference.backend.Backend`; :class:`TorchBackend` is also a
:class:`~enlightengan.inference.backend.StatisticsBackend` for per-image BatchNorm generators.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.batchnorm import per_image_model
from ..models.generator import SLOPE, EnlightenGenerator
from .backend import check_inputs, not_per_image
from .placement import Placement, upsample_at

__all__ = ["BANDS", "BAND_MIN_PIXELS", "EagerBackend", "TorchBackend"]

#: Row bands of each decoder level's upsampling and convolution (memory; see TorchBackend._deconv_into).
BANDS = 4

#: Decoder levels of fewer output pixels run in one band: their buffers are small, and one
#: ``F.interpolate`` is faster than a band's row interpolation (0.25 MP images, 2-core Xeon).
BAND_MIN_PIXELS = 1 << 20

#: BatchNorm scales smaller than this are not folded (dividing by them would lose precision).
_MIN_FOLD_SCALE = 1e-6


@dataclass(frozen=True)
class _Affine:
    """A BatchNorm in eval mode as ``scale * x + shift`` (per channel, float64 for folding)."""

    scale: Tensor
    shift: Tensor


@dataclass(frozen=True)
class _Conv:
    """One convolution of the prepared network.

    ``neutral`` is set when a BatchNorm of the input was folded into ``weight``/``bias``: the
    per-input-channel value that stands for the zero padding of the normalised features.
    ``explicit_bn`` is the BatchNorm to apply to this convolution's *output* when it is not folded
    into the consumers.
    """

    weight: Tensor
    bias: Tensor
    padding: int
    activation: bool
    neutral: Tensor | None
    explicit_bn: _Affine | None


def _affine(bn: torch.nn.BatchNorm2d) -> _Affine:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm layers without running statistics cannot be folded")
    mean, var = bn.running_mean.detach().cpu().double(), bn.running_var.detach().cpu().double()
    weight = bn.weight.detach().cpu().double() if bn.weight is not None else torch.ones_like(mean)
    bias = bn.bias.detach().cpu().double() if bn.bias is not None else torch.zeros_like(mean)
    scale = weight / torch.sqrt(var + bn.eps)
    return _Affine(scale, bias - mean * scale)


def _fold_input(weight: Tensor, bias: Tensor, bn: _Affine) -> tuple[Tensor, Tensor]:
    """Weights of ``conv(bn(x))`` as a convolution of ``x`` (ignoring zero padding)."""
    w = weight.double()
    return w * bn.scale.view(1, -1, 1, 1), bias.double() + (w * bn.shift.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))


@functools.cache
def _fused_conv_op() -> Any:
    """oneDNN's convolution with a fused activation, or ``None`` where this PyTorch build lacks it."""
    try:
        op = torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    return op


class TorchBackend:
    """The generator in PyTorch, rewritten for speed with exactly the same result (see the module doc).

    Args:
        model: the generator; its weights (and BatchNorm running statistics) are copied now, so
            later changes to ``model`` are not seen. Always evaluated in inference mode: BatchNorm
            normalises with the running statistics, as ``model.eval()`` does, unless ``statistics``
            says otherwise; per-image generators run through :meth:`with_statistics` or
            :meth:`measuring`.
        channels_last: keep activations in ``N x H x W x C`` memory order.
        fold_batchnorm: fold the BatchNorms that feed a convolution into it (exact; see the module
            doc). Off by default: measured on a 2-core EPYC it is 1-2% *slower* than applying each
            BatchNorm in place in one pass, because of the border recomputation it needs.
        fuse_activation: let oneDNN apply the LeakyReLU inside the convolution (``None``: where
            available, i.e. CPU float32 tensors on builds with oneDNN).
        statistics: ``"running"`` (default): BatchNorm normalises with the model's running statistics.
            ``"measured"``: with each image's own, measured on the fly (the mean and biased variance of
            each channel over the image, as training-mode BatchNorm on a batch of one), so one pass
            computes what a per-image BatchNorm generator computes; whole images only (a tile's
            statistics are not the image's), and not with ``fold_batchnorm``.

    Shapes:
        ``run(image, gray, placement)``: ``N x 3 x H x W`` in ``[-1, 1]`` and ``N x 1 x H x W`` in
        ``[0, 1]`` with H, W multiples of 16 -> ``(output, latent)``, both ``N x 3 x H x W``.
    """

    name = "torch"

    def __init__(
        self,
        model: EnlightenGenerator,
        *,
        channels_last: bool = True,
        fold_batchnorm: bool = False,
        fuse_activation: bool | None = None,
        statistics: Literal["running", "measured"] = "running",
    ) -> None:
        if not isinstance(model, EnlightenGenerator):
            raise TypeError(f"TorchBackend needs an EnlightenGenerator, got {type(model).__name__}")
        if statistics not in ("running", "measured"):
            raise ValueError(f"statistics must be 'running' or 'measured', got {statistics!r}")
        if statistics == "measured" and fold_batchnorm:
            raise ValueError("measured BatchNorm statistics cannot be folded into the convolutions")
        self.statistics = statistics
        self.channels_last = channels_last
        self.fold_batchnorm = fold_batchnorm
        self.fuse_activation = fuse_activation
        self.width = model.config.base_width
        device = model.conv10.weight.device
        fmt = self._memory_format()
        self._convs = {
            key: _Conv(
                weight=step.weight.to(device).contiguous(memory_format=fmt),
                bias=step.bias.to(device),
                padding=step.padding,
                activation=step.activation,
                neutral=None if step.neutral is None else step.neutral.to(device),
                explicit_bn=None
                if step.explicit_bn is None
                else _Affine(
                    step.explicit_bn.scale.float().to(device).view(1, -1, 1, 1),
                    step.explicit_bn.shift.float().to(device).view(1, -1, 1, 1),
                ),
            )
            for key, step in self._prepare(model, fold_batchnorm).items()
        }
        assert model.conv10.bias is not None
        self._head = (model.conv10.weight.detach().clone(), model.conv10.bias.detach().clone())
        # weight, bias and eps of each BatchNorm, for statistics measured on the fly
        self._bn_params = {
            name[2:]: (
                module.weight.detach().to(device).view(1, -1, 1, 1),
                module.bias.detach().to(device).view(1, -1, 1, 1),
                module.eps,
            )
            for name, module in model.named_modules()
            if name.startswith("bn") and isinstance(module, torch.nn.BatchNorm2d)
        }
        # a per-image generator's own copy, on which with_statistics() measures each image
        self._per_image_model = copy.deepcopy(model).eval() if model.config.per_image else None

    def _options(self) -> dict[str, Any]:
        return {
            "channels_last": self.channels_last,
            "fold_batchnorm": self.fold_batchnorm,
            "fuse_activation": self.fuse_activation,
        }

    def _require_per_image(self, method: str) -> EnlightenGenerator:
        if self._per_image_model is None:
            raise not_per_image(method)
        return self._per_image_model

    def with_statistics(self, image: Tensor) -> TorchBackend:
        """A backend for this per-image generator normalising with the BatchNorm statistics of ``image``.

        Args:
            image: ``1 x 3 x H x W`` RGB in ``[-1, 1]``, the whole image (any size): its statistics
                are measured by :func:`~enlightengan.models.batchnorm.per_image_model`.

        Returns:
            A new backend with this one's options whose running statistics are those of ``image``:
            exact for every tile of it.
        """
        measured = per_image_model(self._require_per_image("with_statistics"), image)
        # the copy's stored statistics now are the image's: it runs as a running-statistics model
        measured.config = dataclasses.replace(measured.config, batchnorm="running")
        return TorchBackend(measured, **self._options())

    def measuring(self) -> TorchBackend:
        """This backend normalising each whole image with its own statistics, measured in the pass.

        A view sharing this backend's weights, with ``statistics="measured"`` (whole images only).
        """
        self._require_per_image("measuring")
        if self.fold_batchnorm:
            raise ValueError("measured BatchNorm statistics cannot be folded into the convolutions")
        view = copy.copy(self)
        view.statistics = "measured"
        return view

    @staticmethod
    def _prepare(model: EnlightenGenerator, fold: bool) -> dict[str, _Conv]:
        modules = dict(model.named_modules())
        bns = {name[2:]: _affine(m) for name, m in modules.items() if name.startswith("bn")}

        def foldable(key: str) -> bool:
            return fold and not bool((bns[key].scale.abs() < _MIN_FOLD_SCALE).any())

        # Which BatchNorms are deferred to (folded into) their consumers. Those whose output is
        # gated by the attention map (the skips bn1_2..bn4_2 and bn5_1) stay explicit: folding them
        # needs the attention map as one more input channel of the consumer, and oneDNN pads 65,
        # 129, ... input channels to the next multiple of 16, which costs more than the BN pass.
        deferred = {key: foldable(key) for key in bns}
        for key in ("1_2", "2_2", "3_2", "4_2", "5_1"):
            deferred[key] = False

        def conv(name: str) -> tuple[Tensor, Tensor]:
            layer = modules[name]
            assert isinstance(layer, torch.nn.Conv2d)
            assert layer.bias is not None
            return layer.weight.detach().cpu().double(), layer.bias.detach().cpu().double()

        convs: dict[str, _Conv] = {}

        def add(key: str, weight: Tensor, bias: Tensor, neutral: Tensor | None, act: bool = True) -> None:
            explicit = bns[key] if key in bns and not deferred[key] else None
            convs[key] = _Conv(
                weight=weight.float().contiguous(),
                bias=bias.float().contiguous(),
                padding=1,
                activation=act,
                neutral=None if neutral is None else neutral.float(),
                explicit_bn=explicit,
            )

        def folded(name: str, key: str, source: str, act: bool = True) -> None:
            """``key``'s convolution reading the output of BatchNorm ``source`` (padding-aware)."""
            weight, bias = conv(name)
            if source in bns and deferred[source]:
                bn = bns[source]
                weight, bias = _fold_input(weight, bias, bn)
                add(key, weight, bias, neutral=-bn.shift / bn.scale, act=act)
            else:
                add(key, weight, bias, neutral=None, act=act)

        folded("conv1_1", "1_1", source="")
        for level in (1, 2, 3, 4, 6, 7, 8, 9):
            folded(f"conv{level}_2", f"{level}_2", source=f"{level}_1")
        for level in range(2, 6):
            folded(f"conv{level}_1", f"{level}_1", source=f"{level - 1}_2")
        add("5_2", *conv("conv5_2"), neutral=None)  # reads bn5_1(x) * g5, computed explicitly
        for level in range(6, 10):
            # deconv{level-1} reads the upsampled output of bn{level-1}_2 (bn5_2 for level 6).
            folded(f"deconv{level - 1}", f"deconv{level - 1}", source=f"{level - 1}_2", act=False)
            add(f"{level}_1", *conv(f"conv{level}_1"), neutral=None)  # [deconv, skip * g]: no BN
        return convs

    # -- execution -----------------------------------------------------------------------------

    def _memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def _conv2d(self, x: Tensor, step: _Conv, padding: int, activation: bool) -> Tensor:
        op = _fused_conv_op() if self.fuse_activation is not False else None
        if op is not None and x.device.type == "cpu" and x.dtype == torch.float32:
            attr, scalars = ("leaky_relu", [SLOPE]) if activation else ("none", [])
            out: Tensor = op(x, step.weight, step.bias, [padding] * 2, [1, 1], [1, 1], 1, attr, scalars, "")
            return out
        out = F.conv2d(x, step.weight.to(x.dtype), step.bias.to(x.dtype), padding=padding)
        return F.leaky_relu_(out, SLOPE) if activation else out

    def _frame(self, out: Tensor, x: Tensor, step: _Conv) -> None:
        """Recompute the one-pixel border of ``out = conv(x)`` with ``step.neutral`` as padding."""
        assert step.neutral is not None
        n, c, h, w = x.shape
        neutral = step.neutral.to(x.dtype).view(1, c, 1, 1)

        def padded(part: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
            ph, pw = part.shape[-2:]
            buf = neutral.expand(n, c, ph + top + bottom, pw + left + right).contiguous(
                memory_format=self._memory_format()
            )
            buf[..., top : top + ph, left : left + pw] = part
            return buf

        def conv(part: Tensor) -> Tensor:
            return self._conv2d(part, step, padding=0, activation=step.activation)

        one_row, one_col = int(h == 1), int(w == 1)
        out[..., :1, :] = conv(padded(x[..., : 2 - one_row, :], 1, one_row, 1, 1))
        if h > 1:
            out[..., h - 1 :, :] = conv(padded(x[..., h - 2 :, :], 0, 1, 1, 1))
        out[..., :, :1] = conv(padded(x[..., :, : 2 - one_col], 1, 1, 1, one_col))
        if w > 1:
            out[..., :, w - 1 :] = conv(padded(x[..., :, w - 2 :], 1, 1, 0, 1))

    def _apply(self, key: str, x: Tensor) -> Tensor:
        step = self._convs[key]
        out = self._conv2d(x, step, padding=step.padding, activation=step.activation)
        if step.neutral is not None:
            self._frame(out, x, step)
        if step.explicit_bn is not None:
            if self.statistics == "measured":
                weight, bias, eps = self._bn_params[key]
                var, mean = torch.var_mean(out, dim=(2, 3), keepdim=True, unbiased=False)
                scale = weight * torch.rsqrt(var + eps)
                # One in-place pass: out = shift + out * scale, per image and channel.
                torch.addcmul(bias - mean * scale, out, scale, out=out)
            else:
                # One in-place pass: out = shift + out * scale.
                torch.addcmul(step.explicit_bn.shift, out, step.explicit_bn.scale, out=out)
        return out

    def _gate(self, x: Tensor, gray: Tensor, lead: int = 0) -> Tensor:
        """Buffer ``[<lead channels left empty>, x * gray]``: the decoder's concatenation, filled later."""
        n, c, h, w = x.shape
        buf = torch.empty(
            (n, lead + c, h, w), dtype=x.dtype, device=x.device, memory_format=self._memory_format()
        )
        torch.mul(x, gray, out=buf[:, lead:])
        return buf

    def _deconv_into(self, buf: Tensor, x: Tensor, level: int, placement: Placement | None) -> None:
        """``buf[:, :C] = deconv(upsample(x))`` for decoder ``level``, in row bands at full resolution.

        The upsampled features and the convolution's output would be the two largest tensors alive
        at once (at full resolution 96 channels per pixel beside the 65 of ``buf``); in
        :data:`BANDS` bands with a one-row halo each they take a fraction of that, for the same
        result (a band's halo rows are computed and dropped; its frame correction only touches rows
        that are the image's own border or halo).
        """
        key = f"deconv{level - 1}"
        channels = self._convs[key].weight.shape[0]
        height, width = 2 * x.shape[-2], 2 * x.shape[-1]
        count = BANDS if height >= 4 * BANDS and height * width >= BAND_MIN_PIXELS else 1
        bounds = [round(i * height / count) for i in range(count + 1)]
        for start, stop in itertools.pairwise(bounds):
            first, last = max(start - 1, 0), min(stop + 1, height)
            band = upsample_at(x, 2 ** (9 - level), placement, rows=(first, last))
            out = self._apply(key, band)
            del band
            buf[:, :channels, start:stop].copy_(out[:, :, start - first : stop - first])
            del out

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        """Run the generator on a 16-aligned image or tile; see the class doc for shapes."""
        check_inputs(image, gray)
        if placement is not None:
            placement.check(*image.shape[-2:])
            if self.statistics == "measured" and not placement.is_whole(*image.shape[-2:]):
                raise ValueError(
                    "a backend measuring BatchNorm statistics runs whole images only: a tile's statistics "
                    "are not the image's"
                )
        fmt = self._memory_format()
        with torch.inference_mode():
            grays = [gray.contiguous(memory_format=fmt)]
            for _ in range(4):
                grays.append(F.max_pool2d(grays[-1], 2))
            x = torch.cat((image, gray), dim=1).contiguous(memory_format=fmt)
            # Encoder features kept for the skip connections. The decoder's concatenation buffer is
            # only allocated when it is needed: in channels_last order even its unwritten channels
            # would share memory pages with the written ones.
            skips: list[Tensor] = []
            for level in range(1, 5):
                x = self._apply(f"{level}_1", x)
                x = self._apply(f"{level}_2", x)
                skips.append(x)
                x = F.max_pool2d(x, 2)
            x = self._apply("5_1", x)
            x = self._apply("5_2", x.mul_(grays[4]))
            for level in range(6, 10):
                lead = self._convs[f"deconv{level - 1}"].weight.shape[0]
                buf = self._gate(skips.pop(), grays[9 - level], lead)
                self._deconv_into(buf, x, level, placement)
                del x
                x = self._apply(f"{level}_1", buf)
                del buf
                x = self._apply(f"{level}_2", x)
            weight, bias = self._head
            latent = F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype)).contiguous()
            latent.mul_(gray)
            output = latent + image
        return output, latent


class EagerBackend:
    """The faithful module, run as it is (``forward_aligned`` in inference mode): the reference.

    Whole images only: its upsampling samples where a whole image would, so tiles are refused.
    """

    name = "eager"

    def __init__(self, model: EnlightenGenerator) -> None:
        self.model = model.eval()

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(image, gray)
        if placement is not None and not placement.is_whole(*image.shape[-2:]):
            raise ValueError(
                "the eager reference backend runs whole images only; use the torch backend to tile"
            )
        with torch.inference_mode():
            output, latent = self.model.forward_aligned(image, gray)
        return output, latent

"""Execution backends for the EnlightenGAN generator: the same exact function, computed faster.

Every backend evaluates :meth:`EnlightenGenerator.forward_aligned <enlightengan.models.generator.
EnlightenGenerator.forward_aligned>` (Jiang et al., IEEE TIP 2021, Fig. 2) on inputs whose height and
width are multiples of 16, behind one interface::

    output, latent = backend.run(image, gray, placement=None)

``image`` is ``N x 3 x H x W`` RGB in ``[-1, 1]``, ``gray`` the ``N x 1 x H x W`` attention map in
``[0, 1]``; both results are ``N x 3 x H x W`` (``output = latent + image``, not clipped).

``placement`` says where the input sits when it is a tile of a larger (16-aligned) image. The
network's bilinear upsampling uses ``align_corners=True``, whose sampling positions depend on the
size of the *whole* feature map (output pixel ``i`` reads input position ``i (n - 1) / (2 n - 1)``).
A tile run as if it were a whole image would therefore sample up to half a pixel off at every
decoder level (8 full-resolution pixels at the coarsest one). With a placement, the backends sample
at the positions the whole image uses, so a tile differs from the untiled result only near its own
borders, where convolutions see zero padding instead of the neighbouring pixels.

Backends:

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
  convolution that fill it run in row bands, which bounds memory.
* :class:`OnnxRuntimeBackend`: the same network exported to ONNX (with the placement's sampling
  positions as graph inputs) and run by ONNX Runtime with all graph optimisations.
* :class:`EagerBackend`: the faithful module itself, unchanged (the reference of the benchmarks);
  whole images only.
"""

from __future__ import annotations

import copy
import functools
import itertools
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.generator import MULTIPLE, EnlightenGenerator

__all__ = [
    "BACKENDS",
    "Backend",
    "EagerBackend",
    "OnnxRuntimeBackend",
    "Placement",
    "TorchBackend",
    "make_backend",
    "upsample_at",
]

#: Names accepted by :func:`make_backend` (``--backend`` on the command line). The eager reference
#: (:class:`EagerBackend`) is for benchmarks: it cannot run tiles.
BACKENDS = ("torch", "onnxruntime")

#: Slope of the generator's LeakyReLU (released model).
_SLOPE = 0.2

#: Row bands of each decoder level's upsampling and convolution (memory; see TorchBackend._deconv_into).
BANDS = 4

#: BatchNorm scales smaller than this are not folded (dividing by them would lose precision).
_MIN_FOLD_SCALE = 1e-6


@dataclass(frozen=True)
class Placement:
    """Where a 16-aligned tile sits inside a 16-aligned image (full-resolution pixels).

    Attributes:
        top, left: the tile's first row and column in the image; multiples of 16.
        height, width: the whole image's size; multiples of 16.
    """

    top: int
    left: int
    height: int
    width: int

    def __post_init__(self) -> None:
        for name in ("top", "left", "height", "width"):
            value = getattr(self, name)
            if value < 0 or value % MULTIPLE:
                raise ValueError(
                    f"Placement.{name} must be a non-negative multiple of {MULTIPLE}, got {value}"
                )

    def check(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless a ``height x width`` tile fits at this placement."""
        if self.top + height > self.height or self.left + width > self.width:
            raise ValueError(
                f"a {height}x{width} tile at ({self.top}, {self.left}) does not fit in the "
                f"{self.height}x{self.width} image of its placement"
            )

    def is_whole(self, height: int, width: int) -> bool:
        return (self.top, self.left, self.height, self.width) == (0, 0, height, width)


class Backend(Protocol):
    """What the tiler and :class:`~enlightengan.inference.Enhancer` need from a backend.

    A backend may also declare ``bytes_per_pixel_per_width`` (an ``int``), its working memory per
    pixel of a tile and per unit of the generator's base width, for the automatic tile size
    (:func:`enlightengan.tiling.auto_tile_area`).
    """

    name: str

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        """``N x 3 x H x W`` image in ``[-1, 1]`` and ``N x 1 x H x W`` gray -> ``(output, latent)``."""
        ...


def _check_inputs(image: Tensor, gray: Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W image, got shape {tuple(image.shape)}")
    if gray.shape != (image.shape[0], 1, *image.shape[2:]):
        raise ValueError(f"gray must be N x 1 x H x W matching the image, got {tuple(gray.shape)}")
    h, w = image.shape[-2:]
    if h % MULTIPLE or w % MULTIPLE:
        raise ValueError(
            f"backends run on inputs whose height and width are multiples of {MULTIPLE}, got {h}x{w}: "
            "pad with enlightengan.models.generator.pad_to_multiple first"
        )


# ---------------------------------------------------------------------------------------------------
# Sampling positions of align_corners=True bilinear upsampling, in whole-image coordinates
# ---------------------------------------------------------------------------------------------------


def _axis_taps(
    out_start: int, out_len: int, in_start: int, in_len: int, n_out: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Indices and weights of a x2 ``align_corners=True`` upsampling along one axis of a tile.

    The whole axis goes from ``n_out / 2`` to ``n_out`` samples; the tile holds output samples
    ``[out_start, out_start + out_len)`` and input samples ``[in_start, in_start + in_len)``.
    Positions are computed in float32 exactly as PyTorch's CPU kernel does (scale
    ``(n_in - 1) / (n_out - 1)``, source ``scale * i``). Samples that need input outside the tile
    (only at the tile's border) are clamped to its edge.

    Returns:
        ``(i0, i1, weight)``: local input indices (int64) and the weight of ``i1``, each ``out_len``.
    """
    n_in = n_out // 2
    if n_out > 1:
        scale = torch.tensor(n_in - 1, dtype=torch.float32) / torch.tensor(n_out - 1, dtype=torch.float32)
    else:
        scale = torch.tensor(0.0)
    src = torch.arange(out_start, out_start + out_len, dtype=torch.float32) * scale
    i0 = src.floor().clamp(max=n_in - 1)
    weight = (src - i0).clamp(0.0, 1.0)
    g0 = i0.long()
    g1 = torch.where(g0 < n_in - 1, g0 + 1, g0)
    local0 = (g0 - in_start).clamp(0, in_len - 1)
    local1 = (g1 - in_start).clamp(0, in_len - 1)
    return local0, local1, weight


def _runs(i0: Tensor, i1: Tensor) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Split an axis's output samples into runs that read consecutive input pairs.

    A run ``(start, pairs, first)`` covers outputs ``start .. start + 2 pairs - 1``; output
    ``start + 2 k + r`` (``r`` = 0 or 1) interpolates inputs ``first + k`` and ``first + k + 1``. With
    a step just under 1/2, outputs pair up except at one or two places per tile (and at clamped
    borders); those come back as single outputs.
    """
    first_index, second_index = i0.tolist(), i1.tolist()
    runs: list[tuple[int, int, int]] = []
    singles: list[int] = []
    j, n = 0, len(first_index)
    while j < n:
        base = first_index[j]
        k = j
        while k < n and first_index[k] == base + (k - j) // 2 and second_index[k] == first_index[k] + 1:
            k += 1
        pairs = (k - j) // 2
        if pairs:
            runs.append((j, pairs, base))
            singles.extend(range(j + 2 * pairs, k))
            j = k
        else:
            singles.append(j)
            j += 1
    return runs, singles


def _lerp_axis(x: Tensor, dim: int, taps: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """``out[j] = lerp(x[i0[j]], x[i1[j]], w[j])`` along ``dim``, without gathering whole tensors.

    Each run of paired outputs is one ``torch.lerp`` of two shifted views of ``x`` written straight
    into a ``(pairs, 2)`` view of the output: a single pass over the result, as a native kernel would.
    """
    i0, i1, weight = taps
    weight = weight.to(x.device, x.dtype)
    shape = list(x.shape)
    shape[dim] = len(i0)
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    runs, singles = _runs(i0, i1)
    for start, pairs, first in runs:
        view_shape = [1] * (x.ndim + 1)
        view_shape[dim], view_shape[dim + 1] = pairs, 2
        torch.lerp(
            x.narrow(dim, first, pairs).unsqueeze(dim + 1),
            x.narrow(dim, first + 1, pairs).unsqueeze(dim + 1),
            weight[start : start + 2 * pairs].view(view_shape),
            out=out.narrow(dim, start, 2 * pairs).unflatten(dim, (pairs, 2)),
        )
    if singles:
        index = torch.tensor(singles, device=x.device)
        view_shape = [1] * x.ndim
        view_shape[dim] = len(singles)
        values = torch.lerp(
            x.index_select(dim, i0[index.cpu()].to(x.device)),
            x.index_select(dim, i1[index.cpu()].to(x.device)),
            weight[index].view(view_shape),
        )
        out.index_copy_(dim, index, values)
    return out


def upsample_at(
    x: Tensor, scale_level: int, placement: Placement | None, rows: tuple[int, int] | None = None
) -> Tensor:
    """Bilinear x2 upsampling with ``align_corners=True``, sampled where the whole image samples.

    Args:
        x: ``N x C x h x w`` features of a tile at the level whose pixels are ``2 * scale_level``
            full-resolution pixels wide.
        scale_level: full-resolution pixels per output pixel (8, 4, 2 or 1 in the generator).
        placement: where the tile sits; ``None`` (or a whole-image placement) means ``x`` is the
            whole feature map.
        rows: only output rows ``[start, stop)`` of the ``2h`` (a band; default all).

    Returns:
        ``N x C x (stop - start) x 2w``; channels-last when ``x`` is. For the whole map and all rows
        this is ``F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)``.

    Example:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> whole = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        >>> torch.equal(upsample_at(x, 1, None), whole)
        True
    """
    h, w = x.shape[-2:]
    whole = placement is None or placement.is_whole(2 * h * scale_level, 2 * w * scale_level)
    start, stop = rows if rows is not None else (0, 2 * h)
    if whole and (start, stop) == (0, 2 * h):
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
    top, left = (0, 0) if whole or placement is None else (placement.top, placement.left)
    height, width = (
        (2 * h * scale_level, 2 * w * scale_level)
        if whole or placement is None
        else (
            placement.height,
            placement.width,
        )
    )
    row_taps = _axis_taps(
        top // scale_level + start, stop - start, top // (2 * scale_level), h, height // scale_level
    )
    # Work on the N x H x W x C view: for channels_last tensors it is contiguous, so the runs are
    # slices of whole pixels and the result keeps the layout.
    band = _lerp_axis(x.permute(0, 2, 3, 1), 1, row_taps).permute(0, 3, 1, 2)
    if whole:
        # Columns span the whole map: align_corners=True on the band's own rows is the identity
        # along rows and the whole image's positions along columns.
        return F.interpolate(band, size=(stop - start, 2 * w), mode="bilinear", align_corners=True)
    col_taps = _axis_taps(left // scale_level, 2 * w, left // (2 * scale_level), w, width // scale_level)
    return _lerp_axis(band.permute(0, 2, 3, 1), 2, col_taps).permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------------
# The PyTorch backend
# ---------------------------------------------------------------------------------------------------


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
            later changes to ``model`` are not seen. Always evaluated in inference mode (BatchNorm
            uses running statistics, as ``model.eval()`` does).
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
            attr, scalars = ("leaky_relu", [_SLOPE]) if activation else ("none", [])
            out: Tensor = op(x, step.weight, step.bias, [padding] * 2, [1, 1], [1, 1], 1, attr, scalars, "")
            return out
        out = F.conv2d(x, step.weight.to(x.dtype), step.bias.to(x.dtype), padding=padding)
        return F.leaky_relu_(out, _SLOPE) if activation else out

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
        height = 2 * x.shape[-2]
        count = BANDS if height >= 4 * BANDS else 1
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
        _check_inputs(image, gray)
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


# ---------------------------------------------------------------------------------------------------
# The reference
# ---------------------------------------------------------------------------------------------------


class EagerBackend:
    """The faithful module, run as it is (``forward_aligned`` in inference mode): the reference.

    Whole images only: its upsampling samples where a whole image would, so tiles are refused.
    """

    name = "eager"

    def __init__(self, model: EnlightenGenerator) -> None:
        self.model = model.eval()

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        _check_inputs(image, gray)
        if placement is not None and not placement.is_whole(*image.shape[-2:]):
            raise ValueError(
                "the eager reference backend runs whole images only; use the torch backend to tile"
            )
        with torch.inference_mode():
            output, latent = self.model.forward_aligned(image, gray)
        return output, latent


# ---------------------------------------------------------------------------------------------------
# ONNX Runtime
# ---------------------------------------------------------------------------------------------------


class OnnxRuntimeBackend:
    """The generator run by ONNX Runtime (CPU), from the ``"tiles"`` graph of :mod:`enlightengan.export`.

    Args:
        model: the generator (its weights are copied into the graph now).
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        graph_optimization: ONNX Runtime's graph optimisation level: ``"basic"`` (constant folding,
            redundant nodes), ``"extended"`` (plus fusions such as Conv + activation) or ``"all"``
            (plus layout transformations, e.g. NCHWc blocked convolutions; the default).

    Tiles are placed with ``Resize`` in ``tf_crop_and_resize`` mode; its sampling positions are
    computed in float32 by ONNX Runtime, so tiled results agree with untiled ones to about 1e-4
    (on the ``[-1, 1]`` scale) rather than to float rounding as with :class:`TorchBackend`.

    Per-image BatchNorm models (``batchnorm="per-image"``, the bundled default model) get two
    graphs: ``"statistics"`` runs the network on one whole image normalising every BatchNorm with
    that image's own statistics, and returns them with the result (the pass of
    :func:`~enlightengan.models.batchnorm.per_image_model`); the tiles graph takes statistics as
    inputs. Such a backend runs once bound to an image's statistics (:meth:`with_statistics`:
    one statistics pass, then any tiles), or as :meth:`measuring` (whole images in one pass). The
    views share the sessions.

    Raises:
        OptionalDependencyError: ``onnx`` or ``onnxruntime`` is not installed.
    """

    name = "onnxruntime"
    #: Measured: about 800 bytes per pixel for a whole 1 MP image, 1,050 per pixel of a tile (ONNX
    #: Runtime's memory arena keeps what it grew to for the largest tile), at base width 32.
    bytes_per_pixel_per_width = 36

    def __init__(
        self,
        model: EnlightenGenerator,
        *,
        threads: int | None = None,
        graph_optimization: Literal["basic", "extended", "all"] = "all",
    ) -> None:
        from ._optional import require
        from .export import build_onnx

        ort = require("onnxruntime", "onnx")
        levels = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if graph_optimization not in levels:
            raise ValueError(
                f"graph_optimization must be one of {sorted(levels)}, got {graph_optimization!r}"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[graph_optimization]
        if threads is not None:
            options.intra_op_num_threads = threads
        model = model.eval()
        self.per_image = model.config.batchnorm == "per-image"

        def session(graph: Literal["tiles", "statistics"]) -> Any:
            proto = build_onnx(model, graph=graph)
            return ort.InferenceSession(
                proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )

        self.session = session("tiles")
        self._statistics_session = session("statistics") if self.per_image else None
        self._statistics: dict[str, Any] = {}
        self._measure = False

    def _per_image_session(self, method: str) -> Any:
        if self._statistics_session is None:
            raise ValueError(f"{method} is for per-image BatchNorm generators (batchnorm='per-image')")
        return self._statistics_session

    def with_statistics(self, image: Tensor) -> OnnxRuntimeBackend:
        """This backend normalising with the BatchNorm statistics of ``image`` (per-image models).

        Args:
            image: ``1 x 3 x H x W`` RGB in ``[-1, 1]``, the whole image (any size): its statistics are
                measured as :func:`~enlightengan.models.batchnorm.per_image_model` measures them (on
                a copy of at most ``STATS_MAX_PIXELS``, padded to the 16-pixel grid).

        Returns:
            A backend sharing this one's sessions, bound to those statistics.
        """
        from .models.batchnorm import statistics_image
        from .models.generator import attention_map, pad_to_multiple

        session = self._per_image_session("with_statistics")
        small, _ = pad_to_multiple(statistics_image(image.detach().float().cpu()))
        names = [o.name for o in session.get_outputs() if o.name.startswith("bn")]
        values = session.run(
            names, {"image": small.contiguous().numpy(), "gray": attention_map(small).contiguous().numpy()}
        )
        bound = copy.copy(self)
        bound._statistics = dict(zip(names, values, strict=True))
        bound._measure = False
        return bound

    def measuring(self) -> OnnxRuntimeBackend:
        """This backend normalising each whole image it runs with that image's own statistics (one pass)."""
        self._per_image_session("measuring")
        view = copy.copy(self)
        view._statistics, view._measure = {}, True
        return view

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        from .export import tile_roi

        _check_inputs(image, gray)
        h, w = image.shape[-2:]
        if placement is not None:
            placement.check(h, w)
        if self._measure:
            if image.shape[0] != 1 or (placement is not None and not placement.is_whole(h, w)):
                raise ValueError(
                    "a backend measuring BatchNorm statistics runs one whole image at a time: a tile's "
                    "statistics are not the image's"
                )
            assert self._statistics_session is not None
            output, latent = self._statistics_session.run(
                ["output", "latent"],
                {
                    "image": image.detach().float().cpu().contiguous().numpy(),
                    "gray": gray.detach().float().cpu().contiguous().numpy(),
                },
            )
            return torch.from_numpy(output).to(image.device), torch.from_numpy(latent).to(image.device)
        if self.per_image and not self._statistics:
            raise ValueError(
                "this generator normalises each image with its own BatchNorm statistics: "
                "bind them first with backend.with_statistics(image), or use backend.measuring()"
            )
        feeds = {
            "image": image.detach().float().cpu().contiguous().numpy(),
            "gray": gray.detach().float().cpu().contiguous().numpy(),
            "roi": tile_roi(h, w, placement),
            **self._statistics,
        }
        output, latent = self.session.run(["output", "latent"], feeds)
        return torch.from_numpy(output).to(image.device), torch.from_numpy(latent).to(image.device)


def make_backend(name: Literal["torch", "onnxruntime"] | str, model: EnlightenGenerator) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`) for ``model``."""
    if name == "torch":
        return TorchBackend(model)
    if name == "onnxruntime":
        return OnnxRuntimeBackend(model)
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")

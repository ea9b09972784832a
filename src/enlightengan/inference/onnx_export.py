"""The generator as ONNX graphs (Jiang et al., IEEE TIP 2021, Fig. 2), built node by node from its weights.

Three graphs, one builder each:

* :func:`build_full_graph`, ``"full"`` (what ``enlightengan export`` writes, for any ONNX runtime):
  input ``input``, RGB in ``[0, 1]``, ``N x 3 x H x W`` float32 with dynamic ``N``, ``H`` and ``W``
  (each side at least 9 pixels, so that one reflection pads it); output ``output``, the enhanced RGB
  in ``[0, 1]``, clipped, same shape. Inside the graph: the attention map ``1 - luminance``
  (:func:`~enlightengan.models.ops.attention_map`), the reflection padding to multiples of 16 split
  as the original splits it, the network with ``align_corners=True`` upsampling, the crop back and
  the clip.
* :func:`build_tiles_graph`, ``"tiles"`` (the
  :class:`~enlightengan.inference.onnxruntime_backend.OnnxRuntimeBackend`'s): inputs ``image``
  (``[-1, 1]``), ``gray`` and ``roi`` (``4 x 8`` float32) for 16-aligned tiles; outputs ``output``
  and ``latent`` (``[-1, 1]`` scale, not clipped). Each decoder upsampling is an ONNX ``Resize`` in
  ``tf_crop_and_resize`` mode whose region of interest (one row of ``roi``,
  :func:`~enlightengan.inference.placement.tile_roi`) puts the samples where the whole image's
  ``align_corners=True`` upsampling puts them.
* :func:`build_statistics_graph`, ``"statistics"`` (per-image BatchNorm models only, for the same
  backend): inputs ``image`` and ``gray`` of one 16-aligned image; outputs ``bn{key}.mean`` and
  ``bn{key}.var`` for every BatchNorm (the mean and biased variance that
  :func:`~enlightengan.models.batchnorm.per_image_model` measures), and ``output`` and ``latent`` of
  the image normalised with them.

Per-image BatchNorm generators (``GeneratorConfig(batchnorm="per-image")``, the bundled default
model) normalise each image with its own statistics. Their ``"full"`` graph first runs the network
in training-mode BatchNorm on the image's statistics copy
(:func:`~enlightengan.models.batchnorm.statistics_image`: the image itself, or shrunk to at most
``STATS_MAX_PIXELS``), recording every layer's per-image mean and biased variance; when that copy is
the image itself, its result is the answer; otherwise the image is run again, normalised with them.
The ``"tiles"`` graph takes the statistics as inputs (``bn{key}.mean``, ``bn{key}.var``).

Why node by node rather than traced by ``torch.onnx`` (docs/ARCHITECTURE.md): a trace records
``align_corners=True`` upsampling of whole feature maps, while the tiles graph must sample each tile
where the whole image samples, which takes a ``Resize`` whose region of interest is a graph input; and
the per-image graphs need a second pass inside an ``If``, and padding that depends on the input's
size. Written with :mod:`onnx` directly, no tracer and no ``onnxscript`` are needed. ``onnx`` (and
``onnxruntime`` for running) are optional dependencies: ``pip install 'enlightengan[onnx]'``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .._atomic import atomic_path
from .._optional import require
from ..formats import LUMA_WEIGHTS
from ..models.batchnorm import STATS_MAX_PIXELS, THUMBNAIL_SIDE
from ..models.generator import SLOPE, EnlightenGenerator
from ..models.ops import MULTIPLE

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_OPSET",
    "GraphName",
    "build_full_graph",
    "build_onnx",
    "build_statistics_graph",
    "build_tiles_graph",
    "export_onnx",
]

#: ONNX opset of the exported graphs (Pad with ``axes`` needs 18).
DEFAULT_OPSET = 18


class _Graph:
    """A tiny ONNX graph builder: named constants and nodes with generated output names."""

    def __init__(self, onnx_module: Any) -> None:
        self.onnx = onnx_module
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._constants: set[str] = set()
        self._count = 0

    def const(self, name: str, value: np.ndarray | np.generic | torch.Tensor) -> str:
        """A constant called ``name``; a name already added is reused (the same weights twice)."""
        if name in self._constants:
            return name
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        self._constants.add(name)
        return name

    @contextlib.contextmanager
    def branch(self) -> Iterator[list[Any]]:
        """Collect the nodes added inside the ``with`` block in a list of their own (an ``If`` branch).

        Constants still go to the main graph, which a branch may read (outer scope).
        """
        outer, self.nodes = self.nodes, []
        try:
            yield self.nodes
        finally:
            self.nodes = outer

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs: Any) -> str:
        self._count += 1
        out = name or f"{op_type.lower()}_{self._count}"
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, [out], name=f"n{self._count}_{op_type}", **attrs)
        )
        return out


#: ``norm(key, x, bn)``: the graph of BatchNorm ``bn{key}`` applied to tensor ``x``; returns its output.
_Norm = Callable[[str, str, torch.nn.BatchNorm2d], str]


def _bn_affine_params(g: _Graph, key: str, bn: torch.nn.BatchNorm2d) -> tuple[str, str]:
    assert bn.weight is not None and bn.bias is not None
    return g.const(f"bn{key}.weight", bn.weight.float()), g.const(f"bn{key}.bias", bn.bias.float())


def _running_norm(g: _Graph) -> _Norm:
    """Eval-mode BatchNorm with the stored running statistics (constants of the graph)."""

    def norm(key: str, x: str, bn: torch.nn.BatchNorm2d) -> str:
        assert bn.running_mean is not None and bn.running_var is not None
        weight, bias = _bn_affine_params(g, key, bn)
        mean = g.const(f"bn{key}.running_mean", bn.running_mean.float())
        var = g.const(f"bn{key}.running_var", bn.running_var.float())
        return g.op("BatchNormalization", [x, weight, bias, mean, var], epsilon=float(bn.eps))

    return norm


def _input_norm(g: _Graph) -> _Norm:
    """BatchNorm with statistics given as graph inputs ``bn{key}.mean`` / ``bn{key}.var`` (``C`` each)."""

    def norm(key: str, x: str, bn: torch.nn.BatchNorm2d) -> str:
        weight, bias = _bn_affine_params(g, key, bn)
        return g.op(
            "BatchNormalization", [x, weight, bias, f"bn{key}.mean", f"bn{key}.var"], epsilon=float(bn.eps)
        )

    return norm


def _normalise(g: _Graph, key: str, x: str, mean: str | None, var: str, bn: torch.nn.BatchNorm2d) -> str:
    """``(x - mean) * weight / sqrt(var + eps) + bias``; ``mean``, ``var`` shaped ``N x C x 1 x 1``.

    ``mean=None``: ``x`` is already centred.
    """
    assert bn.weight is not None and bn.bias is not None
    weight = g.const(f"bn{key}.weight4d", bn.weight.float().view(1, -1, 1, 1))
    bias = g.const(f"bn{key}.bias4d", bn.bias.float().view(1, -1, 1, 1))
    eps = g.const(f"bn{key}.eps", np.float32(bn.eps))
    scale = g.op("Div", [weight, g.op("Sqrt", [g.op("Add", [var, eps])])])
    centred = x if mean is None else g.op("Sub", [x, mean])
    return g.op("Add", [g.op("Mul", [centred, scale]), bias])


def _measure_norm(g: _Graph, record: dict[str, tuple[str, str]], axes: tuple[int, ...]) -> _Norm:
    """Training-mode BatchNorm: normalise with the statistics of ``x`` itself over ``axes``.

    Each layer's mean and biased variance (what it normalised with, and what
    :func:`~enlightengan.models.batchnorm.per_image_model` records) are added to ``record``, keyed
    by the layer's ``key``, with the reduced axes kept (size 1).
    """
    reduce_axes = g.const(f"measure.axes{''.join(map(str, axes))}", np.array(axes, dtype=np.int64))

    def norm(key: str, x: str, bn: torch.nn.BatchNorm2d) -> str:
        mean = g.op("ReduceMean", [x, reduce_axes], keepdims=1)
        centred = g.op("Sub", [x, mean])
        var = g.op("ReduceMean", [g.op("Mul", [centred, centred]), reduce_axes], keepdims=1)
        record[key] = (mean, var)
        return _normalise(g, key, centred, None, var, bn)

    return norm


def _given_norm(g: _Graph, stats: dict[str, tuple[str, str]]) -> _Norm:
    """BatchNorm with per-sample statistics computed earlier in the graph (``N x C x 1 x 1`` each)."""

    def norm(key: str, x: str, bn: torch.nn.BatchNorm2d) -> str:
        mean, var = stats[key]
        return _normalise(g, key, x, mean, var, bn)

    return norm


def _network(
    g: _Graph,
    model: EnlightenGenerator,
    image: str,
    gray: str,
    upsample: Any,
    norm: _Norm,
) -> tuple[str, str]:
    """Add the generator's ``forward_aligned`` to ``g``; returns the names of ``(output, latent)``.

    ``norm`` builds each BatchNorm (running, given or measured statistics). Weights are shared
    between calls: building the network twice in one graph stores them once.
    """
    modules = dict(model.named_modules())

    def conv(name: str, x: str, act: bool = True) -> str:
        layer = modules[name]
        assert isinstance(layer, torch.nn.Conv2d) and layer.bias is not None
        k = layer.kernel_size[0]
        w = g.const(f"{name}.weight", layer.weight.float())
        b = g.const(f"{name}.bias", layer.bias.float())
        y = g.op("Conv", [x, w, b], kernel_shape=[k, k], pads=[k // 2] * 4)
        return g.op("LeakyRelu", [y], alpha=SLOPE) if act else y

    def block(key: str, x: str) -> str:
        y = conv(f"conv{key}", x)
        bn = modules.get(f"bn{key}")
        if bn is None:
            return y
        assert isinstance(bn, torch.nn.BatchNorm2d)
        return norm(key, y, bn)

    grays = [gray]
    for _ in range(4):
        grays.append(g.op("MaxPool", [grays[-1]], kernel_shape=[2, 2], strides=[2, 2]))
    x = g.op("Concat", [image, gray], axis=1)
    skips = []
    for level in range(1, 5):
        x = block(f"{level}_2", block(f"{level}_1", x))
        skips.append(x)
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = block("5_1", x)
    x = block("5_2", g.op("Mul", [x, grays[4]]))
    for level in range(6, 10):
        x = upsample(x, level)
        skip = g.op("Mul", [skips[9 - level], grays[9 - level]])
        x = g.op("Concat", [conv(f"deconv{level - 1}", x, act=False), skip], axis=1)
        x = block(f"{level}_2", block(f"{level}_1", x))
    latent = g.op("Mul", [conv("conv10", x, act=False), gray])
    return g.op("Add", [latent, image]), latent


def _bn_keys(model: EnlightenGenerator) -> list[tuple[str, int]]:
    """``(key, channels)`` of every BatchNorm of ``model``, in graph order (``bn{key}``)."""
    return [
        (name[2:], module.num_features)
        for name, module in model.named_modules()
        if name.startswith("bn") and isinstance(module, torch.nn.BatchNorm2d)
    ]


def _pad_to_grid(g: _Graph, tensors: list[str], like: str) -> tuple[list[str], str, str, str]:
    """Reflection-pad ``tensors`` (shaped as ``like``) to multiples of 16, split as pad_to_multiple.

    Returns:
        The padded tensors and the names of ``hw`` (the original H, W), ``first`` (top, left
        padding) and the padding axes, for cropping back.
    """
    shape = g.op("Shape", [like])
    hw = g.op("Slice", [shape, g.const("hw.start", np.array([2])), g.const("hw.end", np.array([4]))])
    m = g.const("multiple", np.array([MULTIPLE], dtype=np.int64))
    total = g.op("Mod", [g.op("Sub", [m, g.op("Mod", [hw, m])]), m])
    first = g.op("Div", [total, g.const("two_i", np.array([2], dtype=np.int64))])
    second = g.op("Sub", [total, first])
    pads = g.op("Concat", [first, second], axis=0)  # [top, left, bottom, right]
    axes = g.const("pad.axes", np.array([2, 3], dtype=np.int64))
    padded = [g.op("Pad", [t, pads, "", axes], mode="reflect") for t in tensors]
    return padded, hw, first, axes


def _attention(g: _Graph, rgb01: str) -> str:
    """``1 - luminance`` of an RGB ``[0, 1]`` tensor (:func:`~enlightengan.models.ops.attention_map` of
    ``2 rgb - 1``)."""
    luma = g.const("luma.weight", np.array(LUMA_WEIGHTS, dtype=np.float32).reshape(1, 3, 1, 1))
    return g.op("Sub", [g.const("one", np.float32(1.0)), g.op("Conv", [rgb01, luma], kernel_shape=[1, 1])])


def _statistics_copy(g: _Graph, image: str, max_pixels: int) -> tuple[str, str]:
    """:func:`~enlightengan.models.batchnorm.statistics_image` in the graph (``image`` in ``[-1, 1]``).

    Images over ``max_pixels`` are resized to ``max(16, round(side * sqrt(max_pixels / area)))``
    (float64, rounding half to even as Python does) with antialiased linear resampling, which
    with ``exclude_outside`` weighs the borders as PyTorch does; thumbnails of at most 16 x 16 are
    enlarged to 32 x 32; other images keep their size, for which the resize is the identity.

    Returns:
        The copy, and a boolean scalar: whether it was resized (is not the image itself).
    """
    tp = g.onnx.TensorProto
    shape = g.op("Shape", [image])
    hw = g.op("Slice", [shape, g.const("hw.start", np.array([2])), g.const("hw.end", np.array([4]))])
    hw_f = g.op("Cast", [hw], to=int(tp.DOUBLE))
    area = g.op("ReduceProd", [hw_f], keepdims=1)
    limit = g.const("stats.max_pixels", np.array([float(max_pixels)], dtype=np.float64))
    factor = g.op("Sqrt", [g.op("Div", [limit, area])])
    shrunk = g.op("Cast", [g.op("Round", [g.op("Mul", [hw_f, factor])])], to=int(tp.INT64))
    shrunk = g.op("Max", [shrunk, g.const("stats.min_side", np.array([16, 16], dtype=np.int64))])
    size = g.op("Where", [g.op("Greater", [area, limit]), shrunk, hw])
    side = g.const("stats.thumbnail_side", np.array([THUMBNAIL_SIDE], dtype=np.int64))
    thumbnail = g.op("Cast", [g.op("ReduceMax", [hw_f], keepdims=1)], to=int(tp.INT64))
    enlarged = g.const("stats.thumbnail_size", np.array([2 * THUMBNAIL_SIDE] * 2, dtype=np.int64))
    size = g.op("Where", [g.op("LessOrEqual", [thumbnail, side]), enlarged, size])
    sizes = g.op(
        "Concat",
        [g.op("Slice", [shape, g.const("nc.start", np.array([0])), g.const("nc.end", np.array([2]))]), size],
        axis=0,
    )
    unchanged = g.op(
        "Cast",
        [g.op("ReduceMin", [g.op("Cast", [g.op("Equal", [size, hw])], to=int(tp.INT64))], keepdims=0)],
        to=int(tp.BOOL),
    )
    copy = g.op(
        "Resize",
        [image, "", "", sizes],
        mode="linear",
        antialias=1,
        exclude_outside=1,
        coordinate_transformation_mode="half_pixel",
    )
    return copy, g.op("Not", [unchanged])


#: The graphs :func:`build_onnx` builds (see the module doc).
GraphName = Literal["full", "tiles", "statistics"]

#: What each graph takes and gives, recorded in its ``doc_string``.
_DOCS: dict[str, str] = {
    "full": "input: RGB [0,1] NCHW float32, any H, W >= 9; output: enhanced RGB [0,1], clipped.",
    "tiles": "tiles graph: image [-1,1], gray [0,1], roi 4x8 (tf_crop_and_resize); output, latent [-1,1].",
    "statistics": "statistics graph: image [-1,1] and gray [0,1] of one 16-aligned image; "
    "outputs: each BatchNorm's mean and biased variance.",
}

#: ``upsample(x, level)``: the graph of decoder ``level``'s x2 upsampling of tensor ``x``.
_Upsample = Callable[[str, int], str]


def _start() -> tuple[_Graph, str]:
    """An empty graph and its first constant, the x2 factor of every upsampling's output shape.

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
    """
    g = _Graph(require("onnx", "onnx"))
    return g, g.const("upsample_factor", np.array([1, 1, 2, 2], dtype=np.int64))


def _whole_upsample(g: _Graph, doubler: str) -> _Upsample:
    """The ``align_corners=True`` upsampling of whole feature maps (the full and statistics graphs)."""

    def upsample(x: str, level: int) -> str:
        return g.op(
            "Resize",
            [x, "", "", g.op("Mul", [g.op("Shape", [x]), doubler])],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        )

    return upsample


def _placed_upsample(g: _Graph, doubler: str) -> _Upsample:
    """Upsampling of a tile at the whole image's positions, from the ``roi`` input (:func:`tile_roi`)."""
    edge = g.const("edge.pads", np.array([1, 1, 1, 1], dtype=np.int64))
    edge_axes = g.const("edge.axes", np.array([2, 3], dtype=np.int64))

    def upsample(x: str, level: int) -> str:
        roi = g.op(
            "Gather", ["roi", g.const(f"roi.index{level}", np.array(level - 6, dtype=np.int64))], axis=0
        )
        # One replicated pixel around the tile: samples that fall just outside it (at its border)
        # read the edge value, as PyTorch's clamped indices do, instead of the extrapolation value.
        padded = g.op("Pad", [x, edge, "", edge_axes], mode="edge")
        return g.op(
            "Resize",
            [padded, roi, "", g.op("Mul", [g.op("Shape", [x]), doubler])],
            mode="linear",
            coordinate_transformation_mode="tf_crop_and_resize",
            extrapolation_value=0.0,
        )

    return upsample


def _finish(
    g: _Graph, model: EnlightenGenerator, graph: GraphName, inputs: list[Any], outputs: list[Any], opset: int
) -> onnx.ModelProto:
    """The model holding ``g`` with its inputs and outputs, the opset and a ``doc_string``."""
    helper = g.onnx.helper
    body = helper.make_graph(g.nodes, f"enlightengan_{graph}", inputs, outputs, g.initializers)
    proto = helper.make_model(
        body, opset_imports=[helper.make_opsetid("", opset)], producer_name="enlightengan", ir_version=8
    )
    statistics = " BatchNorm: each image's own statistics." if model.config.per_image else ""
    proto.doc_string = "EnlightenGAN generator (Jiang et al., IEEE TIP 2021). " + _DOCS[graph] + statistics
    return proto


def _two_pass_output(
    g: _Graph,
    model: EnlightenGenerator,
    image: str,
    padded: tuple[str, str],
    upsample: _Upsample,
    stats_max_pixels: int,
) -> str:
    """The padded output of a per-image BatchNorm model on ``image`` (``[-1, 1]``; ``padded``: it and
    its attention map on the 16-pixel grid): statistics measured on the statistics copy, then, only
    when that copy is not the image itself, a second pass normalised with them (an ``If``)."""
    helper, tp = g.onnx.helper, g.onnx.TensorProto
    one, half = g.const("one", np.float32(1.0)), g.const("half", np.float32(0.5))
    # Pass 1 (training-mode BatchNorm on a batch of one): each image's statistics, measured on its
    # statistics copy, padded to the grid as the model pads.
    small, resized = _statistics_copy(g, image, stats_max_pixels)
    small_gray = _attention(g, g.op("Mul", [g.op("Add", [small, one]), half]))
    (small_p, small_gray_p), *_ = _pad_to_grid(g, [small, small_gray], small)
    stats: dict[str, tuple[str, str]] = {}
    first_pass, _ = _network(g, model, small_p, small_gray_p, upsample, _measure_norm(g, stats, (2, 3)))
    # Pass 2, only when the copy is not the image itself: the image with those statistics.
    with g.branch() as second_nodes:
        second_pass, _ = _network(g, model, *padded, upsample, _given_norm(g, stats))
    with g.branch() as same_nodes:
        same = g.op("Identity", [first_pass])
    return g.op(
        "If",
        [resized],
        then_branch=helper.make_graph(
            second_nodes, "second_pass", [], [helper.make_tensor_value_info(second_pass, tp.FLOAT, None)]
        ),
        else_branch=helper.make_graph(
            same_nodes, "first_pass", [], [helper.make_tensor_value_info(same, tp.FLOAT, None)]
        ),
    )


def build_full_graph(
    model: EnlightenGenerator, *, opset: int = DEFAULT_OPSET, stats_max_pixels: int = STATS_MAX_PIXELS
) -> onnx.ModelProto:
    """The ``"full"`` graph of ``model`` (what ``enlightengan export`` writes; see the module doc).

    Args:
        model: the generator (its weights are copied into the graph).
        opset: ONNX opset.
        stats_max_pixels: a per-image model's graph measures statistics on a copy shrunk to about
            this many pixels (:func:`~enlightengan.models.batchnorm.statistics_image`).

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
    """
    g, doubler = _start()
    helper, tp = g.onnx.helper, g.onnx.TensorProto
    upsample = _whole_upsample(g, doubler)
    inputs = [helper.make_tensor_value_info("input", tp.FLOAT, ["N", 3, "H", "W"])]
    one = g.const("one", np.float32(1.0))
    two = g.const("two", np.float32(2.0))
    half = g.const("half", np.float32(0.5))
    # image in [-1, 1]; gray = 1 - luminance, attention_map's formula on 2 * input - 1.
    image = g.op("Sub", [g.op("Mul", ["input", two]), one])
    gray = _attention(g, "input")
    (image_p, gray_p), hw, first, axes = _pad_to_grid(g, [image, gray], "input")
    if model.config.per_image:
        output = _two_pass_output(g, model, image, (image_p, gray_p), upsample, stats_max_pixels)
    else:
        output, _ = _network(g, model, image_p, gray_p, upsample, _running_norm(g))
    cropped = g.op("Slice", [output, first, g.op("Add", [first, hw]), axes])
    if model.config.exposure_fade is not None:
        cropped = _faded(g, image, gray, cropped, model.config.exposure_fade)
    rgb = g.op("Mul", [g.op("Add", [cropped, one]), half])
    g.op("Clip", [rgb, g.const("zero", np.float32(0.0)), one], name="output")
    outputs = [helper.make_tensor_value_info("output", tp.FLOAT, ["N", 3, "H", "W"])]
    return _finish(g, model, "full", inputs, outputs, opset)


def _faded(g: _Graph, image: str, gray: str, output: str, fade: tuple[float, float]) -> str:
    """``image + fade_factor * (output - image)``: the Enhancer's exposure fade inside the graph.

    The factor is :func:`~enlightengan.models.generator.exposure_fade_factor`: a smoothstep of each
    image's mean luminance (``1 - mean(gray)``), 1 at or below ``fade[0]``, 0 at or above ``fade[1]``.
    """
    low, high = fade
    brightness = g.op(
        "Sub",
        [
            g.const("one", np.float32(1.0)),
            g.op("ReduceMean", [gray, g.const("fade.axes", np.array([1, 2, 3]))]),
        ],
    )
    scaled = g.op(
        "Div",
        [
            g.op("Sub", [g.const("fade.high", np.float32(high)), brightness]),
            g.const("fade.span", np.float32(high - low)),
        ],
    )
    t = g.op("Clip", [scaled, g.const("fade.zero", np.float32(0.0)), g.const("one", np.float32(1.0))])
    smooth = g.op(
        "Mul",
        [
            g.op("Mul", [t, t]),
            g.op(
                "Sub",
                [g.const("fade.three", np.float32(3.0)), g.op("Mul", [g.const("two", np.float32(2.0)), t])],
            ),
        ],
    )
    return g.op("Add", [image, g.op("Mul", [g.op("Sub", [output, image]), smooth])])


def build_tiles_graph(model: EnlightenGenerator, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The ``"tiles"`` graph of ``model`` (the ONNX Runtime backend's; see the module doc).

    Per-image BatchNorm models take each layer's statistics as inputs ``bn{key}.mean``, ``bn{key}.var``.

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
    """
    g, doubler = _start()
    helper, tp = g.onnx.helper, g.onnx.TensorProto
    inputs = [
        helper.make_tensor_value_info("image", tp.FLOAT, ["N", 3, "H", "W"]),
        helper.make_tensor_value_info("gray", tp.FLOAT, ["N", 1, "H", "W"]),
        helper.make_tensor_value_info("roi", tp.FLOAT, [4, 8]),
    ]
    if model.config.per_image:
        for key, channels in _bn_keys(model):
            inputs += [
                helper.make_tensor_value_info(f"bn{key}.mean", tp.FLOAT, [channels]),
                helper.make_tensor_value_info(f"bn{key}.var", tp.FLOAT, [channels]),
            ]
    upsample = _placed_upsample(g, doubler)
    norm = _input_norm(g) if model.config.per_image else _running_norm(g)
    output, latent = _network(g, model, "image", "gray", upsample, norm)
    g.op("Identity", [output], name="output")
    g.op("Identity", [latent], name="latent")
    outputs = [
        helper.make_tensor_value_info("output", tp.FLOAT, ["N", 3, "H", "W"]),
        helper.make_tensor_value_info("latent", tp.FLOAT, ["N", 3, "H", "W"]),
    ]
    return _finish(g, model, "tiles", inputs, outputs, opset)


def build_statistics_graph(model: EnlightenGenerator, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The ``"statistics"`` graph of a per-image BatchNorm ``model`` (see the module doc).

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
        ValueError: ``model`` normalises with running statistics.
    """
    g, doubler = _start()
    if not model.config.per_image:
        raise ValueError("the statistics graph is for per-image BatchNorm models")
    helper, tp = g.onnx.helper, g.onnx.TensorProto
    upsample = _whole_upsample(g, doubler)
    inputs = [
        helper.make_tensor_value_info("image", tp.FLOAT, [1, 3, "H", "W"]),
        helper.make_tensor_value_info("gray", tp.FLOAT, [1, 1, "H", "W"]),
    ]
    stats: dict[str, tuple[str, str]] = {}
    output, latent = _network(g, model, "image", "gray", upsample, _measure_norm(g, stats, (0, 2, 3)))
    g.op("Identity", [output], name="output")
    g.op("Identity", [latent], name="latent")
    flat = g.const("stats.flat", np.array([-1], dtype=np.int64))
    outputs = [
        helper.make_tensor_value_info("output", tp.FLOAT, [1, 3, "H", "W"]),
        helper.make_tensor_value_info("latent", tp.FLOAT, [1, 3, "H", "W"]),
    ]
    for key, channels in _bn_keys(model):
        mean, var = stats[key]
        g.op("Reshape", [mean, flat], name=f"bn{key}.mean")
        g.op("Reshape", [var, flat], name=f"bn{key}.var")
        outputs += [
            helper.make_tensor_value_info(f"bn{key}.mean", tp.FLOAT, [channels]),
            helper.make_tensor_value_info(f"bn{key}.var", tp.FLOAT, [channels]),
        ]
    return _finish(g, model, "statistics", inputs, outputs, opset)


def build_onnx(
    model: EnlightenGenerator,
    *,
    graph: GraphName = "full",
    opset: int = DEFAULT_OPSET,
    stats_max_pixels: int = STATS_MAX_PIXELS,
) -> onnx.ModelProto:
    """The ONNX graph ``graph`` of ``model``: :func:`build_full_graph`, :func:`build_tiles_graph` or
    :func:`build_statistics_graph` (per-image models only).

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
        ValueError: unknown ``graph``, or a statistics graph of a running-BatchNorm model.
    """
    if graph == "full":
        return build_full_graph(model, opset=opset, stats_max_pixels=stats_max_pixels)
    if graph == "tiles":
        return build_tiles_graph(model, opset=opset)
    if graph == "statistics":
        return build_statistics_graph(model, opset=opset)
    raise ValueError(f"graph must be 'full', 'tiles' or 'statistics', got {graph!r}")


def export_onnx(
    model: EnlightenGenerator, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET
) -> Path:
    """Write the ``"full"`` graph of ``model`` to ``path`` atomically, after ``onnx.checker`` passes.

    Returns:
        The path written.

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
        onnx.checker.ValidationError: the graph is invalid (a bug: please report it).
    """
    onnx_module = require("onnx", "onnx")
    proto = build_full_graph(model.eval(), opset=opset)
    onnx_module.checker.check_model(proto, full_check=True)
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise FileNotFoundError(f"the folder {target.parent} does not exist: create it first")
    with atomic_path(target) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return target

"""Export the EnlightenGAN generator to ONNX (Jiang et al., IEEE TIP 2021, Fig. 2), graph built node by node.

Three graphs are built from the same weights:

* ``"full"`` (what ``enlightengan export`` writes, for any ONNX runtime): input ``input``, RGB in
  ``[0, 1]``, ``N x 3 x H x W`` float32 with dynamic ``N``, ``H`` and ``W`` (each side at least 9
  pixels, so that one reflection pads it); output ``output``, the enhanced RGB in ``[0, 1]``,
  clipped, same shape. Inside the graph: the attention map ``1 - luminance`` (REFERENCE.md), the
  reflection padding to multiples of 16 split as the original splits it, the network with
  ``align_corners=True`` upsampling, the crop back and the clip.
* ``"tiles"`` (the :class:`~enlightengan.backends.OnnxRuntimeBackend`'s): inputs ``image``
  (``[-1, 1]``), ``gray`` and ``roi`` (``4 x 8`` float32) for 16-aligned tiles; outputs ``output``
  and ``latent`` (``[-1, 1]`` scale, not clipped). Each decoder upsampling is an ONNX ``Resize`` in
  ``tf_crop_and_resize`` mode whose region of interest (one row of ``roi``,
  :func:`tile_roi`) puts the samples where the whole image's ``align_corners=True`` upsampling puts
  them (see :mod:`enlightengan.backends`).
* ``"statistics"`` (per-image BatchNorm models only, for the same backend): inputs ``image`` and
  ``gray`` of one 16-aligned image; outputs ``bn{key}.mean`` and ``bn{key}.var`` for every
  BatchNorm, the statistics that :func:`~enlightengan.models.batchnorm.per_image_model` measures,
  and ``output`` and ``latent`` of the image normalised with them.

Per-image BatchNorm generators (``GeneratorConfig(batchnorm="per-image")``, the bundled default
model) normalise each image with its own statistics, as the original test code did. Their ``"full"``
graph first runs the network in training-mode BatchNorm on the image's statistics copy
(:func:`~enlightengan.models.batchnorm.statistics_image`: the image itself, or shrunk to at most
``STATS_MAX_PIXELS``), recording every layer's per-image mean and biased variance; when that copy is
the image itself, its result is the answer; otherwise the image is run again, normalised with them.
The ``"tiles"`` graph takes the statistics as inputs (``bn{key}.mean``, ``bn{key}.var``).

The graphs are written with :mod:`onnx` directly rather than traced by ``torch.onnx``: no tracing
quirks with the data-dependent padding, and ``onnxscript`` is not needed. ``onnx`` (and
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

from ._atomic import atomic_path
from ._optional import require
from .models.batchnorm import STATS_MAX_PIXELS, THUMBNAIL_SIDE
from .models.generator import _LUMA, MULTIPLE, EnlightenGenerator

if TYPE_CHECKING:
    import onnx

    from .backends import Placement

__all__ = [
    "DEFAULT_OPSET",
    "build_onnx",
    "export_onnx",
    "tile_roi",
]

#: ONNX opset of the exported graphs (Pad with ``axes`` needs 18).
DEFAULT_OPSET = 18

_SLOPE = 0.2


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
        return g.op("LeakyRelu", [y], alpha=_SLOPE) if act else y

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
    """``1 - luminance`` of an RGB ``[0, 1]`` tensor (REFERENCE.md's formula on ``2 rgb - 1``)."""
    luma = g.const("luma.weight", np.array(_LUMA, dtype=np.float32).reshape(1, 3, 1, 1))
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


def build_onnx(
    model: EnlightenGenerator,
    *,
    graph: Literal["full", "tiles", "statistics"] = "full",
    opset: int = DEFAULT_OPSET,
    stats_max_pixels: int = STATS_MAX_PIXELS,
) -> onnx.ModelProto:
    """The ONNX graph of ``model``; see the module doc for the graphs.

    Args:
        model: the generator (its weights are copied into the graph).
        graph: ``"full"``, ``"tiles"`` or ``"statistics"`` (per-image models only).
        opset: ONNX opset.
        stats_max_pixels: the ``"full"`` per-image graph measures statistics on a copy shrunk to
            about this many pixels (:func:`~enlightengan.models.batchnorm.statistics_image`).

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
        ValueError: unknown ``graph``, or a statistics graph of a running-BatchNorm model.
    """
    onnx_module = require("onnx", "onnx")
    helper, tp = onnx_module.helper, onnx_module.TensorProto
    if graph not in ("full", "tiles", "statistics"):
        raise ValueError(f"graph must be 'full', 'tiles' or 'statistics', got {graph!r}")
    per_image = model.config.batchnorm == "per-image"
    if graph == "statistics" and not per_image:
        raise ValueError("the statistics graph is for per-image BatchNorm models")
    g = _Graph(onnx_module)
    doubler = g.const("upsample_factor", np.array([1, 1, 2, 2], dtype=np.int64))

    def whole_upsample(x: str, level: int) -> str:
        return g.op(
            "Resize",
            [x, "", "", g.op("Mul", [g.op("Shape", [x]), doubler])],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        )

    if graph == "full":
        inputs = [helper.make_tensor_value_info("input", tp.FLOAT, ["N", 3, "H", "W"])]
        one = g.const("one", np.float32(1.0))
        two = g.const("two", np.float32(2.0))
        half = g.const("half", np.float32(0.5))
        # image in [-1, 1]; gray = 1 - luminance (equal to REFERENCE.md's formula on 2 * input - 1).
        image = g.op("Sub", [g.op("Mul", ["input", two]), one])
        gray = _attention(g, "input")
        (image_p, gray_p), hw, first, axes = _pad_to_grid(g, [image, gray], "input")
        if per_image:
            # Pass 1 (the original test code's train-mode BatchNorm): each image's statistics,
            # measured on its statistics copy, padded to the grid as the model pads.
            small, resized = _statistics_copy(g, image, stats_max_pixels)
            small_gray = _attention(g, g.op("Mul", [g.op("Add", [small, one]), half]))
            (small_p, small_gray_p), *_ = _pad_to_grid(g, [small, small_gray], small)
            stats: dict[str, tuple[str, str]] = {}
            first_pass, _ = _network(
                g, model, small_p, small_gray_p, whole_upsample, _measure_norm(g, stats, (2, 3))
            )
            # Pass 2, only when the copy is not the image itself: the image with those statistics.
            with g.branch() as second_nodes:
                second_pass, _ = _network(g, model, image_p, gray_p, whole_upsample, _given_norm(g, stats))
            with g.branch() as same_nodes:
                same = g.op("Identity", [first_pass])
            output = g.op(
                "If",
                [resized],
                then_branch=helper.make_graph(
                    second_nodes,
                    "second_pass",
                    [],
                    [helper.make_tensor_value_info(second_pass, tp.FLOAT, None)],
                ),
                else_branch=helper.make_graph(
                    same_nodes, "first_pass", [], [helper.make_tensor_value_info(same, tp.FLOAT, None)]
                ),
            )
        else:
            output, _ = _network(g, model, image_p, gray_p, whole_upsample, _running_norm(g))
        cropped = g.op("Slice", [output, first, g.op("Add", [first, hw]), axes])
        rgb = g.op("Mul", [g.op("Add", [cropped, one]), half])
        g.op("Clip", [rgb, g.const("zero", np.float32(0.0)), one], name="output")
        outputs = [helper.make_tensor_value_info("output", tp.FLOAT, ["N", 3, "H", "W"])]
    elif graph == "statistics":
        inputs = [
            helper.make_tensor_value_info("image", tp.FLOAT, [1, 3, "H", "W"]),
            helper.make_tensor_value_info("gray", tp.FLOAT, [1, 1, "H", "W"]),
        ]
        stats = {}
        output, latent = _network(
            g, model, "image", "gray", whole_upsample, _measure_norm(g, stats, (0, 2, 3))
        )
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
    else:
        inputs = [
            helper.make_tensor_value_info("image", tp.FLOAT, ["N", 3, "H", "W"]),
            helper.make_tensor_value_info("gray", tp.FLOAT, ["N", 1, "H", "W"]),
            helper.make_tensor_value_info("roi", tp.FLOAT, [4, 8]),
        ]
        if per_image:
            for key, channels in _bn_keys(model):
                inputs += [
                    helper.make_tensor_value_info(f"bn{key}.mean", tp.FLOAT, [channels]),
                    helper.make_tensor_value_info(f"bn{key}.var", tp.FLOAT, [channels]),
                ]

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

        norm = _input_norm(g) if per_image else _running_norm(g)
        output, latent = _network(g, model, "image", "gray", upsample, norm)
        g.op("Identity", [output], name="output")
        g.op("Identity", [latent], name="latent")
        outputs = [
            helper.make_tensor_value_info("output", tp.FLOAT, ["N", 3, "H", "W"]),
            helper.make_tensor_value_info("latent", tp.FLOAT, ["N", 3, "H", "W"]),
        ]

    body = helper.make_graph(g.nodes, f"enlightengan_{graph}", inputs, outputs, g.initializers)
    proto = helper.make_model(
        body, opset_imports=[helper.make_opsetid("", opset)], producer_name="enlightengan", ir_version=8
    )
    statistics = " BatchNorm: each image's own statistics." if per_image else ""
    proto.doc_string = (
        "EnlightenGAN generator (Jiang et al., IEEE TIP 2021). "
        + {
            "full": "input: RGB [0,1] NCHW float32, any H, W >= 9; output: enhanced RGB [0,1], clipped.",
            "tiles": "tiles graph: image [-1,1], gray [0,1], roi 4x8 (tf_crop_and_resize); "
            "output, latent [-1,1].",
            "statistics": "statistics graph: image [-1,1] and gray [0,1] of one 16-aligned image; "
            "outputs: each BatchNorm's mean and unbiased variance.",
        }[graph]
        + statistics
    )
    return proto


def tile_roi(height: int, width: int, placement: Placement | None) -> np.ndarray:
    """The ``4 x 8`` ``roi`` input of the ``"tiles"`` graph for a ``height x width`` tile.

    Row ``k`` serves the ``k``-th decoder upsampling (to 1/8, 1/4, 1/2 and full resolution). The
    graph pads the ``L`` input samples of an axis with one replicated sample on each side, and
    ``tf_crop_and_resize`` makes output sample ``j`` (of ``2 L``) read padded position
    ``start (L + 1) + j (end - start) (L + 1) / (2 L - 1)``. The whole image's ``align_corners=True``
    upsampling reads tile position ``j s + o s - o / 2``, with ``o`` the tile's first output sample
    and ``s = (n - 1) / (2 n - 1)`` for an axis of ``n`` output samples; so
    ``start = (o s - o / 2 + 1) / (L + 1)`` and ``end = start + s (2 L - 1) / (L + 1)``.
    """
    full_h, full_w = (height, width) if placement is None else (placement.height, placement.width)
    top, left = (0, 0) if placement is None else (placement.top, placement.left)
    roi = np.zeros((4, 8), dtype=np.float64)
    roi[:, 4:6] = 1.0  # batch and channel axes: the identity
    for k, scale_level in enumerate((8, 4, 2, 1)):
        for axis, (offset, size, full) in enumerate(((top, height, full_h), (left, width, full_w))):
            o = offset // scale_level
            length = size // (2 * scale_level)  # input samples of this axis in the tile
            n_out = full // scale_level
            step = (n_out // 2 - 1) / (n_out - 1)
            start = (o * step - o / 2 + 1) / (length + 1)
            end = start + step * (2 * length - 1) / (length + 1)
            roi[k, 2 + axis] = start
            roi[k, 6 + axis] = end
    return roi.astype(np.float32)


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
    proto = build_onnx(model.eval(), graph="full", opset=opset)
    onnx_module.checker.check_model(proto, full_check=True)
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise FileNotFoundError(f"the folder {target.parent} does not exist: create it first")
    with atomic_path(target) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return target

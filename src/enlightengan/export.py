"""Export the EnlightenGAN generator to ONNX (Jiang et al., IEEE TIP 2021, Fig. 2), graph built node by node.

Two graphs are built from the same weights:

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

The graph is written with :mod:`onnx` directly rather than traced by ``torch.onnx``: no tracing
quirks with the data-dependent padding, and ``onnxscript`` is not needed. ``onnx`` (and
``onnxruntime`` for running) are optional dependencies: ``pip install 'enlightengan[onnx]'``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ._atomic import atomic_path
from .models.generator import _LUMA, MULTIPLE, EnlightenGenerator

if TYPE_CHECKING:
    import onnx

    from .backends import Placement

__all__ = [
    "DEFAULT_OPSET",
    "OptionalDependencyError",
    "build_onnx",
    "export_onnx",
    "require",
    "tile_roi",
]

#: ONNX opset of the exported graphs (Pad with ``axes`` needs 18).
DEFAULT_OPSET = 18

_SLOPE = 0.2


class OptionalDependencyError(ImportError):
    """An optional dependency (onnx, onnxruntime, av) is not installed."""


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`OptionalDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OptionalDependencyError(
            f"this feature needs the optional package {module!r}: pip install 'enlightengan[{extra}]'"
        ) from exc


class _Graph:
    """A tiny ONNX graph builder: named constants and nodes with generated output names."""

    def __init__(self, onnx_module: Any) -> None:
        self.onnx = onnx_module
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray | np.generic | torch.Tensor) -> str:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs: Any) -> str:
        self._count += 1
        out = name or f"{op_type.lower()}_{self._count}"
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, [out], name=f"n{self._count}_{op_type}", **attrs)
        )
        return out


def _network(
    g: _Graph,
    model: EnlightenGenerator,
    image: str,
    gray: str,
    upsample: Any,
) -> tuple[str, str]:
    """Add the generator's ``forward_aligned`` to ``g``; returns the names of ``(output, latent)``."""
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
        assert bn.running_mean is not None and bn.running_var is not None
        assert bn.weight is not None and bn.bias is not None
        names = [
            g.const(f"bn{key}.{part}", tensor.float())
            for part, tensor in (
                ("weight", bn.weight),
                ("bias", bn.bias),
                ("running_mean", bn.running_mean),
                ("running_var", bn.running_var),
            )
        ]
        return g.op("BatchNormalization", [y, *names], epsilon=float(bn.eps))

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


def build_onnx(
    model: EnlightenGenerator, *, graph: Literal["full", "tiles"] = "full", opset: int = DEFAULT_OPSET
) -> onnx.ModelProto:
    """The ONNX graph of ``model`` (eval-mode BatchNorm); see the module doc for the two graphs.

    Raises:
        OptionalDependencyError: ``onnx`` is not installed.
        ValueError: unknown ``graph``.
    """
    onnx_module = require("onnx", "onnx")
    helper, tp = onnx_module.helper, onnx_module.TensorProto
    if graph not in ("full", "tiles"):
        raise ValueError(f"graph must be 'full' or 'tiles', got {graph!r}")
    g = _Graph(onnx_module)
    doubler = g.const("upsample_factor", np.array([1, 1, 2, 2], dtype=np.int64))

    if graph == "full":
        inputs = [helper.make_tensor_value_info("input", tp.FLOAT, ["N", 3, "H", "W"])]
        # image in [-1, 1]; gray = 1 - luminance (equal to REFERENCE.md's formula on 2 * input - 1).
        image = g.op(
            "Sub", [g.op("Mul", ["input", g.const("two", np.float32(2.0))]), g.const("one", np.float32(1.0))]
        )
        luma = g.const("luma.weight", np.array(_LUMA, dtype=np.float32).reshape(1, 3, 1, 1))
        gray = g.op("Sub", ["one", g.op("Conv", ["input", luma], kernel_shape=[1, 1])])
        # Padding to the 16 grid, the first side getting the smaller half (pad_to_multiple).
        shape = g.op("Shape", ["input"])
        hw = g.op("Slice", [shape, g.const("hw.start", np.array([2])), g.const("hw.end", np.array([4]))])
        m = g.const("multiple", np.array([MULTIPLE], dtype=np.int64))
        total = g.op("Mod", [g.op("Sub", [m, g.op("Mod", [hw, m])]), m])
        first = g.op("Div", [total, g.const("two_i", np.array([2], dtype=np.int64))])
        second = g.op("Sub", [total, first])
        pads = g.op("Concat", [first, second], axis=0)  # [top, left, bottom, right]
        axes = g.const("pad.axes", np.array([2, 3], dtype=np.int64))
        image_p = g.op("Pad", [image, pads, "", axes], mode="reflect")
        gray_p = g.op("Pad", [gray, pads, "", axes], mode="reflect")

        def upsample(x: str, level: int) -> str:
            return g.op(
                "Resize",
                [x, "", "", g.op("Mul", [g.op("Shape", [x]), doubler])],
                mode="linear",
                coordinate_transformation_mode="align_corners",
            )

        output, _ = _network(g, model, image_p, gray_p, upsample)
        cropped = g.op("Slice", [output, first, g.op("Add", [first, hw]), axes])
        half = g.const("half", np.float32(0.5))
        rgb = g.op("Mul", [g.op("Add", [cropped, "one"]), half])
        g.op("Clip", [rgb, g.const("zero", np.float32(0.0)), "one"], name="output")
        outputs = [helper.make_tensor_value_info("output", tp.FLOAT, ["N", 3, "H", "W"])]
    else:
        inputs = [
            helper.make_tensor_value_info("image", tp.FLOAT, ["N", 3, "H", "W"]),
            helper.make_tensor_value_info("gray", tp.FLOAT, ["N", 1, "H", "W"]),
            helper.make_tensor_value_info("roi", tp.FLOAT, [4, 8]),
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

        output, latent = _network(g, model, "image", "gray", upsample)
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
    proto.doc_string = "EnlightenGAN generator (Jiang et al., IEEE TIP 2021). " + (
        "input: RGB [0,1] NCHW float32, any H, W >= 9; output: enhanced RGB [0,1], clipped."
        if graph == "full"
        else "tiles graph: image [-1,1], gray [0,1], roi 4x8 (tf_crop_and_resize); output, latent [-1,1]."
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

"""The OpenVINO backend: the generator compiled by OpenVINO for the CPU, whole images and placed tiles.

OpenVINO (Intel's inference runtime) compiles the generator's network (Jiang et al., IEEE TIP 2021,
Fig. 2), built node by node from the weights with OpenVINO's own operation set (no ONNX step:
importing ``onnx`` alone took longer than building and compiling the network), with float32
arithmetic required (``INFERENCE_PRECISION_HINT``; left to itself it may compute in bfloat16 on CPUs
that have it, which is not exact). On the 2-core development machine it ran the bundled model faster
than the PyTorch backend (``benchmarks/RESULTS.md``).

Two compiled forms, built when first needed:

* **whole images** that fit the memory budget: one model for every size (dynamic shapes), with the
  ``align_corners=True`` upsampling as OpenVINO's ``Interpolate``. It needs about 46 bytes per pixel
  and unit of base width (:attr:`OpenVinoBackend.dynamic_bytes_per_pixel_per_width`).
* **placed tiles**, and whole images over that budget: the upsampling samples where the whole image
  samples it (:func:`~enlightengan.inference.placement.tile_taps`: two source indices and a weight
  per output row and column, given as inputs), in a model compiled for the tile's shape. Compiled
  for a fixed shape, OpenVINO computes these indexed reads exactly; with dynamic shapes the same
  graph gave wrong values in the last 17 columns of images from about 1536 x 1536 pixels on
  (OpenVINO 2026.4, CPU plugin). ONNX Runtime's ``Resize`` in ``tf_crop_and_resize`` mode, which the
  ONNX Runtime backend uses for tiles, is not available in OpenVINO.

Each infer request keeps the memory its model planned for as long as it lives, so the backend holds
one compiled model at a time, and as many requests of it as have run at once (a request runs in one
thread at a time; idle ones wait in a free list): one for a single caller or the web service, which
runs one image at a time, N for N threads running at once. A new shape (or the switch between whole
images and tiles) compiles again, about 0.1 s on 2 cores. Keeping two tile models raised a 12 MP
photo's peak by 450 MB.

One ``openvino.Core`` serves the whole process (:func:`_core`): OpenVINO's maintainers recommend one per
application (its methods are thread-safe). While every compiled model had a Core of its own, this
project's test suite crashed now and then (segmentation fault, never reproduced on demand); other
projects traced the same kind of crash to creating Cores repeatedly (openvinotoolkit/openvino issue
35338, ultralytics pull request 25864).

Generators with fixed BatchNorm statistics only (running averages, as the released weights and the
bundled default model run); per-image BatchNorm generators use the ONNX Runtime or PyTorch backend.
``openvino`` is an optional dependency: ``pip install 'enlightengan[openvino]'``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._optional import require
from ..models.generator import SLOPE, EnlightenGenerator
from .backend import check_inputs, not_per_image
from .placement import Placement, tile_taps
from .tiling import default_budget

__all__ = ["OpenVinoBackend"]

_CORE: Any = None
_CORE_LOCK = threading.Lock()


def _core(ov: Any) -> Any:
    """The process's one ``openvino.Core``, created on first use (see the module doc)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = ov.Core()
        return _CORE


#: The decoder's upsampling levels, from the coarsest (1/8 of the image) to full resolution.
_LEVELS = 4


class OpenVinoBackend:
    """The generator run by OpenVINO on the CPU (see the module doc).

    Args:
        model: a generator with fixed BatchNorm statistics (its weights are copied now).
        threads: inference threads (default: OpenVINO's choice, one per physical core).

    Shapes:
        ``run(image, gray, placement)``: ``N x 3 x H x W`` in ``[-1, 1]`` and ``N x 1 x H x W`` in
        ``[0, 1]`` with H, W multiples of 16 -> ``(output, latent)``, both ``N x 3 x H x W``.

    Raises:
        OptionalDependencyError: ``openvino`` is not installed.
        ValueError: a per-image BatchNorm generator, or ``threads`` below 1.
    """

    name = "openvino"
    #: Working memory per tile pixel and unit of base width of the fixed-shape models, for the tile
    #: planner. A fixed-shape model of a whole 4 MP image took 23.5 bytes per pixel and width; planned
    #: with 24 (the PyTorch backend's figure), a 12 MP photo peaked 1.42 GB against PyTorch's 1.04 GB
    #: (bundled model); with 40, 1.08 GB.
    bytes_per_pixel_per_width = 40
    #: The dynamic-shape model's: it peaked 45-46 bytes per pixel and width above the process's
    #: resident memory at 1 and 4 MP (bundled model, width 16). Whole images whose dynamic run would
    #: need more than the memory budget (:func:`~enlightengan.inference.tiling.default_budget`) run
    #: in a fixed-shape model instead.
    dynamic_bytes_per_pixel_per_width = 48

    def __init__(self, model: EnlightenGenerator, *, threads: int | None = None) -> None:
        if model.config.per_image:
            raise ValueError(
                "the openvino backend runs generators with fixed BatchNorm statistics; this one normalises "
                "each image with its own: use backend='onnxruntime' or 'torch'"
            )
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self._ov = require("openvino", "openvino")
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._model = copy.deepcopy(model).eval()  # the weights as they are now
        self._width = model.config.base_width
        #: the one compiled model held: (None for the dynamic whole-image model, else the fixed shape
        #: it was compiled for) and the compiled model
        self._compiled: tuple[tuple[int, ...] | None, Any] | None = None
        #: its idle infer requests
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def with_statistics(self, image: Tensor) -> OpenVinoBackend:
        raise not_per_image("with_statistics")

    def measuring(self) -> OpenVinoBackend:
        raise not_per_image("measuring")

    def _acquire(self, shape: tuple[int, ...] | None, feeds: dict[str, np.ndarray]) -> tuple[Any, Any]:
        """An idle infer request for ``shape`` (``None``: the dynamic whole-image model) and its model.

        The compiled model is shared and compiled again when another shape is asked for (the idle
        requests of the old one and their memory go first); a request is created when every one of
        the current model is running (the web service and ``--workers`` call one backend from
        several threads). Give it back with :meth:`_release`.
        """
        with self._lock:
            if self._compiled is None or self._compiled[0] != shape:
                self._idle.clear()
                self._compiled = None  # its memory goes before the next model plans its own
                network = _network(self._ov, self._model, placed=shape is not None)
                if shape is not None:
                    network.reshape({name: list(value.shape) for name, value in feeds.items()})
                self._compiled = (shape, _core(self._ov).compile_model(network, "CPU", self._config))
            compiled = self._compiled[1]
            request = self._idle.pop() if self._idle else compiled.create_infer_request()
        return request, compiled

    def _release(self, request: Any, compiled: Any) -> None:
        """Put ``request`` back among the idle ones, unless its model has been replaced meanwhile."""
        with self._lock:
            if self._compiled is not None and self._compiled[1] is compiled:
                self._idle.append(request)

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        """Run the generator on a 16-aligned image or tile; see the class doc."""
        check_inputs(image, gray)
        n, _, h, w = image.shape
        if placement is not None:
            placement.check(h, w)
        feeds = {
            "image": np.ascontiguousarray(image.detach().float().cpu().numpy()),
            "gray": np.ascontiguousarray(gray.detach().float().cpu().numpy()),
        }
        whole = placement is None or placement.is_whole(h, w)
        dynamic = (
            whole and n * h * w * self._width * self.dynamic_bytes_per_pixel_per_width <= default_budget()
        )
        if not dynamic:
            for level, (rows, cols) in enumerate(tile_taps(h, w, placement)):
                for axis, (first, second, weight) in (("r", rows), ("c", cols)):
                    feeds[f"up{level}.{axis}0"] = first.numpy()
                    feeds[f"up{level}.{axis}1"] = second.numpy()
                    feeds[f"up{level}.{axis}w"] = weight.numpy().reshape((-1, 1) if axis == "r" else (-1,))
        request, compiled = self._acquire(None if dynamic else tuple(image.shape), feeds)
        try:
            results = request.infer(feeds)
            output = torch.from_numpy(np.array(results["output"]))
            latent = torch.from_numpy(np.array(results["latent"]))
        finally:
            self._release(request, compiled)
        return output.to(image.device), latent.to(image.device)


def _channels(node: Any) -> int:
    """The channel count (axis 1) of an OpenVINO node or output."""
    if hasattr(node, "get_partial_shape"):
        return int(node.get_partial_shape()[1].get_length())
    return int(node.get_output_partial_shape(0)[1].get_length())


def _network(ov: Any, model: EnlightenGenerator, *, placed: bool) -> Any:
    """The generator's ``forward_aligned`` as an OpenVINO model, BatchNorm with the running statistics.

    Inputs ``image`` (``N x 3 x H x W``, ``[-1, 1]``) and ``gray`` (``N x 1 x H x W``); outputs
    ``output`` and ``latent``; dynamic batch and size. The same operations as
    :meth:`EnlightenGenerator.forward_aligned`: 3 x 3 convolutions padded by 1, LeakyReLU (slope 0.2),
    BatchNorm, 2 x 2 max pooling, the attention map's pyramid by max pooling, and the decoder's x2
    ``align_corners=True`` bilinear upsampling: ``Interpolate`` on whole maps, or with ``placed``
    gathered rows and columns interpolated with weights, from the inputs ``up{k}.r0``, ``up{k}.r1``
    (row indices, ``R``), ``up{k}.rw`` (``R x 1``) and ``up{k}.c0``, ``up{k}.c1``, ``up{k}.cw``
    (columns, ``C``) of decoder level ``k`` = 0..3 (columns first, then rows).
    """
    ops = require("openvino.opset13", "openvino")
    modules = dict(model.named_modules())
    image = ops.parameter([-1, 3, -1, -1], np.float32, name="image")
    gray = ops.parameter([-1, 1, -1, -1], np.float32, name="gray")
    parameters = [image, gray]
    slope = ops.constant(np.array([SLOPE], dtype=np.float32))
    doubler = ops.constant(np.array([2, 2], dtype=np.int64))
    spatial = ops.constant(np.array([2, 3], dtype=np.int64))

    def const(tensor: Tensor) -> Any:
        return ops.constant(tensor.detach().float().cpu().numpy())

    def conv(name: str, x: Any | list[Any], act: bool = True) -> Any:
        """``layer(x)``; a list stands for its concatenation along channels, computed as the sum of
        each part's convolution with its slice of the weights (OpenVINO's Concat was a slow
        reference kernel: 6% of a 0.25 MP call)."""
        layer = modules[name]
        assert isinstance(layer, torch.nn.Conv2d) and layer.bias is not None
        pad = layer.kernel_size[0] // 2
        parts = x if isinstance(x, list) else [x]
        channels = [_channels(part) for part in parts]
        weights = layer.weight.split(channels, dim=1)
        y = None
        for part, weight in zip(parts, weights, strict=True):
            z = ops.convolution(part, const(weight), [1, 1], [pad, pad], [pad, pad], [1, 1])
            y = z if y is None else ops.add(y, z)
        y = ops.add(y, const(layer.bias.view(1, -1, 1, 1)))
        return ops.prelu(y, slope) if act else y

    def block(key: str, x: Any | list[Any]) -> Any:
        y = conv(f"conv{key}", x)
        bn = modules.get(f"bn{key}")
        if bn is None:
            return y
        assert isinstance(bn, torch.nn.BatchNorm2d) and bn.running_mean is not None
        assert bn.running_var is not None and bn.weight is not None and bn.bias is not None
        return ops.batch_norm_inference(
            y, const(bn.weight), const(bn.bias), const(bn.running_mean), const(bn.running_var), bn.eps
        )

    def pool(x: Any) -> Any:
        return ops.max_pool(x, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2]).output(0)

    def lerp(x: Any, level: int, axis: str) -> Any:
        index = 3 if axis == "c" else 2
        first = ops.parameter([-1], np.int64, name=f"up{level}.{axis}0")
        second = ops.parameter([-1], np.int64, name=f"up{level}.{axis}1")
        weight = ops.parameter([-1, 1] if axis == "r" else [-1], np.float32, name=f"up{level}.{axis}w")
        parameters.extend([first, second, weight])
        x0 = ops.gather(x, first, index)
        x1 = ops.gather(x, second, index)
        return ops.add(x0, ops.multiply(ops.subtract(x1, x0), weight))

    def upsample(x: Any, level: int) -> Any:
        if placed:
            return lerp(lerp(x, level, "c"), level, "r")
        sizes = ops.multiply(ops.gather(ops.shape_of(x), spatial, 0), doubler)
        return ops.interpolate(
            x, sizes, "linear_onnx", "sizes", coordinate_transformation_mode="align_corners", axes=spatial
        )

    grays = [gray]
    for _ in range(_LEVELS):
        grays.append(pool(grays[-1]))
    x: Any = [image, gray]
    skips = []
    for level in range(1, 5):
        x = block(f"{level}_2", block(f"{level}_1", x))
        skips.append(x)
        x = pool(x)
    x = block("5_1", x)
    x = block("5_2", ops.multiply(x, grays[4]))
    for level in range(6, 10):
        x = upsample(x, level - 6)
        skip = ops.multiply(skips[9 - level], grays[9 - level])
        x = block(f"{level}_2", block(f"{level}_1", [conv(f"deconv{level - 1}", x, act=False), skip]))
    latent = ops.multiply(conv("conv10", x, act=False), gray)
    output = ops.add(latent, image)
    output.output(0).get_tensor().set_names({"output"})
    latent.output(0).get_tensor().set_names({"latent"})
    return ov.Model([output, latent], parameters, "enlightengan")

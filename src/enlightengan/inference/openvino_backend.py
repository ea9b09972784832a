"""The OpenVINO backend: whole images run by OpenVINO on the CPU, tiles by the PyTorch backend.

OpenVINO (Intel's inference runtime) compiles the generator's network (Jiang et al., IEEE TIP 2021,
Fig. 2), built node by node from the weights with OpenVINO's own operation set (no ONNX step: importing
``onnx`` alone took longer than building and compiling the network), for the CPU, with float32
arithmetic required (``INFERENCE_PRECISION_HINT``; left to itself it may compute in bfloat16 on CPUs
that have it, which is not exact). The network is compiled when the first whole image comes, so a
command whose images are all tiled pays nothing for it. On the 2-core development machine it ran the
bundled model's network faster than the PyTorch backend (``benchmarks/RESULTS.md``).

Tiles are the exception. Placing a tile's upsampling where the whole image samples it needs
``Resize`` in ``tf_crop_and_resize`` mode (the ONNX Runtime backend's tiles graph), which OpenVINO
does not run; the same sampling written as ``Gather`` and interpolation gave wrong values in the
last 17 columns of images from about 1536 x 1536 pixels on (OpenVINO 2026.4, CPU plugin), while
``Resize`` with ``align_corners`` on whole maps agreed with PyTorch to 1e-4 grey levels at every
size tried. So this backend runs whole images in OpenVINO and hands tiles of larger images to a
:class:`~enlightengan.inference.torch_backend.TorchBackend` of the same weights: both compute the
same function to float rounding, and the tiler (:mod:`~enlightengan.inference.tiling`) plans
with this backend's :attr:`~OpenVinoBackend.bytes_per_pixel_per_width`.

Generators with fixed BatchNorm statistics only (running averages, as the released weights and the
bundled default model run); per-image BatchNorm generators use the ONNX Runtime or PyTorch backend.
``openvino`` is an optional dependency: ``pip install 'enlightengan[openvino]'``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._optional import require
from ..models.generator import SLOPE, EnlightenGenerator
from .backend import check_inputs, not_per_image
from .placement import Placement
from .tiling import BYTES_PER_PIXEL_PER_WIDTH, default_budget
from .torch_backend import TorchBackend

__all__ = ["OpenVinoBackend"]


class OpenVinoBackend:
    """The generator run by OpenVINO (CPU) on whole images; tiles by :class:`TorchBackend` (module doc).

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
    #: The tile planner plans for the PyTorch backend, which runs the tiles and the images too large
    #: for OpenVINO's budget (see :attr:`openvino_bytes_per_pixel_per_width`).
    bytes_per_pixel_per_width = BYTES_PER_PIXEL_PER_WIDTH
    #: OpenVINO's working memory per pixel and unit of base width: with dynamic input shapes (one
    #: compiled model for every size) it peaked 45-46 bytes per pixel and width above the process's
    #: resident memory at 1 and 4 MP (bundled model, width 16), against PyTorch's 24. Whole images
    #: whose OpenVINO run would need more than the memory budget
    #: (:func:`~enlightengan.inference.tiling.default_budget`) run in PyTorch instead.
    openvino_bytes_per_pixel_per_width = 48

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
        self._request: Any = None  # compiled on the first whole image
        self._tiles = TorchBackend(model)

    def _compiled_request(self) -> Any:
        if self._request is None:
            network = _network(self._ov, self._model)
            compiled = self._ov.Core().compile_model(network, "CPU", self._config)
            self._request = compiled.create_infer_request()
        return self._request

    def with_statistics(self, image: Tensor) -> OpenVinoBackend:
        raise not_per_image("with_statistics")

    def measuring(self) -> OpenVinoBackend:
        raise not_per_image("measuring")

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        """Run the generator on a 16-aligned image (OpenVINO) or tile (PyTorch); see the class doc."""
        check_inputs(image, gray)
        h, w = image.shape[-2:]
        if placement is not None:
            placement.check(h, w)
            if not placement.is_whole(h, w):
                return self._tiles.run(image, gray, placement)
        if image.shape[0] * h * w * self._width * self.openvino_bytes_per_pixel_per_width > default_budget():
            return self._tiles.run(image, gray)
        results = self._compiled_request().infer(
            {
                "image": np.ascontiguousarray(image.detach().float().cpu().numpy()),
                "gray": np.ascontiguousarray(gray.detach().float().cpu().numpy()),
            }
        )
        output = torch.from_numpy(np.array(results["output"]))
        latent = torch.from_numpy(np.array(results["latent"]))
        return output.to(image.device), latent.to(image.device)


def _network(ov: Any, model: EnlightenGenerator) -> Any:
    """The generator's ``forward_aligned`` as an OpenVINO model (inputs ``image``, ``gray``; outputs
    ``output``, ``latent``; dynamic batch and size), BatchNorm with the running statistics.

    The same operations as :meth:`EnlightenGenerator.forward_aligned`: 3 x 3 convolutions padded by 1,
    LeakyReLU (slope 0.2), BatchNorm, 2 x 2 max pooling, the attention map's pyramid by max pooling,
    and ``align_corners=True`` bilinear upsampling by 2.
    """
    ops = require("openvino.opset13", "openvino")
    modules = dict(model.named_modules())
    image = ops.parameter([-1, 3, -1, -1], np.float32, name="image")
    gray = ops.parameter([-1, 1, -1, -1], np.float32, name="gray")
    slope = ops.constant(np.array([SLOPE], dtype=np.float32))
    doubler = ops.constant(np.array([2, 2], dtype=np.int64))
    spatial = ops.constant(np.array([2, 3], dtype=np.int64))

    def const(tensor: Tensor) -> Any:
        return ops.constant(tensor.detach().float().cpu().numpy())

    def conv(name: str, x: Any, act: bool = True) -> Any:
        layer = modules[name]
        assert isinstance(layer, torch.nn.Conv2d) and layer.bias is not None
        pad = layer.kernel_size[0] // 2
        y = ops.convolution(x, const(layer.weight), [1, 1], [pad, pad], [pad, pad], [1, 1])
        y = ops.add(y, const(layer.bias.view(1, -1, 1, 1)))
        return ops.prelu(y, slope) if act else y

    def block(key: str, x: Any) -> Any:
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

    def upsample(x: Any) -> Any:
        sizes = ops.multiply(ops.gather(ops.shape_of(x), spatial, 0), doubler)
        return ops.interpolate(
            x, sizes, "linear_onnx", "sizes", coordinate_transformation_mode="align_corners", axes=spatial
        )

    grays = [gray]
    for _ in range(4):
        grays.append(pool(grays[-1]))
    x = ops.concat([image, gray], 1)
    skips = []
    for level in range(1, 5):
        x = block(f"{level}_2", block(f"{level}_1", x))
        skips.append(x)
        x = pool(x)
    x = block("5_1", x)
    x = block("5_2", ops.multiply(x, grays[4]))
    for level in range(6, 10):
        x = upsample(x)
        skip = ops.multiply(skips[9 - level], grays[9 - level])
        x = ops.concat([conv(f"deconv{level - 1}", x, act=False), skip], 1)
        x = block(f"{level}_2", block(f"{level}_1", x))
    latent = ops.multiply(conv("conv10", x, act=False), gray)
    output = ops.add(latent, image)
    output.output(0).get_tensor().set_names({"output"})
    latent.output(0).get_tensor().set_names({"latent"})
    return ov.Model([output, latent], [image, gray], "enlightengan")

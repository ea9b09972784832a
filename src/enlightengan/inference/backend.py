"""The backend interface: what runs the generator for the tiler, the fast mode and the Enhancer.

Every backend evaluates :meth:`EnlightenGenerator.forward_aligned <enlightengan.models.generator.
EnlightenGenerator.forward_aligned>` (Jiang et al., IEEE TIP 2021, Fig. 2) on inputs whose height and
width are multiples of 16::

    output, latent = backend.run(image, gray, placement=None)

``image`` is ``N x 3 x H x W`` RGB in ``[-1, 1]``, ``gray`` the ``N x 1 x H x W`` attention map in
``[0, 1]``; both results are ``N x 3 x H x W`` (``output = latent + image``, not clipped).
``placement`` (:class:`~enlightengan.inference.placement.Placement`) says where the input sits when it
is a tile of a larger image, so that the backend samples the decoder's upsampling where the whole
image samples it.

Generators with per-image BatchNorm (``GeneratorConfig(batchnorm="per-image")``) normalise each image
with its own statistics. The backends the Enhancer uses (:data:`BACKENDS`) are
:class:`StatisticsBackend`\\ s: they offer the same two views for such generators, so the Enhancer
asks for what it needs without knowing which backend it holds:

* ``backend.with_statistics(image)``: normalising with the statistics of ``image`` (measured once,
  on its statistics copy), for any tile of it;
* ``backend.measuring()``: normalising each whole image it runs with that image's own statistics,
  measured inside the pass (one pass instead of two).

Implementations: :mod:`~enlightengan.inference.torch_backend` (PyTorch, and the eager reference),
:mod:`~enlightengan.inference.onnxruntime_backend` and :mod:`~enlightengan.inference.openvino_backend`
(fixed-statistics generators only).
"""

from __future__ import annotations

import typing
from typing import Literal, Protocol

from torch import Tensor

from ..models.ops import MULTIPLE
from .placement import Placement

__all__ = ["BACKENDS", "Backend", "BackendName", "StatisticsBackend", "check_inputs", "not_per_image"]

#: Names of the backends the Enhancer runs on (``--backend`` on the command line). ``"auto"`` (the
#: default) picks the fastest one installed for the model on the CPU: OpenVINO for generators with
#: fixed BatchNorm statistics, ONNX Runtime for per-image BatchNorm generators, PyTorch otherwise
#: (see :func:`enlightengan.inference.enhancer.choose_backend`).
BackendName = Literal["auto", "torch", "onnxruntime", "openvino"]

#: The values of :data:`BackendName`; the default first.
BACKENDS: tuple[BackendName, ...] = typing.get_args(BackendName)


class Backend(Protocol):
    """What the tiler and the fast mode need from a backend.

    A backend may also declare ``bytes_per_pixel_per_width`` (an ``int``), its working memory per
    pixel of a tile and per unit of the generator's base width, for the automatic tile size
    (:func:`enlightengan.inference.tiling.auto_tile_area`).
    """

    name: str

    def run(self, image: Tensor, gray: Tensor, placement: Placement | None = None) -> tuple[Tensor, Tensor]:
        """``N x 3 x H x W`` image in ``[-1, 1]`` and ``N x 1 x H x W`` gray -> ``(output, latent)``."""
        ...


class StatisticsBackend(Backend, Protocol):
    """A backend that can also run per-image BatchNorm generators (see the module doc).

    Both methods raise ``ValueError`` for a generator with running statistics.
    """

    def with_statistics(self, image: Tensor) -> Backend:
        """This backend normalising with the BatchNorm statistics of ``image``.

        Args:
            image: ``1 x 3 x H x W`` RGB in ``[-1, 1]``, the whole image (any size); its statistics
                are measured as :func:`~enlightengan.models.batchnorm.per_image_model` measures them.
        """
        ...

    def measuring(self) -> Backend:
        """This backend normalising each whole image it runs with that image's own statistics."""
        ...


def not_per_image(method: str) -> ValueError:
    """The error of a :class:`StatisticsBackend` method called for a running-statistics generator."""
    return ValueError(f"{method} is for per-image BatchNorm generators (batchnorm='per-image')")


def check_inputs(image: Tensor, gray: Tensor) -> None:
    """Raise ``ValueError`` unless ``image`` and ``gray`` are what :meth:`Backend.run` takes."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W image, got shape {tuple(image.shape)}")
    if gray.shape != (image.shape[0], 1, *image.shape[2:]):
        raise ValueError(f"gray must be N x 1 x H x W matching the image, got {tuple(gray.shape)}")
    h, w = image.shape[-2:]
    if h % MULTIPLE or w % MULTIPLE:
        raise ValueError(
            f"backends run on inputs whose height and width are multiples of {MULTIPLE}, got {h}x{w}: "
            "pad with enlightengan.models.ops.pad_to_multiple first"
        )

"""The ONNX Runtime backend: the generator's ONNX graphs, run by ONNX Runtime on the CPU.

The graphs are built node by node by :mod:`~enlightengan.inference.onnx_export` from the generator's
weights: the ``"tiles"`` graph takes the tile's regions of interest
(:func:`~enlightengan.inference.placement.tile_roi`) so that its upsampling samples where the whole
image samples, and for per-image BatchNorm generators the ``"statistics"`` graph measures an image's
statistics. ``onnx`` and ``onnxruntime`` are optional dependencies: ``pip install 'enlightengan[onnx]'``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import Tensor

from .._optional import require
from ..models.batchnorm import statistics_image
from ..models.generator import EnlightenGenerator
from ..models.ops import attention_map, pad_to_multiple
from .backend import check_inputs, not_per_image
from .onnx_export import build_statistics_graph, build_tiles_graph
from .placement import Placement, tile_roi

__all__ = ["ARENA_SHRINKAGE", "OnnxRuntimeBackend"]

#: ONNX Runtime's run option that frees the unused part of the CPU memory arena when a run ends.
ARENA_SHRINKAGE = "memory.enable_memory_arena_shrinkage"


class OnnxRuntimeBackend:
    """The generator run by ONNX Runtime (CPU), from the ``"tiles"`` graph of :mod:`~.onnx_export`.

    Args:
        model: the generator (its weights are copied into the graph now).
        threads: intra-op threads (default: ONNX Runtime's choice, one per physical core).
        graph_optimization: ONNX Runtime's graph optimisation level: ``"basic"`` (constant folding,
            redundant nodes), ``"extended"`` (plus fusions such as Conv + activation) or ``"all"``
            (plus layout transformations, e.g. NCHWc blocked convolutions; the default).

    Tiles are placed with ``Resize`` in ``tf_crop_and_resize`` mode; its sampling positions are
    computed in float32 by ONNX Runtime, so tiled results agree with untiled ones to about 1e-4
    (on the ``[-1, 1]`` scale) rather than to float rounding as with :class:`TorchBackend`.

    Memory is bounded as the torch backend's is: the tiler plans tiles against the same budget
    (:mod:`~enlightengan.inference.tiling`) with this backend's own :attr:`bytes_per_pixel_per_width`,
    and ONNX Runtime is kept from holding more than one run needs. Its CPU memory arena stays on
    (without it every run is about 40% slower), but it is shrunk at the end of each run
    (``memory.enable_memory_arena_shrinkage``), so the statistics pass and the tiles do not each keep
    their own peak; and the memory pattern, a block planned and kept per input shape, is off (tiles come
    in several shapes; it doubled the memory for no measurable speed). An 8 MP photo with the bundled
    model peaks at 1.1 GB resident memory instead of 2.4 GB, as with the torch backend (1.0-1.1 GB;
    ``benchmarks/bench_backend_memory.py``).

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
    #: Working memory per tile pixel and unit of base width for the tile planner. Measured at width 32
    #: with the session settings below: a 1 MP tile adds 470 MB (15 bytes per pixel and width), where
    #: the torch backend's adds 290 MB (9; it plans with 24). Planning with 48 keeps an 8 MP photo's
    #: peak at the torch backend's (1.1 GB, 10 tiles instead of the torch backend's 6; planned with 36,
    #: 8 tiles peaked at 1.27 GB and ran about 6% faster).
    bytes_per_pixel_per_width = 48

    def __init__(
        self,
        model: EnlightenGenerator,
        *,
        threads: int | None = None,
        graph_optimization: Literal["basic", "extended", "all"] = "all",
    ) -> None:
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
        options.enable_mem_pattern = False  # a block per tile shape, kept: see the class doc
        if threads is not None:
            options.intra_op_num_threads = threads
        model = model.eval()
        self.per_image = model.config.per_image

        def session(proto: Any) -> Any:
            return ort.InferenceSession(
                proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )

        self.session = session(build_tiles_graph(model))
        self._statistics_session = session(build_statistics_graph(model)) if self.per_image else None
        self._statistics: dict[str, Any] = {}
        self._measure = False
        #: every run gives the arena's unused memory back when it ends (see the class doc)
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry(ARENA_SHRINKAGE, "cpu:0")

    def _per_image_session(self, method: str) -> Any:
        if self._statistics_session is None:
            raise not_per_image(method)
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
        session = self._per_image_session("with_statistics")
        small, _ = pad_to_multiple(statistics_image(image.detach().float().cpu()))
        names = [o.name for o in session.get_outputs() if o.name.startswith("bn")]
        feeds = {"image": small.contiguous().numpy(), "gray": attention_map(small).contiguous().numpy()}
        values = session.run(names, feeds, self._run_options)
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
        check_inputs(image, gray)
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
                self._run_options,
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
        output, latent = self.session.run(["output", "latent"], feeds, self._run_options)
        return torch.from_numpy(output).to(image.device), torch.from_numpy(latent).to(image.device)

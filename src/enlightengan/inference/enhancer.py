"""Enhancing images with a trained EnlightenGAN generator.

The generator (Jiang et al., IEEE TIP 2021, Fig. 2) predicts an attention-weighted residual, the
``latent``, and returns ``input + latent``. :class:`Enhancer` exposes that residual's scale as
``strength``: ``input + strength * latent``, so ``strength = 1`` is the published model and
``strength = 0`` returns the input unchanged. Results are clipped to ``[-1, 1]``.

Images of any size are enhanced exactly, in bounded memory: large ones are processed in overlapping
tiles (:mod:`~enlightengan.inference.tiling`, never downscaled), by an optimised backend
(:mod:`~enlightengan.inference.backend`: PyTorch by default, or ONNX Runtime). ``fast=True`` trades
exactness for speed (:mod:`~enlightengan.inference.fast`: the network at reduced resolution, the
enhancement carried back by guided upsampling). How an image flows through :meth:`Enhancer.enhance`
is told in docs/ARCHITECTURE.md.

Example:
    >>> from PIL import Image
    >>> from enlightengan import Enhancer
    >>> enhancer = Enhancer("200_net_G_A.pth")  # doctest: +SKIP
    >>> enhancer.enhance(Image.open("dark.jpg")).save("bright.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import torch
from numpy.typing import NDArray
from PIL import Image
from torch import Tensor

from .._optional import available
from ..devices import resolve_device
from ..formats import MAX_STRENGTH
from ..image_io import prepare
from ..models.batchnorm import statistics_image
from ..models.checkpoint import load_generator
from ..models.generator import EnlightenGenerator, exposure_fade_factor
from ..models.ops import MULTIPLE, shrink
from ..weights import resolve_weights
from .backend import BACKENDS, Backend, BackendName, StatisticsBackend
from .denoise import DenoiseConfig, attention_denoise, require_opencv
from .fast import FastConfig, fast_latent, reduced_budget
from .onnxruntime_backend import OnnxRuntimeBackend
from .openvino_backend import OpenVinoBackend
from .tiling import DEFAULT_MARGIN, DEFAULT_MEMORY_CAP, default_budget, runs_whole, tiled_output
from .torch_backend import TorchBackend

__all__ = ["CallFade", "Enhancer", "Progress", "choose_backend", "enhance", "make_backend"]

_ImageT = TypeVar("_ImageT", Image.Image, NDArray[Any])

#: A progress callback: ``(tiles done, tiles in all)`` after each tile the network runs on.
Progress = Callable[[int, int], None]


def onnxruntime_available() -> bool:
    """Whether the ONNX Runtime backend can run here (``onnx`` and ``onnxruntime`` importable)."""
    return available("onnx") and available("onnxruntime")


def openvino_available() -> bool:
    """Whether the OpenVINO backend can run here (``openvino`` importable)."""
    return available("openvino")


#: Backends that run on the CPU only.
CPU_ONLY_BACKENDS = ("onnxruntime", "openvino")


def _check_backend(name: BackendName | str, device: torch.device) -> None:
    """Raise ``ValueError`` for a name not in :data:`BACKENDS`, or a CPU-only backend on another device."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name in CPU_ONLY_BACKENDS and device.type != "cpu":
        raise ValueError(f"the {name} backend runs on the CPU only, not on {device}: use --device cpu")


def choose_backend(name: BackendName | str, model: EnlightenGenerator, device: torch.device) -> str:
    """The backend ``name`` stands for with this model on this device (``"auto"`` resolved).

    ``"auto"`` is the fastest installed backend for the model on the CPU, as measured on a 2-core CPU
    (benchmarks/RESULTS.md): for a generator with fixed statistics (the bundled default model, the
    released weights) OpenVINO where ``openvino`` is installed (its whole-image runs
    were faster than PyTorch's), for a per-image BatchNorm generator ONNX Runtime where ``onnx`` and
    ``onnxruntime`` are installed (its graph computes each image's statistics inside the network),
    PyTorch otherwise and on every other device.

    Raises:
        ValueError: an unknown name, or a CPU-only backend on another device.
    """
    _check_backend(name, device)
    if name != "auto":
        return name
    if device.type != "cpu":
        return "torch"
    if model.config.per_image:
        return "onnxruntime" if onnxruntime_available() else "torch"
    return "openvino" if openvino_available() else "torch"


def make_backend(name: BackendName | str, model: EnlightenGenerator) -> StatisticsBackend:
    """The backend called ``name`` (one of :data:`~enlightengan.inference.backend.BACKENDS`) for ``model``.

    ``"auto"`` is resolved by :func:`choose_backend` for the model's device.

    Raises:
        ValueError: an unknown name, or ``"openvino"`` for a per-image BatchNorm generator.
        OptionalDependencyError: ``"onnxruntime"`` or ``"openvino"`` without its packages installed.
    """
    name = choose_backend(name, model, model.conv10.weight.device)
    if name == "torch":
        return TorchBackend(model)
    if name == "openvino":
        return OpenVinoBackend(model)
    return OnnxRuntimeBackend(model)


def _check_strength(strength: float) -> float:
    value = float(strength)
    if not math.isfinite(value) or not 0 <= value <= MAX_STRENGTH:
        raise ValueError(
            f"strength must be a number from 0 to {MAX_STRENGTH:g} (1 = the published model, 0 = unchanged), "
            f"got {strength!r}"
        )
    return value


def _denoise_config(denoise: bool | float | DenoiseConfig) -> DenoiseConfig | None:
    """``False``/``None``/0 -> off; ``True`` -> defaults; a number -> that filter strength."""
    if denoise is None or denoise is False or (denoise is not True and denoise == 0):
        return None
    if isinstance(denoise, DenoiseConfig):
        config = denoise
    elif denoise is True:
        config = DenoiseConfig()
    else:
        config = DenoiseConfig(strength=float(denoise))
    require_opencv()  # fail when the enhancer is built, not on the first image
    return config


def _check_tile(tile: int | None) -> int | None:
    smallest = 2 * DEFAULT_MARGIN + MULTIPLE  # a tile must hold its overlap on both sides and a core
    if tile is None:
        return None
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < smallest:
        raise ValueError(
            f"tile must be None (automatic) or a side of at least {smallest} pixels, got {tile!r}"
        )
    return tile


#: A call's exposure fade: ``"enhancer"`` (the Enhancer's own), ``"weights"`` (the model's), ``None``
#: (none) or ``(low, high)`` mean brightnesses.
CallFade = tuple[float, float] | Literal["enhancer", "weights"] | None


def _exposure_fade(
    fade: tuple[float, float] | str | None, model: EnlightenGenerator
) -> tuple[float, float] | None:
    """The Enhancer's ``exposure_fade`` argument resolved and checked (``"weights"``: the model's)."""
    if isinstance(fade, str) and fade == "weights":
        return model.config.exposure_fade
    if fade is not None:
        try:
            low, high = (float(value) for value in fade)
        except (TypeError, ValueError):
            raise ValueError(
                f"exposure_fade must be 'weights', None or (low, high) mean brightnesses, got {fade!r}"
            ) from None
        fade = (low, high)
    return dataclasses.replace(model.config, exposure_fade=fade).exposure_fade  # the config checks the range


class Enhancer:
    """A generator ready to enhance images.

    Args:
        weights: a generator file (released ``200_net_G_A.pth``, a plain state dict, or the project's
            ``.safetensors``); ``None`` resolves it with :func:`enlightengan.weights.resolve_weights`
            (``$ENLIGHTENGAN_WEIGHTS``, then the bundled default model).
        model: an already built generator to use instead of ``weights``; it is moved to ``device``
            and put in eval mode. Its BatchNorm normalises as its config says
            (:class:`~enlightengan.models.generator.GeneratorConfig`): with the running statistics, as
            the released weights are run, or, for per-image generators, with each image's own.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (see :func:`resolve_device`).
        strength: default residual scale, from 0 to :data:`~enlightengan.formats.MAX_STRENGTH` (2): 1 is
            the published model, 0 the identity, between them a milder enhancement.
        tile: largest tile side in pixels for large images; ``None`` sizes tiles from the memory
            available (an image that fits runs in one piece). Tiled results equal untiled ones within
            one grey level from 384 px on (:data:`~enlightengan.inference.tiling.MIN_TILE`; see
            :mod:`enlightengan.inference.tiling`).
        fast: ``True`` (or a :class:`~enlightengan.inference.fast.FastConfig`) runs the network at reduced
            resolution and carries the result to full size by guided upsampling: several times faster,
            not exact.
        backend: ``"auto"`` (default: the faster backend for this model, see :func:`choose_backend`),
            ``"torch"`` (exact rewrites of the network for speed), ``"onnxruntime"`` (CPU only; needs
            ``onnx`` and ``onnxruntime``) or ``"openvino"`` (CPU only, fixed-statistics generators;
            needs ``openvino``).
        denoise: ``True``, a filter strength, or a :class:`~enlightengan.inference.denoise.DenoiseConfig`:
            attention-guided non-local means after enhancement, strong where the input was dark and
            off where it was bright (OpenCV's NL-means). ``False`` (default) is the
            published model's output.
        exposure_fade: ``(low, high)`` mean brightnesses (0 to 1) between which the enhancement fades
            out, for photos already well exposed (see
            :attr:`~enlightengan.models.generator.GeneratorConfig.exposure_fade`); ``None`` for none;
            ``"weights"`` (default) as the weights file records (the bundled model: 0.35 to 0.45).
            ``(0.25, 0.35)`` leaves low-key well-exposed photos nearly alone but enhances moderately
            dim ones less (README, "Results").

    The generator's weights are copied into the backend when the enhancer is built: later changes
    to ``enhancer.model`` are not seen.

    Raises:
        ValueError: both ``weights`` and ``model`` given, a bad device, strength, tile or backend, or
            weights that cannot be loaded (:class:`enlightengan.CheckpointError`, a ``ValueError``).
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        *,
        model: EnlightenGenerator | None = None,
        device: str | torch.device = "auto",
        strength: float = 1.0,
        tile: int | None = None,
        fast: bool | FastConfig = False,
        backend: BackendName | str = "auto",
        denoise: bool | float | DenoiseConfig = False,
        exposure_fade: tuple[float, float] | Literal["weights"] | None = "weights",
    ) -> None:
        self.device = resolve_device(device)
        self.denoise = _denoise_config(denoise)
        self.strength = _check_strength(strength)
        self.tile = _check_tile(tile)
        self.fast: FastConfig | None = FastConfig() if fast is True else (fast or None)
        _check_backend(backend, self.device)  # before the weights are loaded
        if model is not None:
            if weights is not None:
                raise ValueError("pass either weights or model, not both")
            self.weights: Path | None = None
            self.model = model.to(self.device).eval()
        else:
            self.weights = resolve_weights(weights)
            self.model = load_generator(self.weights, device=self.device)
        #: the exposure fade applied to every result (``None``: none)
        self.exposure_fade = _exposure_fade(exposure_fade, self.model)
        self.backend_name = choose_backend(backend, self.model, self.device)
        self.per_image_batchnorm = self.model.config.per_image
        self._backend = make_backend(self.backend_name, self.model)
        # per-image generators: each whole image measured in its own pass, or the backend bound to
        # each image's statistics (StatisticsBackend.with_statistics) for tiles and shrunk copies
        self._measuring = self._backend.measuring() if self.per_image_batchnorm else None

    def __repr__(self) -> str:
        source = self.weights if self.weights is not None else "<model>"
        extras = f", tile={self.tile}" if self.tile is not None else ""
        extras += f", fast={self.fast}" if self.fast is not None else ""
        extras += f", denoise={self.denoise}" if self.denoise is not None else ""
        extras += f", exposure_fade={self.exposure_fade}" if self.exposure_fade is not None else ""
        return (
            f"Enhancer(weights={source}, device={self.device}, strength={self.strength}, "
            f"backend={self.backend_name!r}{extras})"
        )

    def _budget(self) -> int | None:
        """Bytes the automatic tile size plans for: host memory by default, free GPU memory on CUDA."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return min(free // 2, 4 * DEFAULT_MEMORY_CAP)
        return None

    def _fade(self, fade: CallFade) -> tuple[float, float] | None:
        """A call's exposure fade resolved (``"enhancer"``: :attr:`exposure_fade`) and checked."""
        if isinstance(fade, str) and fade == "enhancer":
            return self.exposure_fade
        return _exposure_fade(fade, self.model)

    def _run(
        self, image: Tensor, progress: Progress | None = None, fade: tuple[float, float] | None = None
    ) -> Tensor:
        """The one network call: ``N x 3 x H x W`` in ``[-1, 1]`` on ``self.device`` -> the ``latent``.

        Any H and W: tiles when the image is large (exact), or the fast mode when enabled.
        ``progress`` is told of each tile (per image for a per-image generator); ``fade`` (resolved by
        :meth:`_fade`) scales the latent down on well-exposed images.
        """
        if self.per_image_batchnorm:
            latents = [self._run_per_image(one, progress) for one in image.split(1)]
            latent = latents[0] if len(latents) == 1 else torch.cat(latents)
        else:
            latent = self._run_with(self._backend, image, self._budget(), progress)
        return latent if fade is None else latent.mul_(exposure_fade_factor(image, fade))

    def _run_per_image(self, image: Tensor, progress: Progress | None = None) -> Tensor:
        """The latent of one image (``1 x 3 x H x W``) for a per-image BatchNorm generator.

        The network normalises what it sees with the statistics of what it sees: the image, or in
        fast mode its shrunk copy. When that runs in one piece and is its own statistics image
        (:func:`~enlightengan.models.batchnorm.statistics_image`: at most ``STATS_MAX_PIXELS``),
        the statistics are measured in the pass itself; otherwise they are measured first on the
        statistics image, then the exact, tiled path runs with them.
        """
        budget = self._budget()
        if budget is None:
            budget = default_budget()  # read once: the check and the run must plan the same tiles
        seen, seen_budget = image, budget
        if self.fast is not None:
            seen, seen_budget = shrink(image, self.fast.scale), reduced_budget(image, budget)
        source = statistics_image(seen)
        assert self._measuring is not None
        width = self.model.config.base_width
        backend: Backend
        if source is seen and runs_whole(
            self._measuring, seen, tile=self.tile, budget=seen_budget, base_width=width
        ):
            backend = self._measuring
        else:
            backend = self._backend.with_statistics(source)
        return self._run_with(backend, image, budget, progress)

    def _run_with(
        self, backend: Backend, image: Tensor, budget: int | None, progress: Progress | None = None
    ) -> Tensor:
        width = self.model.config.base_width
        if self.fast is not None:
            return fast_latent(
                backend, image, self.fast, tile=self.tile, budget=budget, base_width=width, progress=progress
            )
        output = tiled_output(
            backend, image, tile=self.tile, budget=budget, base_width=width, progress=progress
        )
        return output.sub_(image)  # the residual, in the output's memory

    def latent(self, image: Tensor) -> Tensor:
        """The generator's residual for ``N x 3 x H x W`` RGB in ``[-1, 1]`` (same shape, not clipped).

        ``image + strength * latent`` is what :meth:`enhance_tensor` returns before clipping; the
        video module smooths it over time.
        """
        with torch.inference_mode():
            return self._run(image.to(self.device, torch.float32), fade=self.exposure_fade).to(image.device)

    def enhance_tensor(
        self,
        image: Tensor,
        strength: float | None = None,
        *,
        progress: Progress | None = None,
        exposure_fade: CallFade = "enhancer",
    ) -> Tensor:
        """Enhance a batch of RGB tensors.

        Args:
            image: ``N x 3 x H x W`` (or ``3 x H x W``) RGB in ``[-1, 1]``, on any device.
            strength: residual scale for this call; ``None`` uses the enhancer's.
            progress: called with ``(tiles done, tiles in all)`` after each tile the network runs on
                (``(1, 1)`` for an image in one piece; counted per image for a per-image generator).
            exposure_fade: this call's exposure fade (see the class doc): ``"enhancer"`` (default)
                uses :attr:`exposure_fade`; ``"weights"``, ``None`` or ``(low, high)`` as in the
                constructor.

        Returns:
            ``image + strength * latent`` clipped to ``[-1, 1]``: same shape, float32, on the
            input's device.
        """
        value = self.strength if strength is None else _check_strength(strength)
        fade = self._fade(exposure_fade)
        if image.ndim == 3:
            return self.enhance_tensor(image.unsqueeze(0), value, progress=progress, exposure_fade=fade)[0]
        if image.ndim != 4 or image.shape[1] != 3 or not image.is_floating_point():
            raise ValueError(
                "expected a float N x 3 x H x W RGB tensor in [-1, 1], "
                f"got {image.dtype} {tuple(image.shape)}"
            )
        if image.shape[0] == 0 or image.shape[2] == 0 or image.shape[3] == 0:
            raise ValueError(f"the image tensor is empty: {tuple(image.shape)}")
        with torch.inference_mode():
            x = image.to(self.device, torch.float32)
            if value == 0:
                return x.clamp(-1.0, 1.0).to(image.device)
            # In place: a 12-megapixel image holds one extra full-size buffer, not three.
            latent = self._run(x, progress=progress, fade=fade)
            result = (latent if value == 1 else latent.mul_(value)).add_(x).clamp_(-1.0, 1.0)
            if self.denoise is not None:
                result = attention_denoise(result, x, self.denoise)
            return result.to(image.device)

    @overload
    def enhance(
        self,
        image: Image.Image,
        strength: float | None = None,
        *,
        progress: Progress | None = None,
        exposure_fade: CallFade = "enhancer",
    ) -> Image.Image: ...

    @overload
    def enhance(
        self,
        image: NDArray[Any],
        strength: float | None = None,
        *,
        progress: Progress | None = None,
        exposure_fade: CallFade = "enhancer",
    ) -> NDArray[Any]: ...

    def enhance(
        self,
        image: Image.Image | NDArray[Any],
        strength: float | None = None,
        *,
        progress: Progress | None = None,
        exposure_fade: CallFade = "enhancer",
    ) -> Image.Image | NDArray[Any]:
        """Enhance one image and return it in kind.

        Args:
            image: a PIL image (RGB, L, RGBA, LA, I;16, P, CMYK, ...) or a uint8/uint16 array in RGB
                order: ``H x W`` (grey), ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA).
            strength: residual scale for this call; ``None`` uses the enhancer's.
            progress: called with ``(tiles done, tiles in all)`` after each tile (see
                :meth:`enhance_tensor`): a large photo's progress.
            exposure_fade: this call's exposure fade (see :meth:`enhance_tensor`).

        Returns:
            The same type, size, dtype and mode (alpha bit-exact; palette/CMYK/other colour modes come
            back as RGB or RGBA, bilevel as L); see :mod:`enlightengan.image_io` for the conversions.
        """
        prepared = prepare(image)
        tensor = self.enhance_tensor(
            prepared.tensor, strength, progress=progress, exposure_fade=exposure_fade
        )
        return prepared.restore(tensor)


_CACHE: dict[tuple[str, int, int, str], Enhancer] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def _cached_enhancer(weights: str | os.PathLike[str] | None, device: str) -> Enhancer:
    path = resolve_weights(weights).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, str(resolve_device(device)))
    with _CACHE_LOCK:
        enhancer = _CACHE.get(key)
        if enhancer is None:
            enhancer = Enhancer(path, device=device)
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = enhancer
    return enhancer


def enhance(
    image: _ImageT,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    strength: float = 1.0,
) -> _ImageT:
    """Enhance one image with the generator in ``weights`` (default: resolved as :class:`Enhancer` does).

    The loaded generator is cached per weights file (and its modification time) and device, so
    repeated calls do not reload it.

    Example:
        >>> from PIL import Image
        >>> from enlightengan import enhance
        >>> enhance(Image.open("dark.jpg"), weights="200_net_G_A.pth").save("bright.jpg")  # doctest: +SKIP
    """
    return _cached_enhancer(weights, device).enhance(image, strength)

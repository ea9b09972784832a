"""Enhancing videos frame by frame as a stream, with optional temporal smoothing against flicker.

EnlightenGAN (Jiang et al., IEEE TIP 2021) is an image model: each frame is enhanced on its own, so
small changes between frames (noise, compression) can make the brightening flicker. This module

* decodes and encodes as a stream with PyAV (memory bounded by a few frames, whatever the length),
  keeping the resolution, the frame rate and every frame's timestamp;
* copies the audio streams packet by packet (no re-encoding);
* optionally smooths the *coarse* part of the enhancement residual over time: with smoothing
  ``alpha``, the residual's 1/16-resolution component is an exponential moving average over frames
  (``avg = alpha * avg + (1 - alpha) * current``) while its fine detail stays the current frame's,
  so the global brightening does not pump and moving edges do not ghost;
* measures flicker as the mean absolute change between consecutive frames (8-bit RGB levels) of
  the output, beside the same measure of the input (:class:`VideoReport`).

PyAV is an optional dependency: ``pip install 'enlightengan[video]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from .._atomic import atomic_path
from .._optional import require
from .denoise import attention_denoise

__all__ = [
    "FlickerMeter",
    "LatentSource",
    "TemporalSmoother",
    "VideoReport",
    "enhance_video",
]

#: The coarse component of the residual is taken at 1/COARSE of the frame size.
COARSE = 16


class LatentSource(Protocol):
    """What :func:`enhance_video` needs: the residual of a frame and its scale (an ``Enhancer`` has both)."""

    strength: float

    def latent(self, image: Tensor) -> Tensor:
        """``N x 3 x H x W`` RGB in ``[-1, 1]`` -> the generator's residual, same shape."""
        ...


class TemporalSmoother:
    """Exponential moving average of the coarse (1/16 resolution) part of a residual over frames.

    Args:
        alpha: weight of the past, in ``[0, 1)``; 0 turns smoothing off.

    Example:
        >>> s = TemporalSmoother(0.5)
        >>> a = s(torch.zeros(1, 3, 32, 32)); b = s(torch.ones(1, 3, 32, 32))
        >>> round(float(b.mean()), 3)  # half-way to the new brightening
        0.5
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"temporal smoothing must be in [0, 1) (0 = off), got {alpha}")
        self.alpha = alpha
        self._average: Tensor | None = None

    def __call__(self, latent: Tensor) -> Tensor:
        if self.alpha == 0.0:
            return latent
        h, w = latent.shape[-2:]
        size = (max(h // COARSE, 1), max(w // COARSE, 1))
        coarse = F.adaptive_avg_pool2d(latent, size)
        if self._average is None or self._average.shape != coarse.shape:
            self._average = coarse
        else:
            self._average = self.alpha * self._average + (1.0 - self.alpha) * coarse
        correction = F.interpolate(self._average - coarse, size=(h, w), mode="bilinear", align_corners=False)
        return latent + correction


class FlickerMeter:
    """Mean absolute change between consecutive frames, in 8-bit levels (averaged over pixels and frames)."""

    def __init__(self) -> None:
        self._previous: NDArray[np.int16] | None = None
        self._total = 0.0
        self._count = 0

    def add(self, frame: NDArray[np.uint8]) -> None:
        current = frame.astype(np.int16)
        if self._previous is not None and self._previous.shape == current.shape:
            self._total += float(np.abs(current - self._previous).mean())
            self._count += 1
        self._previous = current

    @property
    def value(self) -> float:
        """The measure so far (0.0 before two frames)."""
        return self._total / self._count if self._count else 0.0


@dataclass(frozen=True)
class VideoReport:
    """What :func:`enhance_video` did.

    ``flicker_input`` and ``flicker_output`` are :class:`FlickerMeter` values of the decoded input and
    of the enhanced frames (before encoding); their ratio says how much the enhancement amplifies
    frame-to-frame change (brightening amplifies it; smoothing reduces it).
    """

    frames: int
    width: int
    height: int
    frame_rate: Fraction | None
    audio_streams: int
    flicker_input: float
    flicker_output: float

    @property
    def flicker_ratio(self) -> float:
        return self.flicker_output / self.flicker_input if self.flicker_input > 0 else float("nan")


def _to_tensor(rgb: NDArray[np.uint8]) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)


def _to_rgb(tensor: Tensor) -> NDArray[np.uint8]:
    unit = (tensor[0].clamp(-1, 1) + 1) * 127.5
    return unit.round_().to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def _pick_codec(av: Any, suffix: str) -> str:
    if suffix == ".webm":
        return "libvpx-vp9" if "libvpx-vp9" in av.codecs_available else "libvpx"
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def enhance_video(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    enhancer: LatentSource,
    *,
    smoothing: float = 0.0,
    crf: int = 18,
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoReport:
    """Enhance every frame of ``source`` into ``target`` (written atomically), copying the audio.

    Args:
        source: a video file PyAV (FFmpeg) can read.
        target: the output; its suffix picks the container (``.mp4``, ``.mkv``, ...). The video is
            encoded with H.264 (VP9 for ``.webm``) at constant quality ``crf``, in the input's frame
            rate and size (``yuv420p``, or ``yuv444p`` when a side is odd).
        enhancer: gives each frame's residual (an :class:`~enlightengan.inference.Enhancer`).
        smoothing: temporal smoothing ``alpha`` in ``[0, 1)`` (see :class:`TemporalSmoother`).
        crf: H.264/VP9 constant rate factor (lower is better; 18 is visually lossless).
        progress: called with ``(frames done, frames in all or None)`` after each frame.

    Returns:
        A :class:`VideoReport`.

    Raises:
        OptionalDependencyError: PyAV is not installed.
        ValueError: the file has no video stream or cannot be decoded.
    """
    av = require("av", "video")
    smoother = TemporalSmoother(smoothing)
    source, target = Path(source), Path(target)
    try:
        container = av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise ValueError(f"cannot open {source} as a video: {exc}") from exc
    try:
        return _stream(av, container, source, target, enhancer, smoother, crf, progress)
    except av.error.FFmpegError as exc:
        raise ValueError(f"{source}: cannot be processed as a video: {exc}") from exc


def _stream(
    av: Any,
    container: Any,
    source: Path,
    target: Path,
    enhancer: LatentSource,
    smoother: TemporalSmoother,
    crf: int,
    progress: Callable[[int, int | None], None] | None,
) -> VideoReport:
    meter_in, meter_out = FlickerMeter(), FlickerMeter()
    with container:
        if not container.streams.video:
            raise ValueError(f"{source} has no video stream")
        video_in = container.streams.video[0]
        video_in.thread_type = "AUTO"
        audio_in = list(container.streams.audio)
        width, height = video_in.codec_context.width, video_in.codec_context.height
        rate = video_in.average_rate or video_in.guessed_rate
        total = video_in.frames or None
        frames = 0
        with atomic_path(target) as tmp:
            with av.open(str(tmp), "w", format=_container_format(target)) as output:
                codec = _pick_codec(av, target.suffix.lower())
                video_out = output.add_stream(codec, rate=rate)
                video_out.width, video_out.height = width, height
                video_out.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                video_out.time_base = video_in.time_base
                video_out.options = {"crf": str(crf)}
                audio_out = {s.index: output.add_stream_from_template(s) for s in audio_in}
                for packet in container.demux(video_in, *audio_in):
                    if packet.stream.type == "audio":
                        if packet.dts is None:
                            continue  # demuxer flush packet
                        packet.stream = audio_out[packet.stream.index]
                        output.mux(packet)
                        continue
                    for frame in packet.decode():
                        rgb = frame.to_ndarray(format="rgb24")
                        meter_in.add(rgb)
                        enhanced = _enhance_frame(rgb, enhancer, smoother)
                        meter_out.add(enhanced)
                        out_frame = av.VideoFrame.from_ndarray(enhanced, format="rgb24")
                        out_frame.pts, out_frame.time_base = frame.pts, frame.time_base
                        output.mux(video_out.encode(out_frame))
                        frames += 1
                        if progress is not None:
                            progress(frames, total)
                output.mux(video_out.encode(None))
        if frames == 0:
            raise ValueError(f"{source}: no frame could be decoded")
    return VideoReport(
        frames=frames,
        width=width,
        height=height,
        frame_rate=Fraction(rate) if rate else None,
        audio_streams=len(audio_in),
        flicker_input=meter_in.value,
        flicker_output=meter_out.value,
    )


def _container_format(target: Path) -> str | None:
    """FFmpeg's muxer for a suffix (the temporary file's suffix is ``.part.mp4`` and works too)."""
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".m4v": "mp4", ".avi": "avi"}.get(
        target.suffix.lower(), "mp4" if target.suffix.lower() == ".mp4" else None
    )


def _enhance_frame(
    rgb: NDArray[np.uint8], enhancer: LatentSource, smoother: TemporalSmoother
) -> NDArray[np.uint8]:
    with torch.inference_mode():
        image = _to_tensor(rgb)
        latent = smoother(enhancer.latent(image))
        output = image + enhancer.strength * latent
        denoise = getattr(enhancer, "denoise", None)  # an Enhancer's attention-guided denoising
        if denoise is not None:
            output = attention_denoise(output.clamp(-1.0, 1.0), image, denoise)
        return _to_rgb(output)

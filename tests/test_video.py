"""Video: a synthetic clip with sound goes through and keeps its size, rate, length and audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from enlightengan.inference.video import FlickerMeter, TemporalSmoother, enhance_video

av = pytest.importorskip("av")

FRAMES, RATE, WIDTH, HEIGHT, SAMPLE_RATE = 12, 10, 64, 48, 8000


def _make_clip(path: Path) -> None:
    """12 dark frames at 10 fps with a moving bright square, and one second of a 440 Hz tone (AAC)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "10"}
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for i in range(FRAMES):
            rgb = np.full((HEIGHT, WIDTH, 3), 30, np.uint8)
            rgb[10:26, 4 * i : 4 * i + 16] = 90
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, SAMPLE_RATE, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


class _Brighten:
    """A stand-in enhancer: a constant residual of +0.4 (about +51 grey levels)."""

    strength = 1.0

    def latent(self, image: torch.Tensor) -> torch.Tensor:
        return torch.full_like(image, 0.4)


def _probe(path: Path) -> tuple[list[np.ndarray], dict[str, object]]:
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        a = container.streams.audio[0]
        info = {"rate": v.average_rate, "size": (v.width, v.height), "audio": (a.codec_context.name, a.rate)}
        audio_packets = sum(1 for p in container.demux(a) if p.dts is not None)
        info["audio_packets"] = audio_packets
        container.seek(0)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames, info


def test_round_trip_keeps_size_rate_frames_and_audio(tmp_path: Path) -> None:
    clip, result = tmp_path / "clip.mp4", tmp_path / "out" / "clip.mp4"
    _make_clip(clip)
    result.parent.mkdir()
    seen: list[int] = []
    report = enhance_video(clip, result, _Brighten(), progress=lambda done, total: seen.append(done))
    assert report.frames == FRAMES and seen == list(range(1, FRAMES + 1))
    assert (report.width, report.height, report.frame_rate) == (WIDTH, HEIGHT, Fraction(RATE))
    assert report.audio_streams == 1
    frames_in, info_in = _probe(clip)
    frames_out, info_out = _probe(result)
    assert len(frames_out) == len(frames_in) == FRAMES
    assert info_out == info_in  # rate, size, audio codec and sample rate, every audio packet copied
    # the enhancement really happened (+51 levels, within H.264's loss)
    lift = np.mean(
        [o.astype(float).mean() - i.astype(float).mean() for o, i in zip(frames_out, frames_in, strict=True)]
    )
    assert 45 < lift < 56
    # a moving square: frame-to-frame change is measured, and a constant lift does not change it much
    assert report.flicker_input > 1 and abs(report.flicker_output - report.flicker_input) < 0.5
    assert not list(result.parent.glob(".*part*"))


def test_flicker_meter_by_hand() -> None:
    meter = FlickerMeter()
    meter.add(np.zeros((2, 2, 3), np.uint8))
    assert meter.value == 0.0
    meter.add(np.full((2, 2, 3), 10, np.uint8))  # change 10
    meter.add(np.full((2, 2, 3), 4, np.uint8))  # change 6
    assert meter.value == pytest.approx(8.0)


def test_smoothing_averages_the_coarse_brightening_only() -> None:
    smoother = TemporalSmoother(0.75)
    first = torch.zeros(1, 3, 64, 64)
    smoother(first)
    detail = torch.zeros(1, 3, 64, 64)
    detail[..., ::2, :] = 0.1  # fine stripes: kept as they are
    current = 0.8 + detail  # coarse part: 0.85 (the stripes average 0.05)
    second = smoother(current)
    assert second.mean() == pytest.approx(0.25 * 0.85, abs=1e-5)  # EMA: 0.75 * 0 + 0.25 * 0.85
    stripes = second[..., 16:48, 16:48]
    assert stripes[..., ::2, :].mean() - stripes[..., 1::2, :].mean() == pytest.approx(0.1, abs=1e-5)
    assert torch.equal(TemporalSmoother(0.0)(first + 1), first + 1)
    with pytest.raises(ValueError, match="0, 1"):
        TemporalSmoother(1.0)


def test_not_a_video(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match=r"bad\.mp4"):
        enhance_video(bad, tmp_path / "out.mp4", _Brighten())
    assert not (tmp_path / "out.mp4").exists()


def test_enhance_command_streams_videos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from enlightengan.cli import main
    from enlightengan.models.checkpoint import save_generator

    from .test_backends import randomised_generator

    weights = save_generator(randomised_generator(negative_scales=False), tmp_path / "g.safetensors")
    folder = tmp_path / "in"
    folder.mkdir()
    _make_clip(folder / "clip.mp4")
    argv = [
        "enhance",
        str(folder),
        "-o",
        str(tmp_path / "out"),
        "--weights",
        str(weights),
        "--smoothing",
        "0.5",
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{FRAMES} frames {WIDTH}x{HEIGHT} at 10 fps, 1 audio stream(s) copied" in err and "flicker" in err
    frames, info = _probe(tmp_path / "out" / "clip.mp4")
    assert len(frames) == FRAMES and info["audio"] == ("aac", SAMPLE_RATE)
    with pytest.raises(SystemExit):  # argparse: smoothing must be below 1
        main([*argv[:-2], "--smoothing", "1.5"])

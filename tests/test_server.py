"""``enlightengan serve``: the HTTP API, its limits and errors, the page's files and the command."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from enlightengan.cli import build_parser, main
from enlightengan.formats import MAX_STRENGTH
from enlightengan.image_io import read_image
from enlightengan.inference import Enhancer
from enlightengan.models.checkpoint import save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.weights import bundled as weights_module

from .conftest import (
    bayer_mosaic,
    brightening_generator,
    dark_scene,
    decode,
    encode,
    expected_brightening,
    make_dark_rgb,
    png_declaring,
    write_dng,
    write_heic,
)

# The serve extra (and httpx, for the clients) must be installed before the server can be imported.
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")
pytest.importorskip("httpx")

import httpx

from enlightengan.server import (
    JobQueue,
    QueueFullError,
    ServerConfig,
    create_app,
    serve_in_background,
)
from enlightengan.server.access import ACCESS_LOGGER
from enlightengan.server.uploads import MULTIPART_SLACK

with warnings.catch_warnings():
    # Starlette 1.x asks for its fork "httpx2"; httpx works the same for the test client.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(weights_module.ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def bright() -> Enhancer:
    return Enhancer(model=brightening_generator(), device="cpu")


@pytest.fixture(scope="module")
def random_enhancer() -> Enhancer:
    torch.manual_seed(3)
    return Enhancer(model=EnlightenGenerator(GeneratorConfig(base_width=4)).eval(), device="cpu")


@pytest.fixture
def client(bright: Enhancer, tmp_path: Path) -> Iterator[TestClient]:
    config = ServerConfig(max_upload_bytes=200_000, max_pixels=300 * 300, temp_root=tmp_path)
    with TestClient(create_app(bright, config)) as test_client:
        yield test_client


def post_file(client: TestClient, data: bytes, name: str = "photo.png", query: str = "") -> Any:
    return client.post(f"/api/enhance{query}", files={"file": (name, data, "application/octet-stream")})


# --- results --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strength", [None, 0.4, 0.0, 2.0])
def test_multipart_png_matches_the_hand_formula(client: TestClient, strength: float | None) -> None:
    rgb = make_dark_rgb(37, 53)
    query = "" if strength is None else f"?strength={strength}"
    response = post_file(client, encode(rgb, "PNG"), query=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    result = np.asarray(decode(response.content))
    assert result.shape == rgb.shape and result.dtype == np.uint8
    expected = expected_brightening(rgb, 1.0 if strength is None else strength)
    # float32 inside the network against float64 here: at most one level apart, almost always equal
    assert np.abs(result.astype(int) - expected).max() <= 1
    assert np.mean(result == expected) > 0.99
    if strength == 0.0:
        assert np.array_equal(result, rgb)


def test_raw_jpeg_body_and_headers(client: TestClient, random_enhancer: Enhancer, tmp_path: Path) -> None:
    data = encode(make_dark_rgb(48, 64, seed=5), "JPEG", quality=90)
    response = client.post("/api/enhance", content=data, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-image-format"] == "JPEG"
    assert 'filename="image-enhanced.jpg"' in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    image = decode(response.content)
    assert image.format == "JPEG" and image.size == (64, 48) and image.mode == "RGB"
    # no Content-Type at all is a raw body too
    assert client.post("/api/enhance", content=data).status_code == 200


@pytest.mark.parametrize(
    ("kind", "file_format", "media_type"),
    [
        ("rgba", "PNG", "image/png"),
        ("grey", "PNG", "image/png"),
        ("rgb", "WEBP", "image/webp"),
        ("rgb", "BMP", "image/bmp"),
        ("rgb", "TIFF", "image/tiff"),
        ("palette", "GIF", "image/gif"),
    ],
)
def test_format_size_and_mode_kept(
    random_enhancer: Enhancer, tmp_path: Path, kind: str, file_format: str, media_type: str
) -> None:
    rgb = make_dark_rgb(21, 34, seed=7)
    images = {
        "rgb": Image.fromarray(rgb),
        "grey": Image.fromarray(rgb[..., 0]),
        "rgba": Image.fromarray(np.dstack([rgb, np.arange(21 * 34, dtype=np.uint8).reshape(21, 34)])),
        "palette": Image.fromarray(rgb).quantize(16),
    }
    options = {"lossless": True} if file_format == "WEBP" else {}
    data = encode(images[kind], file_format, **options)
    upload = tmp_path / f"input.{file_format.lower()}"
    upload.write_bytes(data)
    with TestClient(create_app(random_enhancer, ServerConfig(temp_root=tmp_path))) as client:
        response = post_file(client, data, name=f"dark.{file_format.lower()}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    result = decode(response.content)
    assert result.format == file_format and result.size == (34, 21)
    # the pixels are those of the inference API on the same decoded file
    expected = random_enhancer.enhance(read_image(upload).pixels)
    if file_format == "GIF":
        assert result.mode == "P"  # GIF holds a palette; the enhanced RGB is quantised to one
    elif file_format == "WEBP":
        assert result.mode == expected.mode  # written lossy (quality 95), as the enhance command does
        assert np.abs(np.asarray(result).astype(int) - np.asarray(expected)).mean() < 3
    else:
        assert result.mode == expected.mode
        assert np.array_equal(np.asarray(result), np.asarray(expected))
    if kind == "rgba":
        assert np.array_equal(np.asarray(result)[..., 3], np.asarray(images["rgba"])[..., 3])


def test_16bit_png_stays_16bit(random_enhancer: Enhancer, tmp_path: Path) -> None:
    rgb16 = (make_dark_rgb(18, 26, seed=8).astype(np.uint16) * 257 + 100).astype(np.uint16)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    upload = tmp_path / "deep.png"
    upload.write_bytes(png.tobytes())
    with TestClient(create_app(random_enhancer, ServerConfig(temp_root=tmp_path))) as client:
        response = post_file(client, png.tobytes(), name="deep.png")
    assert response.status_code == 200
    decoded = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and decoded.shape == (18, 26, 3)
    expected = random_enhancer.enhance(read_image(upload).pixels)
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), expected)


def test_exif_orientation_and_icc_profile(client: TestClient) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to show
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(make_dark_rgb(20, 44), "JPEG", exif=exif.tobytes(), icc_profile=icc, quality=95)
    response = post_file(client, data, name="sideways.jpg")
    assert response.status_code == 200
    result = decode(response.content)
    assert result.size == (20, 44)  # 44 x 20 stored, upright now
    assert result.getexif().get(0x0112, 1) == 1  # so that viewers do not turn it again
    assert result.info.get("icc_profile") == icc


def test_default_strength_is_the_servers(tmp_path: Path) -> None:
    identity = Enhancer(model=brightening_generator(), device="cpu", strength=0.0)
    rgb = make_dark_rgb(16, 16, seed=2)
    with TestClient(create_app(identity, ServerConfig(temp_root=tmp_path))) as client:
        assert client.get("/api/info").json()["strength"] == 0.0
        plain = post_file(client, encode(rgb, "PNG"))
        explicit = post_file(client, encode(rgb, "PNG"), query="?strength=1")
    assert np.array_equal(np.asarray(decode(plain.content)), rgb)
    assert np.abs(np.asarray(decode(explicit.content)).astype(int) - expected_brightening(rgb, 1)).max() <= 1


def test_file_names_in_the_answer(client: TestClient) -> None:
    data = encode(make_dark_rgb(8, 8), "PNG")
    response = post_file(client, data, name="C:\\Users\\me\\Nuit à Paris.png")
    disposition = response.headers["content-disposition"]
    assert 'filename="Nuit _ Paris-enhanced.png"' in disposition  # ASCII fallback, folders dropped
    assert "filename*=UTF-8''Nuit%20%C3%A0%20Paris-enhanced.png" in disposition


# --- errors: 400 -----------------------------------------------------------------------------------------


def _detail(response: Any) -> str:
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    return detail


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a picture\n", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image"),
        ("truncated", "corrupt or truncated"),
    ],
)
def test_non_images_are_400_with_the_reason(client: TestClient, data: bytes | str, message: str) -> None:
    if data == "truncated":
        data = encode(make_dark_rgb(64, 64, seed=4), "JPEG", quality=92)[:900]
    assert isinstance(data, bytes)
    for response in (post_file(client, data), client.post("/api/enhance", content=data)):
        assert response.status_code == 400
        assert message in _detail(response)


def test_bad_requests_are_400(client: TestClient) -> None:
    png = encode(make_dark_rgb(8, 8), "PNG")
    empty = client.post("/api/enhance", content=b"")
    assert empty.status_code == 400 and "empty" in _detail(empty)
    empty_field = post_file(client, b"")
    assert empty_field.status_code == 400 and "empty" in _detail(empty_field)
    wrong_field = client.post("/api/enhance", files={"image": ("a.png", png, "image/png")})
    assert wrong_field.status_code == 400 and "no 'file' field" in _detail(wrong_field)
    two = client.post("/api/enhance", files=[("file", ("a.png", png)), ("file", ("b.png", png))])
    assert two.status_code == 400 and "more than one" in _detail(two)
    no_boundary = client.post("/api/enhance", content=png, headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 400 and "boundary" in _detail(no_boundary)
    garbled = client.post(
        "/api/enhance",
        content=b"--x\r\nnot a header line\r\n\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert garbled.status_code == 400
    # an extra form field beside 'file' is fine
    extra = client.post("/api/enhance", files={"file": ("a.png", png)}, data={"note": "hello"})
    assert extra.status_code == 200


def test_exposure_fade_per_request(client: TestClient) -> None:
    # a photo of mean brightness 0.5 (a +-12 checkerboard around 128): the server's enhancer has no fade
    checker = (np.indices((24, 32)).sum(axis=0) % 2) * 24 - 12
    rgb = np.repeat((128 + checker)[..., None], 3, axis=2).astype(np.uint8)
    assert client.get("/api/info").json()["exposure_fade"] is None

    def result(query: str) -> np.ndarray:
        response = post_file(client, encode(rgb, "PNG"), query=query)
        assert response.status_code == 200, response.text
        return np.asarray(decode(response.content)).astype(int)

    assert np.abs(result("") - expected_brightening(rgb, 1.0)).max() <= 1
    assert np.array_equal(result("?exposure_fade=0.25,0.35"), rgb)  # brighter than 0.35: left as it is
    # between 0.45 and 0.55 the residual is scaled by 1 - smoothstep(t), as a strength would scale it
    t = (128 / 255 - 0.45) / 0.1
    factor = 1 - (3 * t**2 - 2 * t**3)
    assert 0.2 < factor < 0.8
    assert np.abs(result("?exposure_fade=0.45,0.55") - expected_brightening(rgb, factor)).max() <= 1
    assert np.abs(result("?exposure_fade=none&strength=0.5") - expected_brightening(rgb, 0.5)).max() <= 1
    for bad in ("0.4", "0.5,0.4", "dim"):
        response = post_file(client, encode(rgb, "PNG"), query=f"?exposure_fade={bad}")
        assert response.status_code == 400
        assert _detail(response).startswith("exposure_fade: ")


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "bright", "5", "2.01"])
def test_bad_strength_is_400(client: TestClient, value: str) -> None:
    response = post_file(client, encode(make_dark_rgb(8, 8), "PNG"), query=f"?strength={value}")
    assert response.status_code == 400
    assert _detail(response).startswith("bad parameter: strength")


def test_one_strength_range_for_the_api_the_page_and_the_commands(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert MAX_STRENGTH == 2.0
    assert client.get("/api/info").json()["max_strength"] == MAX_STRENGTH
    slider = re.search(r'<input id="strength" type="range" min="(\S+)" max="(\S+)"', client.get("/").text)
    assert slider is not None and (float(slider[1]), float(slider[2])) == (0.0, MAX_STRENGTH)
    spec = client.get("/openapi.json").json()["paths"]["/api/enhance"]["post"]["parameters"][0]["schema"]
    assert (spec["anyOf"][0]["minimum"], spec["anyOf"][0]["maximum"]) == (0, MAX_STRENGTH)
    for command in ("enhance", "serve"):
        argv = [command, "in.png", "-o", "out"] if command == "enhance" else [command]
        assert build_parser().parse_args([*argv, "--strength", "2"]).strength == 2.0
        with pytest.raises(SystemExit):
            build_parser().parse_args([*argv, "--strength", "2.5"])
        assert "must be a number from 0 to 2" in capsys.readouterr().err
    with pytest.raises(ValueError, match="from 0 to 2"):
        Enhancer(model=brightening_generator(), device="cpu", strength=5)


def test_unsupported_mode_is_400(client: TestClient) -> None:
    # 32-bit float TIFF (mode F): decodable, but not a photo the generator takes
    data = encode(Image.fromarray(np.zeros((8, 8), np.float32)), "TIFF")
    response = post_file(client, data, name="float.tif")
    assert response.status_code == 400 and "unsupported pixel mode" in _detail(response)


def test_enhancement_failure_is_500(tmp_path: Path) -> None:
    class Broken(Enhancer):
        def enhance(self, image: Any, strength: float | None = None, **options: Any) -> Any:
            raise RuntimeError("CUDA out of memory\nlong traceback text")

    broken = Broken(model=brightening_generator(), device="cpu")
    with TestClient(create_app(broken, ServerConfig(temp_root=tmp_path))) as client:
        response = post_file(client, encode(make_dark_rgb(8, 8), "PNG"))
        assert response.status_code == 500
        assert _detail(response) == "the enhancement failed: CUDA out of memory"
        assert client.get("/healthz").json()["busy"] == 0  # the slot came back


# --- limits: 413 ------------------------------------------------------------------------------------------


def test_too_many_bytes_is_413(client: TestClient) -> None:
    limit = 200_000
    big = b"\xff\xd8" + b"\0" * limit  # a byte over the limit; never decoded
    raw = client.post("/api/enhance", content=big)
    assert raw.status_code == 413 and "200,000 bytes" in _detail(raw)
    form = post_file(client, big)
    assert form.status_code == 413
    # the limit is on the image: a file of exactly the limit inside a form is taken
    exact = client.post("/api/enhance", files={"file": ("a.bin", b"x" * limit)})
    assert exact.status_code == 400 and "not an image" in _detail(exact)
    # a form far larger than the image limit plus its framing allowance, in other fields
    padded = client.post(
        "/api/enhance", files={"file": ("a.bin", b"x")}, data={"pad": "y" * (limit + MULTIPART_SLACK)}
    )
    assert padded.status_code == 413


def test_chunked_upload_is_cut_at_the_limit(bright: Enhancer, tmp_path: Path) -> None:
    config = ServerConfig(max_upload_bytes=50_000, temp_root=tmp_path)
    chunks_sent = 0

    def body() -> Iterator[bytes]:
        nonlocal chunks_sent
        for _ in range(100):
            chunks_sent += 1
            yield b"\0" * 10_000

    with serve_in_background(create_app(bright, config)) as url:
        response = httpx.post(f"{url}/api/enhance", content=body())  # no Content-Length: chunked
    assert response.status_code == 413
    assert "50,000 bytes" in response.json()["detail"]


def test_too_many_pixels_is_413(client: TestClient) -> None:
    # 301 x 300 pixels of black compress to a tiny PNG: refused from the header, before decoding
    data = encode(Image.new("L", (301, 300)), "PNG")
    assert len(data) < 2_000
    response = post_file(client, data)
    assert response.status_code == 413
    assert "301 x 300 = 90,300" in _detail(response) and "90,000" in _detail(response)
    assert post_file(client, encode(Image.new("L", (300, 300)), "PNG")).status_code == 200


def test_decompression_bomb_is_413(client: TestClient) -> None:
    response = post_file(client, png_declaring(100_000, 100_000))  # past Pillow's own limit too
    assert response.status_code == 413
    assert _detail(response) == (
        "too many pixels: 100000 x 100000 = 10,000,000,000, over the server's limit of 90,000 "
        "(the server's --max-pixels)"
    )


# --- the queue: 503 ---------------------------------------------------------------------------------------


class Gate(Enhancer):
    """An enhancer that waits for ``opened`` before each image (to hold the queue full)."""

    def __init__(self) -> None:
        super().__init__(model=brightening_generator(), device="cpu")
        self.opened = threading.Event()
        self.entered = threading.Semaphore(0)
        self.concurrent = 0
        self.most_concurrent = 0
        self._count = threading.Lock()

    def enhance(self, image: Any, strength: float | None = None, **options: Any) -> Any:
        with self._count:
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
        self.entered.release()
        try:
            assert self.opened.wait(timeout=30)
            return super().enhance(image, strength, **options)
        finally:
            with self._count:
                self.concurrent -= 1


def test_full_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    gate = Gate()
    config = ServerConfig(workers=2, queue=1, temp_root=tmp_path)  # 3 admitted at once
    data = encode(make_dark_rgb(16, 16), "PNG")
    app = create_app(gate, config)
    with serve_in_background(app) as url, ThreadPoolExecutor(3) as pool:
        queue: JobQueue = app.state.runtime.queue
        assert queue.seconds_per_pixel is not None  # timed on a first image as the server started
        held = [pool.submit(httpx.post, f"{url}/api/enhance", content=data, timeout=60) for _ in range(3)]
        # the two workers are inside the model call (one waits for the model lock there), one request waits
        assert gate.entered.acquire(timeout=30)
        deadline = time.monotonic() + 30
        while queue.pending_pixels() != (3 * 16 * 16, 0):  # admitted, uploaded, sizes read
            assert time.monotonic() < deadline, "the requests were never admitted"
            time.sleep(0.02)
        queue.record_work(16 * 16, 10.0)  # as if the generator took 10 s for one of these images
        refused = httpx.post(f"{url}/api/enhance", content=data)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "30"  # the three queued images at that rate
        assert "busy" in refused.json()["detail"] and "retry in 30 s" in refused.json()["detail"]
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "busy": 3, "capacity": 3}
        gate.opened.set()
        assert [future.result().status_code for future in held] == [200, 200, 200]
        assert httpx.get(f"{url}/healthz").json()["busy"] == 0
        assert httpx.post(f"{url}/api/enhance", content=data).status_code == 200
    assert gate.most_concurrent == 1  # the model ran one image at a time, with two workers


def test_job_queue_admission_and_release() -> None:
    queue = JobQueue(workers=1, waiting=1)
    first, second = queue.admit(), queue.admit()
    with pytest.raises(QueueFullError, match="2 request") as caught:
        queue.admit()
    assert caught.value.retry_after == 1  # no job measured yet
    first.release()
    first.release()  # idempotent: one ticket frees one slot
    assert queue.admitted == 1
    third = queue.admit()
    with pytest.raises(QueueFullError):
        queue.admit()
    second.release()
    third.release()
    assert queue.admitted == 0
    queue.shutdown()


def test_job_queue_releases_after_the_job_even_when_cancelled() -> None:
    queue = JobQueue(workers=1, waiting=1)
    started, finish = threading.Event(), threading.Event()
    cleaned: list[str] = []

    def slow() -> str:
        started.set()
        assert finish.wait(timeout=10)
        return "done"

    async def scenario() -> None:
        ticket = queue.admit()
        task = asyncio.ensure_future(queue.run(ticket, slow, lambda: cleaned.append("slow")))
        while not started.is_set():
            await asyncio.sleep(0.01)
        # a second job waits for the only thread; its request goes away: dropped, slot freed
        waiting = asyncio.ensure_future(
            queue.run(queue.admit(), lambda: "never", lambda: cleaned.append("w"))
        )
        await asyncio.sleep(0.05)
        waiting.cancel()
        task.cancel()  # the running job's request goes away too: the job still finishes first
        await asyncio.sleep(0.05)
        assert cleaned == ["w"] and queue.admitted == 1
        finish.set()
        while queue.admitted:
            await asyncio.sleep(0.01)
        assert cleaned == ["w", "slow"]

    asyncio.run(scenario())
    queue.shutdown()


def test_retry_after_is_the_queued_work_at_the_measured_rate() -> None:
    queue = JobQueue(workers=1, waiting=2, typical_pixels=5_000_000)
    tickets = [queue.admit() for _ in range(3)]
    assert queue.retry_after() == 1  # no rate measured nor guessed: nothing to go on
    queue.record_work(250_000, 0.5, first_guess=True)  # 2 us a pixel, timed as the server started
    # no upload complete yet: three typical photos of 5 MP, 15 MP x 2 us = 30 s
    assert queue.pending_pixels() == (0, 3) and queue.retry_after() == 30
    tickets[0].set_pixels(8_000_000)
    tickets[1].set_pixels(8_000_000)
    # the third, still uploading, counts as the mean of the known ones: 24 MP x 2 us = 48 s
    assert queue.pending_pixels() == (16_000_000, 1)
    with pytest.raises(QueueFullError, match="retry in 48 s") as caught:
        queue.admit()
    assert caught.value.retry_after == 48
    queue.record_work(1_000_000, 4.2)  # a measured image replaces the first guess: 4.2 us
    assert queue.retry_after() == 101  # 24 MP x 4.2 us = 100.8 s
    queue.record_work(1_000_000, 1.0)  # then a running mean: 0.7 x 4.2 + 0.3 x 1 = 3.24 us
    assert queue.retry_after() == 78  # 77.76 s
    tickets[0].release()  # its work leaves the queue: 16 MP x 3.24 us = 51.84 s
    assert queue.pending_pixels() == (8_000_000, 1) and queue.retry_after() == 52
    for ticket in tickets[1:]:
        ticket.release()
    assert queue.pending_pixels() == (0, 0) and queue.retry_after() == 1  # an empty queue: at least 1
    queue.record_work(0, 5.0)  # nothing to learn from
    queue.record_work(100, float("nan"))
    assert queue.seconds_per_pixel == pytest.approx(3.24e-6)
    queue.shutdown()


# --- nothing left behind ----------------------------------------------------------------------------------


def test_temporary_files_only_in_one_folder_removed_at_exit(
    bright: Enhancer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))  # where anything else would spill
    big_png = encode(np.random.default_rng(0).integers(0, 256, (250, 250, 3), dtype=np.uint8), "PNG")
    assert len(big_png) > 150_000  # larger than multipart parsers keep in memory
    with TestClient(create_app(bright, ServerConfig(temp_root=root))) as client:
        (folder,) = root.iterdir()
        assert folder.name.startswith("enlightengan-serve-")
        assert post_file(client, big_png).status_code == 200
        assert client.post("/api/enhance", content=big_png).status_code == 200
        assert post_file(client, b"junk").status_code == 400
        assert list(folder.iterdir()) == []  # each request's files are gone with it
    assert list(root.iterdir()) == []
    assert list(elsewhere.iterdir()) == []


# --- the page and the description ---------------------------------------------------------------------------


def test_page_and_its_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    for reference in ("/static/app.css", "/static/app.js", 'id="file-input"', 'id="strength"', "download"):
        assert reference in html
    assert "http://" not in html and "https://" not in html  # nothing from other hosts
    for name, media_type in (("app.js", "text/javascript"), ("app.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
        assert "http" not in response.text
    assert "/api/enhance" in client.get("/static/app.js").text
    assert client.get("/static/secret.py").status_code == 404
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/docs").status_code == 404  # its viewer loads scripts from a CDN


def test_health_info_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "busy": 0, "capacity": 10}
    info = client.get("/api/info").json()
    assert info["max_upload_bytes"] == 200_000 and info["max_pixels"] == 90_000
    assert info["device"] == "cpu" and info["strength"] == 1.0
    installed = {extra: importlib.util.find_spec(module) is not None for extra, module in EXTRA_MODULES}
    assert info["extras"] == installed
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/enhance"]["post"]
    content = operation["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
    assert "image/*" in content
    assert {"200", "400", "413", "415", "503"} <= set(operation["responses"])
    assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert "image/*" in operation["responses"]["200"]["content"]
    assert [p["name"] for p in operation["parameters"]] == ["strength", "exposure_fade"]
    assert {"/healthz", "/api/info"} <= set(spec["paths"])


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_records() -> Iterator[list[logging.LogRecord]]:
    """What the access log's logger receives while a test runs."""
    logger = logging.getLogger(ACCESS_LOGGER)
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_every_request_is_logged_with_status_size_and_duration(
    client: TestClient, access_records: list[logging.LogRecord]
) -> None:
    enhanced = post_file(client, encode(make_dark_rgb(20, 30), "PNG"), query="?strength=0.4")
    refused = post_file(client, encode(make_dark_rgb(8, 8), "PNG"), query="?strength=5")
    health = client.get("/healthz")
    assert [r.status_code for r in (enhanced, refused, health)] == [200, 400, 200]
    assert len(access_records) == 3  # one line per request
    line = re.compile(r'testclient:50000 - "(\w+) (\S+) HTTP/1\.1" (\d{3}) (\d+) (\d+\.\d{3})s')
    expected = [
        ("POST", "/api/enhance?strength=0.4", 200, len(enhanced.content)),
        ("POST", "/api/enhance?strength=5", 400, len(refused.content)),
        ("GET", "/healthz", 200, len(health.content)),
    ]
    for record, (method, path, status, size) in zip(access_records, expected, strict=True):
        match = line.fullmatch(record.getMessage())
        assert match, record.getMessage()
        assert match.groups()[:4] == (method, path, str(status), str(size))
        assert record.levelno == logging.INFO
        fields = tuple(record.__dict__[key] for key in ("method", "path", "status_code", "response_bytes"))
        assert fields == (method, path, status, size)
        assert 0 <= record.__dict__["duration"] < 60
    assert "photo.png" not in " ".join(r.getMessage() for r in access_records)  # no file names


#: The optional readers /api/info reports, and the module each needs.
EXTRA_MODULES = (("heif", "pillow_heif"), ("raw", "rawpy"))


# --- HEIC and camera RAW uploads ----------------------------------------------------------------------------


def _night_dng(path: Path, height: int = 32, width: int = 48) -> Path:
    mosaic = np.round(bayer_mosaic(dark_scene(height, width)) * 16383).astype(np.uint16)
    return write_dng(path, mosaic, main_tags={0x010F: "Synthetic"}, exif={0x9003: "2026:01:02 03:04:05"})


def _png16(response: Any) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.dtype == np.uint16
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def test_heic_upload_answers_png_upright_with_its_metadata(random_enhancer: Enhancer, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x0112] = 6  # as phones write it: the container's rotation and the EXIF tag beside it
    exif[0x010F] = "PhoneCo"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    upload = write_heic(
        tmp_path / "IMG_0042.heic", make_dark_rgb(20, 44), exif=exif.tobytes(), icc_profile=icc
    )
    with TestClient(create_app(random_enhancer, ServerConfig(temp_root=tmp_path))) as client:
        response = post_file(client, upload.read_bytes(), name="IMG_0042.heic")
    assert response.status_code == 200, response.text
    # browsers other than Safari show no HEIC: the answer is PNG, lossless
    assert response.headers["content-type"] == "image/png" and response.headers["x-image-format"] == "PNG"
    assert 'filename="IMG_0042-enhanced.png"' in response.headers["content-disposition"]
    result = decode(response.content)
    assert result.size == (20, 44)  # upright
    assert np.array_equal(np.asarray(result), np.asarray(random_enhancer.enhance(read_image(upload).pixels)))
    assert result.info.get("icc_profile") == icc
    assert result.getexif()[0x010F] == "PhoneCo" and result.getexif().get(0x0112, 1) == 1


def test_10bit_heic_upload_answers_16bit_png(random_enhancer: Enhancer, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    samples = make_dark_rgb(18, 26, seed=8).astype(np.uint16) * 4 + 3
    upload = write_heic(tmp_path / "hdr.heic", samples, bit_depth=10)
    with TestClient(create_app(random_enhancer, ServerConfig(temp_root=tmp_path))) as client:
        response = post_file(client, upload.read_bytes(), name="hdr.heic")
    assert response.status_code == 200, response.text
    assert np.array_equal(_png16(response), random_enhancer.enhance(read_image(upload).pixels))


def test_dng_upload_answers_16bit_png_with_its_exif(random_enhancer: Enhancer, tmp_path: Path) -> None:
    pytest.importorskip("rawpy")
    upload = _night_dng(tmp_path / "night.dng")
    expected = random_enhancer.enhance(read_image(upload).pixels)
    with TestClient(create_app(random_enhancer, ServerConfig(temp_root=tmp_path))) as client:
        named = post_file(client, upload.read_bytes(), name="night.dng")
        # the raw body has no name: the DNG is recognised by its content
        body = client.post("/api/enhance", content=upload.read_bytes())
    for response in (named, body):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert np.array_equal(_png16(response), expected)
        exif = decode(response.content).getexif()
        assert exif[0x010F] == "Synthetic" and exif.get_ifd(0x8769)[0x9003] == "2026:01:02 03:04:05"
    assert 'filename="night-enhanced.png"' in named.headers["content-disposition"]


def test_heic_and_raw_uploads_have_the_same_limits(bright: Enhancer, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    pytest.importorskip("rawpy")
    heic = write_heic(tmp_path / "a.heic", make_dark_rgb(30, 40)).read_bytes()
    dng = _night_dng(tmp_path / "a.dng").read_bytes()  # 48 x 32 = 1,536 pixels
    config = ServerConfig(max_upload_bytes=len(dng) - 1, max_pixels=1_199, temp_root=tmp_path)
    with TestClient(create_app(bright, config)) as client:
        too_big = post_file(client, dng, name="a.dng")
        assert too_big.status_code == 413 and "bytes" in _detail(too_big)
        many = post_file(client, heic, name="a.heic")
        assert many.status_code == 413 and "too many pixels: 40 x 30 = 1,200" in _detail(many)
    config = ServerConfig(max_pixels=1_535, temp_root=tmp_path)
    with TestClient(create_app(bright, config)) as client:
        many = post_file(client, dng, name="a.dng")
        assert many.status_code == 413 and "too many pixels: 48 x 32 = 1,536" in _detail(many)


def test_corrupt_heic_and_dng_are_400(client: TestClient, tmp_path: Path) -> None:
    pytest.importorskip("pillow_heif")
    pytest.importorskip("rawpy")
    heic = write_heic(tmp_path / "a.heic", make_dark_rgb(64, 64), lossless=False).read_bytes()
    dng = _night_dng(tmp_path / "a.dng").read_bytes()
    response = post_file(client, heic[:-300], name="cut.heic")
    assert response.status_code == 400 and "HEIF data" in _detail(response)
    response = post_file(client, dng[: len(dng) // 2], name="cut.dng")
    assert response.status_code == 400 and "corrupt or truncated RAW data" in _detail(response)


def test_missing_extras_are_415_with_the_install_command(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # importing them now fails
    monkeypatch.setitem(sys.modules, "rawpy", None)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    response = post_file(client, heic, name="a.heic")
    assert response.status_code == 415 and "pip install 'enlightengan[heif]'" in _detail(response)
    # an ARW has no signature of its own: the client's file name says what it is
    response = post_file(client, b"II*\x00" + bytes(64), name="DSC01234.ARW")
    assert response.status_code == 415 and "pip install 'enlightengan[raw]'" in _detail(response)
    assert client.get("/api/info").json()["extras"] == {"heif": False, "raw": False}


def test_page_takes_heic_and_raw_files(client: TestClient) -> None:
    from enlightengan.formats import HEIF_SUFFIXES, RAW_SUFFIXES

    html = client.get("/").text
    accept = re.search(r'accept="([^"]+)"', html)
    assert accept is not None
    script = client.get("/static/app.js").text
    names = re.search(r"const PHOTO_NAMES = /(.+)/i;", script)
    assert names is not None
    for suffix in (*HEIF_SUFFIXES, *RAW_SUFFIXES):
        assert suffix in accept.group(1).split(",")
        assert re.search(names.group(1), f"photo{suffix.upper()}", re.IGNORECASE)


# --- configuration and the command --------------------------------------------------------------------------


def test_server_config_validation(tmp_path: Path) -> None:
    assert ServerConfig().capacity == 10
    assert ServerConfig.upload_bytes(0.5) == 524_288
    for bad in (
        {"max_upload_bytes": 0},
        {"max_pixels": -1},
        {"workers": 0},
        {"queue": -1},
        {"workers": True},
    ):
        with pytest.raises(ValueError, match="ServerConfig"):
            ServerConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an existing folder"):
        ServerConfig(temp_root=tmp_path / "missing")
    with pytest.raises(ValueError, match="positive number of MB"):
        ServerConfig.upload_bytes(float("nan"))


def test_serve_options() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.weights, args.device) == ("127.0.0.1", 7860, None, "auto")
    assert (args.max_upload_mb, args.max_pixels, args.queue, args.workers) == (50.0, 50_000_000, 8, 2)
    args = build_parser().parse_args(
        ["serve", "--port", "0", "--max-upload-mb", "0.5", "--max-pixels", "1_000", "--queue", "0"]
    )
    assert (args.port, args.max_upload_mb, args.max_pixels, args.queue) == (0, 0.5, 1000, 0)
    assert build_parser().parse_args(["serve"]).access_log is True
    assert build_parser().parse_args(["serve", "--no-access-log"]).access_log is False


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "70000"],
        ["--port", "-1"],
        ["--max-upload-mb", "0"],
        ["--max-pixels", "0"],
        ["--queue", "-2"],
        ["--workers", "0"],
        ["--strength", "-0.5"],
        ["--strength", "5"],
    ],
)
def test_serve_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", *argv])
    assert caught.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_serve_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["serve", "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)  # as if no default model were bundled
    assert main(["serve"]) == 2  # no weights anywhere: the message says how to pass them
    assert "--weights" in capsys.readouterr().err
    weights = save_generator(brightening_generator(), tmp_path / "g.safetensors")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--weights", str(weights), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_command_end_to_end(tmp_path: Path) -> None:
    weights = save_generator(brightening_generator(), tmp_path / "g.safetensors")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "enlightengan", "serve", "--port", "0", "--weights", str(weights)]
    process = subprocess.Popen(
        [*command, "--device", "cpu", "--queue", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a suite started in the background of a script inherits SIGINT
        # ignored, and the server would then exit 0 instead of 130
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"open (http://127\.0\.0\.1:\d+)/", first_line)
        assert match, first_line + (process.stderr.read() if process.stderr else "")
        url = match.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert health.json()["capacity"] == 3
        rgb = make_dark_rgb(24, 24)
        response = httpx.post(
            f"{url}/api/enhance?strength=0.5", files={"file": ("a.png", encode(rgb, "PNG"))}
        )
        assert response.status_code == 200
        result = np.asarray(decode(response.content)).astype(int)
        assert np.abs(result - expected_brightening(rgb, 0.5)).max() <= 1
        assert len(list(temp.iterdir())) == 1  # the server's one temporary folder
    finally:
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=30)
    assert status == 130  # interrupted, after a clean shutdown
    assert list(temp.iterdir()) == []
    # the access log on stdout, as uvicorn prints its lines, with the answer's size and duration
    logged = process.stdout.read() if process.stdout else ""
    post = re.search(
        r'INFO: +127\.0\.0\.1:\d+ - "POST /api/enhance\?strength=0\.5 HTTP/1\.1" 200 (\d+) [\d.]+s', logged
    )
    assert post and int(post[1]) == len(response.content), logged
    assert re.search(r'"GET /healthz HTTP/1\.1" 200 \d+ [\d.]+s', logged), logged

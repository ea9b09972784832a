"""A short, bounded load test of ``enlightengan serve`` on 127.0.0.1: rounds of concurrent requests.

Each round sends ``CONCURRENT`` different photos at once. Every answer must be 200 and be the enhancement
of its own photo (no mix-up between concurrent requests), and the process's resident memory must not grow
from round to round once the first round has warmed up the allocator, the thread pool and the model.
"""

from __future__ import annotations

import gc
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from enlightengan.inference import Enhancer

from .conftest import brightening_generator, decode, encode, expected_brightening, make_dark_rgb

pytest.importorskip("fastapi")  # the serve extra (test_server above skips too without it)
pytest.importorskip("httpx")

import httpx

from enlightengan.server import ServerConfig, create_app, serve_in_background

ROUNDS = 3
CONCURRENT = 8
#: Resident memory the measured rounds may add to the first one. Round-to-round noise here is about
#: 1 MiB; keeping each request's pixels and tensor alive (about 0.45 MB a request) was measured to add
#: 10.5 MiB over these rounds, which this bound catches.
ALLOWED_GROWTH = 6 << 20


def resident_bytes() -> int:
    """This process's resident set size, from ``/proc/self/statm`` (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_concurrent_rounds_no_failures_no_memory_growth(tmp_path: Path) -> None:
    enhancer = Enhancer(model=brightening_generator(), device="cpu")
    config = ServerConfig(workers=2, queue=CONCURRENT - 2, temp_root=tmp_path)  # all 8 admitted at once
    photos = [make_dark_rgb(128, 192, seed=seed) for seed in range(CONCURRENT)]
    bodies = [encode(photo, "PNG") for photo in photos]
    expected = [expected_brightening(photo, 0.7) for photo in photos]

    resident: list[int] = []
    with (
        serve_in_background(create_app(enhancer, config), host="127.0.0.1") as url,
        httpx.Client(base_url=url, timeout=120) as client,
        ThreadPoolExecutor(CONCURRENT) as pool,
    ):

        def send(index: int) -> httpx.Response:
            files = {"file": (f"photo{index}.png", bodies[index], "image/png")}
            return client.post("/api/enhance", params={"strength": 0.7}, files=files)

        for _ in range(1 + ROUNDS):  # the first round warms up
            answers = list(pool.map(send, range(CONCURRENT)))
            assert [answer.status_code for answer in answers] == [200] * CONCURRENT
            for index, answer in enumerate(answers):
                result = np.asarray(decode(answer.content)).astype(int)
                assert np.abs(result - expected[index]).max() <= 1, f"request {index} got another's photo"
            del answers
            gc.collect()
            resident.append(resident_bytes())
        assert client.get("/healthz").json()["busy"] == 0
        (folder,) = tmp_path.iterdir()
        assert list(folder.iterdir()) == []  # every request's files removed

    growth = max(resident[1:]) - resident[1]
    mib = [f"{value / (1 << 20):.1f}" for value in resident]
    print(f"resident MiB after each round (first is warm-up): {', '.join(mib)}")
    assert growth < ALLOWED_GROWTH, f"memory grew by {growth / (1 << 20):.1f} MiB over {ROUNDS} rounds: {mib}"

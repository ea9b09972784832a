"""Weights download: a local HTTP server on 127.0.0.1 stands in for the internet (never contacted)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from enlightengan.weights import (
    VGG16_TORCHVISION,
    WeightsSpec,
    WeightsUnavailableError,
    cached_path,
    hub_dir,
    sha256_file,
)

PAYLOAD = os.urandom(200_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Server:
    base: str
    files: dict[str, bytes]
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """Serves ``files`` (path -> bytes), 404 for others, ``/truncated`` promises more bytes than it sends."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    state = Server(base="", files={"/weights.pth": PAYLOAD})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path == "/truncated":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD[:1000])
                self.close_connection = True
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404, "not here")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def spec(url: str, sha256: str = PAYLOAD_SHA, filename: str = "weights-test.pth") -> WeightsSpec:
    return WeightsSpec(
        name="test-weights",
        filename=filename,
        sha256=sha256,
        licence="test licence",
        input_format="RGB [0, 1]",
        description="test file",
        url=url,
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_hub_dir_follows_torch_home(torch_home: Path) -> None:
    assert hub_dir() == torch_home / "hub"


def test_download_with_full_hash_lands_in_the_cache_and_is_reused(server: Server, torch_home: Path) -> None:
    path = cached_path(spec(server.base + "/weights.pth"), progress=False)
    assert path == torch_home / "hub" / "checkpoints" / "weights-test.pth"
    assert path.read_bytes() == PAYLOAD
    assert leftovers(path.parent) == ["weights-test.pth"]  # no temporary file left
    assert cached_path(spec(server.base + "/weights.pth"), progress=False) == path
    assert server.requests == ["/weights.pth"]  # the second call did not download again


def test_download_with_torchvision_style_hash_prefix(server: Server, torch_home: Path) -> None:
    path = cached_path(spec(server.base + "/weights.pth", sha256=PAYLOAD_SHA[:8]), progress=False)
    assert sha256_file(path) == PAYLOAD_SHA


def test_progress_bar_is_shown(server: Server, torch_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cached_path(spec(server.base + "/weights.pth"), progress=True)
    err = capsys.readouterr().err
    assert "weights.pth" in err and "100%" in err


def test_wrong_hash_deletes_the_download_and_says_what_to_do(server: Server, torch_home: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(WeightsUnavailableError) as info:
        cached_path(spec(server.base + "/weights.pth", sha256=wrong), progress=False)
    message = str(info.value)
    target = torch_home / "hub" / "checkpoints" / "weights-test.pth"
    assert PAYLOAD_SHA in message and wrong in message
    assert server.base + "/weights.pth" in message and str(target) in message
    assert leftovers(target.parent) == []


def test_http_404_is_weights_unavailable(server: Server, torch_home: Path) -> None:
    url = server.base + "/missing.pth"
    with pytest.raises(WeightsUnavailableError) as info:
        cached_path(spec(url), progress=False)
    message = str(info.value)
    assert "404" in message and url in message
    assert str(torch_home / "hub" / "checkpoints" / "weights-test.pth") in message
    assert leftovers(torch_home / "hub" / "checkpoints") == []


def test_truncated_download_is_rejected(server: Server, torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="could not download"):
        cached_path(spec(server.base + "/truncated"), progress=False)
    assert leftovers(torch_home / "hub" / "checkpoints") == []


def test_refused_connection_says_which_file_to_fetch_and_where(torch_home: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights.pth"
    with pytest.raises(WeightsUnavailableError) as info:
        cached_path(spec(url), progress=False, timeout=5)
    message = str(info.value)
    assert url in message
    assert str(torch_home / "hub" / "checkpoints" / "weights-test.pth") in message


def test_download_off_and_not_cached(server: Server, torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="not cached"):
        cached_path(spec(server.base + "/weights.pth"), download=False)
    assert server.requests == []


def test_cached_file_with_wrong_content_is_refused(server: Server, torch_home: Path) -> None:
    target = torch_home / "hub" / "checkpoints" / "weights-test.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"something else")
    with pytest.raises(WeightsUnavailableError, match="Delete it"):
        cached_path(spec(server.base + "/weights.pth"), progress=False)
    assert server.requests == []


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="hex digits"):
        spec("http://127.0.0.1/x", sha256="xyz")
    with pytest.raises(ValueError, match="hex digits"):
        spec("http://127.0.0.1/x", sha256="397923A")  # too short (and upper case)
    with pytest.raises(ValueError, match="plain file name"):
        spec("http://127.0.0.1/x", filename="../escape.pth")


def test_a_spec_matches_its_hash_or_its_prefix(torch_home: Path) -> None:
    assert spec("http://127.0.0.1/x").matches(PAYLOAD_SHA)
    assert spec("http://127.0.0.1/x", sha256=PAYLOAD_SHA[:8]).matches(PAYLOAD_SHA)
    assert spec("http://127.0.0.1/x", sha256=PAYLOAD_SHA[:8]).expected == PAYLOAD_SHA[:8] + "..."
    assert not spec("http://127.0.0.1/x").matches(hashlib.sha256(b"other").hexdigest())
    bundled = WeightsSpec("bundled", "w.safetensors", None, "", "", "")  # declared, not yet released
    assert not bundled.matches(PAYLOAD_SHA)
    with pytest.raises(ValueError, match="not declared for download"):
        cached_path(bundled)  # no url: nothing to fetch


def test_torchvision_vgg16_spec_follows_torchvision_naming() -> None:
    # torchvision names files <name>-<first 8 hex digits of the SHA-256>.pth
    assert VGG16_TORCHVISION.url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert VGG16_TORCHVISION.filename == VGG16_TORCHVISION.url.rsplit("/", 1)[1]
    assert VGG16_TORCHVISION.filename.removesuffix(".pth").rsplit("-", 1)[1] == VGG16_TORCHVISION.sha256

"""The OpenVINO backend computes what the faithful module computes: whole images, tiles, any size."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from enlightengan._optional import OptionalDependencyError
from enlightengan.inference.placement import Placement
from enlightengan.inference.torch_backend import TorchBackend
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.models.ops import attention_map

from .conftest import randomised_generator

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "dark.jpg"

pytest.importorskip("onnx")
pytest.importorskip("openvino")

from enlightengan.inference.openvino_backend import OpenVinoBackend  # noqa: E402


def _inputs(n: int, h: int, w: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return image, attention_map(image)


def test_whole_images_equal_the_module() -> None:
    model = randomised_generator()
    image, gray = _inputs(2, 64, 96)
    with torch.no_grad():
        expected = model.forward_aligned(image, gray)
    backend = OpenVinoBackend(model, threads=1)
    out, latent = backend.run(image, gray)
    assert out.shape == latent.shape == image.shape
    torch.testing.assert_close(out, expected.output, atol=1e-4, rtol=0)
    torch.testing.assert_close(latent, expected.latent, atol=1e-4, rtol=0)
    # the same compiled model serves another size (dynamic shapes), and a tile placed at the origin
    # of an image of its own size is the whole image
    image, gray = _inputs(1, 48, 32, seed=2)
    with torch.no_grad():
        expected = model.forward_aligned(image, gray)
    out, _ = backend.run(image, gray, Placement(0, 0, 48, 32))
    torch.testing.assert_close(out, expected.output, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_large_images_are_exact_to_the_last_column(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenVINO 2026.4 computed the last 17 columns wrongly from about 1536 x 1536 on when the
    # indexed upsampling ran with dynamic shapes; both compiled forms must stay exact there
    from enlightengan.inference import openvino_backend

    model = randomised_generator(width=4)
    image, gray = _inputs(1, 1536, 1552)
    expected, _ = TorchBackend(model).run(image, gray)
    backend = OpenVinoBackend(model)
    dynamic, _ = backend.run(image, gray)
    assert backend._compiled is not None and backend._compiled[0] is None  # the dynamic model ran
    monkeypatch.setattr(openvino_backend, "default_budget", lambda: 1 << 20)  # now over the budget
    fixed, _ = backend.run(image, gray)
    assert backend._compiled is not None and backend._compiled[0] == (1, 3, 1536, 1552)  # fixed shape
    for out in (dynamic, fixed):
        error = (out - expected).abs().amax(dim=(0, 1, 2))  # per column
        assert error.max() < 1e-4, f"columns off: {torch.nonzero(error >= 1e-4).flatten().tolist()[:20]}"


def test_tiles_are_run_where_the_whole_image_samples_them() -> None:
    from enlightengan.inference import Enhancer

    model = randomised_generator()
    image, gray = _inputs(1, 64, 96)
    placement = Placement(32, 48, 160, 192)
    torch_out, torch_latent = TorchBackend(model).run(image, gray, placement)
    ov_out, ov_latent = OpenVinoBackend(model).run(image, gray, placement)
    torch.testing.assert_close(ov_out, torch_out, atol=1e-4, rtol=0)
    torch.testing.assert_close(ov_latent, torch_latent, atol=1e-4, rtol=0)
    # through the Enhancer: tiles of a wide image, stitched, equal the module on the whole image
    base, _ = _inputs(1, 50, 70, seed=3)
    wide = torch.cat((base, base.flip(-1), base, base.flip(-1)), -1)  # 50 x 280: two tiles of at most 272 px
    with torch.no_grad():
        expected = model(wide).output.clamp(-1, 1)
    enhancer = Enhancer(model=model, device="cpu", backend="openvino", tile=272)
    torch.testing.assert_close(enhancer.enhance_tensor(wide), expected, atol=1e-4, rtol=0)
    whole = Enhancer(model=model, device="cpu", backend="openvino")
    with torch.no_grad():
        torch.testing.assert_close(
            whole.enhance_tensor(base), model(base).output.clamp(-1, 1), atol=1e-4, rtol=0
        )


def test_one_compiled_model_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from enlightengan.inference import openvino_backend

    model = randomised_generator()
    image, gray = _inputs(1, 64, 96)
    backend = OpenVinoBackend(model)
    compiled: list[tuple[int, ...] | None] = []
    real = openvino_backend._network

    def counting(ov: object, generator: EnlightenGenerator, *, placed: bool) -> object:
        compiled.append(tuple(image.shape) if placed else None)
        return real(ov, generator, placed=placed)

    monkeypatch.setattr(openvino_backend, "_network", counting)
    # 64 x 96 pixels x width 8 x 48 bytes = 2.4 MB: over a 1 MB budget (a fixed-shape model runs
    # it), under a 4 MB one (the dynamic model)
    monkeypatch.setattr(openvino_backend, "default_budget", lambda: 1 << 20)
    out, _ = backend.run(image, gray)
    torch.testing.assert_close(out, TorchBackend(model).run(image, gray)[0], atol=1e-4, rtol=0)
    backend.run(image, gray)  # the same shape: no new compilation
    assert compiled == [(1, 3, 64, 96)]
    monkeypatch.setattr(openvino_backend, "default_budget", lambda: 4 << 20)
    out, _ = backend.run(image, gray)
    backend.run(image[..., :32], gray[..., :32])  # the dynamic model serves every size
    torch.testing.assert_close(out, TorchBackend(model).run(image, gray)[0], atol=1e-4, rtol=0)
    assert compiled == [(1, 3, 64, 96), None]
    backend.run(image[..., :32], gray[..., :32], Placement(0, 0, 64, 96))  # a tile: fixed shape again
    assert len(compiled) == 3 and backend._compiled is not None and backend._compiled[0] == (1, 3, 64, 32)


def test_one_openvino_core_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # a new Core per compiled model crashed the test suite (segmentation fault) after a few dozen
    import openvino

    from enlightengan.inference import openvino_backend

    shared = openvino_backend._core(openvino)  # the process's Core: no second one is made here
    created: list[object] = []

    def counting() -> object:
        created.append(shared)
        return shared

    monkeypatch.setattr(openvino, "Core", counting)
    monkeypatch.setattr(openvino_backend, "_CORE", None)  # as in a fresh process
    model = randomised_generator()
    image, gray = _inputs(1, 32, 48)
    for backend in (OpenVinoBackend(model), OpenVinoBackend(model, threads=1)):
        backend.run(image, gray)  # the dynamic model
        backend.run(image, gray, Placement(0, 16, 32, 64))  # a fixed-shape tile model: compiled again
    assert len(created) == 1


class _CountingCompiled:
    """A compiled model that counts the infer requests made of it."""

    def __init__(self, real: Any) -> None:
        self.real, self.requests = real, 0

    def create_infer_request(self) -> Any:
        self.requests += 1
        return self.real.create_infer_request()


class _CountingCore:
    def __init__(self, real: Any) -> None:
        self.real, self.compiled = real, []

    def compile_model(self, *args: Any, **kwargs: Any) -> _CountingCompiled:
        self.compiled.append(_CountingCompiled(self.real.compile_model(*args, **kwargs)))
        return self.compiled[-1]


def test_requests_are_reused_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # each request keeps its model's planned memory: threads that take turns (the web service runs one
    # image at a time on its worker threads) must share one, not hold one each
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import openvino

    from enlightengan.inference import openvino_backend

    core = _CountingCore(openvino_backend._core(openvino))
    monkeypatch.setattr(openvino_backend, "_core", lambda ov: core)
    model = randomised_generator()
    backend = OpenVinoBackend(model)
    image, gray = _inputs(1, 32, 48)
    for _ in range(4):  # four threads, one after another
        thread = threading.Thread(target=backend.run, args=(image, gray))
        thread.start()
        thread.join()
    assert [c.requests for c in core.compiled] == [1]
    inputs = [_inputs(1, 32, 48, seed=seed) for seed in range(12)]
    with ThreadPoolExecutor(max_workers=3) as pool:  # at most three at once
        outputs = list(pool.map(lambda pair: backend.run(*pair)[0], inputs))
    assert 1 <= core.compiled[0].requests <= 3
    for out, (one, its_gray) in zip(outputs, inputs, strict=True):
        torch.testing.assert_close(out, TorchBackend(model).run(one, its_gray)[0], atol=1e-4, rtol=0)
    backend.run(image, gray, Placement(0, 16, 32, 64))  # a tile: another model, its own request
    backend.run(image, gray)  # the dynamic model again: compiled again, the tile model's request dropped
    assert [c.requests for c in core.compiled[1:]] == [1, 1]
    assert len(backend._idle) == 1


def test_threads_share_one_backend() -> None:
    # the web service and --workers call one backend from several threads at once
    from concurrent.futures import ThreadPoolExecutor

    model = randomised_generator()
    backend = OpenVinoBackend(model)
    inputs = [_inputs(1, 64, 96, seed=seed) for seed in range(8)]
    expected = [TorchBackend(model).run(image, gray)[0] for image, gray in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda pair: backend.run(*pair)[0], inputs))
    for out, want in zip(outputs, expected, strict=True):
        torch.testing.assert_close(out, want, atol=1e-4, rtol=0)


def test_bundled_model_matches_the_torch_backend_on_a_photo() -> None:
    from PIL import Image

    from enlightengan.inference import Enhancer

    photo = np.asarray(Image.open(EXAMPLE).convert("RGB").reduce(2))
    via_ov = Enhancer(device="cpu", backend="openvino").enhance(photo)
    via_torch = Enhancer(device="cpu", backend="torch").enhance(photo)
    assert via_ov.shape == photo.shape
    difference = np.abs(via_ov.astype(int) - via_torch.astype(int))
    assert difference.max() <= 1  # 8-bit outputs within one grey level
    assert (via_ov.astype(int) - photo.astype(int)).mean() > 10  # and the photo was really enhanced


def test_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    per_image = EnlightenGenerator(GeneratorConfig(base_width=4, batchnorm="per-image")).eval()
    with pytest.raises(ValueError, match="fixed BatchNorm statistics"):
        OpenVinoBackend(per_image)
    model = randomised_generator(width=4)
    with pytest.raises(ValueError, match="threads"):
        OpenVinoBackend(model, threads=0)
    backend = OpenVinoBackend(model)
    with pytest.raises(ValueError, match="per-image"):
        backend.with_statistics(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="per-image"):
        backend.measuring()
    image, gray = _inputs(1, 20, 32)
    with pytest.raises(ValueError, match="multiples of 16"):
        backend.run(image, gray)
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(OptionalDependencyError, match=r"enlightengan\[openvino\]"):
        OpenVinoBackend(model)

"""Shared test fixtures and helpers: the test data (optional; ``$ENLIGHTENGAN_DATA``, else ../shared),
small synthetic images, tiny generators and training runs, and the bundled model's recorded scores.

Test modules import the plain helpers from here (``from .conftest import ...``); fixtures are found
by pytest.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from enlightengan.config import TrainConfig, apply_overrides
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.weights import DEFAULT_MODEL, WEIGHTS_DIR

REPO = Path(__file__).resolve().parents[1]

#: The environment variable naming the folder that holds the test data: ``datasets/`` (LOL, DICM, LIME,
#: BSDS500, SICE), ``niqe/`` and ``fixtures/``, laid out as the README's "Test data" says.
DATA_ENV = "ENLIGHTENGAN_DATA"

#: The test data: ``$ENLIGHTENGAN_DATA``, else ``../shared`` beside the checkout.
SHARED = Path(os.environ.get(DATA_ENV) or REPO.parent / "shared").expanduser().absolute()

#: The bundled model's measured scores, beside the weights (a retrained model updates them there).
BUNDLED_SCORES = WEIGHTS_DIR / DEFAULT_MODEL.filename.replace(".safetensors", ".scores.json")


def missing_data(path: Path) -> str:
    """The skip message of a test whose data file or folder ``path`` is absent."""
    return (
        f"test data not found: {path} (set {DATA_ENV} to the folder that holds datasets/; "
        "README, 'Test data')"
    )


def data_file(shared_dir: Path, *parts: str) -> Path:
    """``shared_dir / parts...``, or a skip naming :data:`DATA_ENV` when that file or folder is absent."""
    path = shared_dir.joinpath(*parts)
    if not path.exists():
        pytest.skip(missing_data(path))
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The test data folder (:data:`SHARED`); tests using it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(missing_data(SHARED))
    return SHARED


@pytest.fixture(scope="session")
def official_fixture(shared_dir: Path) -> dict[str, torch.Tensor]:
    path = shared_dir / "fixtures" / "official_generator_fixture.pt"
    if not path.is_file():
        pytest.skip(missing_data(path))
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def bundled_scores() -> dict[str, Any]:
    """The scores measured with the bundled default model (:data:`BUNDLED_SCORES`)."""
    scores: dict[str, Any] = json.loads(BUNDLED_SCORES.read_text())
    return scores


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


def make_dark_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth dark RGB test image (uint8, values roughly 5..60) with some structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 20 + 15 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    img = np.stack([base, base * 0.8 + 5, base * 0.6 + 10], axis=-1)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# --- images ---------------------------------------------------------------------------------------


def dark_tensor(h: int, w: int, seed: int = 3) -> torch.Tensor:
    """A smooth dark picture with edges: values mostly in [-1, -0.4]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    base = (
        -0.7
        + 0.2 * torch.sin(xx / 9) * torch.cos(yy / 7)
        + 0.25 * (xx > w / 3).float() * (yy > h / 2).float()
    )
    rgb = torch.stack((base, base * 0.9 - 0.05, base * 0.8 - 0.1))[None]
    return (rgb + 0.03 * torch.randn(1, 3, h, w, generator=g)).clamp(-1, 1)


def encode(image: Image.Image | np.ndarray, file_format: str, **options: Any) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=file_format, **options)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG file whose header declares ``width x height`` RGB pixels and holds no pixel data: what a
    decompression bomb looks like to a reader before it decodes anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    empty = zlib.compress(b"")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", empty) + chunk(b"IEND", b"")


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- generators -----------------------------------------------------------------------------------


def randomised_generator(
    width: int = 8, *, seed: int = 0, negative_scales: bool = True
) -> EnlightenGenerator:
    """A small generator whose BatchNorms are far from the identity (so folding them is really tested).

    With ``negative_scales`` some BatchNorm scales are negative, which forbids folding through the
    max-pools and exercises the explicit fallback.
    """
    generator = torch.Generator().manual_seed(seed)
    model = EnlightenGenerator(GeneratorConfig(base_width=width)).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                low = -1.5 if negative_scales else 0.5
                module.weight.copy_(torch.empty(c).uniform_(low, 1.5, generator=generator))
                module.bias.copy_(torch.empty(c).uniform_(-0.8, 0.8, generator=generator))
                module.running_mean.copy_(torch.empty(c).uniform_(-0.5, 0.5, generator=generator))
                module.running_var.copy_(torch.empty(c).uniform_(0.3, 2.0, generator=generator))
    return model


#: The stand-in generator's residual per unit of attention (see brightening_generator).
BIAS = 0.8


def brightening_generator(bias: float = BIAS) -> EnlightenGenerator:
    """A tiny generator whose result is known in closed form: ``output = x + bias * gray(x)``.

    With the head's 1x1 convolution set to weight 0 and bias ``bias``, the residual is
    ``conv10(...) * gray = bias * gray`` (Jiang et al. 2021, Fig. 2: the times-residual head): the
    attention map alone decides how much each pixel is brightened.
    """
    model = EnlightenGenerator(GeneratorConfig(base_width=4)).eval()
    with torch.no_grad():
        model.conv10.weight.zero_()
        model.conv10.bias.fill_(bias)
    return model


def expected_brightening(rgb: np.ndarray, strength: float, bias: float = BIAS) -> np.ndarray:
    """Hand formula for :func:`brightening_generator`: uint8 RGB in, uint8 RGB out (the attention map
    of :func:`enlightengan.models.ops.attention_map`, rounding as :mod:`enlightengan.image_io`)."""
    x = rgb.astype(np.float64) / 255 * 2 - 1
    gray = 1 - (0.299 * (x[..., 0] + 1) + 0.587 * (x[..., 1] + 1) + 0.114 * (x[..., 2] + 1)) / 2
    y = np.clip(x + strength * bias * gray[..., None], -1, 1)
    return np.round((y + 1) / 2 * 255).astype(np.uint8)


# --- tiny training runs ---------------------------------------------------------------------------


def write_images(folder: Path, count: int, bright: bool, size: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rgb = make_dark_rgb(size, size + 4 * (i % 3), seed=i)
        if bright:
            rgb = np.clip(rgb.astype(np.int32) * 4, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"img_{i:02d}.png")
    return folder


@pytest.fixture()
def tiny_data(tmp_path: Path) -> tuple[Path, Path]:
    return write_images(tmp_path / "low", 8, False), write_images(tmp_path / "normal", 7, True)


def tiny_config(low: Path, normal: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "data.low": str(low),
        "data.normal": str(normal),
        "data.crop_size": 32,
        "data.num_workers": 0,
        "model.width": 4,
        "model.d_width": 8,
        "loss.local_patches": 2,
        "loss.patch_size": 16,
        "loss.feature_net": "random",
        "optim.batch_size": 2,
        "optim.epochs": 2,
        "optim.decay_epochs": 1,
        "run.device": "cpu",
        "run.save_every": 2,
        "run.keep_last": 2,
    }
    values.update(overrides)
    return apply_overrides(TrainConfig(), values)

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
from enlightengan.inference import Enhancer
from enlightengan.models.checkpoint import save_generator
from enlightengan.models.generator import EnlightenGenerator, GeneratorConfig
from enlightengan.weights import DEFAULT_MODEL, WEIGHTS_DIR
from enlightengan.weights import bundled as weights_bundled

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


# --- HEIC and camera RAW files, made here -------------------------------------------------------------


def write_heic(
    path: Path,
    pixels: np.ndarray,
    *,
    bit_depth: int = 8,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    lossless: bool = True,
) -> Path:
    """A HEIC file written by pillow-heif itself (not by enlightengan's writer).

    ``pixels``: ``uint8`` RGB/RGBA/grey for 8 bits; for 10 or 12 bits, ``uint16`` samples ``0 .. 2**d - 1``.
    Lossless (4:4:4 chroma, RGB matrix) unless ``lossless=False``; an EXIF orientation becomes the
    container's rotation, as phones write it.
    """
    pillow_heif = pytest.importorskip("pillow_heif")
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if bit_depth == 8:
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        data = np.ascontiguousarray(pixels, np.uint8).tobytes()
    else:
        mode = {1: "I;16", 3: "RGB;16", 4: "RGBA;16"}[channels]
        data = (np.ascontiguousarray(pixels, np.uint16) << (16 - bit_depth)).astype(np.uint16).tobytes()
    heif = pillow_heif.from_bytes(mode=mode, size=(width, height), data=data)
    options: dict[str, Any] = {"quality": -1, "chroma": 444, "matrix_coefficients": 0} if lossless else {}
    if bit_depth > 8:
        options["bit_depth"] = bit_depth
    if exif is not None:
        options["exif"] = exif
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    heif.save(path, **options)
    return path


#: XYZ (D65) -> linear sRGB: the ColorMatrix1 of a synthetic camera whose raw RGB is linear sRGB.
XYZ_TO_SRGB = (
    (3.2404542, -1.5371385, -0.4985314),
    (-0.9692660, 1.8760108, 0.0415560),
    (0.0556434, -0.2040259, 1.0572252),
)


def bayer_mosaic(rgb: np.ndarray) -> np.ndarray:
    """``H x W x 3`` -> ``H x W`` RGGB mosaic (R at even rows and columns, B at odd ones)."""
    mosaic = np.empty(rgb.shape[:2], rgb.dtype)
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return mosaic


def write_dng(
    path: Path,
    mosaic: np.ndarray,
    *,
    white: int = 16383,
    neutral: tuple[float, float, float] = (1.0, 1.0, 1.0),
    orientation: int = 1,
    main_tags: dict[int, Any] | None = None,
    exif: dict[int, Any] | None = None,
) -> Path:
    """A minimal uncompressed DNG 1.4 of an RGGB ``mosaic`` (``uint16`` values ``0 .. white``; 16383 is
    14-bit), written with Pillow's TIFF directory (independent of enlightengan's TIFF writer).

    The camera's raw RGB is linear sRGB (``ColorMatrix1`` = :data:`XYZ_TO_SRGB`, D65); ``neutral`` is the
    as-shot white balance (the raw values of a grey); ``main_tags`` go into IFD0 (Make, Model, ...) and
    ``exif`` into an Exif sub-IFD.
    """
    from PIL.TiffImagePlugin import IFDRational, ImageFileDirectory_v2

    height, width = mosaic.shape
    data = np.ascontiguousarray(mosaic, dtype="<u2").tobytes()
    ifd = ImageFileDirectory_v2(prefix=b"II")

    def put(tag: int, kind: int, value: Any) -> None:
        ifd.tagtype[tag] = kind
        ifd[tag] = value

    def rationals(values: Any) -> tuple[IFDRational, ...]:
        return tuple(IFDRational(round(v * 10000), 10000) for v in values)

    for tag, value in (main_tags or {}).items():
        ifd[tag] = value
    put(254, 4, 0)  # NewSubfileType: the main image
    put(256, 4, width)
    put(257, 4, height)
    put(258, 3, 16)  # BitsPerSample
    put(259, 3, 1)  # no compression
    put(262, 3, 32803)  # PhotometricInterpretation: CFA
    put(273, 4, 0)  # StripOffsets (Pillow adds where the data starts)
    put(274, 3, orientation)
    put(277, 3, 1)
    put(278, 4, height)
    put(279, 4, len(data))
    put(284, 3, 1)
    put(33421, 3, (2, 2))  # CFARepeatPatternDim
    put(33422, 1, b"\x00\x01\x01\x02")  # CFAPattern: R G / G B
    put(50706, 1, b"\x01\x04\x00\x00")  # DNGVersion 1.4
    put(50707, 1, b"\x01\x01\x00\x00")
    put(50708, 2, "enlightengan synthetic camera")  # UniqueCameraModel
    put(50714, 4, 0)  # BlackLevel
    put(50717, 4, white)  # WhiteLevel
    put(50721, 10, rationals(v for row in XYZ_TO_SRGB for v in row))  # ColorMatrix1
    put(50728, 5, rationals(neutral))  # AsShotNeutral
    put(50778, 3, 21)  # CalibrationIlluminant1: D65
    if exif:
        put(0x8769, 4, exif)
    path.write_bytes(b"II*\x00" + (8).to_bytes(4, "little") + ifd.tobytes(8) + data)
    return path


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function, ``[0, 1]`` linear -> ``[0, 1]`` encoded."""
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def dark_scene(height: int, width: int) -> np.ndarray:
    """A smooth night scene in linear RGB, ``H x W x 3`` float64 in about ``[0.002, 0.1]``: a dim gradient,
    ripples, a brighter window; the darkest tenth lies below 0.5 % of white."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    lum = 0.002 + 0.03 * xx**2 + 0.01 * (np.sin(yy * 20) + 1) * xx + 0.06 * ((xx > 0.6) & (yy > 0.5))
    return np.stack([lum, lum * 0.9, lum * 0.7], axis=-1)


# --- fixtures shared by the command-line and format tests -----------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-8 generator file with fixed random weights (modules may define their own ``weights``)."""
    torch.manual_seed(1)
    model = EnlightenGenerator(GeneratorConfig(base_width=8)).eval()
    return save_generator(model, tmp_path_factory.mktemp("weights") / "g8.safetensors")


@pytest.fixture(scope="module")
def enhancer(weights: Path) -> Enhancer:
    """An Enhancer on :func:`weights`, on the CPU."""
    return Enhancer(weights, device="cpu")


@pytest.fixture
def no_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No $ENLIGHTENGAN_WEIGHTS from the developer's shell: the tests choose their weights."""
    monkeypatch.delenv(weights_bundled.ENV_VAR, raising=False)


@pytest.fixture
def heif() -> object:
    """pillow-heif, or the test is skipped (the ``heif`` extra)."""
    return pytest.importorskip("pillow_heif")


@pytest.fixture
def rawpy() -> object:
    """rawpy, or the test is skipped (the ``raw`` extra)."""
    return pytest.importorskip("rawpy")

"""Shared test fixtures: the ../shared folder (optional) and small synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests using it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture(scope="session")
def official_fixture(shared_dir: Path) -> dict[str, torch.Tensor]:
    path = shared_dir / "fixtures" / "official_generator_fixture.pt"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return torch.load(path, weights_only=True)


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

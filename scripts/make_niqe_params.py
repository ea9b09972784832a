"""Convert LIVE's NIQE pristine model (a MATLAB .mat file) into the package's ``niqe_pristine.npz``.

The package reads the npz with numpy only, so scipy.io is needed here and nowhere at run time.

Usage::

    python scripts/make_niqe_params.py ../shared/niqe/live_modelparameters.mat \
        src/enlightengan/metrics/niqe_pristine.npz
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from enlightengan._atomic import atomic_path

DEFAULT_SOURCE = (
    Path(os.environ.get("ENLIGHTENGAN_DATA") or Path(__file__).resolve().parents[2] / "shared")
    / "niqe"
    / "live_modelparameters.mat"
)
DEFAULT_TARGET = (
    Path(__file__).resolve().parents[1] / "src" / "enlightengan" / "metrics" / "niqe_pristine.npz"
)


def convert(source: Path, target: Path) -> None:
    """Read ``mu_prisparam`` (1x36) and ``cov_prisparam`` (36x36), check them, write ``mu`` and ``cov``."""
    raw = source.read_bytes()
    mat = loadmat(io.BytesIO(raw))
    mu = np.asarray(mat["mu_prisparam"], dtype=np.float64).reshape(-1)
    cov = np.asarray(mat["cov_prisparam"], dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(f"{source}: expected mu 1x36 and cov 36x36, got {mu.shape} and {cov.shape}")
    if not np.allclose(cov, cov.T):
        raise ValueError(f"{source}: cov_prisparam is not symmetric")
    note = (
        "NIQE pristine model (Mittal, Soundararajan, Bovik, IEEE SPL 2013), LIVE release: "
        f"mu_prisparam and cov_prisparam from {source.name}, sha256 {hashlib.sha256(raw).hexdigest()}"
    )
    with atomic_path(target) as tmp, tmp.open("wb") as handle:
        np.savez(handle, mu=mu, cov=cov, source=np.array(note))
    print(f"wrote {target} ({note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE, help="the .mat file")
    parser.add_argument("target", nargs="?", type=Path, default=DEFAULT_TARGET, help="the .npz to write")
    args = parser.parse_args()
    convert(args.source, args.target)


if __name__ == "__main__":
    main()

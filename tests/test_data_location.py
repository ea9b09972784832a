"""The test data is found through ``$ENLIGHTENGAN_DATA``; without it, tests that need it skip and say how."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from enlightengan.metrics.niqe import pristine_params

from .conftest import DATA_ENV, REPO

#: A test that reads one file of the test data (niqe/live_modelparameters.mat) and nothing else.
NEEDS_DATA = "tests/test_niqe.py::test_pristine_params_match_live_release"


def _pytest(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", NEEDS_DATA],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, DATA_ENV: str(data)},
    )


def test_the_tests_read_their_data_from_the_environment_variable(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    data = tmp_path / "elsewhere"
    (data / "niqe").mkdir(parents=True)
    mu, cov = pristine_params()  # the LIVE release's numbers, as the package holds them
    params = {"mu_prisparam": mu[None], "cov_prisparam": cov}
    scipy_io.savemat(data / "niqe" / "live_modelparameters.mat", params)
    found = _pytest(data)
    assert found.returncode == 0 and "1 passed" in found.stdout, found.stdout + found.stderr

    missing = _pytest(tmp_path / "nowhere")
    assert missing.returncode == 0 and "1 skipped" in missing.stdout, missing.stdout + missing.stderr
    skip_line = next(line for line in missing.stdout.splitlines() if line.startswith("SKIPPED"))
    assert DATA_ENV in skip_line and "README" in skip_line and str(tmp_path / "nowhere") in skip_line


def test_a_missing_data_set_is_named_in_the_skip(tmp_path: Path) -> None:
    (tmp_path / "niqe").mkdir()  # the folder exists, the file does not
    missing = _pytest(tmp_path)
    assert "1 skipped" in missing.stdout, missing.stdout + missing.stderr
    assert str(tmp_path / "niqe" / "live_modelparameters.mat") in missing.stdout

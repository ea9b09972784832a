#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls exactly this).
# Installs the package with its test tools, then lints, type-checks and runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet "torch==2.13.0" -e ".[dev,onnx,openvino,video,serve,heif,raw]"
bash scripts/install_chromium.sh  # Debian's chromium for the browser test (skips itself when present)
python -m ruff check src tests benchmarks scripts
python -m ruff format --check src tests benchmarks scripts
python -m mypy
lint-imports  # the import contracts of pyproject.toml: layers, no cycles (docs/ARCHITECTURE.md)
status=0
python -m pytest "$@" || status=$?
# pytest exits 5 when it collected no tests: that is a failure of the suite, not a pass.
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests" >&2
    exit 1
fi
exit "$status"

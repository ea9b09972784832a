#!/usr/bin/env bash
# Installs Debian's chromium for the browser test of `enlightengan serve` (tests/test_server_browser.py).
# Idempotent and quiet: does nothing when chromium is already installed. Needs root (or sudo) and apt;
# anywhere else, or when the install fails, it says so on stderr and exits 0: the browser test then skips.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium.sh: no apt-get here; install chromium yourself to run the browser test" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_chromium.sh: not root and no sudo; the browser test will be skipped" >&2
        exit 0
    fi
    sudo="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium; } >/tmp/install_chromium.log 2>&1; then
    echo "install_chromium.sh: installing chromium failed (log: /tmp/install_chromium.log); the browser" \
        "test will be skipped" >&2
fi

#!/usr/bin/env bash
# Install Zhiwen into ./.venv on a fresh machine of this kind (Python 3.11, package registries only).
# torch==2.13.0 goes first: it takes the local CPU wheel; anything else pulls GB of CUDA packages.
# With --test it also installs the test tools, pymilvus with Milvus Lite (for the Milvus backend's
# tests), and Debian's chromium plus a Chinese font for browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
if [ "${1:-}" = "--test" ]; then
  .venv/bin/pip install -q -e '.[test,milvus]'
  if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto.*cjk'; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
  fi
else
  .venv/bin/pip install -q -e .
fi

#!/usr/bin/env bash
# Refresh the screenshots in docs/ from the browser tests (the test suite itself never writes docs/).
set -euo pipefail
cd "$(dirname "$0")/.."
ZHIWEN_SCREENSHOTS_DIR="$PWD/docs" exec .venv/bin/python -m pytest tests/test_ui_browser.py -q "$@"

#!/usr/bin/env bash
# Install everything (see install.sh), then open the chat window on ./corpus/ (indexed on first start).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/zhiwen serve "$@"

#!/usr/bin/env bash
# The README's first command: set up, then run the main job on the embedded default (a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/seqbench demo

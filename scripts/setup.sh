#!/usr/bin/env bash
# Create .venv and install seqbench with its test extras.
# torch is pinned to the release the project is tested with. Where pip's configuration offers a
# local CPU build of that release (as on the project's CI machines) pip takes it in seconds;
# elsewhere the same line is the normal PyPI install. Set SEQBENCH_TORCH to override
# (e.g. SEQBENCH_TORCH="torch --index-url https://download.pytorch.org/whl/cpu").
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q ${SEQBENCH_TORCH:-"torch==2.13.0"} 2> >(grep -v "is ignored: it is neither" >&2)
python -m pip install -q -e ".[test]" 2> >(grep -v "is ignored: it is neither" >&2)
python -c "import seqbench, torch; print(f'seqbench {seqbench.__version__} with torch {torch.__version__} in .venv')"

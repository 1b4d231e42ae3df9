#!/usr/bin/env bash
# scripts/demo.sh - build bocpy and run a demo (examples/bank.py by default).
#
#   bash scripts/demo.sh [examples/<name>.py]
#
# Installs what a fresh Debian machine lacks, builds and installs bocpy into
# .venv/py3.12 and runs the example with two workers.
source "$(dirname "$0")/env.sh"
cd "$BOCPY_ROOT"
bocpy_install_system_packages
ver="${BOCPY_PYTHONS%% *}"
venv="$(bocpy_venv "$ver")"
export PATH="$venv/bin:$PATH"
bocpy_install_package "$venv"
example="$BOCPY_ROOT/${1:-examples/bank.py}"
echo "== running $example on CPython $ver with 2 workers"
cd "$(mktemp -d)"   # run outside the source tree: use the installed package
BOCPY_WORKERS="${BOCPY_WORKERS:-2}" exec "$venv/bin/python" "$example"

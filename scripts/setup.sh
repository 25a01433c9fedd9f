#!/usr/bin/env bash
# Installs the project into the active virtualenv, or into ./.venv (created with access to the
# system's packages, so a torch that is already installed, e.g. in an NGC container, is reused).
# Usage: source scripts/setup.sh [requirements file]   (sourced, so the venv stays active)
_setup_requirements=${1:-requirements.txt}
_setup_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${VIRTUAL_ENV:-}" ]; then
    if [ ! -x "$_setup_root/.venv/bin/python" ]; then
        python3 -m venv --system-site-packages "$_setup_root/.venv" || return 1 2>/dev/null || exit 1
    fi
    # shellcheck disable=SC1091
    source "$_setup_root/.venv/bin/activate"
fi
if ! python -c 'import torch' >/dev/null 2>&1; then
    # Any other torch requirement would pull a multi-GB CUDA build; this one is the CPU wheel.
    python -m pip install -q torch==2.13.0 || return 1 2>/dev/null || exit 1
fi
python -m pip install -q -r "$_setup_root/$_setup_requirements" || return 1 2>/dev/null || exit 1

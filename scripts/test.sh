#!/usr/bin/env bash
# Installs what the tests need (scripts/setup.sh), then runs the whole CPU test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh requirements-test.txt
python -m pytest -q tests "$@"

#!/usr/bin/env bash
# Re-resolves the dependency ranges of setup.cfg into requirements/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q -U pip
"$tmp/venv/bin/pip" install -q '.[test]'
{
  echo "# Exact versions the test suite and the install use (pip install -c requirements/constraints.txt)."
  echo "# Regenerate after changing setup.cfg: scripts/lock-requirements.sh"
  "$tmp/venv/bin/pip" freeze | grep -v '^altcraft'
} > requirements/constraints.txt
echo "wrote requirements/constraints.txt"

#!/usr/bin/env bash
# Create or update the virtual environment of the distribution's tests (.venv-dist/ by
# default): ansible-core, the `ansible` collections, ansible-lint, Molecule and its Docker
# driver, pinned in requirements/distribution.txt. It is kept apart from .venv so that these
# tools' dependencies never collide with the platform's pins. Prints the venv's path.
#
# Environment: ALTCRAFT_DIST_VENV (default: <repo>/.venv-dist), PYTHON (default: the system's
# /usr/bin/python3, the hosts' Python: Molecule's controller downloads the wheelhouse with it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=${ALTCRAFT_DIST_VENV:-$ROOT/.venv-dist}
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
fi
REQ=$ROOT/requirements/distribution.txt
STAMP=$VENV/.requirements-sha256

want="$(sha256sum "$REQ" | cut -d' ' -f1) $("$PYTHON" -c 'import platform; print(platform.python_version())')"
if [[ -x $VENV/bin/python && -s $STAMP && $(cat "$STAMP") == "$want" ]]; then
    printf '%s\n' "$VENV"
    exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q -U pip >&2
"$VENV/bin/python" -m pip install -q -r "$REQ" >&2
printf '%s\n' "$want" >"$STAMP"
printf '%s\n' "$VENV"

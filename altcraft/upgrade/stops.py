"""Which upgrades are allowed: versions go forward only, and never past a required stop.

A required stop is a release that must be installed (and its `aktool upgrade` run) before
any later one, because later releases drop something only it migrates. Keep the list here,
in the package that enforces it, sorted; add a release the day its successor stops carrying
its migrations. Standard library only: the upgrade playbook may run it from the new wheel
file itself (`PYTHONPATH=altcraft-X.whl python3 -m altcraft.upgrade.stops FROM TO`) before
anything on the host changes.
"""

from __future__ import annotations

import re
import sys

# No release has needed a stop yet (0.1.0 is the first with versioned migrations).
REQUIRED_STOPS: tuple[str, ...] = ()

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[.+-]?(?:dev|a|b|rc|post)?\d*)?$")


class BadVersion(ValueError):
    pass


def parse(version: str) -> tuple[int, int, int]:
    match = _VERSION.match(version.strip())
    if match is None:
        raise BadVersion(f"{version!r} is not a version of the form MAJOR.MINOR.PATCH")
    return int(match[1]), int(match[2]), int(match[3])


def problems(installed: str, new: str, stops: tuple[str, ...] = REQUIRED_STOPS) -> list[str]:
    """Why the upgrade from `installed` to `new` must not run; empty when it may.
    The same version again is allowed: a rerun changes nothing."""
    old_v, new_v = parse(installed), parse(new)
    if new_v < old_v:
        return [f"{new} is older than the installed {installed}: a downgrade is not an upgrade "
                f"(restore the backup taken before {installed} was installed instead)"]
    skipped = [s for s in stops if old_v < parse(s) < new_v]
    return [f"{s} is a required stop between {installed} and {new}: upgrade to {s} first, "
            f"then to {new}" for s in skipped]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m altcraft.upgrade.stops INSTALLED NEW", file=sys.stderr)
        return 2
    try:
        found = problems(*argv)
    except BadVersion as exc:
        print(f"FAIL version: {exc}", file=sys.stderr)
        return 2
    for line in found:
        print(f"FAIL version: {line}", file=sys.stderr)
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The compiled tracking front (native/trkfront) for tests and benches: built with the Go
toolchain (`go` on PATH, else Debian's golang-go, installed when missing and root; a test
that cannot have it fails naming the package), started on a main.json."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from tests.lib.packages import command

SOURCE = Path(__file__).resolve().parents[2] / "native" / "trkfront"


def go() -> str:
    """The go command: on PATH, or a Debian golang-1.x (its /usr/bin/go link may be absent),
    or golang-go installed now; MissingPackage otherwise."""
    found = shutil.which("go") or next(iter(sorted(glob.glob("/usr/lib/go-1.*/bin/go"), reverse=True)), None)
    return found or command("go", "golang-go")


def _env() -> dict[str, str]:
    # the toolchain as installed: never one downloaded because go.mod asks for another
    return {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}


def build(dest: Path) -> Path:
    """`go build` of the front into `dest`; RuntimeError with the compiler's output if it fails."""
    result = subprocess.run([go(), "build", "-o", str(dest), "."], cwd=SOURCE, env=_env(),
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"go build in {SOURCE} failed:\n{result.stdout}{result.stderr}")
    return dest


def go_test() -> subprocess.CompletedProcess:
    """`go test ./...` of the front: the shared vectors (testdata/) against the Go code."""
    return subprocess.run([go(), "test", "-count=1", "-vet=off", "./..."], cwd=SOURCE, env=_env(), capture_output=True,
                          text=True, timeout=300)


def start(binary: Path, main_json: Path, log: Path, process: str = "trkaction",
          listen: str | None = None) -> subprocess.Popen:
    args = [str(binary), "--config", str(main_json), "--process", process]
    if listen:
        args += ["--listen", listen]
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

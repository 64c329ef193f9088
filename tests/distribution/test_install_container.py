"""`./install.sh` on a fresh machine of this kind, twice.

The machine is a new container from the Debian 12 image scripts/molecule-image.sh builds,
started the way this development machine runs: systemd is NOT PID 1 (an init that only
reaps), so the stores run under their packages' service scripts and the platform under akd
(/etc/init.d/altcraft). Like the development machine it has the Go toolchain in /usr/local/go
(FerretDB is built with it), the machine's CA bundle and pip.conf (all mounted read-only from
this host). The checkout goes in as the files git knows. Then, inside it:
  1. ./install.sh                -> exit 0, then `akd status --json`: every implemented
                                    process running; `aktool check --json`: every store ok
  2. ./install.sh again          -> exit 0 and the play recap says changed=0
  3. ClickHouse stopped, playbooks/healthcheck.yml -> fails, naming clickhouse
The container is removed at the end (ALTCRAFT_KEEP_INSTALL_CONTAINER=1 keeps it to debug).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.lib import ROOT

IMAGE = os.environ.get("ALTCRAFT_TEST_IMAGE", "altcraft-test/debian-systemd:bookworm")
# What makes a machine "of this kind" besides its packages: the CA bundle its outbound HTTPS
# is verified with (it holds the CA of the network's intercepting proxy) and pip's settings.
MACHINE_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")
SRC = "/srv/altcraft"


def docker(*args, timeout=120, stdin=None):
    return subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=stdin)


def sh(container: str, script: str, timeout=120):
    result = docker("exec", container, "bash", "-c", script, timeout=timeout)
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")


def sh_json(container: str, script: str):
    """Runs a --json command; returns its exit code and parsed stdout (stderr kept for messages)."""
    result = docker("exec", container, "bash", "-c", script)
    out, err = result.stdout.decode(), result.stderr.decode()
    try:
        return result.returncode, json.loads(out)
    except ValueError:
        pytest.fail(f"{script}: exit {result.returncode}, no JSON:\n{out}\n{err}", pytrace=False)


@pytest.fixture(scope="module")
def machine():
    image = subprocess.run([str(ROOT / "scripts" / "molecule-image.sh")], capture_output=True, text=True,
                           timeout=900)
    assert image.returncode == 0, image.stdout + image.stderr
    name = f"altcraft-install-{uuid.uuid4().hex[:8]}"
    mounts = ["-v", "/usr/local/go:/usr/local/go:ro"]
    for path in MACHINE_FILES:
        if Path(path).exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    started = docker("run", "-d", "--init", "--name", name, "--hostname", "altcraft-fresh", *mounts,
                     IMAGE, "sleep", "infinity")
    assert started.returncode == 0, started.stderr.decode()
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               cwd=ROOT, capture_output=True, check=True).stdout
        present = b"\0".join(f for f in files.split(b"\0") if f and (ROOT / f.decode()).exists())
        archive = subprocess.run(["tar", "-C", str(ROOT), "--null", "-T", "-", "-c"], input=present,
                                 capture_output=True, check=True).stdout
        copied = docker("exec", "-i", name, "bash", "-c", f"mkdir -p {SRC} && tar -C {SRC} -x", stdin=archive)
        assert copied.returncode == 0, copied.stderr.decode()
        yield name
    finally:
        if os.environ.get("ALTCRAFT_KEEP_INSTALL_CONTAINER") != "1":
            docker("rm", "-f", name, timeout=300)


def install(machine: str) -> str:
    code, output = sh(machine, f"PATH=$PATH:/usr/local/go/bin {SRC}/install.sh", timeout=3600)
    assert code == 0, output[-20000:]
    return output


def recap(output: str) -> dict[str, int]:
    found = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)
    assert found, "no play recap in the output:\n" + output[-5000:]
    return {host: int(changed) for host, changed in found}


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_install_twice_then_a_stopped_store_fails_the_health_check(machine):
    first = install(machine)
    assert "preflight" in first and "FAIL" not in first.split("== Ansible")[0], first[:5000]

    code, processes = sh_json(machine, "/usr/local/bin/akd status --json")
    assert code == 0, processes
    _, table = sh_json(machine, "/usr/local/bin/akd --processes --json")
    implemented = {p["name"] for p in table if p["status"] != "planned" and p["kind"] != "task"}
    running = {p["name"] for p in processes if p["state"] == "RUNNING"}
    assert implemented and implemented <= running, f"not running: {sorted(implemented - running)}: {processes}"

    code, report = sh_json(machine, "/usr/local/bin/aktool check --json")
    checks = report["checks"]
    assert code == 0 and checks and all(c["ok"] for c in checks), report
    assert {"controldb", "accountdb", "clickhouse", "rabbitmq"} <= {c["name"] for c in checks}, report

    second = install(machine)
    assert set(recap(second).values()) == {0}, second[-8000:]

    healthcheck = (f"cd {SRC} && /opt/akd/ansible-venv/bin/ansible-playbook -i inventories/local/hosts.yml "
                   "playbooks/healthcheck.yml")
    code, output = sh(machine, healthcheck, timeout=600)
    assert code == 0, output[-8000:]
    # the role runs ClickHouse under its own init script here (Debian's stops every clickhouse)
    code, output = sh(machine, "/etc/init.d/altcraft-clickhouse stop", timeout=300)
    assert code == 0, output
    code, output = sh(machine, healthcheck, timeout=600)
    assert code != 0, "the health check passed with ClickHouse stopped:\n" + output[-8000:]
    assert "FAIL store clickhouse: port not open" in output, output[-8000:]
    assert "FAIL aktool check: clickhouse" in output, output[-8000:]

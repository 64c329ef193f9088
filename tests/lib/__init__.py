"""The one home of the test helpers, used by every tier (unit, integration, e2e, packaging,
distribution) and by bench/. conftest.py files hold fixtures only; they call in here.

    ports      free loopback ports, "is anything listening"
    harness    the real servers of tests/harness/servers.sh: start, facts, a main.json for them
    broker     RabbitMQ: a vhost of one's own, queue depths, reading delivery events
    cli        the installed console scripts (akd, aktool) as an operator runs them
    wait       wait_for: poll until a condition holds, failing with what was awaited
    api        the v1.1 API through Flask's test client, accounts with their owner's token
    sink       a scriptable SMTP peer on loopback (aiosmtpd) that keeps what it receives
    stand      the tracking stand: trkaction under akd, ClickHouse rows, event publishing
    mta        the campaign -> RabbitMQ -> akmtad -> sink pipeline, DKIM verification
    packages   Debian packages needed as tools: installed when possible, else a clear message
    containers fresh containers of the project's image for the distribution's heavy tests
    haproxy    the balancer role's haproxy.cfg run in front of two app servers (nginx trk + trkaction)
    molecule   a Molecule scenario run with the distribution venv (exit code, flattened output)

bench/ imports these as a package, so its scripts run as modules from the repository root
(`python -m bench.send`); see docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

"""`molecule test -s basic`: site.yml converged on two systemd containers built locally from
debootstrap (scripts/molecule-image.sh, which also starts dockerd) - a control server and a
sending server running akmtad against the control server's stores, with two sending IPs
(prepare.yml) - then idempotence (a second converge changes nothing on either), verify
(units active, sockets, the stores on the private address, akmtad ready on the sending
server, health endpoints through nginx, aktool check, a test campaign delivered through the
sending server into a sink on the control server: from one of the two sending IPs, DKIM
verified, counted from ClickHouse; its link clicked through nginx-trk, answered by trkfront and
counted in the report). The instances are kept for one more step - a store
stopped, and the health check must fail naming it (the scenario's side effect) - and
destroyed at the end."""

from __future__ import annotations

import re

import pytest

from tests.lib.molecule import fresh_scenario, molecule


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_molecule_basic_scenario_and_a_stopped_store(dist_env):
    # The wheel is built from this checkout, unless ALTCRAFT_WHEEL names one (a release).
    fresh_scenario(dist_env, "basic")
    try:
        code, output = molecule(dist_env, "test", "-s", "basic", "--destroy", "never", timeout=1800)
        assert code == 0, output[-20000:]
        assert re.search(r"idempotence", output, re.I), output[-5000:]
        assert '"ok": true' in output and '"dkim": "pass"' in output, output[-10000:]
        # the sink saw the connection come from one of the sending server's two IPs
        assert re.search(r'"from_ip": "10\.57\.0\.2[12]"', output), output[-10000:]
        # its link clicked through nginx-trk was answered by the compiled front (verify.yml)
        assert '"click_answered_by": "trkfront"' in output, output[-10000:]

        code, output = molecule(dist_env, "side-effect", "-s", "basic", timeout=600)
        assert code != 0, "the health check passed with ClickHouse stopped:\n" + output[-10000:]
        assert "FAIL store clickhouse: port not open" in output, output[-10000:]
        assert "FAIL aktool check: clickhouse" in output, output[-10000:]
    finally:
        molecule(dist_env, "destroy", "-s", "basic", timeout=600)

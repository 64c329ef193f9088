"""The nginx role proxies to the ports of altcraft/registry.py: the two stay in step."""

from __future__ import annotations

import yaml

from altcraft import registry

from tests.lib import ROOT


def test_nginx_process_ports_match_the_registry():
    defaults = yaml.safe_load((ROOT / "roles/nginx/defaults/main.yml").read_text())
    ports = defaults["nginx_process_ports"]
    for name, port in ports.items():
        assert name in registry.BY_NAME, f"nginx_process_ports names an unknown process {name}"
        assert registry.BY_NAME[name].port == port, f"{name}: nginx {port}, registry {registry.BY_NAME[name].port}"
    for instance in defaults["nginx_instances"]:
        for process in instance["processes"] + [instance["default"]]:
            assert process in ports, f"nginx-{instance['name']} proxies {process}, which has no port"

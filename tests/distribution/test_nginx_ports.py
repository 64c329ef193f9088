"""The nginx role proxies to the ports of the platform's own process table (`akd --processes
--json`, main.json's PROCESSES overrides applied): no role keeps a second list."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from altcraft import registry

from tests.lib import ROOT

AKD = Path(sys.executable).parent / "akd"
SECRET = "x" * 32


def play(tmp_path: Path, main_json: Path, akd: Path) -> str:
    """A play on localhost that runs the role's process_table.yml against this checkout's akd
    and the given main.json, then renders nginx-trk's configuration with the result."""
    return f"""
- name: nginx ports from akd --processes --json
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
    nginx_akd: {akd}
    nginx_akd_config: {main_json}
    nginx_akd_host: localhost
  tasks:
    - name: Read the process table as the role does
      ansible.builtin.include_role:
        name: nginx
        tasks_from: process_table
        public: true
    - name: Keep the ports
      ansible.builtin.copy:
        content: "{{{{ nginx_process_ports | to_json }}}}"
        dest: {tmp_path}/ports.json
        mode: "0644"
    - name: Render nginx-trk
      ansible.builtin.template:
        src: {ROOT}/roles/nginx/templates/etc/altcraft/nginx/nginx.conf.j2
        dest: {tmp_path}/trk.conf
        mode: "0644"
      vars:
        nginx_instance: "{{{{ nginx_instances | selectattr('name', 'equalto', 'trk') | first }}}}"
"""


def run_play(tmp_path: Path, dist_env: dict, processes: dict, akd: Path = AKD, **settings) -> subprocess.CompletedProcess:
    main_json = tmp_path / "main.json"
    main_json.write_text(json.dumps({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET,
                                     "TRACKING_CRYPT_KEY": SECRET, "PROCESSES": processes, **settings}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(play(tmp_path, main_json, akd))
    env = {**dist_env, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_LOCALHOST_WARNING": "false"}
    return subprocess.run([f"{dist_env['PATH'].split(':')[0]}/ansible-playbook", "-i", "localhost,", str(playbook)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_the_role_takes_the_ports_from_akd_with_main_json_overrides(tmp_path, dist_env):
    result = run_play(tmp_path, dist_env, {"trkaction": {"PORT": 18095}})
    assert result.returncode == 0, result.stdout + result.stderr
    ports = json.loads((tmp_path / "ports.json").read_text())
    expected = {p.name: p.port for p in registry.PROCESSES if p.kind == "http"}
    expected["trkaction"] = 18095
    assert ports == expected
    upstreams = dict(re.findall(r"upstream (\w+) \{\s*server 127\.0\.0\.1:(\d+)", (tmp_path / "trk.conf").read_text()))
    assert upstreams["trkaction"] == "18095" and upstreams["trkimage"] == "8096", upstreams


def test_nginx_trk_sends_clicks_and_opens_to_trkfront_only_when_main_json_makes_it_the_front(tmp_path, dist_env):
    def locations(**settings) -> dict[str, str]:
        result = run_play(tmp_path, dist_env, {"trkfront": {"PORT": 18104}}, **settings)
        assert result.returncode == 0, result.stdout + result.stderr
        text = (tmp_path / "trk.conf").read_text()
        return dict(re.findall(r"location (/\S*) \{\s*proxy_pass http://(\w+);", text))

    native = locations(TRACKING_FRONT="native", TRACKING_BASE_URL="https://click.example.test/t/")
    assert native["/t/c/"] == native["/t/o/"] == "trkfront" and native["/"] == "trkaction", native
    assert "upstream trkfront {\n        server 127.0.0.1:18104 " in (tmp_path / "trk.conf").read_text()
    python = locations(TRACKING_FRONT="python")
    assert "trkfront" not in python.values() and "upstream trkfront" not in (tmp_path / "trk.conf").read_text()


def test_a_missing_akd_is_one_clear_failure(tmp_path, dist_env):
    result = run_play(tmp_path, dist_env, {}, akd=Path("/nonexistent/akd"))
    assert result.returncode != 0
    assert "FAIL nginx: no process table from /nonexistent/akd" in result.stdout, result.stdout
    assert not (tmp_path / "ports.json").exists()


def test_no_role_keeps_a_second_port_list():
    ports = {str(p.port) for p in registry.PROCESSES if p.port}
    places = [path for pattern in ("roles/**/*.yml", "roles/**/*.j2", "playbooks/**/*.yml", "templates/*.j2",
                                   "inventories/**/*.yml")
              for path in ROOT.glob(pattern)]
    assert places
    found = [f"{path.relative_to(ROOT)}: {port}" for path in places
             for port in ports if re.search(rf"(?<![\d.]){port}(?![\d.])", path.read_text())]
    assert not found, f"a process port written by hand: {found}"


def test_every_proxied_process_is_an_http_process_of_the_registry():
    http = {p.name for p in registry.PROCESSES if p.kind == "http"}
    for path in [ROOT / "roles/nginx/defaults/main.yml", *ROOT.glob("inventories/*/group_vars/nginx/*.yml")]:
        for instance in yaml.safe_load(path.read_text()).get("nginx_instances", []):
            for process in instance["processes"] + [instance["default"]]:
                assert process in http, f"{path.relative_to(ROOT)}: nginx-{instance['name']} proxies {process}"

"""A process's listen address: the registry's default, main.json's PROCESSES.<name>.IP/PORT
over it, and `akd --processes --json`, which hands the result to the Ansible roles."""

import json

import pytest
from typer.testing import CliRunner

from altcraft import config as cfg
from altcraft import registry
from altcraft.akd import cli

SECRET = "x" * 32


def main_json(processes: dict | None = None) -> dict:
    # akmtad's control port off loopback needs its token (config.py): these tests move it
    data = {"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET,
            "MTA": {"CONTROL_TOKEN": SECRET}}
    if processes is not None:
        data["PROCESSES"] = processes
    return data


def load(processes: dict | None = None) -> cfg.MainConfig:
    config, report = cfg.validate(main_json(processes), registry.PROCESS_NAMES)
    assert config is not None, report.errors
    return config


def test_defaults_come_from_the_registry():
    config = load()
    assert config.listen_address("api") == ("127.0.0.1", 8801)
    assert config.listen_address("akmtad") == cfg.Address("127.0.0.1", 13444)
    assert cfg.listen_address("trkaction") == ("127.0.0.1", 8095)
    for process in registry.PROCESSES:
        expected = (process.host, process.port) if process.port else None
        assert config.listen_address(process.name) == expected, process.name


def test_a_process_without_a_port_listens_nowhere():
    assert load().listen_address("procactions") is None
    assert load({"procactions": {"IP": "10.0.0.5"}}).listen_address("procactions") is None


def test_main_json_overrides_the_ip_the_port_or_both():
    config = load({"api": {"IP": "10.0.0.5"}, "trkaction": {"PORT": 18095},
                   "akmtad": {"IP": "192.0.2.7", "PORT": 14444}})
    assert config.listen_address("api") == ("10.0.0.5", 8801)
    assert config.listen_address("trkaction") == ("127.0.0.1", 18095)
    assert config.listen_address("akmtad") == ("192.0.2.7", 14444)
    assert config.listen_address("trkimage") == ("127.0.0.1", 8096), "an override leaks to another process"


def test_a_worker_given_a_port_in_main_json_has_one():
    assert load({"procactions": {"PORT": 19000}}).listen_address("procactions") == ("127.0.0.1", 19000)


def test_unknown_process_is_a_clear_error():
    with pytest.raises(registry.UnknownProcess) as caught:
        load().listen_address("apii")
    assert str(caught.value) == "unknown process 'apii' (see akd --processes)"
    with pytest.raises(registry.UnknownProcess):
        cfg.listen_address("nginx")


def test_address_prints_and_builds_urls():
    assert str(cfg.Address("127.0.0.1", 13444)) == "127.0.0.1:13444"
    assert str(cfg.Address("::1", 8801)) == "[::1]:8801"
    assert cfg.Address("10.0.0.5", 13444).url("/akmtad/queue/stats") == "http://10.0.0.5:13444/akmtad/queue/stats"
    host, port = cfg.Address("10.0.0.5", 1)
    assert (host, port) == ("10.0.0.5", 1)


# -- akd --processes --json: the table the roles read ---------------------------------------

@pytest.fixture
def no_installed_config(monkeypatch, tmp_path):
    monkeypatch.delenv(cfg.CONFIG_ENV, raising=False)
    monkeypatch.setattr(cfg, "DEFAULT_CONFIG_PATH", tmp_path / "absent" / "main.json")


def table(*args: str) -> tuple[int, dict[str, dict]]:
    result = CliRunner().invoke(cli.app, ["--processes", "--json", *args])
    rows = json.loads(result.stdout) if result.exit_code == 0 else []
    return result.exit_code, {row["name"]: row for row in rows}


def test_process_table_without_main_json_has_the_registry_defaults(no_installed_config):
    code, rows = table()
    assert code == 0
    assert (rows["api"]["host"], rows["api"]["port"]) == ("127.0.0.1", 8801)
    assert rows["procactions"]["port"] is None and rows["procactions"]["address"] is None
    assert len(rows) == len(registry.PROCESSES)


def test_process_table_applies_main_json_overrides(no_installed_config, tmp_path):
    path = tmp_path / "main.json"
    path.write_text(json.dumps(main_json({"api": {"IP": "10.0.0.5", "PORT": 18801},
                                          "trkaction": {"PORT": 18095}})))
    code, rows = table("--config", str(path))
    assert code == 0
    assert (rows["api"]["host"], rows["api"]["port"]) == ("10.0.0.5", 18801)
    assert rows["api"]["address"] == "10.0.0.5:18801"
    assert (rows["trkaction"]["host"], rows["trkaction"]["port"]) == ("127.0.0.1", 18095)
    assert (rows["trkimage"]["host"], rows["trkimage"]["port"]) == ("127.0.0.1", 8096)


def test_process_table_refuses_a_main_json_that_does_not_load(no_installed_config, tmp_path):
    path = tmp_path / "main.json"
    path.write_text(json.dumps(main_json({"api": {"PORT": "8801"}})))
    result = CliRunner().invoke(cli.app, ["--processes", "--json", "--config", str(path)])
    assert result.exit_code == 6
    assert "PROCESSES.api.PORT" in result.output

"""How main.json wires the compiled tracking front (trkfront) into the product: the
TRACKING_FRONT switch (schema-checked), the process it makes run or not, the routes nginx-trk
sends to it (under TRACKING_BASE_URL's path), where akd finds its binary and what akd says
when it is not there."""

from __future__ import annotations

from altcraft import config as cfg
from altcraft import registry
from altcraft.akd.runner import missing_binary

SECRET = "k" * 32


def config(**extra) -> cfg.MainConfig:
    conf, report = cfg.validate({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET,
                                 **extra}, registry.PROCESS_NAMES)
    assert conf is not None, report.errors
    return conf


def errors(**extra) -> dict[str, str]:
    _, report = cfg.validate({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET,
                              **extra}, registry.PROCESS_NAMES)
    return {issue.key: issue.message for issue in report.errors}


def test_trkfront_is_a_native_front_of_trkaction_with_a_port_of_its_own():
    front = registry.get("trkfront")
    assert (front.kind, front.binary, front.args, front.front_of, front.routes) == (
        "http", "trkfront", ("--process", "trkaction"), "trkaction", ("/c/", "/o/"))
    assert front.runnable and front.supervised and front.requires == () and front.health == "/metrics"
    assert front in registry.select()  # akd start without names starts it (when main.json runs it)


def test_the_switch_is_python_by_default_and_only_native_or_python():
    assert config().TRACKING_FRONT == "python"
    assert errors(TRACKING_FRONT="go") == {"TRACKING_FRONT": "input should be 'native' or 'python'"}


def test_python_leaves_trkfront_out_native_runs_it_under_the_tracking_prefix():
    python = config(TRACKING_BASE_URL="https://t.example/trk/")
    assert "TRACKING_FRONT is python" in python.disabled_reason("trkfront")
    assert python.front_routes("trkfront") == [] and python.metrics_address("trkfront") is None
    native = config(TRACKING_FRONT="native", TRACKING_BASE_URL="https://t.example/trk/")
    assert native.disabled_reason("trkfront") is None and native.disabled_reason("trkaction") is None
    assert native.front_routes("trkfront") == ["/trk/c/", "/trk/o/"]
    assert config(TRACKING_FRONT="native").front_routes("trkfront") == ["/c/", "/o/"]
    assert str(native.metrics_address("trkfront")) == "127.0.0.1:8104"
    off = config(TRACKING_FRONT="native", PROCESSES={"trkfront": {"ENABLE": False}})
    assert off.disabled_reason("trkfront") == "disabled in main.json (PROCESSES.trkfront.ENABLE)"


def test_a_native_front_without_trkaction_is_refused():
    found = errors(TRACKING_FRONT="native", PROCESSES={"trkaction": {"ENABLE": False}})
    assert "trkaction's journal" in found["TRACKING_FRONT"], found


def test_akd_names_the_missing_binary_and_how_to_build_it(tmp_path):
    conf = config(TRACKING_FRONT="native", BASEDIR=str(tmp_path))
    assert conf.binary_path("trkfront") == tmp_path / "bin" / "trkfront" and conf.binary_path("api") is None
    message = missing_binary(conf, registry.get("trkfront"))
    assert f"{tmp_path}/bin/trkfront is missing" in message and "go build" in message
    assert 'set TRACKING_FRONT to "python"' in message and "/c and /o" in message
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "trkfront").write_text("#!/bin/sh\n")
    assert missing_binary(conf, registry.get("trkfront")) is not None  # not executable
    (tmp_path / "bin" / "trkfront").chmod(0o755)
    assert missing_binary(conf, registry.get("trkfront")) is None
    assert missing_binary(conf, registry.get("api")) is None

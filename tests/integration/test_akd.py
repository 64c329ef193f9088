"""akd against real processes: gunicorn-served api, real signals, real PID files."""

import json
import os
import signal
import socket
import urllib.error
import urllib.request

import psutil
import pytest

from altcraft import registry

from tests.lib import trkfront
from tests.lib.cli import run, run_json
from tests.lib.harness import make_config
from tests.lib.ports import free_port, port_open
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def api_config(harness, basedir):
    port = free_port()
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, PROCESSES={"api": {"PORT": port, "WORKERS": 2}})))
    yield path, port
    run("akd", "stop", config=path)  # never leave a process behind, whatever the test did


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a killed process may wait a moment to be reaped)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()






def test_processes_table_lists_25_or_more_with_ports():
    result = run("akd", "--processes")
    assert result.returncode == 0
    assert "127.0.0.1:8801" in result.stdout and "AK:trkaction" in result.stdout
    code, table = run_json("akd", "--processes")
    assert len(table) >= 25
    assert sum(1 for p in table if p["port"]) >= 15
    assert {"name", "kind", "host", "port", "status", "description"} <= set(table[0])


def test_start_status_kill_restart_stop(api_config):
    path, port = api_config
    basedir = path.parent

    started = run("akd", "start", "api", config=path)
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout.startswith("RUNNING   api")

    status = run("akd", "status", "api", config=path)
    assert status.returncode == 0
    assert status.stdout.split()[:3] == ["RUNNING", "api", "pid"]
    code, rows = run_json("akd", "status", "api", config=path)
    (row,) = rows
    assert code == 0 and row["state"] == "RUNNING" and row["address"] == f"127.0.0.1:{port}"
    first_pid = row["pid"]
    assert int((basedir / "pids" / "api.pid").read_text()) == first_pid
    assert " ".join(psutil.Process(first_pid).cmdline()).split() == ["AK:api"]
    first_workers = psutil.Process(first_pid).children()
    assert [" ".join(w.cmdline()).split() for w in first_workers] == [["AK:api:worker"]] * 2
    supervisor = psutil.Process(first_pid).parent()
    assert "supervise:api" in " ".join(supervisor.cmdline())

    assert get(port, "/api/health") == (200, "OK")
    assert get(port, "/api/readiness") == (200, '{"status":"OK"}\n')
    metrics = get(port, "/metrics")[1]
    assert 'altcraft_http_requests_total{endpoint="/api/health",method="GET",service="api",status="200"}' in metrics
    code, body = get(port, "/api/v1.1/no/such/method")
    assert code == 404 and json.loads(body)["error_text"] == "Unknown API method: no/such/method"

    os.kill(first_pid, signal.SIGKILL)
    restarted = wait_for(
        lambda: (r := run_json("akd", "status", "api", config=path)[1][0])["state"] == "RUNNING"
        and r["pid"] != first_pid and r,
        what="api to be restarted")
    assert restarted["restarts"] == 1 and "killed by SIGKILL" in restarted["detail"]
    wait_for(lambda: get(port, "/api/health") == (200, "OK"), what="the restarted api to serve")
    wait_for(lambda: not any(alive(w) for w in first_workers), 10,
             "the killed master's workers to be gone")
    ours = [psutil.Process(restarted["pid"]), supervisor, *psutil.Process(restarted["pid"]).children()]
    assert len(ours) == 4

    stopped = run("akd", "stop", "api", config=path)
    assert stopped.returncode == 0 and stopped.stdout.startswith("STOPPED   api")
    assert not any(alive(p) for p in ours), "a process outlived akd stop"
    assert list((basedir / "pids").iterdir()) == []
    after = run("akd", "status", "api", config=path)
    assert after.returncode == 3 and after.stdout.startswith("STOPPED")
    assert "Listening at: http://127.0.0.1:" in (basedir / "logs" / "api.log").read_text()


def test_crash_loop_ends_in_fatal(api_config):
    path, port = api_config
    with socket.socket() as squatter:  # the port is taken: every start fails at bind
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = run("akd", "start", "api", config=path, timeout=180)
        assert result.returncode == 1
        assert result.stdout.startswith("FATAL")
        assert "did not start; see" in result.stderr
        code, rows = run_json("akd", "status", "api", config=path)
    assert code == 3 and rows[0]["state"] == "FATAL" and rows[0]["restarts"] == 2
    assert not (path.parent / "pids" / "api.supervisor.pid").exists()  # the supervisor gave up
    # once the cause is gone, start clears FATAL
    assert run("akd", "start", "api", config=path).returncode == 0


def test_stale_pid_file_is_detected_and_cleaned(api_config):
    path, _ = api_config
    pids = path.parent / "pids"
    pids.mkdir(exist_ok=True)
    (pids / "api.pid").write_text(f"{os.getpid()}\n")  # alive, but not AK:api
    result = run("akd", "status", "api", config=path)
    assert result.returncode == 3
    assert "removed stale api.pid" in result.stdout
    assert not (pids / "api.pid").exists()


def test_readiness_names_the_failed_dependency(harness, basedir):
    port = free_port()
    path = basedir / "main.json"
    config = make_config(harness, basedir, PROCESSES={"api": {"PORT": port, "WORKERS": 1}})
    config["CLICKHOUSE_SYSTEM"]["PORT"] = free_port()  # nothing listens there
    path.write_text(json.dumps(config))
    try:
        assert run("akd", "start", "api", config=path).returncode == 0
        code, body = get(port, "/api/readiness")
        assert code == 503
        assert json.loads(body) == {"status": "FAIL", "failed": ["clickhouse"]}
        assert get(port, "/api/health") == (200, "OK")  # alive, just not ready
    finally:
        run("akd", "stop", config=path)


def test_planned_process_is_refused(api_config):
    path, _ = api_config
    planned = next(p.name for p in registry.PROCESSES if not p.runnable)
    result = run("akd", "start", planned, config=path)
    assert result.returncode == 3
    assert f"not implemented yet: {planned}" in result.stderr
    assert not (path.parent / "pids").exists() or not list((path.parent / "pids").iterdir())


def test_unknown_process_exit_4(api_config):
    path, _ = api_config
    result = run("akd", "status", "apii", config=path)
    assert result.returncode == 4 and "unknown process 'apii'" in result.stderr


def test_nothing_starts_on_an_invalid_config(basedir):
    path = basedir / "main.json"
    path.write_text(json.dumps({"BASEDIR": str(basedir), "RABBITMQ_PORT": 0}))
    result = run("akd", "start", config=path)
    assert result.returncode == 6
    assert "RABBITMQ_PORT: not a TCP port" in result.stderr
    assert "PRIVATE_KEY: missing (required)" in result.stderr
    assert not (basedir / "pids").exists()


def test_run_in_foreground_and_sigterm(api_config):
    """What a systemd unit does: `akd run api`, then SIGTERM."""
    import subprocess
    import sys
    from pathlib import Path

    path, port = api_config
    proc = subprocess.Popen([str(Path(sys.executable).parent / "akd"), "run", "api", "--config", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: get(port, "/api/health") == (200, "OK")
                 if port_open("127.0.0.1", port, timeout=0.5) else False, what="akd run api to serve")
        assert run("akd", "status", "api", config=path).stdout.split()[0] == "RUNNING"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (path.parent / "pids" / "api.pid").exists()


def test_tail_prints_the_log(api_config):
    path, _ = api_config
    assert run("akd", "start", "api", config=path).returncode == 0
    result = run("akd", "tail", "api", "--no-follow", "-n", "200", config=path)
    assert result.returncode == 0 and "Listening at" in result.stdout


def test_start_without_names_runs_every_implemented_process(harness, basedir, vhost):
    from altcraft import registry

    implemented = [p for p in registry.select()]
    assert {"api", "campaign", "akmtad", "procleadsaver"} <= {p.name for p in implemented}
    ports = {p.name: {"PORT": free_port()} for p in registry.PROCESSES if p.port}
    path = basedir / "main.json"
    # the compiled tracking front too: a native program in {BASEDIR}/bin, as the install puts it
    assert "trkfront" in {p.name for p in implemented}
    trkfront.build(basedir / "bin" / "trkfront")
    path.write_text(json.dumps(make_config(harness, basedir, PROCESSES=ports, RABBITMQ_VHOST=vhost,
                                           TRACKING_FRONT="native")))
    assert run("aktool", "migrate", config=path).returncode == 0
    try:
        started = run("akd", "start", config=path, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        code, rows = run_json("akd", "status", config=path)
        assert code == 0 and {r["name"]: r["state"] for r in rows} == {p.name: "RUNNING" for p in implemented}
        ours = [psutil.Process(r["pid"]) for r in rows]
        for process in implemented:
            if process.binary is not None:  # trkfront: its /metrics (it has no /<name>/health)
                assert get(ports[process.name]["PORT"], process.health)[0] == 200, process.name
            elif process.kind == "http" or process.name == "akmtad":
                assert get(ports[process.name]["PORT"], f"/{process.name}/health") == (200, "OK"), process.name
    finally:
        stopped = run("akd", "stop", config=path, timeout=300)
    assert stopped.returncode == 0
    assert list((basedir / "pids").iterdir()) == []
    assert not any(alive(p) for p in ours), "a process outlived akd stop"


def test_the_native_tracking_front_under_akd(harness, basedir):
    """trkfront, a native program: refused with its path and the build command while
    {BASEDIR}/bin/trkfront is missing (no supervisor left crash-looping); DISABLED, not a
    fault, under TRACKING_FRONT python; once built, started with its title AK:trkfront (its
    PID file is trusted), serving /metrics, stopped with nothing left."""
    port = free_port()
    path = basedir / "main.json"

    def config(front: str) -> None:
        path.write_text(json.dumps(make_config(harness, basedir, TRACKING_FRONT=front,
                                               PROCESSES={"trkfront": {"PORT": port}})))

    binary = basedir / "bin" / "trkfront"
    config("native")
    try:
        missing = run("akd", "start", "trkfront", config=path)
        assert missing.returncode == 1, missing.stdout + missing.stderr
        assert f"trkfront: {binary} is missing" in missing.stderr and "go build" in missing.stderr, missing.stderr
        assert 'set TRACKING_FRONT to "python"' in missing.stderr
        assert not list((basedir / "pids").glob("*")) if (basedir / "pids").exists() else True
        assert run("akd", "status", "trkfront", config=path).returncode == 3

        config("python")
        skipped = run("akd", "start", "trkfront", config=path)
        assert skipped.returncode == 0 and "skipped" in skipped.stdout and "TRACKING_FRONT is python" in skipped.stdout
        code, rows = run_json("akd", "status", "trkfront", config=path)
        assert code == 0 and rows[0]["state"] == "DISABLED", rows

        config("native")
        trkfront.build(binary)
        started = run("akd", "start", "trkfront", config=path)
        assert started.returncode == 0, started.stdout + started.stderr
        code, rows = run_json("akd", "status", "trkfront", config=path)
        assert code == 0 and rows[0]["state"] == "RUNNING", rows
        process = psutil.Process(rows[0]["pid"])
        assert process.cmdline()[:3] == ["AK:trkfront", "--process", "trkaction"], process.cmdline()
        assert process.cmdline()[-2:] == ["--listen", f"127.0.0.1:{port}"]
        assert get(port, "/metrics")[0] == 200
        assert (basedir / "run" / "trk" / "trkaction").is_dir()  # writes trkaction's journal
    finally:
        stopped = run("akd", "stop", "trkfront", config=path)
    assert stopped.returncode == 0
    assert not alive(process), "trkfront outlived akd stop"
    assert list((basedir / "pids").iterdir()) == []

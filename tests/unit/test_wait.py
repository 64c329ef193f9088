"""tests/lib/wait.py's start and stop of server processes, on small Python processes."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.lib.wait import stop_processes, wait_started


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], **kwargs)


def test_a_process_that_exits_before_it_is_ready_fails_with_its_exit_code_and_log(tmp_path):
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = _python("import sys; print('port 1 is taken'); sys.exit(3)", stdout=out)
    with pytest.raises(RuntimeError, match=r"the server: exited with 3: port 1 is taken"):
        wait_started(process, lambda: False, "the server", log)


def test_the_log_may_be_a_pipe_read_when_the_process_has_exited():
    process = _python("import sys; sys.stderr.write('bad config'); sys.exit(1)", stderr=subprocess.PIPE)
    with pytest.raises(RuntimeError, match="exited with 1: bad config"):
        wait_started(process, lambda: False, "nginx", lambda: process.stderr.read().decode())


def test_a_process_that_becomes_ready_is_left_running(tmp_path):
    flag = tmp_path / "ready"
    process = _python(f"import pathlib, time; pathlib.Path({str(flag)!r}).touch(); time.sleep(60)")
    try:
        wait_started(process, flag.exists, "the server", every=0.05)
        assert process.poll() is None
    finally:
        stop_processes(process)


def test_stop_sends_the_signal_and_kills_what_outlives_the_timeout(tmp_path):
    flag = tmp_path / "ignoring"
    stubborn = _python("import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       f"pathlib.Path({str(flag)!r}).touch(); time.sleep(60)")
    polite = _python("import time; time.sleep(60)")
    wait_started(stubborn, flag.exists, "the stubborn process", every=0.05)
    stop_processes(stubborn, polite, None, timeout=0.5)  # None: a server never started
    assert (stubborn.returncode, polite.returncode) == (-signal.SIGKILL, -signal.SIGTERM)
    stop_processes(stubborn, polite)  # already ended: nothing to do

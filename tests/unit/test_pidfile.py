import os
import subprocess
import sys

from altcraft.akd.pidfile import PidFile


def test_missing_file_is_no_process(tmp_path):
    pf = PidFile(tmp_path, "api")
    assert pf.read() is None and pf.process() is None and not pf.is_stale()


def test_dead_pid_is_stale(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pf = PidFile(tmp_path, "api")
    pf.write(child.pid)
    assert pf.is_stale()


def test_live_pid_of_another_program_is_stale(tmp_path):
    # the number may have been reused after a crash or reboot: never trust it blindly
    pf = PidFile(tmp_path, "api")
    pf.write(os.getpid())
    assert pf.process() is None and pf.is_stale()


def test_live_process_with_the_title_is_found(tmp_path):
    code = "import setproctitle, time; setproctitle.setproctitle('AK:api'); print('up', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        pf = PidFile(tmp_path, "api")
        pf.write(child.pid)
        assert pf.process() is not None and pf.process().pid == child.pid
        # the worker title must not pass for the master's
        assert PidFile(tmp_path, "ap").process() is None
    finally:
        child.kill()
        child.wait()


def test_remove_if_owner_leaves_a_newer_file_alone(tmp_path):
    pf = PidFile(tmp_path, "api")
    pf.write(123)
    pf.remove_if_owner(456)
    assert pf.read() == 123
    pf.remove_if_owner(123)
    assert not pf.path.exists()

"""`aktool upgrade` on the real servers with a process running under akd: preflight, a
backup, the migrations once, the process restarted and its readiness waited for; a second
run changes nothing; a downgrade is refused by preflight before anything changes."""

from __future__ import annotations

import pytest

from altcraft.backup import manifest
from altcraft.schema.migrations import MIGRATIONS
from tests.lib.cli import run_json

pytestmark = pytest.mark.integration


def test_upgrade_backs_up_migrates_once_and_restarts_group_by_group(stand, basedir):
    stand.start("trkaction")
    pid = stand.status("trkaction")["pid"]

    code, refused = run_json("aktool", "upgrade", "--from-version", "99.0.0", "--backup-to",
                             str(basedir / "refused"), config=stand.path)
    assert code == 2, refused
    assert "downgrade" in refused["steps"][0]["result"]["problems"][0]
    assert not (basedir / "refused").exists() and stand.status("trkaction")["pid"] == pid

    # the backup itself is tested in test_backup.py: here the control database is enough
    code, first = run_json("aktool", "upgrade", "--from-version", "0.1.0", "--min-free-mb", "1",
                           "--backup-only", "secrets", "--backup-only", "mongodb", "--backup-to", str(basedir / "before-upgrade"), config=stand.path)
    assert code == 0, first
    assert [s["step"] for s in first["steps"]] == ["preflight", "backup", "migrate", "restart"]
    assert manifest.state(basedir / "before-upgrade") == "complete"
    migrated = first["steps"][2]["result"]
    assert [(m["store"], m["version"]) for m in migrated["migrations_applied"]] == [m.key for m in MIGRATIONS]
    assert [(r["process"], r["ready"]) for r in first["restarted"]] == [("trkaction", True)]
    after = stand.status("trkaction")
    assert after["state"] == "RUNNING" and after["pid"] != pid

    code, second = run_json("aktool", "upgrade", "--no-backup", "--no-restart", config=stand.path)
    assert code == 0, second
    assert second["installed_version"] == second["new_version"]  # recorded by the first run
    again = second["steps"][1]["result"]
    assert (again["changes"], again["migrations_applied"]) == ([], [])
    assert second["restarted"] == [] and stand.status("trkaction")["pid"] == after["pid"]


def test_writers_that_do_not_answer_the_quiet_point_are_found(stand, monkeypatch):
    """An upgrade from a version older than the backup's quiet point: its campaign worker,
    akmtad and procactions run but never write a member document, so the upgrade must stop
    them for its backup. Which of them run is akd's answer (set here); who answered the
    roll call is the real control database's."""
    import socket
    import types

    from altcraft.akd import control
    from altcraft.domain.maintenance import QuietMember
    from altcraft.stores import documents
    from altcraft.upgrade import runner

    running = {"campaign", "akmtad", "procactions", "trkaction"}
    monkeypatch.setattr(control, "status", lambda config, process: types.SimpleNamespace(up=process.name in running))
    client = documents.connect(stand.config, "control")
    try:
        db = documents.control_db(client, stand.config)
        assert sorted(runner.outside_quiet_point(stand.config)) == ["akmtad", "campaign", "procactions"]
        QuietMember(db, "procactions", f"{socket.gethostname()}:4242").report()
        QuietMember(db, "akmtad", "another-host:4242").report()  # another host's akmtad answers for itself only
        assert sorted(runner.outside_quiet_point(stand.config)) == ["akmtad", "campaign"]
        running.clear()
        assert runner.outside_quiet_point(stand.config) == []
    finally:
        client.close()

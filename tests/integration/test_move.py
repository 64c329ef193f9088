"""A move to a new host, on the real servers: the platform of one base directory is backed
up and restored with `aktool backup restore --move` into another installation (its own
base directory, databases, vhost and keys); the restored copy serves a tracking link
signed before the move, because the tracking key came with the backup's secrets. The old
platform is one migration behind (as after an upgrade of the code without `aktool migrate`):
the backup records its schema versions from the ledger, and the restore applies what the
backup lacks."""

from __future__ import annotations

import json
import os
import secrets
import stat
import time

import pytest

from altcraft import config as cfg
from altcraft.backup import runner
from altcraft.domain import tracking
from altcraft.domain.tracking import Link
from altcraft.schema import migrate as migration
from altcraft.stores import documents
from tests.lib.broker import depth
from tests.lib.cli import run, run_json
from tests.lib.harness import make_config
from tests.lib.ports import free_port
from tests.lib.stand import http
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration
KEYS = ("PRIVATE_KEY", "WEBAPI_PRIVATE_KEY", "TRACKING_CRYPT_KEY")
PLATFORM_USER = (65534, 65534)  # nobody:nogroup, an owner other than root


def _install(harness, basedir, **overrides):
    basedir.mkdir()
    settings = make_config(harness, basedir, **{k: secrets.token_urlsafe(32) for k in KEYS}, **overrides)
    path = basedir / "main.json"
    path.write_text(json.dumps(settings, indent=2))
    path.chmod(0o600)
    return path, cfg.load(path)[0]


def test_a_moved_copy_serves_a_link_signed_before_the_move(harness, tmp_path, vhost):
    old_path, old = _install(harness, tmp_path / "old")
    migration.apply(old)
    control = documents.connect(old, "control")
    documents.control_db(control, old)["schema_migrations"].delete_one({"store": "rabbitmq", "version": 1})
    control.close()
    target = "https://shop.example/moved?x=1"
    link = Link("click", 1, 1, 1, 4242, "65a1b2c3d4e5f60718293a4b", 3, target, int(time.time()) - 3600)
    signed = tracking.sign(link, old.TRACKING_CRYPT_KEY)
    backup, data = runner.create(old, old_path, to=tmp_path / "backup", only=["secrets", "mongodb"], quiet=False)
    assert data["schema_versions"] == {"mongodb": 1, "clickhouse": 1}

    port = free_port()
    new_path, new = _install(harness, tmp_path / "new", RABBITMQ_VHOST=vhost, TRACKING_BASE_URL="http://old.example",
                             PROCESSES={"trkaction": {"PORT": port}})
    with pytest.raises(tracking.InvalidToken):  # the new host's own key does not open the old links
        tracking.verify(signed, new.TRACKING_CRYPT_KEY)
    if os.geteuid() == 0:  # main.json belongs to the platform's user; root runs the restore
        os.chown(new_path, *PLATFORM_USER)
    owner = (new_path.stat().st_uid, new_path.stat().st_gid)
    try:
        code, out = run_json("aktool", "backup", "restore", str(backup), "--yes", "--move",
                             "--set", f"TRACKING_BASE_URL=http://127.0.0.1:{port}", config=new_path)
        assert code == 0 and out["ok"], out
        assert sorted(out["moved"]) == sorted([*KEYS, "TRACKING_BASE_URL"])
        moved = json.loads(new_path.read_text())
        assert {k: moved[k] for k in KEYS} == {k: getattr(old, k) for k in KEYS}
        # what belongs to the new host stays its own
        assert (moved["BASEDIR"], moved["CONTROLDB_NAME"], moved["RABBITMQ_VHOST"]) == (
            str(tmp_path / "new"), new.CONTROLDB_NAME, vhost)
        assert moved["TRACKING_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert stat.S_IMODE(new_path.stat().st_mode) == 0o600
        before_move = tmp_path / "new" / "main.json.before-move"
        assert {(p.stat().st_uid, p.stat().st_gid) for p in (new_path, before_move)} == {owner}
        kept = json.loads(before_move.read_text())
        assert kept["TRACKING_CRYPT_KEY"] == new.TRACKING_CRYPT_KEY
        assert [(m["store"], m["version"]) for m in out["migrations_applied"]] == [("rabbitmq", 1)]
        assert out["schema_versions"] == {"mongodb": 1, "clickhouse": 1, "rabbitmq": 1}

        started = run("akd", "start", "trkaction", config=new_path)
        assert started.returncode == 0, started.stdout + started.stderr
        before = depth(cfg.load(new_path)[0], "events.actions")
        status, headers, _ = http(f"http://127.0.0.1:{port}/{tracking.PATHS['click']}/{signed}",
                                  headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})
        assert status == 302 and headers["Location"] == target
        wait_for(lambda: depth(cfg.load(new_path)[0], "events.actions") == before + 1,
                 what="the click published on the new host")
    finally:
        run("akd", "stop", "trkaction", config=new_path)
        client = documents.connect(old, "control")
        client.drop_database(old.CONTROLDB_NAME)
        client.drop_database(new.CONTROLDB_NAME)
        client.close()


def test_a_move_with_a_bad_setting_changes_nothing(harness, tmp_path):
    old_path, old = _install(harness, tmp_path / "old")
    backup, _ = runner.create(old, old_path, to=tmp_path / "backup", only=["secrets"], quiet=False)
    new_path, _ = _install(harness, tmp_path / "new")
    before = new_path.read_text()
    result = run("aktool", "backup", "restore", str(backup), "--yes", "--move", "--set", "AKD.STOP_TIMEOUT=\"soon\"",
                 config=new_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "AKD.STOP_TIMEOUT" in result.stderr
    assert new_path.read_text() == before and not (tmp_path / "new" / "main.json.before-move").exists()

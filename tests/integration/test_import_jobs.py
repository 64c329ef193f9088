"""The panel's import as a background job, against the real stores: upload and column
mapping through webcontrol, the check (a dry run) and the import run by procleadsaver's
code, progress checkpoints, the error file; a procleadsaver process killed mid-job and the
job finished by another claim after its lease ran out."""

from __future__ import annotations

import csv
import io
import json
import os
import signal

import pytest

from altcraft import config as cfg, registry
from altcraft.domain.import_jobs import ImportQueue
from altcraft.schema import migrate as migration
from altcraft.services import procleadsaver
from altcraft.web.control import create_app
from altcraft.wiring import Platform
from tests.lib.cli import run
from tests.lib.harness import make_config
from tests.lib.race import at_once
from tests.lib.wait import wait_for
from tests.lib.webpanel import make_tenant, people_csv, signin, upload

pytestmark = pytest.mark.integration


def _stand(harness, basedir, **imports):
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, IMPORT=imports)))
    config, _ = cfg.load(path)
    migration.run(config)
    return path, config


def _job(platform, tenant, job_id):
    return platform.import_jobs(tenant.account_id).get(tenant.db_ids[-1], job_id)


def test_upload_map_check_and_import_with_progress_and_error_file(harness, basedir):
    _, config = _stand(harness, basedir, BATCH=5, LEASE_SECONDS=30)
    platform = Platform(config)
    try:
        tenant = make_tenant(platform, profiles=0)
        db_id = tenant.db_ids[-1]
        text, bad_lines = people_csv(40, broken=3)
        # a duplicate key (line 42) and an existing profile (updated by the import)
        text += f"{text.splitlines()[1].split(',')[0]},Dup,Kazan\n"
        people = platform.profiles(tenant.account_id, db_id)
        people.add({"email": text.splitlines()[2].split(",")[0], "first_name": "Old"})

        client = create_app(config, registry.get("webcontrol")).test_client()
        token = signin(client, tenant.writer)
        response = client.post(f"/databases/{db_id}/imports", data={
            "csrf_token": token, "file": (io.BytesIO(text.encode()), "people.csv")})
        assert response.status_code == 302, response.data[:300]
        job_id = response.headers["Location"].rsplit("/", 1)[1]
        job = _job(platform, tenant, job_id)
        assert job["state"] == "uploaded" and job["columns"] == ["E-mail", "Name", "city"]
        assert job["mapping"] == {"E-mail": "email", "Name": "first_name", "city": "city"}  # by name
        path = job["file"]["path"]
        assert path.startswith(str(config.imports_dir)) and os.stat(path).st_mode & 0o777 == 0o600

        # a mapping without the key is refused, naming it
        refused = client.post(f"/databases/{db_id}/imports/{job_id}/check",
                              data={"csrf_token": token, "map_0": "", "map_1": "first_name", "map_2": ""})
        assert refused.status_code == 400 and b"no column for the database&#39;s key (email)" in refused.data
        assert client.post(f"/databases/{db_id}/imports/{job_id}/check", data={
            "csrf_token": token, "map_0": "email", "map_1": "first_name", "map_2": ""}).status_code == 302
        assert _job(platform, tenant, job_id)["state"] == "queued"
        assert client.get(f"/databases/{db_id}/imports/{job_id}/status").status_code == 200  # polled

        queue = ImportQueue(platform.control, platform.import_jobs)
        assert procleadsaver.work_once(platform, queue, "w1", _never()) is True
        job = _job(platform, tenant, job_id)
        assert job["state"] == "checked" and job["results"]["check"]["failed"] == 4
        assert people.collection.count_documents({}) == 1  # the check wrote nothing
        page = client.get(f"/databases/{db_id}/imports/{job_id}").data.decode()
        for line in bad_lines + [42]:
            assert f'<td data-testid="bad-line">{line}</td>' in page
        rows = list(csv.reader(io.StringIO(client.get(
            f"/databases/{db_id}/imports/{job_id}/errors.csv?run=check").data.decode())))
        assert rows[0] == ["line", "field", "reason"] and [int(r[0]) for r in rows[1:]] == bad_lines + [42]
        assert rows[-1][1] == "email" and "duplicate key in the file (first at line 2)" in rows[-1][2]

        # the import, stopped after its first batch: the checkpoint holds, the next claim resumes
        assert client.post(f"/databases/{db_id}/imports/{job_id}/start", data={"csrf_token": token}).status_code == 302
        assert procleadsaver.work_once(platform, queue, "w2", _stop_after_checkpoints(platform, tenant, job_id, 1))
        job = _job(platform, tenant, job_id)
        assert job["state"] == "running" and job["progress"]["rows"] >= 5 and job["progress"]["line"] < 42
        assert 0 < people.collection.count_documents({}) < 37
        assert procleadsaver.work_once(platform, queue, "w3", _never())
        job = _job(platform, tenant, job_id)
        assert job["state"] == "done" and job["claims"] == 3  # the check, then the import twice
        assert not os.path.exists(path)  # the upload is removed once imported
        assert job["results"]["import"] == {"rows": 41, "inserted": 36, "updated": 1, "unchanged": 0, "failed": 4}
        assert people.collection.count_documents({}) == 37
        rows = list(csv.reader(io.StringIO(client.get(f"/databases/{db_id}/imports/{job_id}/errors.csv").data.decode())))
        assert [int(r[0]) for r in rows[1:]] == bad_lines + [42]  # each bad row once, across both claims
        page = client.get(f"/databases/{db_id}/imports/{job_id}").data.decode()
        assert '<td data-testid="result-inserted">36</td>' in page and '<td data-testid="result-failed">4</td>' in page
        assert client.get(f"/databases/{db_id}/imports/{job_id}/status",
                          headers={"HX-Request": "true"}).headers["HX-Redirect"].endswith(job_id)  # polling ends
        assert b"people.csv" in client.get(f"/databases/{db_id}/imports").data
        # done: neither checked nor imported again
        assert client.post(f"/databases/{db_id}/imports/{job_id}/start", data={"csrf_token": token}).status_code == 409
        assert queue.claim("w4", 30) is None
    finally:
        platform.close()


def test_too_large_and_unreadable_files_are_refused_with_a_clear_error(harness, basedir):
    _, config = _stand(harness, basedir, MAX_BYTES=2048)
    platform = Platform(config)
    try:
        tenant = make_tenant(platform, profiles=0)
        client = create_app(config, registry.get("webcontrol")).test_client()
        token = signin(client, tenant.writer)
        url = f"/databases/{tenant.db_ids[-1]}/imports"
        big = client.post(url, data={"csrf_token": token, "file": (io.BytesIO(b"email\n" + b"a@b.cd\n" * 400), "x.csv")})
        assert big.status_code == 413 and b"The file is larger than the limit of" in big.data
        odd = client.post(url, data={"csrf_token": token, "file": (io.BytesIO(b"email\n"), "x.xlsx")})
        assert odd.status_code == 400 and b"unknown format" in odd.data
        assert not list(config.imports_dir.glob("*")) and platform.import_jobs(tenant.account_id).list(tenant.db_ids[-1]) == []
    finally:
        platform.close()


def test_a_worker_killed_mid_job_is_taken_over_after_its_lease(harness, basedir):
    """procleadsaver under akd writes one row a batch; it is killed (SIGKILL) mid-job, akd
    starts it again, and the new process claims the job once the dead one's lease ran out."""
    path, config = _stand(harness, basedir, BATCH=1, LEASE_SECONDS=2)
    platform = Platform(config)
    try:
        tenant = make_tenant(platform, profiles=0)
        text, bad_lines = people_csv(1500, broken=5)
        job = upload(platform, tenant.account_id, tenant.db_ids[-1], text)
        jobs = platform.import_jobs(tenant.account_id)
        database = platform.databases(tenant.account_id).get(tenant.db_ids[-1])
        jobs.queue(database.id, job["_id"], "import", database)
        started = run("akd", "start", "procleadsaver", config=path, timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        pids = config.pids_dir / "procleadsaver.pid"
        first = wait_for(lambda: _job(platform, tenant, job["_id"])["progress"]["rows"] >= 20 and int(pids.read_text()),
                         what="the first worker's progress", every=0.05)
        os.kill(first, signal.SIGKILL)
        killed_at = _job(platform, tenant, job["_id"])
        assert killed_at["state"] == "running" and killed_at["progress"]["line"] < 1501, "not killed mid-job"
        # faster from here: the next process reads main.json with bigger batches
        settings = json.loads(path.read_text())
        settings["IMPORT"]["BATCH"] = 500
        path.write_text(json.dumps(settings))
        done = wait_for(lambda: (j := _job(platform, tenant, job["_id"]))["state"] == "done" and j,
                        timeout=60, what="the job finished by another claim")
        assert done["claims"] == 2 and int(pids.read_text()) != first
        result = done["results"]["import"]
        assert result["rows"] == 1500 and result["failed"] == 5
        # the batch the dead worker had in hand was upserted again: harmless
        assert result["inserted"] + result["unchanged"] == 1495 and result["unchanged"] <= 1
        profiles = platform.profiles(tenant.account_id, tenant.db_ids[-1]).collection
        assert profiles.count_documents({}) == 1495
        assert [e.line for e in jobs.bad_rows(job["_id"], "import")] == bad_lines
    finally:
        run("akd", "stop", config=path, timeout=120)
        platform.close()


def test_workers_asking_at_once_run_a_job_once(harness, basedir):
    """Eight procleadsaver workers ask for work at the same moment: one gets the queued job
    (claim 1); when its lease has run out, one of eight takes it over (claim 2)."""
    from datetime import timedelta

    from altcraft.domain.clock import now

    _, config = _stand(harness, basedir)
    platform = Platform(config)
    try:
        tenant = make_tenant(platform, profiles=0)
        job = upload(platform, tenant.account_id, tenant.db_ids[-1], people_csv(10, broken=0)[0])
        jobs = platform.import_jobs(tenant.account_id)
        database = platform.databases(tenant.account_id).get(tenant.db_ids[-1])
        jobs.queue(database.id, job["_id"], "import", database)

        def race(prefix: str) -> list:
            return [doc for doc in at_once(8, lambda n: jobs.claim(f"{prefix}-{n}", lease_seconds=30))
                    if doc is not None]

        first = race("first")
        assert len(first) == 1 and first[0]["claims"] == 1, first
        jobs.collection.update_one({"_id": job["_id"]}, {"$set": {"lease_until": now() - timedelta(seconds=1)}})
        second = race("second")
        assert len(second) == 1 and second[0]["claims"] == 2 and second[0]["lease"].startswith("second-"), second
    finally:
        platform.close()


class _never:
    def is_set(self) -> bool:
        return False


class _stop_after_checkpoints:
    """A stop event that is set once the job has had `count` checkpoints."""

    def __init__(self, platform, tenant, job_id, count):
        self.platform, self.tenant, self.job_id, self.count = platform, tenant, job_id, count
        self.calls = 0

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls >= self.count

"""The logic of versioned migrations and upgrades, without servers: which migrations are
pending and in what order, a list numbered wrongly is refused, a newer schema is found,
and the version order and required stops."""

from __future__ import annotations

import pytest

from altcraft.schema import migrations as numbered
from altcraft.schema.migrations import Migration
from altcraft.upgrade import stops


def noop(ctx):
    return "nothing"


LIST = (
    Migration("rabbitmq", 1, "baseline", noop),
    Migration("mongodb", 2, "backfill", noop),
    Migration("mongodb", 1, "baseline", noop),
    Migration("clickhouse", 1, "baseline", noop),
)


def test_the_package_list_is_valid_and_starts_with_a_baseline_per_store():
    numbered.validate(numbered.MIGRATIONS)
    firsts = {m.store: m.name for m in numbered.MIGRATIONS if m.version == 1}
    assert firsts == {store: "baseline" for store in numbered.STORES}


def test_pending_runs_by_store_then_number_and_skips_what_is_applied():
    assert [m.key for m in numbered.pending([], LIST)] == [
        ("mongodb", 1), ("mongodb", 2), ("clickhouse", 1), ("rabbitmq", 1)]
    assert [m.key for m in numbered.pending([("mongodb", 1), ("rabbitmq", 1)], LIST)] == [
        ("mongodb", 2), ("clickhouse", 1)]
    assert numbered.pending([m.key for m in LIST], LIST) == []


def test_schema_version_is_the_highest_number():
    assert numbered.latest(LIST) == {"mongodb": 2, "clickhouse": 1, "rabbitmq": 1}


@pytest.mark.parametrize("bad, words", [
    (LIST + (Migration("mongodb", 2, "again", noop),), "without gaps or repeats"),
    (LIST + (Migration("mongodb", 4, "gap", noop),), "without gaps or repeats"),
    ((Migration("kv", 1, "baseline", noop),), "unknown store"),
])
def test_a_wrongly_numbered_list_is_refused(bad, words):
    with pytest.raises(numbered.InvalidMigrations, match=words):
        numbered.validate(bad)


def test_a_schema_newer_than_the_package_is_named():
    assert numbered.too_new({"mongodb": 2, "clickhouse": 1}, LIST) == []
    assert numbered.too_new({"mongodb": 3}, LIST) == ["mongodb is at schema 3, this version knows up to 2"]


def test_versions_go_forward_and_a_rerun_is_allowed():
    assert stops.problems("0.1.0", "0.2.0", ()) == []
    assert stops.problems("0.2.0", "0.2.0", ()) == []
    assert "downgrade" in stops.problems("0.3.0", "0.2.9", ())[0]
    assert stops.problems("0.9.0", "0.10.0", ()) == []  # numbers, not strings


def test_a_required_stop_cannot_be_skipped():
    required = ("0.2.0", "0.5.0")
    assert stops.problems("0.1.0", "0.2.0", required) == []        # going to the stop
    assert stops.problems("0.2.0", "0.4.1", required) == []        # from the stop on
    found = stops.problems("0.1.0", "0.6.0", required)
    assert [line.split(" is ")[0] for line in found] == ["0.2.0", "0.5.0"]
    assert "upgrade to 0.2.0 first" in found[0]


def test_the_package_stop_list_is_sorted_versions():
    parsed = [stops.parse(v) for v in stops.REQUIRED_STOPS]
    assert parsed == sorted(parsed)


def test_a_bad_version_is_named():
    with pytest.raises(stops.BadVersion, match="'one' is not a version"):
        stops.problems("one", "0.2.0")


def test_the_stop_check_runs_as_a_script(capsys):
    assert stops.main(["0.1.0", "0.1.0"]) == 0
    assert stops.main(["0.2.0", "0.1.0"]) == 2
    assert "FAIL version" in capsys.readouterr().err


class _Answers:
    """A loopback HTTP server answering /api/readiness from a script of status codes."""

    def __init__(self, codes):
        import http.server
        import threading

        script = list(codes)
        self.calls = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.calls += 1
                code = script.pop(0) if len(script) > 1 else script[0]
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b'{"status": "FAIL", "failed": ["controldb"]}' if code != 200 else b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def listen_address(self, name):
        from altcraft.config import Address

        return Address("127.0.0.1", self.server.server_address[1])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_readiness_is_waited_for_until_200_and_a_process_never_ready_is_named():
    from altcraft import registry
    from altcraft.upgrade import runner

    api = registry.get("api")
    answers = _Answers([503, 503, 200])
    try:
        runner.wait_ready(answers, api, timeout=30)
        assert answers.calls == 3
    finally:
        answers.close()
    never = _Answers([503])
    try:
        with pytest.raises(runner.StepFailed, match="readiness api") as failed:
            runner.wait_ready(never, api, timeout=0.5)
        assert "HTTP 503" in str(failed.value) and "controldb" in str(failed.value)
    finally:
        never.close()

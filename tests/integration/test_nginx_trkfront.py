"""nginx-trk's routes to the compiled tracking front, in the real nginx: with main.json's
TRACKING_FRONT native, the clicks and opens under TRACKING_BASE_URL's path (the routes
`akd --processes --json` gives for trkfront) reach trkfront's upstream, everything else
(unsubscribe, the other processes' paths, a path without the prefix) reaches trkaction; with
TRACKING_FRONT python, everything reaches trkaction. Two small HTTP servers stand in for the
processes and say who answered. Then the real trkfront behind the real nginx: nginx's
requests take its fast path (native/trkfront/fast.go). The whole chain from product to
click is in the Molecule verify and the install container test (tests/distribution)."""

from __future__ import annotations

import http.client
import http.server
import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.lib.nginx import Nginx
from tests.lib.ports import free_port

pytestmark = pytest.mark.integration

AKD = Path(sys.executable).parent / "akd"
SECRET = "s" * 32


class _Who(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps({"who": self.server.who, "path": self.path,
                           "real_ip": self.headers.get("X-Real-IP")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _stand_in(who: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Who)
    server.who = who
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


def _table(tmp_path: Path, front: str, base_url: str, ports: dict[str, int]) -> list[dict]:
    main_json = tmp_path / "main.json"
    main_json.write_text(json.dumps({
        "PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET,
        "TRACKING_FRONT": front, "TRACKING_BASE_URL": base_url,
        "PROCESSES": {name: {"PORT": port} for name, port in ports.items()}}))
    out = subprocess.run([str(AKD), "--processes", "--json", "--config", str(main_json)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _who(address: tuple[str, int], path: str) -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection(*address, context=context, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        assert answer.status == 200, (path, answer.status)
        return json.loads(answer.read())["who"]
    finally:
        conn.close()


@pytest.mark.parametrize("front", ["native", "python"])
def test_clicks_and_opens_reach_trkfront_only_when_it_is_the_front(tmp_path, front):
    servers = {name: _stand_in(name) for name in ("trkaction", "trkfront")}
    ports = {name: port for name, (_, port) in servers.items()}
    table = _table(tmp_path, front, "https://click.example.test/t/", ports)
    # what roles/nginx/tasks/process_table.yml keeps: the http rows with a port, and the fronts
    process_ports = {row["name"]: row["port"] for row in table if row["kind"] == "http" and row["port"]}
    fronts = [row for row in table if row["kind"] == "http" and row["port"] and row.get("front_of") and row.get("routes")]
    assert [(f["name"], f["routes"]) for f in fronts] == ([("trkfront", ["/t/c/", "/t/o/"])] if front == "native" else [])
    try:
        with Nginx("trk", tmp_path, process_ports=process_ports, nginx_fronts=fronts) as nginx:
            answered = {path: _who(nginx.https, path) for path in
                        ("/t/c/AbC", "/t/o/AbC.gif", "/t/u/AbC", "/t/m/AbC", "/c/AbC", "/trkaction/health")}
    finally:
        for server, _ in servers.values():
            server.shutdown()
    to_front = {"/t/c/AbC", "/t/o/AbC.gif"} if front == "native" else set()
    assert answered == {path: "trkfront" if path in to_front else "trkaction" for path in answered}, answered


def test_nginx_requests_take_trkfronts_fast_path(tmp_path):
    """The real trkfront behind the real nginx-trk: nginx's requests (HTTP/1.1 keep-alive,
    X-Real-IP and the rest) are the plain shape native/trkfront/fast.go answers itself, not
    net/http; each click and open is written to the journal once."""
    import time
    import urllib.request

    from altcraft.domain.tracking import Link, url
    from tests.lib import trkfront
    from tests.lib.wait import wait_started

    trkaction, trkaction_port = _stand_in("trkaction")
    front_port = free_port()
    base = "https://click.example.test/t/"
    table = _table(tmp_path, "native", base, {"trkaction": trkaction_port, "trkfront": front_port})
    main_json = tmp_path / "main.json"
    settings = json.loads(main_json.read_text())
    settings["BASEDIR"] = str(tmp_path / "basedir")
    main_json.write_text(json.dumps(settings))
    process = trkfront.start(trkfront.build(tmp_path / "trkfront"), main_json, tmp_path / "trkfront.log",
                             listen=f"127.0.0.1:{front_port}")
    metrics = f"http://127.0.0.1:{front_port}/metrics"

    def counts() -> dict[str, int]:
        text = urllib.request.urlopen(metrics, timeout=10).read().decode()
        return {line.split(" ")[0]: int(line.split(" ")[1]) for line in text.splitlines() if not line.startswith("#")}

    def listening() -> bool:
        try:
            return bool(counts())
        except OSError:
            return False

    process_ports = {row["name"]: row["port"] for row in table if row["kind"] == "http" and row["port"]}
    fronts = [row for row in table if row["kind"] == "http" and row["port"] and row.get("front_of") and row.get("routes")]
    issued = int(time.time()) - 60
    links = [url(base, Link("click", 3, 1, 1, 11, "ab" * 16, 1, "https://shop.example/sale", issued), SECRET),
             url(base, Link("open", 3, 1, 1, 11, "ab" * 16, issued=issued), SECRET)]
    try:
        wait_started(process, listening, "trkfront", tmp_path / "trkfront.log")
        with Nginx("trk", tmp_path, process_ports=process_ports, nginx_fronts=fronts) as nginx:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            conn = http.client.HTTPSConnection(*nginx.https, context=context, timeout=10)
            answers = []
            for link in links * 2:  # twice over one client connection: nginx reuses its upstream one
                conn.request("GET", link.removeprefix("https://click.example.test"),
                             headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})
                answer = conn.getresponse()
                answer.read()
                answers.append((answer.status, answer.getheader("Location")))
            conn.close()
        after = counts()
    finally:
        trkaction.shutdown()
        process.terminate()
        process.wait(10)
    assert answers == [(302, "https://shop.example/sale"), (200, None)] * 2
    assert after['altcraft_trkfront_events_total{outcome="accepted"}'] == 4, after
    assert after['altcraft_trkfront_answers_total{server="fast"}'] == 4, after
    assert after['altcraft_trkfront_answers_total{server="net/http"}'] == 0, after
    journal = "".join(path.read_text() for path in (tmp_path / "basedir" / "run" / "trk" / "trkaction").glob("*.jsonl"))
    assert journal.count('"rk":"action.click"') == 2 and journal.count('"rk":"action.open"') == 2, journal

"""The lean click/open WSGI paths with a recording publisher (no servers; the real broker,
gunicorn and akd are in tests/integration/test_tracking.py)."""

import json
import time

import pytest

from altcraft import registry
from altcraft.config import validate
from altcraft.domain.tracking import Link, sign
from altcraft.services.trk.app import GIF, TrackingApp, safe_location

KEY = "k" * 40
PROFILE = "0123456789abcdef0123456789abcdef"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


class Recorder:
    def __init__(self):
        self.events = []
        self.ticks = []

    def submit(self, routing_key, body, message_id):
        self.events.append((routing_key, json.loads(body), message_id))

    def start(self):
        pass


def fallback(environ, start_response):
    start_response("200 OK", [("X-Fallback", environ["PATH_INFO"])])
    return [b"flask"]


def make_app(base="http://127.0.0.1:8095"):
    config, report = validate({"PRIVATE_KEY": KEY, "WEBAPI_PRIVATE_KEY": KEY, "TRACKING_CRYPT_KEY": KEY,
                               "TRACKING_BASE_URL": base})
    assert config is not None, report
    recorder = Recorder()
    return TrackingApp(config, registry.get("trkaction"), recorder, fallback), recorder


def call(app, path, method="GET", **headers):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": "192.0.2.7",
               "HTTP_USER_AGENT": BROWSER}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    seen = {}

    def start_response(status, response_headers):
        seen["status"], seen["headers"] = status, dict(response_headers)
    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def token(kind="click", url="https://shop.example/landing?p=1", issued=None, key=KEY, link_id=2):
    issued = issued or int(time.time()) - 600
    return sign(Link(kind, 1, 2, 3, 77, PROFILE, link_id if kind == "click" else 0, url if kind == "click" else "",
                     issued), key)


def test_click_redirects_to_the_signed_url_and_records_once():
    app, recorder = make_app()
    status, headers, body = call(app, f"/c/{token()}")
    assert status == "302 Found" and headers["Location"] == "https://shop.example/landing?p=1" and body == b""
    assert headers["Cache-Control"].startswith("no-store") and headers["Referrer-Policy"] == "no-referrer"
    (routing_key, event, message_id), = recorder.events
    assert routing_key == "action.click" and message_id == event["event_id"]
    assert (event["account_id"], event["db_id"], event["resource_id"], event["campaign_id"], event["link_id"],
            event["profile_id"], event["ip"], event["is_bot"]) == (1, 2, 3, 77, 2, PROFILE, "192.0.2.7", False)


def test_pixel_is_a_gif_never_cached():
    app, recorder = make_app()
    status, headers, body = call(app, f"/o/{token('open')}.gif")
    assert status == "200 OK" and body == GIF and len(GIF) == 42 and body.startswith(b"GIF89a")
    assert headers["Content-Type"] == "image/gif" and "no-store" in headers["Cache-Control"]
    assert headers["Pragma"] == "no-cache" and headers["Expires"] == "0"
    assert [e[1]["kind"] for e in recorder.events] == ["open"]


def test_tampered_truncated_expired_foreign_and_wrong_kind_tokens_record_nothing():
    app, recorder = make_app()
    good = token()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    bad = [good[:-1], good[:30], good + "A", good + "!", good.replace(good[10], "~", 1),
           token(key="x" * 40), token(issued=int(time.time()) - 401 * 86400), token("open"), "", "nonsense"]
    for position in range(0, len(good), 7):
        bad.append(good[:position] + next(c for c in alphabet if c != good[position]) + good[position + 1:])
    for candidate in bad:
        status, _, _ = call(app, f"/c/{candidate}")
        assert status == "404 Not Found", candidate
    assert call(app, f"/o/{token()}.gif")[0] == "404 Not Found"  # a click token is not an open
    assert recorder.events == []


def test_never_an_open_redirect():
    app, recorder = make_app()
    for url in ("javascript:alert(1)", "data:text/html,hi", "//evil.example/x", "/relative",
                "https://ok.example/\r\nSet-Cookie: x=1", "ftp://files.example/"):
        assert call(app, f"/c/{token(url=url)}")[0] == "404 Not Found", url
    assert recorder.events == []
    status, headers, _ = call(app, f"/c/{token(url='https://shop.example/ü?q=ä')}")
    assert status == "302 Found" and headers["Location"] == "https://shop.example/%C3%BC?q=%C3%A4"
    assert call(app, f"/c/{token(url='https://shop.example/a b')}")[0] == "404 Not Found"  # no spaces in headers
    assert safe_location("https://shop.example/ü") == "https://shop.example/%C3%BC"
    assert safe_location("https://shop.example/a?b=%20&c=d#e") == "https://shop.example/a?b=%20&c=d#e"


def test_head_and_methods():
    app, recorder = make_app()
    status, headers, body = call(app, f"/c/{token()}", method="HEAD")
    assert status == "302 Found" and body == b""
    assert recorder.events[-1][1]["is_bot"] and recorder.events[-1][1]["bot_reason"] == "head"
    assert call(app, f"/c/{token()}", method="POST")[0] == "405 Method Not Allowed"
    assert len(recorder.events) == 1


def test_bots_are_recorded_but_flagged():
    app, recorder = make_app()
    call(app, f"/c/{token()}", user_agent="Barracuda Sentinel (EE)")
    call(app, f"/o/{token('open')}.gif", user_agent="Mozilla/5.0")
    assert [(e[1]["is_bot"], e[1]["bot_reason"]) for e in recorder.events] == [(True, "scanner"), (True, "apple-mpp")]


def test_proxy_headers_trusted_only_from_loopback():
    app, recorder = make_app()
    environ_call = call(app, f"/c/{token()}", x_real_ip="203.0.113.9")  # peer 192.0.2.7: not trusted
    assert environ_call[0] == "302 Found" and recorder.events[-1][1]["ip"] == "192.0.2.7"
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/c/{token()}", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_USER_AGENT": BROWSER, "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.9"}
    app(environ, lambda *a: None)
    assert recorder.events[-1][1]["ip"] == "203.0.113.9"


def test_other_paths_and_a_base_path_prefix():
    app, recorder = make_app("https://click.example/trk")
    assert call(app, "/trkaction/health")[2] == b"flask"
    status, headers, _ = call(app, f"/trk/c/{token()}")
    assert status == "302 Found"
    status, headers, body = call(app, "/trk/u/abc")
    assert body == b"flask" and headers["X-Fallback"] == "/u/abc"


@pytest.mark.parametrize("path", ["/c/", "/c", "/o/.gif", "/c/" + "A" * 10000])
def test_odd_paths(path):
    app, recorder = make_app()
    status, _, body = call(app, path)
    assert status in ("404 Not Found", "200 OK") and recorder.events == []


def test_webversion_shares_the_refusal_path_and_passes_a_good_token_to_the_page():
    app, recorder = make_app()
    good = sign(Link("webversion", 1, 2, 3, 77, PROFILE, 5, "", int(time.time()) - 600), KEY)
    status, headers, body = call(app, f"/w/{good}")
    assert (status, body, headers["X-Fallback"]) == ("200 OK", b"flask", f"/w/{good}")
    assert call(app, f"/w/{good}", method="HEAD")[2] == b"flask"
    for bad in (good[:-1], good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1], token(), token("open"),
                sign(Link("webversion", 1, 2, 3, 77, PROFILE, 5, "", int(time.time()) - 600), "x" * 40), "x"):
        status, headers, body = call(app, f"/w/{bad}")
        assert (status, body) == ("404 Not Found", b"not found\n") and "X-Fallback" not in headers, bad
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = call(app, f"/w/{good}", method=method)
        assert status == "405 Method Not Allowed" and headers["Allow"] == "GET, HEAD"
    assert recorder.events == []  # viewing the web version records nothing

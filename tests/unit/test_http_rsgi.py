"""The WSGI-over-RSGI bridge granian's processes use (altcraft/http/rsgi.py), with a fake
RSGI scope and protocol; the real granian under akd is in tests/integration/test_tracking.py."""

import asyncio

from flask import Flask, request

from altcraft.http.rsgi import WSGIBridge, client_host, environ_of


class Headers(dict):
    def items(self):
        return list(super().items())


class Scope:
    proto, http_version, scheme, server = "http", "1.1", "http", "127.0.0.1:8095"

    def __init__(self, method, path, query="", headers=None, client="192.0.2.7:50123"):
        self.method, self.path, self.query_string, self.client = method, path, query, client
        self.headers = Headers(headers or {})


class Proto:
    def __init__(self, body=b""):
        self.body, self.answer = body, None

    async def __call__(self):
        return self.body

    def response_bytes(self, status, headers, body):
        self.answer = (status, headers, body)


def test_environ_carries_method_path_query_headers_body_and_client():
    environ = environ_of(Scope("POST", "/u/tok", "a=1", {"content-type": "application/x-www-form-urlencoded",
                                                           "content-length": "3", "x-real-ip": "203.0.113.9",
                                                           "user-agent": "UA"}), b"x=1")
    assert (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"]) == ("POST", "/u/tok", "a=1")
    assert environ["CONTENT_TYPE"] == "application/x-www-form-urlencoded" and environ["CONTENT_LENGTH"] == "3"
    assert environ["HTTP_X_REAL_IP"] == "203.0.113.9" and environ["HTTP_USER_AGENT"] == "UA"
    assert environ["REMOTE_ADDR"] == "192.0.2.7" and environ["wsgi.input"].read() == b"x=1"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["SERVER_PROTOCOL"]) == ("127.0.0.1", "8095", "HTTP/1.1")


def test_client_host_of_ipv4_and_ipv6():
    assert client_host("192.0.2.7:1") == "192.0.2.7" and client_host("[::1]:8095") == "::1" and client_host("") == ""


def test_a_flask_app_answers_through_the_bridge():
    app = Flask("bridge-test")

    @app.post("/echo")
    def echo():
        return {"form": request.form["x"], "ip": request.remote_addr}, 201, {"X-Seen": "1"}

    bridge = WSGIBridge(app)
    proto = Proto(b"x=42")
    asyncio.run(bridge(Scope("POST", "/echo", headers={"content-type": "application/x-www-form-urlencoded",
                                                       "content-length": "4"}), proto))
    bridge.close()
    status, headers, body = proto.answer
    assert status == 201 and ("X-Seen", "1") in headers and b'"form":"42"' in body and b'"ip":"192.0.2.7"' in body

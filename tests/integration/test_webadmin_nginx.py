"""How webadmin is reached: nginx-admin, a site of its own in the nginx role (its pages live
at /, as webcontrol's do on nginx-sites), on loopback by default; the real nginx runs the
rendered configuration."""

from __future__ import annotations

import http.client
import re
import ssl

import pytest

from tests.lib.nginx import Nginx, client, defaults, render

pytestmark = pytest.mark.integration


def test_the_admin_site_is_loopback_by_default_and_proxies_everything_to_webadmin(tmp_path):
    (admin,) = [i for i in defaults()["nginx_instances"] if i["name"] == "admin"]
    assert admin["listen_ip"] == "127.0.0.1" and admin["default"] == "webadmin" and admin["hsts"]
    text, _ = render("admin", tmp_path)
    assert re.findall(r"proxy_pass http://([a-z_]+);", text) == ["webadmin"]
    sites = [i for i in defaults()["nginx_instances"] if i["name"] == "sites"][0]
    assert sites["default"] == "webcontrol"  # the marketers' site does not serve the admin pages


def test_http_redirects_to_the_admin_https_port_which_sends_hsts(tmp_path):
    with Nginx("admin", tmp_path) as nginx:
        plain = http.client.HTTPConnection("127.0.0.1", nginx.instance["http_port"], timeout=5)
        plain.request("GET", "/accounts?after=3")
        response = plain.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://127.0.0.1:{nginx.instance['https_port']}/accounts?after=3"
        secure = http.client.HTTPSConnection(*nginx.https, context=client(ssl.TLSVersion.TLSv1_3), timeout=5)
        secure.request("GET", "/nginx-admin/health")
        response = secure.getresponse()
        assert response.status == 200
        assert response.getheader("Strict-Transport-Security") == "max-age=63072000"

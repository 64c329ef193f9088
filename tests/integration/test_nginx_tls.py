"""nginx-sites' TLS against the real nginx, configured by the role's own template and
defaults: Mozilla's "intermediate" profile - TLS 1.2 only with ECDHE key exchange and AEAD
ciphers, TLS 1.3, nothing older - and HSTS on the panels' server (not on tracking's).

Every TLS 1.2 suite the machine's OpenSSL knows is offered alone; exactly the profile's
RSA-certificate suites must be taken (the certificate is RSA, so the ECDSA ones cannot be).
"""

from __future__ import annotations

import http.client
import re
import ssl

import pytest

from tests.lib.nginx import Nginx, client, defaults, handshake, render, tls12_suites

pytestmark = pytest.mark.integration

PROFILE = {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"}


def test_the_rendered_configuration_has_the_intermediate_profile(tmp_path):
    suites = set(defaults()["nginx_ssl_ciphers"])
    assert all(s.startswith("ECDHE-") and ("-GCM-" in s or "CHACHA20-POLY1305" in s) for s in suites), suites
    assert PROFILE <= suites
    # Debian's OpenSSL refuses TLS 1.0/1.1 on its own (openssl.cnf), so a handshake cannot
    # show that nginx was told to offer them: the configuration is read for that
    for name in ("sites", "trk", "cookiesaver"):
        text, _ = render(name, tmp_path)
        (protocols,) = re.findall(r"^\s*ssl_protocols ([^;]+);", text, flags=re.M)
        assert protocols.split() == ["TLSv1.2", "TLSv1.3"], (name, protocols)
        assert re.search(r"^\s*ssl_ciphers ECDHE-", text, flags=re.M), name


def test_sites_takes_only_the_intermediate_profile_and_sends_hsts(tmp_path):
    with Nginx("sites", tmp_path) as nginx:
        address = nginx.https
        taken = {s for s in tls12_suites() if handshake(address, client(ssl.TLSVersion.TLSv1_2, s))}
        assert taken == PROFILE, f"taken beyond the profile: {sorted(taken - PROFILE)}; missing: {sorted(PROFILE - taken)}"
        assert handshake(address, client(ssl.TLSVersion.TLSv1_3))[0] == "TLSv1.3"
        assert handshake(address, client(ssl.TLSVersion.TLSv1_1)) is None

        connection = http.client.HTTPSConnection(*address, context=client(ssl.TLSVersion.TLSv1_3), timeout=5)
        connection.request("GET", "/nginx-sites/health")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Strict-Transport-Security") == "max-age=63072000"


def test_no_hsts_where_the_instance_does_not_ask_for_it(tmp_path):
    with Nginx("trk", tmp_path) as nginx:
        connection = http.client.HTTPSConnection(*nginx.https, context=client(ssl.TLSVersion.TLSv1_3), timeout=5)
        connection.request("GET", "/nginx-trk/health")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Strict-Transport-Security") is None

"""RFC 6238's own test vectors (SHA-1, its 20-byte ASCII secret), read as 6-digit codes
(the last six digits of its 8-digit values), and the drift window of matching_step."""

from __future__ import annotations

import base64

import pytest

from altcraft.domain import totp

SECRET = base64.b32encode(b"12345678901234567890").decode()
# RFC 6238 appendix B: time -> 8-digit TOTP (SHA-1)
VECTORS = {59: "94287082", 1111111109: "07081804", 1111111111: "14050471",
           1234567890: "89005924", 2000000000: "69279037", 20000000000: "65353130"}


@pytest.mark.parametrize("at,code", sorted(VECTORS.items()))
def test_rfc6238_vectors(at, code):
    assert totp.matching_step(SECRET, code[-6:], at=at) == at // 30


def test_neighbouring_steps_match_and_farther_ones_do_not():
    at = 1234567890
    assert totp.matching_step(SECRET, VECTORS[at][-6:], at=at + 30) == at // 30  # one step late
    assert totp.matching_step(SECRET, VECTORS[at][-6:], at=at - 30) == at // 30  # one step early
    assert totp.matching_step(SECRET, VECTORS[at][-6:], at=at + 60) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", None])
def test_malformed_codes_match_nothing(code):
    assert totp.matching_step(SECRET, code, at=59) is None


def test_provisioning_uri_names_the_issuer_and_login():
    uri = totp.provisioning_uri(SECRET, "root")
    assert uri.startswith("otpauth://totp/Altcraft:root?") and f"secret={SECRET}" in uri

"""DKIM signing with dkimpy.

dkimpy canonicalises, hashes and builds the DKIM-Signature header; its RSA primitive is
pure Python (about 150 signatures/s per core here), so the one RSA operation is handed to
OpenSSL through `cryptography` instead. RSASSA-PKCS1-v1_5 is deterministic: the signature
is byte for byte what dkimpy's own code computes (tests/unit/test_dkim.py checks it), only
about 20 times faster. Ed25519 (RFC 8463) goes through dkimpy + PyNaCl as it is.
"""

from __future__ import annotations

import functools

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to"]
_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
_pure_python_rsa_sign = dkim.RSASSA_PKCS1_v1_5_sign


@functools.lru_cache(maxsize=64)
def _openssl_key(n: int, e: int, d: int, p: int, q: int, dp: int, dq: int, qi: int) -> rsa.RSAPrivateKey:
    return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n)).private_key()


def openssl_rsa_sign(hash_obj, private_key: dict) -> bytes:
    """dkimpy's RSASSA_PKCS1_v1_5_sign(hash, key) contract, computed by OpenSSL."""
    algorithm = _HASHES.get(hash_obj.name.lower())
    if algorithm is None:
        return _pure_python_rsa_sign(hash_obj, private_key)
    key = _openssl_key(private_key["modulus"], private_key["publicExponent"], private_key["privateExponent"],
                       private_key["prime1"], private_key["prime2"], private_key["exponent1"],
                       private_key["exponent2"], private_key["coefficient"])
    return key.sign(hash_obj.digest(), padding.PKCS1v15(), Prehashed(algorithm()))


# dkim.sign() looks the primitive up in its module namespace at call time.
dkim.RSASSA_PKCS1_v1_5_sign = openssl_rsa_sign


def sign(data: bytes, algorithm: str, domain: str, selector: str, private_key: str) -> bytes:
    """The message with a DKIM-Signature header prepended (unchanged for algorithm 'none')."""
    if algorithm == "none" or not private_key:
        return data
    header = dkim.sign(
        data, selector.encode(), domain.encode(), private_key.encode(),
        signature_algorithm=b"ed25519-sha256" if algorithm == "ed25519" else b"rsa-sha256",
        include_headers=SIGNED_HEADERS, canonicalize=(b"relaxed", b"relaxed"),
    )
    return header + data

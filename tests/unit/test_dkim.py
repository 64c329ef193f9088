import dkim

from altcraft.domain.senders import dns_record, generate_dkim_key
from altcraft.mta import dkim as signer

MESSAGE = (b"From: News <news@shop.example>\r\nTo: anna@example.com\r\nSubject: Hi\r\n"
           b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1.1.ab@shop.example>\r\n\r\n"
           + b"Hello there\r\n" * 50)


def _dns(record: str):
    return lambda name, timeout=5: record.encode()


def test_openssl_signature_is_byte_identical_to_dkimpys_own():
    pem, _ = generate_dkim_key("rsa")
    parsed = dkim.crypto.parse_pem_private_key(pem.encode())
    import hashlib
    for algorithm in ("sha256", "sha1"):
        digest = hashlib.new(algorithm, b"some canonicalised headers")
        assert signer.openssl_rsa_sign(digest.copy(), parsed) == signer._pure_python_rsa_sign(digest.copy(), parsed)


def test_signed_messages_verify_with_dkimpy():
    for algorithm in ("rsa", "ed25519"):
        key, record = generate_dkim_key(algorithm)
        signed = signer.sign(MESSAGE, algorithm, "shop.example", "ak", key)
        assert signed.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa" if algorithm == "rsa" else b"ed25519"))
        assert dkim.verify(signed, dnsfunc=_dns(record))
        assert not dkim.verify(signed.replace(b"Hello there", b"Hello here!", 1), dnsfunc=_dns(record))
    pem, record = generate_dkim_key("rsa")
    assert dns_record(pem) == record
    assert signer.sign(MESSAGE, "none", "shop.example", "ak", "") == MESSAGE

import email
import email.policy

import pytest

from altcraft import config as cfg
from altcraft.domain.message import Envelope, render
from altcraft.domain.templates import compile_parts
from altcraft.mta import rewrite

ENVELOPE = Envelope(1, 2, 3, 4, 1, "news@shop.example", "Shop", "", "https://trk.example", "k" * 40)
PROFILE = {"_id": "cd" * 16, "data": {"email": "ivan@example.com", "first_name": "Иван"}}


def _message(html: str = "<p>Здравствуйте, {{ first_name }}! café</p>") -> bytes:
    compiled = compile_parts({"subject": "Hi", "html": html, "text": "Hi {{ first_name }}\nline two"})
    return render(compiled, ENVELOPE, PROFILE).data


def _parts(data: bytes) -> dict[str, tuple[str, bytes]]:
    message = email.message_from_bytes(data, policy=email.policy.SMTP)
    return {p.get_content_type(): (p["Content-Transfer-Encoding"], p.get_payload(decode=True).replace(b"\r\n", b"\n"))
            for p in message.walk() if not p.is_multipart()}


def test_nothing_asked_nothing_changed():
    data = _message()
    assert rewrite.apply(data) is data


@pytest.mark.parametrize("encoding", ["quoted-printable", "base64", "8bit"])
def test_text_parts_are_reencoded_and_decode_to_the_same_text(encoding):
    original = _message()
    changed = rewrite.apply(original, encoding)
    before, after = _parts(original), _parts(changed)
    assert set(after) == {"text/plain", "text/html"}
    for ctype, (cte, body) in after.items():
        assert cte == encoding
        assert body == before[ctype][1]
    assert b"\r\n" in changed and b"\n" not in changed.replace(b"\r\n", b"")
    if encoding == "8bit":
        assert "Здравствуйте".encode() in changed  # raw UTF-8 on the wire
    else:
        assert changed.isascii()


def test_8bit_is_not_used_for_a_line_longer_than_smtp_allows():
    changed = rewrite.apply(_message("<p>" + "é" * 600 + "</p>"), "8bit")
    parts = _parts(changed)
    assert parts["text/html"][0] == "quoted-printable" and parts["text/plain"][0] == "8bit"
    assert all(len(line) <= 998 for line in changed.split(b"\r\n"))


def test_header_overrides_set_replace_and_remove():
    original = _message()
    changed = rewrite.apply(original, "", {"X-Mailer": "Altcraft", "List-Unsubscribe-Post": "",
                                           "Subject": "Replaced"})
    message = email.message_from_bytes(changed, policy=email.policy.SMTP)
    assert message["X-Mailer"] == "Altcraft" and message["Subject"] == "Replaced"
    assert message["List-Unsubscribe-Post"] is None
    assert message.get_all("Subject") == ["Replaced"]
    assert _parts(changed) == _parts(original)


@pytest.mark.parametrize("headers, fragment", [
    ({"From": "x@y.z"}, "From: may not be overridden"),
    ({"Bad Name": "x"}, "not a header name"),
    ({"X-A": "one\r\nBcc: evil@x.y"}, "X-A: the value must be one line of ASCII"),
])
def test_isp_header_overrides_are_checked_in_main_json(headers, fragment):
    with pytest.raises(ValueError) as exc:
        cfg.StrategySettings(DOMAINS=["a.test"], HEADERS=headers)
    assert fragment in str(exc.value)

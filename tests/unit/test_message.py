import email

import pytest

from altcraft.domain import tracking
from altcraft.domain.errors import Invalid
from altcraft.domain.message import Envelope, render, rewrite_links
from altcraft.domain.templates import Templates, compile_parts, render_parts

KEY = "t" * 40
ENVELOPE = Envelope(1, 2, 3, 4, 1, "news@shop.example", "Shöp", "help@shop.example",
                    "https://trk.example", KEY)
PROFILE = {"_id": "ab" * 16, "data": {"email": "anna@example.com", "first_name": "Anna"}}


def test_links_are_rewritten_and_others_left_alone():
    html = ('<a href="https://a.example/x?p=1&amp;q=2">A</a><a HREF=\'http://b.example\'>B</a>'
            '<a href="mailto:x@y.z">M</a><a href="#top">T</a><a href="https://a.example/x?p=1&amp;q=2">A2</a>')
    seen = []
    out = rewrite_links(html, lambda i, u: seen.append((i, u)) or f"https://trk/{i}")
    assert seen == [(1, "https://a.example/x?p=1&q=2"), (2, "http://b.example"), (1, "https://a.example/x?p=1&q=2")]
    assert 'href="mailto:x@y.z"' in out and 'href="#top"' in out and out.count("https://trk/1") == 2


def test_rendered_message():
    compiled = compile_parts({"subject": "Привет, {{ first_name }}", "html": "<html><body><a href='https://s.example/'>go</a>"
                              "{{ nickname | default('friend') }}</body></html>", "text": "Hi {{ first_name }}"})
    rendered = render(compiled, ENVELOPE, PROFILE)
    message = email.message_from_bytes(rendered.data)
    assert rendered.rcpt == "anna@example.com" and rendered.message_id == f"4.1.{'ab' * 16}"
    assert str(email.header.make_header(email.header.decode_header(message["Subject"]))) == "Привет, Anna"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    assert tracking.verify(unsubscribe.rsplit("/", 1)[1], KEY).kind == "unsubscribe"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    assert "friend" in html and "Unsubscribe" in html and ".gif" in html and "https://s.example/" not in html
    assert text.startswith("Hi Anna") and unsubscribe in text
    assert b"\r\n" in rendered.data and b"\n\n" not in rendered.data.replace(b"\r\n", b"")


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ profile.__class__.__init__.__globals__ }}",
    "{% for x in range(10**9) %}{% endfor %}",
])
def test_the_sandbox_refuses_python_internals(source):
    compiled = compile_parts({"subject": "s", "html": source})
    with pytest.raises(Invalid):
        render_parts(compiled, {"profile": {}})


def test_template_syntax_errors_name_the_part():
    with pytest.raises(Invalid) as exc:
        compile_parts({"subject": "ok", "html": "{% if %}"})
    assert exc.value.field == "html" and "line 1" in exc.value.reason
    assert Templates  # the store side is tested against MongoDB in the integration tests

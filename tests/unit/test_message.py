import email
import re

import pytest

from altcraft.domain import tracking
from altcraft.domain.errors import Invalid
from altcraft.domain.message import Envelope, render, render_webversion, rewrite_links, webversion_link_id
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


def _html_of(rendered) -> str:
    message = email.message_from_bytes(rendered.data)
    return next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()


WEB_TEMPLATE = {"subject": "News for {{ first_name }}",
                "html": "<html><body><p>Hello {{ first_name }}</p><a href='https://s.example/a?x=1&amp;y=2'>A</a>"
                        "<a href='https://s.example/b'>B</a><a href='{{ manage_url }}'>manage</a></body></html>",
                "text": "Hi {{ first_name }}, read it online: {{ webversion_url }}"}


def test_the_webversion_url_names_the_message_and_its_launch():
    envelope = Envelope(1, 2, 3, 4, 7, "news@shop.example", tracking_base="https://trk.example", tracking_key=KEY)
    rendered = render(compile_parts(WEB_TEMPLATE), envelope, PROFILE)
    text = next(p for p in email.message_from_bytes(rendered.data).walk()
                if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    url = text.split("read it online: ", 1)[1].split()[0]
    assert url.startswith("https://trk.example/w/")
    link = tracking.verify(url.rsplit("/", 1)[1], KEY)
    assert (link.kind, link.account_id, link.db_id, link.resource_id, link.campaign_id, link.profile_id,
            link.link_id, link.url) == ("webversion", 1, 2, 3, 4, "ab" * 16, 7, "")
    assert [webversion_link_id(n) for n in (0, 1, 65535, 65536)] == [0, 1, 65535, 0]


def test_the_web_version_is_the_html_part_of_the_email_without_the_pixel():
    compiled = compile_parts(WEB_TEMPLATE)
    rendered = render(compiled, ENVELOPE, PROFILE)
    html = _html_of(rendered)
    text = rendered.data.decode("ascii")
    web_url = next(p for p in email.message_from_bytes(rendered.data).walk()
                   if p.get_content_type() == "text/plain").get_payload(decode=True).decode().split(": ", 1)[1].split()[0]
    link = tracking.verify(web_url.rsplit("/", 1)[1], KEY)
    # what trkaction knows: the token only (no sender), rendered at the token's issue time
    envelope = Envelope(link.account_id, link.db_id, link.resource_id, link.campaign_id, link.link_id, "",
                        tracking_base="https://trk.example", tracking_key=KEY)
    page = render_webversion(compiled, envelope, PROFILE, link.issued)
    pixel = re.search(r'<img src="[^"]+/o/[^"]+\.gif"[^>]*>', html)
    assert pixel is not None and "/o/" not in page and "List-Unsubscribe" in text
    assert page == html.replace(pixel.group(0), "")  # every link is the e-mail's own signed link
    clicks = re.findall(r"""href=['"]https://trk\.example/c/([^'"]+)['"]""", page)
    manage = tracking.url("https://trk.example", tracking.Link("manage", 1, 2, 3, 4, "ab" * 16, issued=link.issued), KEY)
    assert [tracking.verify(c, KEY).url for c in clicks] == ["https://s.example/a?x=1&y=2", "https://s.example/b",
                                                             manage]
    assert "Hello Anna" in page and "Unsubscribe" in page  # the template has no unsubscribe link: added


def test_a_text_only_message_is_shown_escaped():
    compiled = compile_parts({"subject": "<S>", "text": "Hi {{ first_name }} <b>&</b> {{ unsubscribe_url }}"})
    page = render_webversion(compiled, ENVELOPE, {"_id": "cd" * 16, "data": {"first_name": "<Ann>"}}, 1_800_000_000)
    assert "<title>&lt;S&gt;</title>" in page and "Hi &lt;Ann&gt; &lt;b&gt;&amp;&lt;/b&gt; https://trk.example/u/" in page
    assert "<b>" not in page and page.count("/u/") == 1 and "/o/" not in page


def test_a_test_send_is_the_profiles_message_to_another_address_marked_with_an_id_of_its_own():
    from altcraft.domain.message import TEST_MARK, render_test
    compiled = compile_parts({"subject": "Hi {{ first_name }}", "html": "<p>{{ first_name }}</p>", "text": ""})
    first = render_test(compiled, ENVELOPE, PROFILE, "qa@shop.example")
    second = render_test(compiled, ENVELOPE, PROFILE, "qa@shop.example")
    message = email.message_from_bytes(first.data)
    assert first.rcpt == "qa@shop.example" and message["To"] == "qa@shop.example"
    assert message["Subject"] == f"{TEST_MARK} Hi Anna"
    assert "<p>Anna</p>" in message.get_payload(decode=True).decode()  # the profile's personalisation
    assert first.message_id != second.message_id and first.message_id.startswith("test.")

import pytest

from altcraft.domain.tracking import InvalidToken, Link, sign, verify

KEY = "k" * 40
LINK = Link("click", account_id=3, db_id=1, resource_id=9, campaign_id=123456789012,
            profile_id="0123456789abcdef0123456789abcdef", link_id=4, url="https://shop.example/x?a=1&b=ü")


def test_round_trip():
    token = sign(LINK, KEY, now=1_800_000_000)
    assert verify(token, KEY, now=1_800_000_100) == Link(**{**LINK.__dict__, "issued": 1_800_000_000})


def test_every_single_character_change_is_rejected():
    token = sign(LINK, KEY, now=1_800_000_000)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(token)):
        replacement = next(c for c in alphabet if c != token[position])
        tampered = token[:position] + replacement + token[position + 1:]
        with pytest.raises(InvalidToken):
            verify(tampered, KEY, now=1_800_000_100)


def test_truncated_wrong_key_and_expired():
    token = sign(LINK, KEY, now=1_800_000_000)
    for bad in (token[:-1], token[:20], "", "!!!", token + "A", token + "!", token[:10] + "=" + token[10:]):
        with pytest.raises(InvalidToken):
            verify(bad, KEY, now=1_800_000_100)
    with pytest.raises(InvalidToken):
        verify(token, "x" * 40, now=1_800_000_100)
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, KEY, ttl=3600, now=1_800_000_000 + 3601)


def test_web_version_tokens_carry_the_launch_and_the_format_stays_put():
    link = Link("webversion", 3, 1, 9, 42, "0123456789abcdef0123456789abcdef", link_id=7, issued=1_800_000_000)
    token = sign(link, KEY)
    assert verify(token, KEY, now=1_800_000_100) == link
    # signed by the tracking.py of commit 463a6e6: a changed layout would orphan sent links
    assert token == "AQMAAAADAAAAAQAAAAkAAAAAAAAAKgEjRWeJq83vASNFZ4mrze8AB2tJ0gBOBFoznTjfXL98DhrZ5XNW"

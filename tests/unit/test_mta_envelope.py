"""The MTA envelope: what a producer writes is what akmtad reads."""

import pytest

from altcraft.mta import envelope


def test_headers_round_trip():
    sent = envelope.MtaEnvelope(sender_id=7, rcpt="a@b.example", account_id=1, campaign_id=3, launch=2,
                                profile_id="p1", db_id=4, resource_id=5)
    assert envelope.MtaEnvelope.from_headers(sent.headers()) == sent


def test_headers_as_amqp_may_deliver_them():
    # AMQP tables may carry strings as bytes and numbers as strings from other producers
    read = envelope.MtaEnvelope.from_headers({"sender_id": "7", "rcpt": b"a@b.example", "profile_id": b"p1"})
    assert (read.sender_id, read.rcpt, read.profile_id, read.campaign_id) == (7, "a@b.example", "p1", 0)


@pytest.mark.parametrize("headers,why", [
    ({"rcpt": "a@b"}, "header sender_id: missing"),
    ({"sender_id": "x", "rcpt": "a@b"}, "header sender_id: not an integer"),
    ({"sender_id": True, "rcpt": "a@b"}, "header sender_id: not an integer"),
    ({"sender_id": 1}, "header rcpt: missing"),
    ({"sender_id": 1, "rcpt": "a@b", "launch": "two"}, "header launch: not an integer"),
])
def test_bad_headers_name_the_header(headers, why):
    with pytest.raises(envelope.BadEnvelope, match=why):
        envelope.MtaEnvelope.from_headers(headers)


def test_key_families():
    assert envelope.queues(3) == (("akmta_prior_3", True), ("akmta_3", False))
    assert envelope.done_key("m@x") == "ak:mta:done:m@x"
    assert envelope.launch_dedup_key(1, 2, "p") == "ak:camp:1:2:p"

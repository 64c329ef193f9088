"""The audience rule (domain/audience.py) with a fake stop list and a fake launch record."""

from collections.abc import Iterable, Sequence

from altcraft.domain.audience import choose

RESOURCE = 7


class FakeStopList:
    def __init__(self, *contacts: str):
        self.contacts = set(contacts)
        self.asked: list[list[str]] = []

    def blocked(self, contacts: Iterable[str]) -> set[str]:
        items = list(contacts)
        self.asked.append(items)
        return {c for c in items if c in self.contacts}


class FakeRecord:
    def __init__(self, *handled: str):
        self.ids = set(handled)
        self.asked: list[list[str]] = []

    def handled(self, profile_ids: Sequence[str]) -> list[bool]:
        self.asked.append(list(profile_ids))
        return [p in self.ids for p in profile_ids]


def profile(pid: str, email: str | None = None, *subscriptions: tuple[int, str, str]) -> dict:
    subs = [{"resource_id": r, "channel": c, "status": s} for r, c, s in subscriptions] or \
           [{"resource_id": RESOURCE, "channel": "email", "status": "subscribed"}]
    data = {"email": email} if email is not None else {"phone": "+79160000000"}
    return {"_id": pid, "data": data, "subscriptions": subs}


def ids(audience) -> list[str]:
    return [p["_id"] for p in audience.profiles]


def test_everyone_eligible_is_chosen_in_the_batch_order():
    batch = [profile(f"p{i}", f"u{i}@x.test") for i in (3, 1, 2)]
    chosen = choose(batch, RESOURCE, stoplist=FakeStopList(), handled=FakeRecord())
    assert (ids(chosen), chosen.skipped, chosen.duplicates) == (["p3", "p1", "p2"], 0, 0)


def test_a_profile_without_an_email_is_skipped():
    batch = [profile("a", "a@x.test"), profile("b"), profile("c", "")]
    chosen = choose(batch, RESOURCE, stoplist=FakeStopList(), handled=FakeRecord())
    assert (ids(chosen), chosen.skipped, chosen.duplicates) == (["a"], 2, 0)


def test_only_a_subscription_to_this_resource_on_email_counts():
    batch = [
        profile("yes", "y@x.test"),
        profile("other-resource", "r@x.test", (RESOURCE + 1, "email", "subscribed")),
        profile("sms-only", "s@x.test", (RESOURCE, "sms", "subscribed")),
        profile("unsubscribed", "u@x.test", (RESOURCE, "email", "unsubscribed")),
        profile("bounced", "b@x.test", (RESOURCE, "email", "hard_bounced")),
        profile("suspended", "p@x.test", (RESOURCE, "email", "suspended")),
        {"_id": "none", "data": {"email": "n@x.test"}},
    ]
    chosen = choose(batch, RESOURCE, stoplist=FakeStopList(), handled=FakeRecord())
    assert (ids(chosen), chosen.skipped, chosen.duplicates) == (["yes"], 6, 0)


def test_an_address_on_the_stop_list_is_skipped():
    stoplist = FakeStopList("b@x.test")
    batch = [profile("a", "a@x.test"), profile("b", "b@x.test"), profile("c", "c@x.test")]
    chosen = choose(batch, RESOURCE, stoplist=stoplist, handled=FakeRecord())
    assert (ids(chosen), chosen.skipped, chosen.duplicates) == (["a", "c"], 1, 0)


def test_a_profile_handled_in_this_launch_is_a_duplicate_not_a_skip():
    batch = [profile("a", "a@x.test"), profile("b", "b@x.test"), profile("c", "c@x.test")]
    chosen = choose(batch, RESOURCE, stoplist=FakeStopList(), handled=FakeRecord("a", "c"))
    assert (ids(chosen), chosen.skipped, chosen.duplicates) == (["b"], 0, 2)


def test_the_conditions_together_and_what_each_collaborator_is_asked():
    stoplist, record = FakeStopList("stop@x.test"), FakeRecord("seen")
    batch = [profile("seen", "seen@x.test"), profile("no-email"), profile("stop", "stop@x.test"),
             profile("unsub", "u@x.test", (RESOURCE, "email", "unsubscribed")), profile("ok", "ok@x.test")]
    chosen = choose(batch, RESOURCE, stoplist=stoplist, handled=record)
    assert (ids(chosen), chosen.skipped, chosen.duplicates) == (["ok"], 3, 1)
    # one look-up each per batch; the stop list is asked only about subscribed addresses, the
    # record only about profiles that passed the stop list
    assert stoplist.asked == [["seen@x.test", "stop@x.test", "ok@x.test"]]
    assert record.asked == [["seen", "ok"]]


def test_an_empty_batch_asks_nothing():
    stoplist, record = FakeStopList(), FakeRecord()
    chosen = choose([], RESOURCE, stoplist=stoplist, handled=record)
    assert (ids(chosen), chosen.skipped, chosen.duplicates) == ([], 0, 0)
    assert stoplist.asked == [] and record.asked == []

"""The ordering rule of subscription changes (domain/subscriptions.py) and its one writer,
Profiles.set_subscription, over a fake collection."""

from datetime import datetime, timedelta, timezone

import pytest

from altcraft.domain.databases import ProfileDatabase
from altcraft.domain.errors import Conflict, Invalid
from altcraft.domain.profiles import Profiles
from altcraft.domain.subscriptions import change

T = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def stored(status: str, at: datetime = T, resource: int = 1, channel: str = "email") -> dict:
    return {"resource_id": resource, "channel": channel, "status": status, "changed_at": at}


def statuses(subscriptions) -> dict:
    return {(s["resource_id"], s["channel"]): (s["status"], s["changed_at"]) for s in subscriptions}


# -- the rule ---------------------------------------------------------------------------
def test_a_first_subscription_is_added():
    decided = change([], 1, "email", "subscribed", T)
    assert decided.outcome == "changed"
    assert statuses(decided.subscriptions) == {(1, "email"): ("subscribed", T)}


def test_a_newer_change_applies():
    decided = change([stored("subscribed")], 1, "email", "unsubscribed", T + timedelta(seconds=1))
    assert decided.outcome == "changed"
    assert statuses(decided.subscriptions) == {(1, "email"): ("unsubscribed", T + timedelta(seconds=1))}


def test_an_older_change_is_ignored():
    decided = change([stored("subscribed")], 1, "email", "unsubscribed", T - timedelta(milliseconds=1))
    assert (decided.outcome, decided.subscriptions) == ("stale", None)


def test_a_change_as_new_as_the_stored_one_applies():
    decided = change([stored("subscribed")], 1, "email", "unsubscribed", T)
    assert decided.outcome == "changed"
    assert statuses(decided.subscriptions) == {(1, "email"): ("unsubscribed", T)}


def test_the_same_status_later_moves_changed_at_so_an_older_change_cannot_undo_it():
    later = T + timedelta(seconds=5)
    decided = change([stored("subscribed")], 1, "email", "subscribed", later)
    assert decided.outcome == "unchanged"
    assert statuses(decided.subscriptions) == {(1, "email"): ("subscribed", later)}
    between = T + timedelta(seconds=2)
    assert change(decided.subscriptions, 1, "email", "unsubscribed", between).outcome == "stale"


def test_the_same_change_applied_again_writes_nothing():
    assert change([stored("unsubscribed")], 1, "email", "unsubscribed", T).subscriptions is None
    older = change([stored("unsubscribed")], 1, "email", "unsubscribed", T - timedelta(seconds=1))
    assert (older.outcome, older.subscriptions) == ("unchanged", None)


def test_a_subscribe_never_lifts_a_hard_bounce():
    later = T + timedelta(days=30)
    decided = change([stored("hard_bounced")], 1, "email", "subscribed", later)
    assert (decided.outcome, decided.subscriptions) == ("stale", None)
    assert decided.current["status"] == "hard_bounced"


def test_a_later_unsubscribe_does_replace_a_hard_bounce():
    # as the effects always did: only a subscribe is refused; unsubscribed keeps the address unmailed
    decided = change([stored("hard_bounced")], 1, "email", "unsubscribed", T + timedelta(seconds=1))
    assert decided.outcome == "changed"


def test_other_subscriptions_are_kept():
    others = [stored("subscribed", resource=2), stored("unsubscribed", channel="sms")]
    decided = change(others + [stored("subscribed")], 1, "email", "unsubscribed", T + timedelta(seconds=1))
    assert statuses(decided.subscriptions) == {
        (2, "email"): ("subscribed", T), (1, "sms"): ("unsubscribed", T),
        (1, "email"): ("unsubscribed", T + timedelta(seconds=1))}


# -- the writer -------------------------------------------------------------------------
class Result:
    def __init__(self, matched: int):
        self.matched_count = matched


class FakeCollection:
    """find_one by _id and the optimistic update_one on (_id, updated_at); `interfere` runs
    once before the first update, like another writer."""

    def __init__(self, docs: list[dict]):
        self.docs = {d["_id"]: d for d in docs}
        self.interfere = None
        self.updates = 0

    def find_one(self, query, projection=None):
        doc = self.docs.get(query["_id"])
        return None if doc is None else {**doc, "subscriptions": [dict(s) for s in doc["subscriptions"]]}

    def update_one(self, query, update):
        if self.interfere:
            self.interfere, interfere = None, self.interfere
            interfere(self.docs[query["_id"]])
        self.updates += 1
        doc = self.docs.get(query["_id"])
        if doc is None or ("updated_at" in query and doc.get("updated_at") != query["updated_at"]):
            return Result(0)
        for path, value in update["$set"].items():
            *parents, name = path.split(".")
            target = doc
            for parent in parents:
                target = target.setdefault(parent, {})
            target[name] = value
        return Result(1)


def writer(*docs: dict) -> tuple[Profiles, FakeCollection]:
    database = ProfileDatabase(1, "people", "email")
    collection = FakeCollection(list(docs))
    return Profiles({database.collection_name: collection}, database), collection


def profile(*subscriptions: dict) -> dict:
    return {"_id": "p1", "data": {"email": "a@x.test"}, "subscriptions": list(subscriptions), "updated_at": T}


def test_the_writer_applies_the_rule():
    profiles, collection = writer(profile(stored("hard_bounced")))
    assert profiles.set_subscription("p1", 1, "email", "subscribed", T + timedelta(days=1)) == "stale"
    assert collection.updates == 0
    assert profiles.set_subscription("p1", 1, "email", "unsubscribed", T - timedelta(days=1)) == "stale"
    assert profiles.set_subscription("p1", 1, "email", "unsubscribed", T) == "changed"
    assert statuses(collection.docs["p1"]["subscriptions"]) == {(1, "email"): ("unsubscribed", T)}


def test_the_writer_keeps_milliseconds_as_the_store_does():
    # a change at T + 0.4 ms is the stored change at T applied again: Mongo keeps milliseconds
    profiles, collection = writer(profile(stored("unsubscribed")))
    assert profiles.set_subscription("p1", 1, "email", "unsubscribed", T + timedelta(microseconds=400)) == "unchanged"
    assert collection.updates == 0


def test_the_writer_without_a_time_means_now():
    profiles, collection = writer(profile(stored("subscribed")))
    assert profiles.set_subscription("p1", 1, "email", "unsubscribed") == "changed"
    assert collection.docs["p1"]["subscriptions"][0]["changed_at"] > T


def test_the_writer_rereads_when_another_writer_changed_the_profile():
    profiles, collection = writer(profile(stored("subscribed"), stored("subscribed", resource=2)))

    def other_writer(doc):  # unsubscribes resource 2 between our read and our write
        doc["subscriptions"] = [stored("subscribed"), stored("unsubscribed", T + timedelta(seconds=1), resource=2)]
        doc["updated_at"] = T + timedelta(seconds=1)

    collection.interfere = other_writer
    assert profiles.set_subscription("p1", 1, "email", "unsubscribed", T + timedelta(seconds=2)) == "changed"
    assert collection.updates == 2
    assert statuses(collection.docs["p1"]["subscriptions"]) == {
        (2, "email"): ("unsubscribed", T + timedelta(seconds=1)), (1, "email"): ("unsubscribed", T + timedelta(seconds=2))}


def test_the_writer_gives_up_on_a_profile_that_keeps_changing():
    profiles, collection = writer(profile(stored("subscribed")))
    collection.update_one = lambda query, update: Result(0)
    with pytest.raises(Conflict):
        profiles.set_subscription("p1", 1, "email", "unsubscribed", T + timedelta(seconds=1))


def test_the_writer_names_a_bad_status_or_channel_and_a_missing_profile():
    profiles, _ = writer(profile())
    with pytest.raises(Invalid, match="status"):
        profiles.set_subscription("p1", 1, "email", "gone")
    with pytest.raises(Invalid, match="channel"):
        profiles.set_subscription("p1", 1, "fax", "subscribed")
    assert profiles.set_subscription("nobody", 1, "email", "subscribed") == "no-profile"


def test_an_update_sets_each_subscription_given_by_the_rule_and_keeps_the_others():
    profiles, collection = writer(profile(stored("subscribed"), stored("subscribed", resource=2)))
    updated = profiles.update({"city": "Kazan"}, profile_id="p1",
                              subscriptions=[{"resource_id": 1, "channel": "email", "status": "unsubscribed"}])
    assert updated["data"]["city"] == "Kazan"
    assert {(s["resource_id"], s["status"]) for s in updated["subscriptions"]} == {(1, "unsubscribed"), (2, "subscribed")}


def test_an_update_does_not_lift_a_hard_bounce_and_writes_nothing():
    profiles, collection = writer(profile(stored("hard_bounced")))
    with pytest.raises(Conflict, match=r"subscriptions\[0\]: resource 1 channel email is hard_bounced"):
        profiles.update({"city": "Kazan"}, profile_id="p1",
                        subscriptions=[{"resource_id": 1, "channel": "email", "status": "subscribed"}])
    assert collection.updates == 0 and "city" not in collection.docs["p1"]["data"]

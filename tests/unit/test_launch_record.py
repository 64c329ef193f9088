"""The campaign launch's record of handled profiles: the launch de-duplication keys of the MTA
envelope, read in one MGET, set with their TTL in one pipeline."""

from altcraft.mta.envelope import launch_dedup_key
from altcraft.services.campaign import LaunchRecord


class FakeRedis:
    def __init__(self):
        self.values: dict[str, tuple[object, int]] = {}
        self.round_trips = 0

    def mget(self, keys):
        self.round_trips += 1
        return [self.values.get(k, (None, 0))[0] for k in keys]

    def pipeline(self, transaction=True):
        client, queued = self, []

        class Pipe:
            def set(self, key, value, ex=None):
                queued.append((key, value, ex))

            def execute(self):
                client.round_trips += 1
                for key, value, ex in queued:
                    client.values[key] = (value, ex)
        return Pipe()


def test_marked_profiles_are_handled_in_this_launch_only():
    redis = FakeRedis()
    record = LaunchRecord(redis, campaign_id=3, launch=2, ttl=60)
    assert record.handled(["a", "b"]) == [False, False]
    record.mark(["b"])
    assert record.handled(["a", "b"]) == [False, True]
    assert redis.values == {launch_dedup_key(3, 2, "b"): (1, 60)}
    assert LaunchRecord(redis, campaign_id=3, launch=3).handled(["b"]) == [False]


def test_nothing_to_ask_or_mark_is_no_round_trip():
    redis = FakeRedis()
    record = LaunchRecord(redis, campaign_id=3, launch=2)
    assert record.handled([]) == []
    record.mark([])
    assert redis.round_trips == 0

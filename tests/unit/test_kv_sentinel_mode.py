"""main.json's KVCluster in MODE sentinel: what it needs, and each problem named by its key."""

import asyncio

import pytest
import redis

from altcraft import config as cfg
from altcraft.stores import kv

SECRET = "s" * 40


def errors_of(**sections) -> dict[str, str]:
    config, report = cfg.validate({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET,
                                   "TRACKING_CRYPT_KEY": SECRET, **sections})
    assert (config is None) == bool(report.errors)
    return {issue.key: issue.message for issue in report.errors}


SENTINELS = [{"HOST": "10.0.4.11"}, {"HOST": "10.0.4.12"}, {"HOST": "10.0.4.13", "PORT": 26380}]


def test_sentinel_mode_with_sentinels_and_a_name_is_valid():
    section = {"MODE": "sentinel", "SENTINELS": SENTINELS, "SENTINEL_MASTER": "altcraft-kv"}
    assert errors_of(CAMP_DUPLICATESDB=section) == {}
    config, _ = cfg.validate({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET,
                              "TRACKING_CRYPT_KEY": SECRET, "CAMP_DUPLICATESDB": section})
    settings = config.CAMP_DUPLICATESDB
    assert [n.PORT for n in settings.SENTINELS] == [26379, 26379, 26380]
    assert settings.FAILOVER_WAIT_SECONDS == 30.0
    assert kv.sentinel_target(settings) == "sentinel altcraft-kv@10.0.4.11:26379,10.0.4.12:26379,10.0.4.13:26380"


def test_sentinel_mode_names_each_missing_key():
    errors = errors_of(PROCWORKFLOW_DISTRIBUTED_CACHE_DB={"MODE": "sentinel"})
    assert set(errors) == {"PROCWORKFLOW_DISTRIBUTED_CACHE_DB.SENTINELS",
                           "PROCWORKFLOW_DISTRIBUTED_CACHE_DB.SENTINEL_MASTER"}
    assert errors["PROCWORKFLOW_DISTRIBUTED_CACHE_DB.SENTINELS"].startswith("missing")


def test_sentinel_keys_without_sentinel_mode_are_an_error():
    errors = errors_of(CAMP_DUPLICATESDB={"SENTINELS": SENTINELS, "SENTINEL_MASTER": "altcraft-kv"})
    assert list(errors) == ["CAMP_DUPLICATESDB.MODE"]


def test_sentinel_node_and_name_are_checked():
    errors = errors_of(CAMP_DUPLICATESDB={"MODE": "sentinel", "SENTINEL_MASTER": "two words",
                                          "SENTINELS": [{"HOST": "a", "PORT": 0}]})
    assert errors == {"CAMP_DUPLICATESDB.SENTINELS[0].PORT": "not a TCP port: 0 (expected 1-65535)"}
    errors = errors_of(CAMP_DUPLICATESDB={"MODE": "sentinel", "SENTINEL_MASTER": "two words",
                                          "SENTINELS": [{"HOST": "a"}, {"HOST": "a"}]})
    assert set(errors) == {"CAMP_DUPLICATESDB.SENTINEL_MASTER", "CAMP_DUPLICATESDB.SENTINELS"}
    assert "twice" in errors["CAMP_DUPLICATESDB.SENTINELS"]


def test_failover_wait_is_bounded():
    errors = errors_of(CAMP_DUPLICATESDB={"MODE": "sentinel", "SENTINEL_MASTER": "m", "SENTINELS": SENTINELS,
                                          "FAILOVER_WAIT_SECONDS": 0.0})
    assert list(errors) == ["CAMP_DUPLICATESDB.FAILOVER_WAIT_SECONDS"]


def test_failover_retry_repeats_a_command_until_it_succeeds():
    attempts, failed = [], []

    def do():
        attempts.append(1)
        if len(attempts) < 4:
            raise redis.ConnectionError("primary gone")
        return "OK"

    assert kv._FailoverRetry(5.0).call_with_retry(do, failed.append) == "OK"
    assert len(attempts) == 4 and len(failed) == 3


def test_failover_retry_gives_up_after_its_deadline_and_passes_other_errors_at_once():
    failed = []

    def down():
        raise redis.ConnectionError("no primary")

    with pytest.raises(redis.ConnectionError):
        kv._FailoverRetry(0.2).call_with_retry(down, failed.append)
    assert len(failed) >= 2

    def wrong():
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):
        kv._FailoverRetry(5.0).call_with_retry(wrong, failed.append)


def test_async_failover_retry_repeats_a_command_until_it_succeeds():
    attempts = []

    async def do():
        attempts.append(1)
        if len(attempts) < 3:
            raise redis.ConnectionError("primary gone")
        return "OK"

    async def fail(error):
        return None

    assert asyncio.run(kv._AsyncFailoverRetry(5.0).call_with_retry(do, fail)) == "OK"
    assert len(attempts) == 3


def test_ssdb_roles_under_sentinel_need_the_redis_engine_and_names():
    sentinel = {"SENTINELS": SENTINELS, "MASTERS": {"HBSUPP": "altcraft-ssdb-hbsupp"}}
    assert errors_of(SSDB_ENGINE="redis", SSDB_SENTINEL=sentinel) == {}
    assert list(errors_of(SSDB_SENTINEL=sentinel)) == ["SSDB_SENTINEL.MASTERS"]  # engine ssdb
    errors = errors_of(SSDB_ENGINE="redis", SSDB_SENTINEL={"MASTERS": {"HBSUPP": "a b", "BOUNCES": "x"}})
    assert set(errors) == {"SSDB_SENTINEL.MASTERS.BOUNCES.[key]"}  # an unknown role is refused first
    errors = errors_of(SSDB_ENGINE="redis", SSDB_SENTINEL={"MASTERS": {"HBSUPP": "a b"}})
    assert set(errors) == {"SSDB_SENTINEL.SENTINELS", "SSDB_SENTINEL.MASTERS.HBSUPP"}


def test_an_ssdb_role_named_in_masters_is_a_sentinel_store_the_others_stay_put():
    config, _ = cfg.validate({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET,
                              "SSDB_ENGINE": "redis", "SSDB_HBSUPP_PASS": "pw",
                              "SSDB_SENTINEL": {"SENTINELS": SENTINELS, "SENTINEL_PASSWORD": "spw",
                                                "MASTERS": {"HBSUPP": "altcraft-ssdb-hbsupp"}}})
    hbsupp = config.ssdb_settings("hbsupp")
    assert (hbsupp.MODE, hbsupp.SENTINEL_MASTER, hbsupp.PASSWORD, hbsupp.SENTINEL_PASSWORD) == \
        ("sentinel", "altcraft-ssdb-hbsupp", "pw", "spw")
    stats = config.ssdb_settings("stats")
    assert (stats.MODE, stats.NODES[0].HOST, stats.NODES[0].PORT) == ("standalone", "127.0.0.1", 4440)

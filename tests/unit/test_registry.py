from altcraft import registry

# Every process of Altcraft's "Platform service monitoring" page (admin guide).
ALTCRAFT_MONITORED = {
    "adminwebcontrol",
    "akmtad",
    "api",
    "cookie_saver",
    "procactions",
    "proceventgen",
    "prochook",
    "procintegras",
    "procleadsaver",
    "procnotify",
    "procpixel",
    "procpush",
    "procresume",
    "procrpc",
    "procsenderev",
    "procsmsev",
    "procsmslisten",
    "proctask",
    "proctrigger",
    "procwebver",
    "procworkflow",
    "pywebcontrol",
    "stataggregator",
    "tariffcontroller",
    "trk_amazon_sns",
    "trkaction",
    "trkimage",
    "trkmandrill",
    "trkpush",
    "trkread",
    "trksms",
    "trkwebversion",
    "webcontrol",
}

# Processes of Altcraft's table that this platform deliberately does not keep, and why.
NOT_KEPT = {
    "adminwebcontrol": "kept as webadmin",
    "pywebcontrol": "proxy to a Go webcontrol; ours is Python already",
    "procnotify": "removed upstream (merged into proctask)",
    "tariffcontroller": "removed upstream (merged into proctask)",
}


def test_at_least_25_processes_with_unique_names_and_ports():
    names = [p.name for p in registry.PROCESSES]
    ports = [p.port for p in registry.PROCESSES if p.port]
    assert len(names) >= 25
    assert len(names) == len(set(names))
    assert len(ports) == len(set(ports)), "two processes share a default port"
    assert all(p.kind in ("http", "worker", "task") for p in registry.PROCESSES)
    assert all(p.port for p in registry.PROCESSES if p.kind == "http")


def test_altcraft_defaults_are_kept():
    expected = {"api": 8801, "webcontrol": 8082, "trkaction": 8095, "trkimage": 8096,
                "cookie_saver": 8099, "proctask": 8962, "procrpc": 8972, "procworkflow": 6060,
                "procsmslisten": 8803, "akmtad": 13444, "webadmin": 8081}
    assert {n: registry.get(n).port for n in expected} == expected
    assert all(p.host == "127.0.0.1" for p in registry.PROCESSES), "services bind to loopback by default"


def test_every_process_of_the_monitoring_page_is_kept_or_explained():
    missing = ALTCRAFT_MONITORED - registry.PROCESS_NAMES - set(NOT_KEPT)
    assert not missing, f"processes of Altcraft's table neither kept nor explained: {missing}"


def test_planned_processes_are_never_started_by_default():
    chosen = registry.select()
    assert chosen and all(p.runnable and p.supervised for p in chosen)
    assert all(not p.runnable for p in registry.PROCESSES if p.status == "planned")


def test_unknown_name_is_a_clear_error():
    try:
        registry.get("apii")
    except registry.UnknownProcess as exc:
        assert str(exc) == "unknown process 'apii' (see akd --processes)"
    else:
        raise AssertionError("no error for an unknown process")

"""Publish-confirm rate into a classic queue and into a quorum queue of the same three-node
RabbitMQ cluster, side by side in one run.

    .venv/bin/python -m bench.quorum [--messages 50000] [--size 512] [--window 2000] [--rounds 2]

A cluster of three nodes on loopback (tests/lib/rabbit_cluster.py, Debian's RabbitMQ, data in
a temporary directory, removed afterwards). Two queues are declared through the platform's
own declare helper (Broker.declare_durable_queue with RABBITMQ_QUEUE_TYPE classic, then
quorum), both from the first node, so each queue's leader (or the classic queue's only
copy) is on the node the publisher talks to. The publisher is the platform's confirm
window (altcraft.stores.amqp_publish, what the tracking processes use): persistent,
mandatory messages of SIZE bytes, up to WINDOW in flight, counted once the broker confirmed
them. A quorum queue confirms once a majority of its three members has the message on disk.
The rounds alternate classic and quorum so that a change of the machine's load hits both;
the best round of each is printed. The last line is `quorum_ratio=<quorum/classic>`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.quorum")

from altcraft import config as main_config  # noqa: E402
from altcraft.stores import broker  # noqa: E402
from altcraft.stores.amqp_publish import ConfirmWindow, Publication  # noqa: E402
from tests.lib.harness import SECRET  # noqa: E402
from tests.lib.rabbit_cluster import RabbitCluster  # noqa: E402


def _config(cluster: RabbitCluster, queue_type: str) -> main_config.MainConfig:
    data = {**cluster.main_json(), "RABBITMQ_QUEUE_TYPE": queue_type,
            "PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET}
    config, report = main_config.validate(data)
    if config is None:
        raise SystemExit(f"bench config invalid: {report.errors}")
    return config


def publish_rate(config: main_config.MainConfig, queue: str, messages: int, size: int, window: int) -> float:
    """Messages confirmed per second, from the first send to the last confirm."""
    body = b"x" * size
    channel: ConfirmWindow[Publication] = ConfirmWindow(broker.parameters(config, app="altcraft-bench"), "")
    try:
        sent = confirmed = 0
        started = time.monotonic()
        while confirmed < messages:
            room = min(window - channel.outstanding, messages - sent, 500)
            if room > 0:
                channel.send([Publication(queue, body, uuid.uuid4().hex) for _ in range(room)])
                sent += room
            finished = channel.poll(0 if room > 0 else 0.01)
            failed = [item for item in finished if not item.ok]
            if failed:
                raise SystemExit(f"{len(failed)} message(s) nacked or unroutable on {queue}")
            confirmed += len(finished)
            if time.monotonic() - started > 600:
                raise SystemExit(f"{queue}: {confirmed} of {messages} confirmed after 600 s")
        return messages / (time.monotonic() - started)
    finally:
        channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quorum", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000, help="messages per queue and round")
    parser.add_argument("--size", type=int, default=512, help="message body in bytes")
    parser.add_argument("--window", type=int, default=2_000, help="messages in flight")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each classic then quorum")
    args = parser.parse_args()

    print("starting a three-node RabbitMQ cluster on loopback ...", flush=True)
    with RabbitCluster() as cluster:
        queues = {}
        for kind in ("classic", "quorum"):
            config = _config(cluster, kind)
            name = f"bench.{kind}.{uuid.uuid4().hex[:6]}"
            with broker.Broker(config, app="altcraft-bench") as b:
                b.declare_durable_queue(name)
                b.channel.queue_purge(name)
            queues[kind] = (config, name)
        rates: dict[str, list[float]] = {"classic": [], "quorum": []}
        for round_no in range(1, args.rounds + 1):
            for kind, (config, name) in queues.items():
                rate = publish_rate(config, name, args.messages, args.size, args.window)
                rates[kind].append(rate)
                print(f"round {round_no}: {kind:<8} {rate:>10,.0f} messages/s", flush=True)
                with broker.Broker(config, app="altcraft-bench") as b:
                    b.channel.queue_purge(name)
        nodes = len(cluster.running())
    classic, quorum = max(rates["classic"]), max(rates["quorum"])
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {nodes} running nodes; "
          f"{args.messages:,} messages of {args.size} bytes per queue and round, window {args.window}")
    print(f"{'publish-confirm into':32}{'messages/s (best round)':>26}")
    print(f"{'classic queue':32}{classic:>26,.0f}")
    print(f"{'quorum queue (3 members)':32}{quorum:>26,.0f}")
    print(f"classic={classic:.0f} quorum={quorum:.0f} quorum_ratio={quorum / classic:.3f}")


if __name__ == "__main__":
    main()

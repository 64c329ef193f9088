"""Campaign sending throughput: our pipeline against Postfix, into the same sink, in one run.

    .venv/bin/python -m bench.send [--messages 1000000] [--dkim none]     (from the repository root)

Ours: a campaign to N subscribed profiles goes the whole way - the campaign worker renders
each message (personalisation, signed tracking links, pixel, List-Unsubscribe) and publishes
it to RabbitMQ, akmtad spools it with fsync, signs it (--dkim) and delivers it over SMTP
into Postfix's `smtp-sink` on loopback. Timed from the campaign's start to the sink's count
reaching N.
Reference: Postfix (Debian's package, configured as in docs/benchmarks.md) relays N messages
of the same size, injected by `smtp-source`, into the same sink. Timed from the injection's
start to the sink's count reaching N. With --dkim rsa|ed25519 Postfix signs too: Debian's
OpenDKIM as its milter, with a key of the same kind and size as ours (RSA 2048 or Ed25519),
relaxed/relaxed, and `milter_default_action = tempfail`, so a message OpenDKIM did not
handle is not delivered; one message sent through it first must arrive carrying a
DKIM-Signature of that algorithm, or the script stops.

Needs: the test harness (started if it is not running) and Debian's postfix, installed
(main_mailer_type: Local only) when missing and run as root, else the script stops naming it;
with --dkim, Debian's opendkim the same way.
It configures Postfix as a relay to the sink and stops it afterwards - run it on a bench
machine. Ends with `ratio=<ours/postfix>`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.send")

from bench import _config  # noqa: E402
from tests.lib import broker  # noqa: E402
from tests.lib.harness import make_config  # noqa: E402
from tests.lib.packages import require  # noqa: E402
from tests.lib.ports import free_port  # noqa: E402

# Postfix's own tools, all from Debian's postfix; "Local only" keeps it off the network
POSTFIX_TOOLS = ("smtp-sink", "smtp-source", "postfix", "postconf")
POSTFIX_PRESEED = ("postfix postfix/main_mailer_type select Local only",
                   "postfix postfix/mailname string bench.localdomain")

HTML = ("<html><body><h1>Hello {{ first_name | default('friend') }}!</h1>"
        + "<p>Our autumn collection is here. " * 20
        + "</p><p><a href='https://shop.example/sale?id=1'>Sale</a> "
          "<a href='https://shop.example/new'>New</a> <a href='https://shop.example/about'>About</a></p>"
          "</body></html>")


class SmtpSink:
    """Postfix's smtp-sink, counting messages (mesg=N on its output)."""

    def __init__(self, binary: str, port: int, workdir: Path):
        self.output = workdir / f"sink-{port}.txt"
        self.process = subprocess.Popen([binary, "-c", "-u", "root", f"127.0.0.1:{port}", "1000"],
                                        stdout=self.output.open("wb"), stderr=subprocess.STDOUT)
        time.sleep(0.3)

    def count(self) -> int:
        tail = self.output.read_bytes()[-200:].decode("ascii", "replace")
        found = re.findall(r"mesg=(\d+)", tail)
        return int(found[-1]) if found else 0

    def wait(self, n: int, timeout: float, label: str, base: int = 0) -> float:
        """Waits for the count to reach n (progress shown relative to `base`)."""
        started = time.monotonic()
        last, last_change = -1, time.monotonic()
        while True:
            current = self.count()
            if current >= n:
                return time.monotonic()
            if current != last:
                last, last_change = current, time.monotonic()
            if time.monotonic() - last_change > timeout:
                raise SystemExit(f"{label}: stuck at {current:,} of {n:,} messages")
            done = current - base
            print(f"\r{label}: {done:,}/{n - base:,} ({done / max(time.monotonic() - started, 1e-6):,.0f}/s)",
                  end="", file=sys.stderr, flush=True)
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


def run_ours(n: int, dkim: str, sink_port: int, workdir: Path, sink: SmtpSink, harness: dict,
             vhost: str) -> tuple[float, int]:
    from altcraft import config as cfg
    from altcraft.domain.message import Envelope, render
    from altcraft.domain.templates import compile_parts
    from altcraft.schema import migrate as migration
    from altcraft.wiring import Platform

    basedir = workdir / "akd"
    basedir.mkdir()
    data = make_config(harness, basedir, RABBITMQ_VHOST=vhost,
                       MTA={"ROUTES": {"*": f"127.0.0.1:{sink_port}"}, "TRY_TLS": False,
                            "SPOOL_DIR": str(basedir / "spool"),
                            "DEFAULT_STRATEGY": {"CONNECTIONS": 20, "MESSAGES_PER_CONNECTION": 1000}},
                       PROCESSES={"akmtad": {"PORT": free_port()}}, DEFAULT_LOG_LEVEL="WARNING")
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(data))
    config, _ = cfg.load(main_json)
    migration.run(config)
    platform = Platform(config)
    account = platform.accounts.save(name="bench")
    database = platform.databases(account["id"]).add("bench")
    profiles = platform.profiles(account["id"], database.id)
    started = time.perf_counter()
    for start in range(0, n, 50_000):
        rows = [{"email": f"user{i}@example{i % 50}.test", "first_name": "Anna"} for i in range(start, min(n, start + 50_000))]
        profiles.upsert_prepared(rows, subscribe=(1, "email"))
    print(f"ours: {n:,} profiles loaded in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    sender = platform.senders.save(name="bench", from_email="news@bench.example", dkim_algorithm=dkim)
    platform.senders.assign(sender["id"], account["id"])
    segment = platform.segments(account["id"]).add("all", database.id, {})
    template = platform.templates(account["id"]).add("bench", "Hello {{ first_name }}", HTML, "Hello {{ first_name }}")
    campaign = platform.campaigns.add(account["id"], "bench", database.id, segment["id"], template["id"], sender["id"])
    sample = render(compile_parts(template), Envelope(account["id"], database.id, 1, 1, 1, "news@bench.example",
                                                      tracking_key=config.TRACKING_CRYPT_KEY),
                    profiles.collection.find_one())
    akd = [sys.executable, "-m", "altcraft.akd"]
    subprocess.run([*akd, "start", "campaign", "akmtad", "--config", str(main_json)], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        before = sink.count()
        t0 = time.monotonic()
        platform.campaigns.start(account["id"], campaign["id"])
        t1 = sink.wait(before + n, timeout=600, label="ours", base=before)  # the first batch waits for the sorted cursor
    finally:
        subprocess.run([*akd, "stop", "--config", str(main_json)], stdout=subprocess.DEVNULL)
        platform.account_client.drop_database(platform.account_db(account["id"]).name)
        platform.close()
    print(file=sys.stderr)
    return t1 - t0, len(sample.data)


class OpenDkim:
    """Debian's OpenDKIM in the foreground as a signing milter on a loopback port, with a
    fresh key of the kind our sender uses (the bench's domain: bench.local)."""

    DOMAIN, SELECTOR = "bench.local", "bench"

    def __init__(self, binary: str, algorithm: str, workdir: Path):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

        self.port, self.algorithm = free_port(), algorithm
        directory = workdir / "opendkim"
        directory.mkdir(mode=0o700)
        key = (ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519"
               else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        key_file = directory / "bench.key"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_file.chmod(0o600)
        conf = directory / "opendkim.conf"
        conf.write_text(f"""Syslog no
Background no
RequireSafeKeys no
Mode s
Domain {self.DOMAIN}
Selector {self.SELECTOR}
KeyFile {key_file}
SignatureAlgorithm {"ed25519-sha256" if algorithm == "ed25519" else "rsa-sha256"}
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.1
Socket inet:{self.port}@127.0.0.1
PidFile {directory}/opendkim.pid
""")
        self.log = (directory / "opendkim.log").open("wb")
        self.process = subprocess.Popen([binary, "-f", "-x", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise SystemExit(f"opendkim stopped at once: {(directory / 'opendkim.log').read_text()[-400:]}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def postfix_relay(tools: dict[str, str], port: int) -> None:
    subprocess.run([tools["postconf"], "-e", f"relayhost = [127.0.0.1]:{port}"], check=True)
    subprocess.run([tools["postfix"], "reload"], check=True, capture_output=True)


def check_signed(tools: dict[str, str], workdir: Path, sink_port: int, milter: OpenDkim) -> None:
    """One message through Postfix into a sink that keeps it: it must carry OpenDKIM's
    signature of the chosen algorithm, else the reference would not be like for like."""
    check_port, dump = free_port(), workdir / "signed-check"
    dump.mkdir()
    sink = subprocess.Popen([tools["smtp-sink"], "-u", "root", "-d", f"{dump}/%M.", f"127.0.0.1:{check_port}", "10"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        postfix_relay(tools, check_port)
        subprocess.run([tools["smtp-source"], "-m", "1", "-l", "200", "-f", f"a@{milter.DOMAIN}",
                        "-t", "b@example.com", "127.0.0.1:25"], check=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p.is_file() for p in dump.rglob("*")):
            time.sleep(0.2)
        kept = [p.read_text(errors="replace") for p in dump.rglob("*") if p.is_file()]
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(10)
        postfix_relay(tools, sink_port)
    wanted = "ed25519-sha256" if milter.algorithm == "ed25519" else "rsa-sha256"
    if not kept or not re.search(rf"DKIM-Signature:.*\ba={wanted};", " ".join(kept[0].split()), re.S):
        raise SystemExit(f"postfix+opendkim: the check message carries no {wanted} DKIM-Signature "
                         f"({'nothing arrived' if not kept else kept[0][:600]})")


def run_postfix(n: int, size: int, sink_port: int, sink: SmtpSink, tools: dict[str, str],
                milter: OpenDkim | None) -> float:
    postfix, postconf = tools["postfix"], tools["postconf"]
    milters = ([f"smtpd_milters = inet:127.0.0.1:{milter.port}", "milter_default_action = tempfail",
                "milter_protocol = 6"] if milter else ["smtpd_milters ="])
    subprocess.run([postconf, "-e", f"relayhost = [127.0.0.1]:{sink_port}", "inet_interfaces = loopback-only",
                    "mydestination =", "mynetworks = 127.0.0.0/8", "default_transport = smtp",
                    "relay_transport = relay", "default_destination_concurrency_limit = 20",
                    "maillog_file = /var/log/postfix.log", *milters], check=True)
    subprocess.run([postfix, "stop"], capture_output=True)
    subprocess.run([postfix, "start"], check=True, capture_output=True)
    time.sleep(1)
    try:
        if milter:
            check_signed(tools, sink.output.parent, sink_port, milter)
        before = sink.count()
        t0 = time.monotonic()
        subprocess.run([tools["smtp-source"], "-s", "20", "-m", str(n), "-l", str(size), "-f", f"a@{OpenDkim.DOMAIN}",
                        "-t", "b@example.com", "127.0.0.1:25"], check=True)
        t1 = sink.wait(before + n, timeout=120, label="postfix", base=before)
    finally:
        subprocess.run([postfix, "stop"], capture_output=True)
    print(file=sys.stderr)
    return t1 - t0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--dkim", choices=("none", "rsa", "ed25519"), default="none")
    args = parser.parse_args()
    # everything both halves need, before the long first half
    tools = {tool: require(tool, "postfix", POSTFIX_PRESEED) for tool in POSTFIX_TOOLS}
    opendkim = require("opendkim", "opendkim") if args.dkim != "none" else None
    harness = _config.harness()
    vhost = broker.add_vhost(harness, prefix="bench-")
    with tempfile.TemporaryDirectory(prefix="altcraft-send-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        sink = SmtpSink(tools["smtp-sink"], port, workdir)
        try:
            ours, size = run_ours(args.messages, args.dkim, port, workdir, sink, harness, vhost)
            milter = OpenDkim(opendkim, args.dkim, workdir) if opendkim else None
            try:
                postfix = run_postfix(args.messages, size, port, sink, tools, milter)
            finally:
                if milter:
                    milter.stop()
        finally:
            sink.stop()
            broker.delete_vhost(vhost)
    n = args.messages
    print(f"{'':34}{'messages':>10}{'seconds':>10}{'messages/s':>12}")
    print(f"{'ours: campaign->RabbitMQ->akmtad':34}{n:>10,}{ours:>10.1f}{n / ours:>12,.0f}   dkim={args.dkim}")
    signer = f"opendkim {args.dkim}" if args.dkim != "none" else "none"
    print(f"{'postfix: smtp-source->postfix':34}{n:>10,}{postfix:>10.1f}{n / postfix:>12,.0f}   dkim={signer}, {size} bytes each")
    print(f"ratio={(n / ours) / (n / postfix):.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

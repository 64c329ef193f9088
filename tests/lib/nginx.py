"""The nginx role's configuration, rendered from its own template and defaults, run by the
machine's real nginx on loopback (no root paths: pid, logs and temp files in a folder of the
test's), and TLS handshakes against it with Python's ssl (OpenSSL) as the client.

Only the sites instance's https server matters here; its upstreams point at closed ports
(nothing is proxied: the instance's own /nginx-<name>/health answers).
"""

from __future__ import annotations

import datetime
import re
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import jinja2
import yaml

from tests.lib import ROOT
from tests.lib.packages import command
from tests.lib.ports import free_port
from tests.lib.wait import stop_processes, wait_started

ROLE = ROOT / "roles" / "nginx"


def defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render(instance_name: str, workdir: Path, process_ports: dict[str, int] | None = None,
           **overrides) -> tuple[str, dict]:
    """The role's nginx.conf for one instance (ports and paths moved under workdir);
    returns the text and the instance as rendered. `process_ports`: the ports of processes
    that really run (the others get closed ports)."""
    facts = defaults()
    (instance,) = [dict(i) for i in facts["nginx_instances"] if i["name"] == instance_name]
    instance.update(listen_ip="127.0.0.1", http_port=free_port(), https_port=free_port())
    facts.update(nginx_instance=instance, nginx_config_root=str(workdir), nginx_log_dir=str(workdir),
                 ansible_managed="rendered by tests/lib/nginx.py", nginx_backend_hosts=["127.0.0.1"],
                 nginx_process_ports={**{p: free_port() for p in instance["processes"] + [instance["default"]]},
                                      **(process_ports or {})},
                 **overrides)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.get_template("etc/altcraft/nginx/nginx.conf.j2").render(**facts)
    return text, instance


def _self_signed(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                                          serialization.NoEncryption()))


class Nginx:
    """The rendered configuration run by the real nginx in the foreground."""

    def __init__(self, instance_name: str, workdir: Path, **overrides):
        self.binary = command("nginx", "nginx")
        text, self.instance = render(instance_name, workdir, **overrides)
        # paths only root may write, moved to the test's folder; everything else as rendered
        text = re.sub(r"^user [^;]+;\n", "", text, flags=re.M)
        text = re.sub(r"^pid [^;]+;", f"pid {workdir}/nginx.pid;", text, flags=re.M)
        text = text.replace("/var/lib/nginx/", f"{workdir}/")
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(text)
        _self_signed(workdir / instance_name / "ssl")
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        checked = subprocess.run([self.binary, "-t", "-c", str(self.conf), "-e", "stderr"],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen([self.binary, "-c", str(self.conf), "-e", "stderr", "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_started(self.process, lambda: _listening(self.instance["https_port"]), "nginx listening",
                     lambda: self.process.stderr.read().decode(), timeout=20)
        return self

    def __exit__(self, *exc) -> None:
        stop_processes(self.process, timeout=20)

    @property
    def https(self) -> tuple[str, int]:
        return "127.0.0.1", self.instance["https_port"]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def client(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    """A client that offers exactly one TLS version (and, for TLS <= 1.2, the given suites),
    at OpenSSL's security level 0: whatever is refused, the server refused it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # offering an old version is the point of some probes
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    context.set_ciphers(f"{ciphers or 'ALL'}:@SECLEVEL=0")
    return context


def handshake(address: tuple[str, int], context: ssl.SSLContext) -> tuple[str, str] | None:
    """(protocol, cipher) the server agreed to, or None if it refused the handshake."""
    with socket.create_connection(address, timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version(), tls.cipher()[0]
        except (ssl.SSLError, ConnectionResetError):
            return None


def tls12_suites() -> list[str]:
    """Every TLS 1.2-or-older suite this machine's OpenSSL can offer (names as OpenSSL's)."""
    context = client(ssl.TLSVersion.TLSv1_2)
    return [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"]

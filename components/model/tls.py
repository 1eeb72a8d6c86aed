"""TLS for a notebook published beyond loopback: make, read and check a certificate and key.

Pure logic on PEM text (no Pulumi, no Docker), shared by the program's validation, `make tls`
(`python -m components.tls selfsigned …`) and the tests. A self-signed certificate is made once
per stack and kept in the stack config (`tfbox:tlsCert`, `tfbox:tlsKey` as a secret), so it is
the same on every `up` and users can pin its SHA-256 fingerprint; a team's own certificate goes
into the same two keys. A stack with seats gets one pair per seat instead (`tfbox:tlsCerts.<seat>`,
`tfbox:tlsKeys.<seat>`: components.model.seat_tls), so no seat holds another seat's key.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.model.urls import host_name

# `cryptography` is imported inside the functions that use it: loading it costs 0.1-0.2 s of every
# program run (twice per `up` with its preview), and most labs have no certificate to read.
if TYPE_CHECKING:
    from cryptography import x509

SELF_SIGNED_DAYS = 3650  # pinned by fingerprint, not trusted through a CA: a renewal would only break pins


class TlsError(ValueError):
    """A certificate or key that cannot be used; str() says what is wrong, never the key."""


@dataclass(frozen=True)
class TlsPair:
    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class SubjectNames:
    dns: tuple[str, ...]
    ips: tuple[str, ...]


def subject_names(target_host: str, bind: str) -> SubjectNames:
    """Names a browser may use for the notebook: the Docker host's name, a specific bind address,
    and loopback (an SSH tunnel)."""
    dns: list[str] = []
    ips: list[str] = []

    def add(name: str) -> None:
        try:
            ip = str(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            if name and name not in dns:
                dns.append(name)
            return
        if ip not in ("0.0.0.0", "::") and ip not in ips:
            ips.append(ip)

    add(host_name(target_host))
    add(bind)
    add("localhost")
    add("127.0.0.1")
    return SubjectNames(tuple(dns), tuple(ips))


def generate_self_signed(names: SubjectNames, days: int = SELF_SIGNED_DAYS) -> TlsPair:
    """A new ECDSA P-256 key and a self-signed server certificate for `names`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    common = names.dns[0] if names.dns else (names.ips[0] if names.ips else "tfbox")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common[:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tfbox notebook (self-signed)")])
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names.dns]
    alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in names.ips]
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return TlsPair(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode())


def load_cert(cert_pem: str) -> x509.Certificate:
    """The server (first) certificate of a PEM file that may carry its chain after it."""
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(cert_pem.strip().encode() + b"\n")
    except ValueError:
        raise TlsError("is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    return certs[0]


def check_pair(cert_pem: str, key_pem: str, now: dt.datetime | None = None) -> list[str]:
    """Problems with a certificate and key pair: unreadable, not matching, expired. Messages never quote the key."""
    from cryptography.hazmat.primitives import serialization

    problems: list[str] = []
    try:
        cert = load_cert(cert_pem)
    except TlsError as e:
        return [f"tlsCert {e}"]
    try:
        key = serialization.load_pem_private_key(key_pem.strip().encode() + b"\n", password=None)
    except (ValueError, TypeError):
        return ["tlsKey is not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)"]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, pub) != cert.public_key().public_bytes(serialization.Encoding.DER, pub):
        problems.append("tlsKey does not belong to tlsCert (their public keys differ)")
    when = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc < when:
        problems.append(f"tlsCert expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    return problems


def fingerprint_sha256(cert_pem: str) -> str:
    """`AB:CD:…`, as browsers and `openssl x509 -noout -fingerprint -sha256` show it."""
    from cryptography.hazmat.primitives import hashes

    digest = load_cert(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def spki_sha256_base64(cert_pem: str) -> str:
    """Base64 SHA-256 of the public key (SPKI): what Chromium's `--ignore-certificate-errors-spki-list` pins."""
    from cryptography.hazmat.primitives import hashes, serialization

    spki = load_cert(cert_pem).public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA256())
    h.update(spki)
    return base64.b64encode(h.finalize()).decode()


def seat_binds(seats_json: str, default_bind: str, ingress_host: str = "") -> list[tuple[str, str, str]]:
    """(name, notebookBind, Ingress host or "-") of each named seat in `tfbox:seats` as `pulumi config get` prints
    it (the host: the seat's own `ingressHost`, else `<seat>.<ingress_host>` on a cluster stack with tfbox:ingressHost);
    the config check reports anything malformed, so this only skips what it cannot read."""
    try:
        items = json.loads(seats_json) if seats_json.strip() else []
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get("name") or "").strip():
            name = str(item["name"]).strip()
            host = str(item.get("ingressHost") or "").strip() or (f"{name}.{ingress_host}" if ingress_host else "-")
            out.append((name, str(item.get("notebookBind") or default_bind).strip(), host))
    return out


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode`; never overwrite, never follow a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Self-signed certificates and fingerprints for a tfbox notebook.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    new = sub.add_parser("selfsigned", help="write a new key and self-signed certificate (never overwrites)")
    new.add_argument("--docker-host", dest="target_host", default="unix:///var/run/docker.sock")
    new.add_argument("--bind", default="127.0.0.1")
    new.add_argument("--cert", type=Path, required=True)
    new.add_argument("--key", type=Path, required=True)
    new.add_argument("--name", action="append", default=[], help="another DNS name to certify (an Ingress host); repeatable")
    seats = sub.add_parser("seats", help="print `name bind` per seat of tfbox:seats (JSON on stdin), for `make tls` on a seats stack")
    seats.add_argument("--bind", default="127.0.0.1", help="the stack's tfbox:notebookBind, for seats that give none")
    seats.add_argument("--ingress-host", default="", help="the stack's tfbox:ingressHost: each seat's Ingress host is <seat>.<it>")
    fp = sub.add_parser("fingerprint", help="print a PEM certificate's SHA-256 fingerprint and SPKI pin")
    fp.add_argument("cert", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "selfsigned":
            names = subject_names(args.target_host, args.bind)
            extra = tuple(n for n in args.name if n and n != "-" and n not in names.dns)
            names = SubjectNames(names.dns + extra, names.ips)
            pair = generate_self_signed(names)
            _write_new(args.key, pair.key_pem, 0o600)
            _write_new(args.cert, pair.cert_pem, 0o644)
            print(f"names: {', '.join(names.dns + names.ips)}")
            print(f"sha256 fingerprint: {fingerprint_sha256(pair.cert_pem)}")
        elif args.cmd == "seats":
            for name, bind, host in seat_binds(sys.stdin.read(), args.bind, args.ingress_host):
                print(name, bind, host)
        else:
            pem = args.cert.read_text()
            print(f"sha256 fingerprint: {fingerprint_sha256(pem)}")
            print(f"spki sha256 (base64): {spki_sha256_base64(pem)}")
    except (OSError, TlsError) as e:
        print(f"tls: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

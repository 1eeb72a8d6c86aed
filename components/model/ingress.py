"""An Ingress per seat on a cluster stack (`tfbox:ingressHost`, `tfbox:ingressClassName`, `tfbox:ingressAnnotations`,
a seat's own `ingressHost`), validated as plain data.

Why these rules: an Ingress puts a seat's notebook on the cluster's ingress controller, reachable from outside
the cluster by its host name. The password and session cookie cross that network, so TLS must terminate at the
controller with a certificate that names the host (the seat's own `tfbox:tlsCerts`/`tfbox:tlsKeys`, the stack's
`tfbox:tlsCert`/`tfbox:tlsKey`, or `make tls`'s, which names the Ingress host) and the controller must talk HTTPS
to the notebook, which serves HTTPS itself. With a cert-manager issuer annotation the certificate is cert-manager's
to issue (an explicit choice: tfbox then declares no certificate Secret and checks no names), but the seat must
still serve TLS. Pure: no Pulumi, no Kubernetes client.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.model.keys import NAMESPACE

INGRESS_KEYS = ("ingressHost", "ingressClassName", "ingressAnnotations")
# a cert-manager issuer on the Ingress: cert-manager's ingress-shim makes the certificate named in spec.tls
CERT_MANAGER_ANNOTATIONS = ("cert-manager.io/cluster-issuer", "cert-manager.io/issuer")
# ingress-nginx's defaults for Jupyter (user annotations override each): HTTPS to the notebook (it serves TLS);
# request bodies above nginx's 1m default (a saved notebook is sent whole; an upload's 1 MB chunks are about
# 1.4 MB as base64 JSON) and kernel websockets kept open through an hour of quiet (nginx closes them after 60 s)
DEFAULT_ANNOTATIONS = (
    ("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS"),
    ("nginx.ingress.kubernetes.io/proxy-body-size", "64m"),
    ("nginx.ingress.kubernetes.io/proxy-read-timeout", "3600"),
    ("nginx.ingress.kubernetes.io/proxy-send-timeout", "3600"),
)
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS_NAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")  # RFC 1123 subdomain, as Kubernetes checks an Ingress host
ANNOTATION_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class IngressSettings:
    """Each seat's Ingress host (seat name, "" for a single-seat stack), the class and the annotations."""

    hosts: tuple[tuple[str, str], ...]
    class_name: str = ""  # empty: the cluster's default IngressClass
    annotations: tuple[tuple[str, str], ...] = DEFAULT_ANNOTATIONS  # the defaults, then the user's over them

    @property
    def cert_manager(self) -> bool:
        """cert-manager issues the Ingress's certificate (an issuer annotation): tfbox makes no certificate Secret."""
        return any(k in CERT_MANAGER_ANNOTATIONS for k, _ in self.annotations)

    def host(self, seat: str) -> str | None:
        return dict(self.hosts).get(seat)


@dataclass(frozen=True)
class IngressSeat:
    """What the check needs of one seat: its name ("" for a single-seat stack), its index in tfbox:seats (-1
    without seats), its own `ingressHost` as given, the certificate it serves (PEM, "" for none) and that
    certificate's key (`tfbox:tlsCerts.<seat>` or `tfbox:tlsCert`)."""

    name: str
    index: int
    own_host: object
    cert: str
    cert_key: str


def _problem(key: str, problem: str, fix: str) -> str:
    return f"{key}: {problem}. Fix: {fix}."


def host_problem(host: str) -> str | None:
    """Why `host` cannot be an Ingress host (a lowercase DNS name, no IP address, no wildcard), or None."""
    if len(host) > 253 or not DNS_NAME_RE.match(host):
        return (f"{host!r} is not a DNS name (lowercase letters, digits, '-' and '.', each label at most 63 and starting "
                "and ending with a letter or digit, at most 253 in all)")
    if all(part.isdigit() for part in host.split(".")):
        return f"{host!r} is an IP address; an Ingress routes by host name"
    return None


def cert_dns_names(cert_pem: str) -> tuple[str, ...]:
    """The DNS names of a certificate's subjectAltName (browsers ignore the common name)."""
    from cryptography import x509

    from components.model.tls import load_cert

    try:
        alt = load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(n.lower() for n in alt.value.get_values_for_type(x509.DNSName))


def names_host(names: Sequence[str], host: str) -> bool:
    """A browser's match (RFC 6125): the exact name, or a wildcard `*.example.com` for one label's worth."""
    first, _, rest = host.partition(".")
    return any(n == host or (n.startswith("*.") and rest and n[2:] == rest and first) for n in names)


def _annotations(value: Any, problems: list[str]) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not JSON: reported below as not a map
            value = json.loads(value) if value.strip() else None
    if value in (None, {}):
        return ()
    fix = ("write a map of annotation to value, e.g. {\"cert-manager.io/cluster-issuer\": \"letsencrypt\"} "
           "(quote numbers: \"3600\")")
    key = f"{NAMESPACE}:ingressAnnotations"
    if not isinstance(value, Mapping):
        problems.append(_problem(key, "is not a map of annotation to value", fix))
        return ()
    out = []
    for k, v in value.items():
        if not ANNOTATION_KEY_RE.match(str(k)) or len(str(k).rpartition("/")[0]) > 253:
            problems.append(_problem(key, f"{k!r} is not a valid annotation name", fix))
        elif isinstance(v, bool) or not isinstance(v, (str, int, float)):
            problems.append(_problem(f"{key}.{k}", f"{v!r} is not a text value", fix))
        else:
            out.append((str(k), str(v)))
    return tuple(out)


def _host_of(seat: IngressSeat, base: str) -> tuple[str, str] | None:
    """(host, the key it comes from) of a seat, or None when the seat has no Ingress."""
    own = str(seat.own_host or "").strip()
    if own:
        return own, f"{NAMESPACE}:seats[{seat.index}].ingressHost"
    if not base:
        return None
    return (f"{seat.name}.{base}" if seat.name else base), f"{NAMESPACE}:ingressHost"


def parse_ingress(raw_value: Callable[[str], Any], seats: Sequence[IngressSeat], *, cluster: bool,
                  stack: str) -> tuple[IngressSettings | None, list[str]]:
    """The stack's Ingress settings (None without any host) and every problem at once.

    `raw_value(name)` reads a key as its type; `seats` are the stack's seats (one with name "" on a single-seat
    stack). On a Docker stack only a seat's own `ingressHost` is checked here: components.model.cluster refuses the
    stack's ingress keys with the other kubernetes-only keys.
    """
    problems: list[str] = []
    if not cluster:
        for s in seats:
            if str(s.own_host or "").strip():
                problems.append(_problem(f"{NAMESPACE}:seats[{s.index}].ingressHost", "is set but only the kubernetes backend "
                                         "reads it", f"remove it from the seat, or set {NAMESPACE}:backend kubernetes"))
        return None, problems
    base = str(raw_value("ingressHost") or "").strip()
    if base and (why := host_problem(base)):
        problems.append(_problem(f"{NAMESPACE}:ingressHost", why, "write the name users type, e.g. lab.example.com "
                                 "(a seats stack serves each seat at <seat>.<ingressHost>)"))
        base = ""
    class_name = str(raw_value("ingressClassName") or "").strip()
    if class_name and (len(class_name) > 253 or not DNS_NAME_RE.match(class_name)):
        problems.append(_problem(f"{NAMESPACE}:ingressClassName", f"{class_name!r} is not an IngressClass name",
                                 "write a name `kubectl get ingressclass` lists, or leave it empty for the cluster's default"))
    user = _annotations(raw_value("ingressAnnotations"), problems)
    annotations = tuple({**dict(DEFAULT_ANNOTATIONS), **dict(user)}.items())
    cert_manager = any(k in CERT_MANAGER_ANNOTATIONS for k, _ in user)
    make_tls = f"`make tls STACK={stack}` (its certificate names the Ingress host)"
    hosts: list[tuple[str, str]] = []
    used: dict[str, str] = {}
    for seat in seats:
        found = _host_of(seat, base)
        if found is None:
            continue
        host, key = found
        who = f"seat {seat.name}" if seat.name else "the notebook"
        if (why := host_problem(host)) is not None:
            problems.append(_problem(key, why, f"write the name users type to reach {who}, e.g. {seat.name or 'lab'}.example.com"))
            continue
        if host in used:
            problems.append(_problem(key, f"{host} is also the Ingress host of {used[host]}", "give every seat its own host"))
            continue
        used[host] = who
        hosts.append((seat.name, host))
        if not seat.cert:
            problems.append(_problem(key, f"{who} serves no TLS, so its Ingress at {host} has no certificate to serve and "
                                     "the password and session cookie would cross the network in cleartext",
                                     f"run {make_tls}, or set the seat's certificate and key ({NAMESPACE}:tlsCerts/tlsKeys "
                                     f"on a seats stack, else {NAMESPACE}:tlsCert/tlsKey)"))
        elif not cert_manager and not names_host(cert_dns_names(seat.cert), host):
            names = ", ".join(cert_dns_names(seat.cert)) or "no DNS name"
            problems.append(_problem(seat.cert_key, f"names {names} but not {host}, the Ingress host of {who}, so browsers "
                                     "would refuse it", f"remove the pair (`pulumi config rm`) and run {make_tls}; or give a "
                                     f"certificate naming {host} (a wildcard *.{host.partition('.')[2] or host} covers every "
                                     f"seat); or let cert-manager issue the Ingress's: {NAMESPACE}:ingressAnnotations "
                                     "{\"cert-manager.io/cluster-issuer\": \"<issuer>\"}"))
    if not hosts and not problems and (class_name or user):
        given = [k for k, v in (("ingressClassName", class_name), ("ingressAnnotations", user)) if v]
        problems += [_problem(f"{NAMESPACE}:{k}", "is set but no seat has an Ingress host",
                              f"set {NAMESPACE}:ingressHost, or `pulumi config rm {NAMESPACE}:{k}`") for k in given]
    if not hosts:
        return None, problems
    return IngressSettings(hosts=tuple(hosts), class_name=class_name, annotations=annotations), problems

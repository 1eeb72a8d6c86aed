"""One TLS key and certificate per seat: `tfbox:tlsCerts` (seat -> PEM certificate, public) and
`tfbox:tlsKeys` (seat -> PEM private key, each a secret), shaped like `tfbox:passwords`.

Why: a seats stack with the stack's one `tfbox:tlsCert`/`tfbox:tlsKey` uploads the same private key
into every seat's notebook, so any seat (root in its own container) can read it and impersonate every
other seat's notebook to that seat's user, pinned fingerprint and all. `make tls STACK=…` makes one
pair per seat; this module checks them and says which certificate each seat serves. Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from components.model.seats import SeatConfig, SeatPasswordState, seat_name_problem
from components.model.tls import TlsError, check_pair, load_cert, spki_sha256_base64


@dataclass(frozen=True)
class SeatTls:
    """Each seat's certificate (PEM) and whether its key is the seat's own (`tfbox:tlsKeys.<seat>`)
    rather than the stack's shared `tfbox:tlsKey`; a seat absent from `certs` serves plain HTTP."""

    certs: dict[str, str] = field(default_factory=dict)
    own: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _pem(text: object) -> str:
    """The engine drops a value's final newline; a PEM file ends with one."""
    t = str(text).strip()
    return t + "\n" if t else ""


def seat_tls(seats: Sequence[SeatConfig], certs: Mapping[str, str] | None, key_states: Mapping[str, SeatPasswordState],
             keys: Mapping[str, str] | None, shared_cert: str, stack: str, require_keys: bool = True) -> SeatTls:
    """Check the per-seat pairs and pick each seat's certificate: its own, else the stack's shared one.

    `certs` is `tfbox:tlsCerts` (None: not a map), `key_states`/`keys` are `tfbox:tlsKeys` per seat (how
    given; the values where readable, checked and never quoted). Once a stack has per-seat pairs every
    seat needs one, so no two seats can share a key by accident; `make tls` fills in the missing ones.
    """
    make_tls = f"run `make tls STACK={stack}` (it makes a pair for every seat that lacks one)"
    problems: list[str] = []
    warnings: list[str] = []
    if certs is None:
        return SeatTls(problems=(f"tfbox:tlsCerts: is not a map of seat name to PEM certificate. Fix: {make_tls}.",))
    names = [s.name for s in seats if not seat_name_problem(s.name)]
    for name in sorted({*certs, *key_states} - set(names)):
        key = "tfbox:tlsCerts" if name in certs else "tfbox:tlsKeys"
        problems.append(f"{key}.{name}: there is no seat {name!r} in tfbox:seats. Fix: `pulumi config rm --path "
                        f"'tfbox:tlsCerts.{name}' --stack {stack}` and `pulumi config rm --path 'tfbox:tlsKeys.{name}' --stack {stack}`.")
    chosen: dict[str, str] = {}
    own: set[str] = set()
    if certs or key_states:
        spki: dict[str, str] = {}
        for name in names:
            cert = _pem(certs.get(name, ""))
            state = key_states.get(name, "missing")
            set_key = f"`pulumi config set --secret --path 'tfbox:tlsKeys.{name}' --stack {stack} < key.pem`"
            if not cert:
                problems.append(f"tfbox:tlsCerts.{name}: seat '{name}' has no certificate of its own while other seats do. Fix: {make_tls}.")
                continue
            try:
                load_cert(cert)
            except TlsError as e:
                problems.append(f"tfbox:tlsCerts.{name}: {e}. Fix: `pulumi config rm --path 'tfbox:tlsCerts.{name}' --stack {stack}`, then {make_tls}.")
                continue
            if state == "plaintext":
                problems.append(f"tfbox:tlsKeys.{name}: is stored in plaintext in the stack file. Fix: `pulumi config rm --path "
                                f"'tfbox:tlsKeys.{name}' --stack {stack}`, then {set_key}.")
            elif state == "missing":
                if require_keys:
                    problems.append(f"tfbox:tlsKeys.{name}: seat '{name}' has a certificate but no key. Fix: {set_key}, or "
                                    f"`pulumi config rm --path 'tfbox:tlsCerts.{name}' --stack {stack}` and {make_tls}.")
            elif keys is not None and name in keys:
                for problem in check_pair(cert, keys[name]):
                    key_name, _, text = problem.partition(" ")
                    which = "tlsKeys" if key_name == "tlsKey" else "tlsCerts"
                    problems.append(f"tfbox:{which}.{name}: {text}. Fix: {make_tls} after removing both entries of seat '{name}'.")
            pin = spki_sha256_base64(cert)
            if pin in spki:
                problems.append(f"tfbox:tlsCerts.{name}: has the same key as seat '{spki[pin]}', so each seat could impersonate the "
                                f"other. Fix: give every seat its own pair: remove both entries of seat '{name}', then {make_tls}.")
            spki[pin] = name
            chosen[name] = cert
            own.add(name)
        return SeatTls(chosen, frozenset(own), tuple(problems), tuple(warnings))
    if shared_cert:
        chosen = {name: shared_cert for name in names}
        if len(names) > 1:
            warnings.append(f"tfbox:tlsKey: the seats {', '.join(names)} share the stack's one TLS private key, so each seat "
                            f"(root in its notebook) can read it and impersonate the others' notebooks; {make_tls}, then "
                            f"`pulumi config rm tfbox:tlsKey --stack {stack}` and `pulumi config rm tfbox:tlsCert --stack {stack}`. "
                            "Each seat's notebook is replaced once; its users pin the new fingerprint (output seats.<seat>.notebookCertSha256)")
    return SeatTls(chosen, frozenset(own), tuple(problems), tuple(warnings))

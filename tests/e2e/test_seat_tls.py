"""Issue 22 (part B, finding 1): every seat gets a TLS key and certificate of its own.

A seats stack made before per-seat keys has the stack's one `tfbox:tlsCert`/`tfbox:tlsKey`: it keeps
working (both seats serve that one certificate, and hold its key: seat a could impersonate seat b),
and its preview warns with the fix. `make tls STACK=…` then gives each seat its own pair
(`tfbox:tlsCerts.<seat>`, secret `tfbox:tlsKeys.<seat>`); after the next `up` seat a and seat b serve
different certificates, each the one whose fingerprint its own output pins, each seat's container
holds only its own key, and the users log in over HTTPS with the pinned certificate.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import ssl
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import yaml

from components.model.tls import generate_self_signed, subject_names
from tests.e2e.harness import Docker, Jupyter, Project, change_summary, free_port

STACK = "seattls"
KEY_PATH = "/etc/jupyter/tfbox-notebook.key"


def name(seat: str, role: str) -> str:
    return f"tfbox-{STACK}-{seat}-{role}"


def served_fingerprint(port: int) -> str:
    """The SHA-256 fingerprint of the certificate the server on `port` presents (not verified: we only read it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


@pytest.fixture(scope="module")
def box(project: Project, docker_a: Docker, cpu_image: str) -> Iterator[SimpleNamespace]:
    """Seats a and b (CPU only, no TensorBoard) with the stack's one shared pair, as before per-seat keys."""
    ports = {seat: free_port() for seat in "ab"}
    stack = project.stack(STACK, {
        "docker:host": docker_a.host, "tfbox:image": cpu_image, "tfbox:tensorboardMode": "off",
        "tfbox:passwordSalt": secrets.token_hex(16),
        "tfbox:seats": [{"name": seat, "notebookPort": ports[seat]} for seat in "ab"],
    }, None)
    passwords = {seat: f"seat-{seat}-" + secrets.token_urlsafe(12) for seat in "ab"}
    for seat, pw in passwords.items():
        project.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat}", "--stack", STACK, input=pw)
    shared = generate_self_signed(subject_names("unix:///var/run/docker.sock", "127.0.0.1"))
    project.pulumi("config", "set", "--plaintext", "tfbox:tlsCert", "--stack", STACK, input=shared.cert_pem)
    project.pulumi("config", "set", "--secret", "tfbox:tlsKey", "--stack", STACK, input=shared.key_pem)
    first = stack.up()
    yield SimpleNamespace(stack=stack, project=project, docker=docker_a, passwords=passwords, ports=ports, shared=shared,
                          first=first)
    stack.destroy(check=False)
    for seat in "ab":
        for vol in ("notebooks", "logs"):
            docker_a("volume", "rm", name(seat, vol), check=False)


def test_1_a_shared_key_keeps_working_and_warns_with_the_fix(box: SimpleNamespace) -> None:
    assert "share the stack's one TLS private key" in box.first.output and f"make tls STACK={STACK}" in box.first.output
    # what the warning is about: both seats serve one certificate and hold its key
    assert served_fingerprint(box.ports["a"]) == served_fingerprint(box.ports["b"])
    keys = {seat: box.docker("exec", name(seat, "notebook"), "cat", KEY_PATH).stdout.strip() for seat in "ab"}
    shared = keys["a"] == keys["b"] == box.shared.key_pem.strip()  # a bool: a failure must not print the keys
    assert shared, "both seats hold the stack's one key"


def test_2_make_tls_gives_each_seat_its_own_key_and_pin(box: SimpleNamespace) -> None:
    made = box.project.run("scripts/up.sh", STACK, "--tls")  # = make tls STACK=seattls, with the test's backend
    assert "2 seat(s) got a certificate of their own" in made.output
    config = yaml.safe_load((box.project.dir / f"Pulumi.{STACK}.yaml").read_text())["config"]
    assert set(config["tfbox:tlsCerts"]) == {"a", "b"}
    assert all(set(entry) == {"secure"} for entry in config["tfbox:tlsKeys"].values()), "each key is stored encrypted"
    ids = {seat: box.docker.inspect(name(seat, "notebook"))["Id"] for seat in "ab"}
    up = box.stack.up()
    assert "share the stack's one TLS private key" not in up.output
    assert all(box.docker.inspect(name(seat, "notebook"))["Id"] != ids[seat] for seat in "ab"), "each notebook replaced"
    outputs = box.stack.outputs()
    served = {seat: served_fingerprint(box.ports[seat]) for seat in "ab"}
    assert served["a"] != served["b"], "seat a and seat b serve different certificates"
    for seat in "ab":
        assert served[seat] == outputs["seats"][seat]["notebookCertSha256"], f"seat {seat} serves the certificate its output pins"
        assert outputs["seats"][seat]["notebookUrl"].startswith("https://")
    assert outputs["notebookCertSha256"] == f"a={served['a']} b={served['b']}"
    # each seat's container holds its own key only: not the other seat's, not the old shared one
    keys = {seat: box.project.pulumi("config", "get", "--path", f"tfbox:tlsKeys.{seat}", "--stack", STACK).stdout.strip()
            for seat in "ab"}
    for seat, other in (("a", "b"), ("b", "a")):
        inside = box.docker("exec", name(seat, "notebook"), "cat", KEY_PATH).stdout.strip()
        own_only = inside == keys[seat] and inside != keys[other] and inside != box.shared.key_pem.strip()
        assert own_only, f"seat {seat}'s container holds its own key only"  # a bool: a failure must not print keys
    # the users log in over HTTPS trusting only their seat's own certificate
    certs = {seat: str(config["tfbox:tlsCerts"][seat]) for seat in "ab"}
    for seat, other in (("a", "b"), ("b", "a")):
        session = Jupyter(f"https://127.0.0.1:{box.ports[seat]}", certs[seat])
        assert session.login(box.passwords[seat])
        with pytest.raises(OSError):  # seat b's certificate does not vouch for seat a's server
            Jupyter(f"https://127.0.0.1:{box.ports[seat]}", certs[other]).login(box.passwords[seat])
    # no key in state, outputs or docker inspect
    seen = box.stack.export() + json.dumps(box.stack.outputs(show_secrets=True)) + box.docker(
        "inspect", name("a", "notebook"), name("b", "notebook")).stdout
    assert not any(k.splitlines()[1] in seen for k in keys.values())


def test_3_a_second_make_tls_and_up_change_nothing(box: SimpleNamespace) -> None:
    again = box.project.run("scripts/up.sh", STACK, "--tls")
    assert "0 seat(s) got a certificate" in again.output and "already has tfbox:tlsKeys.a" in again.output
    assert change_summary(box.stack.up().output) == {}

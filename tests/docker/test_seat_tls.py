"""One TLS key and certificate per seat (`tfbox:tlsCerts`, `tfbox:tlsKeys`): checks, and what each seat's notebook gets."""

import json
import subprocess
import sys

import pulumi
import pytest

from components.model.errors import ConfigError
from components.model.tls import TlsPair, fingerprint_sha256, generate_self_signed, subject_names
from tests.docker.program import TLS, is_secret_value, run_program
from tests.docker.test_seats import PASSWORDS, parse, seat_config, two_seats

KEY_PATH = "/etc/jupyter/tfbox-notebook.key"
CERT_PATH = "/etc/jupyter/tfbox-notebook.crt"


@pytest.fixture(scope="module")
def pairs() -> dict[str, TlsPair]:
    return {seat: generate_self_signed(subject_names("unix:///var/run/docker.sock", "127.0.0.1")) for seat in ("alice", "bob")}


def per_seat(pairs, keys=None, states=None, **kw):
    keys = {s: p.key_pem for s, p in pairs.items()} if keys is None else keys
    return parse(two_seats(), raw={"tlsCerts": json.dumps({s: p.cert_pem for s, p in pairs.items()}), **kw.pop("raw", {})},
                 seat_tls_key_states={s: "secret" for s in keys} if states is None else states, seat_tls_keys=keys, **kw)


def tls_warnings(cfg):
    return [w for w in cfg.warnings if "tls" in w.lower()]


def problems(pairs, **kw):
    with pytest.raises(ConfigError) as info:
        per_seat(pairs, **kw)
    return info.value.problems


def test_each_seat_serves_its_own_certificate(pairs):
    cfg = per_seat(pairs)
    assert {s.name: (s.tls_cert, s.tls_own) for s in cfg.seats} == {s: (p.cert_pem, True) for s, p in pairs.items()}
    assert not tls_warnings(cfg)


def test_a_seat_without_a_pair_of_its_own_is_refused_with_make_tls(pairs):
    (p,) = problems({"alice": pairs["alice"]})
    assert p.startswith("tfbox:tlsCerts.bob: seat 'bob' has no certificate of its own") and "make tls STACK=box" in p


def test_two_seats_with_one_key_are_refused(pairs):
    same = {"alice": pairs["alice"], "bob": pairs["alice"]}
    (p,) = problems(same)
    assert p.startswith("tfbox:tlsCerts.bob: has the same key as seat 'alice'") and "make tls STACK=box" in p


def test_a_key_of_another_seat_or_in_plaintext_is_refused_without_quoting_it(pairs):
    swapped = {"alice": pairs["bob"].key_pem, "bob": pairs["alice"].key_pem}
    found = problems(pairs, keys=swapped)
    assert [p.split(":")[1] for p in found] == ["tlsKeys.alice", "tlsKeys.bob"]
    assert all("does not belong to tlsCert" in p for p in found)
    plain = problems(pairs, states={"alice": "plaintext", "bob": "secret"})
    assert len(plain) == 1 and plain[0].startswith("tfbox:tlsKeys.alice: is stored in plaintext")
    assert not any("PRIVATE KEY" in p for p in found + plain)


def test_a_certificate_without_a_key_and_an_entry_for_no_seat_are_refused(pairs):
    found = problems(pairs, keys={"alice": pairs["alice"].key_pem, "carol": pairs["bob"].key_pem})
    assert any(p.startswith("tfbox:tlsKeys.bob: seat 'bob' has a certificate but no key") for p in found)
    assert any(p.startswith("tfbox:tlsKeys.carol: there is no seat 'carol'") for p in found)


def test_the_shared_key_on_a_seats_stack_keeps_working_with_a_warning_naming_make_tls():
    cfg = parse(two_seats(), raw={"tlsCert": TLS.cert_pem}, tls_key_state="secret", tls_key=TLS.key_pem)
    assert [s.tls_cert for s in cfg.seats] == [TLS.cert_pem] * 2 and not any(s.tls_own for s in cfg.seats)
    (w,) = tls_warnings(cfg)
    assert "share the stack's one TLS private key" in w and "make tls STACK=box" in w
    one = parse(two_seats()[:1], passwords={"alice": PASSWORDS["alice"]}, raw={"tlsCert": TLS.cert_pem},
                tls_key_state="secret", tls_key=TLS.key_pem)
    assert not tls_warnings(one) and one.seats[0].tls_cert == TLS.cert_pem, "a single seat keeps the stack's key silently"


def test_per_seat_pairs_leave_the_shared_one_unused_with_a_warning(pairs):
    cfg = per_seat(pairs, raw={"tlsCert": TLS.cert_pem}, tls_key_state="secret", tls_key=TLS.key_pem)
    assert [s.tls_cert for s in cfg.seats] == [pairs["alice"].cert_pem, pairs["bob"].cert_pem]
    assert any(w.startswith("tfbox:tlsCert: is not used") for w in cfg.warnings)


def test_per_seat_pairs_on_a_stack_without_seats_are_refused(pairs):
    from components.model.parse import parse_config

    with pytest.raises(ConfigError) as info:
        parse_config({"passwordSalt": "0123456789abcdef", "tlsCerts": json.dumps({"a": pairs["alice"].cert_pem})},
                     stack="dev", password_state="secret", seat_tls_key_states={"a": "secret"})
    assert [p.split(":")[1] for p in info.value.problems] == ["tlsCerts", "tlsKeys"]


def secret_text(value):
    assert is_secret_value(value), "the key must stay a secret"
    return value["value"]


def test_each_seat_notebook_gets_only_its_own_key_and_its_pin_is_an_output(pairs):
    pulumi.runtime.settings.ROOT.set(None)
    cfg = seat_config(None, None, tlsCerts=json.dumps({s: p.cert_pem for s, p in pairs.items()}),
                      tlsKeys=json.dumps({s: p.key_pem for s, p in pairs.items()}))
    rec, out = run_program(cfg, secret_keys=("tfbox:passwords", "tfbox:tlsKeys"))
    for seat, pair in pairs.items():
        given = rec.one("docker:index/container:Container", f"{seat}-notebook").inputs["uploads"]
        uploads = {u["file"]: u for u in secret_text(given)}  # a list holding a secret is a secret as a whole
        assert uploads[KEY_PATH]["content"] == pair.key_pem
        assert uploads[CERT_PATH]["content"] == pair.cert_pem
        assert out["seats"][seat]["notebookCertSha256"] == fingerprint_sha256(pair.cert_pem)
        assert out["seats"][seat]["notebookUrl"].startswith("https://")
    assert out["notebookCertSha256"] == " ".join(f"{s}={fingerprint_sha256(p.cert_pem)}" for s, p in pairs.items())


def test_seats_command_lists_names_and_binds_for_make_tls():
    seats = json.dumps([{"name": "alice"}, {"name": "bob", "notebookBind": "0.0.0.0"}, {"gpus": "1"}])
    out = subprocess.run([sys.executable, "-m", "components.model.tls", "seats", "--bind", "10.0.0.5"], input=seats,
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["alice 10.0.0.5 -", "bob 0.0.0.0 -"]  # no Ingress host: `-`
    with_ingress = subprocess.run([sys.executable, "-m", "components.model.tls", "seats", "--ingress-host", "lab.example.com"],
                                  input=json.dumps([{"name": "alice"}, {"name": "bob", "ingressHost": "bob.example.org"}]),
                                  capture_output=True, text=True, check=True).stdout
    assert with_ingress.splitlines() == ["alice 127.0.0.1 alice.lab.example.com", "bob 127.0.0.1 bob.example.org"]

"""An Ingress per seat (components.model.ingress): the hosts, class and annotations a cluster stack asks for, and
everything refused at preview (each naming its key and the fix, all at once)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from components.model.errors import ConfigError
from components.model.ingress import DEFAULT_ANNOTATIONS, cert_dns_names, host_problem, names_host
from components.model.parse import parse_config
from components.model.tls import SubjectNames, TlsPair, generate_self_signed

SALT = "0123456789abcdef0123456789abcdef"
SEATS = [{"name": "ana", "gpus": "count=1", "notebookPort": 8801, "tensorboardPort": 6601},
         {"name": "bo", "gpus": "count=2", "notebookPort": 8802, "tensorboardPort": 6602}]
NGINX_HTTPS = ("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS")


@cache
def pair(*names: str) -> TlsPair:
    return generate_self_signed(SubjectNames(("localhost", *names), ("127.0.0.1",)))


def certs(**names: tuple[str, ...]) -> dict[str, str]:
    return {seat: pair(*n).cert_pem for seat, n in names.items()}


def parse(raw: dict[str, Any], stack: str = "lab") -> Any:
    raw = {"passwordSalt": SALT, **raw}
    seats = bool(raw.get("seats"))
    return parse_config(raw, stack=stack, password_state="missing" if seats else "secret",
                        tls_key_state="secret" if raw.get("tlsCert") else "missing",
                        require_seat_passwords=False)


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return list(info.value.problems)


def seats_stack(**extra: Any) -> dict[str, Any]:
    return {"backend": "kubernetes", "seats": SEATS, "ingressHost": "lab.example.com",
            "tlsCerts": certs(ana=("ana.lab.example.com",), bo=("bo.lab.example.com",)), **extra}


def test_each_seat_is_served_at_its_name_under_the_ingress_host() -> None:
    ingress = parse(seats_stack()).cluster.ingress
    assert ingress.hosts == (("ana", "ana.lab.example.com"), ("bo", "bo.lab.example.com"))
    assert ingress.class_name == "" and ingress.annotations == DEFAULT_ANNOTATIONS and not ingress.cert_manager
    assert NGINX_HTTPS in ingress.annotations  # the notebook serves HTTPS: so must the controller's hop to it


def test_a_single_seat_stack_is_served_at_the_host_itself_with_the_class_and_annotations() -> None:
    pem = pair("lab.example.com").cert_pem
    cfg = parse({"backend": "kubernetes", "tlsCert": pem, "ingressHost": "lab.example.com", "ingressClassName": "nginx",
                 "ingressAnnotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1g", "example.com/team": 7}})
    ingress = cfg.cluster.ingress
    assert ingress.hosts == (("", "lab.example.com"),) and ingress.host("") == "lab.example.com"
    assert ingress.class_name == "nginx"
    annotations = dict(ingress.annotations)
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "1g"  # the user's over tfbox's default
    assert annotations["example.com/team"] == "7" and annotations[NGINX_HTTPS[0]] == "HTTPS"


def test_engine_json_text_and_a_seats_own_host() -> None:
    seats = [dict(SEATS[0], ingressHost="ana.gpu.example.org"), SEATS[1]]
    cfg = parse(seats_stack(seats=seats, tlsCerts=certs(ana=("ana.gpu.example.org",), bo=("*.lab.example.com",)),
                            ingressAnnotations='{"a.example.com/b": "c"}'))
    assert cfg.cluster.ingress.hosts == (("ana", "ana.gpu.example.org"), ("bo", "bo.lab.example.com"))  # a wildcard covers bo
    assert ("a.example.com/b", "c") in cfg.cluster.ingress.annotations


def test_only_seats_with_a_host_get_an_ingress() -> None:
    seats = [dict(SEATS[0], ingressHost="ana.example.org"), SEATS[1]]
    cfg = parse({"backend": "kubernetes", "seats": seats, "tlsCerts": certs(ana=("ana.example.org",), bo=())})
    assert cfg.cluster.ingress.hosts == (("ana", "ana.example.org"),) and cfg.cluster.ingress.host("bo") is None


def test_without_the_keys_there_is_no_ingress_and_the_settings_are_as_before() -> None:
    cfg = parse({"backend": "kubernetes", "seats": SEATS, "ingressHost": "", "ingressAnnotations": {}, "ingressClassName": ""})
    assert cfg.cluster.ingress is None


def test_every_problem_at_once_with_its_key_and_fix() -> None:
    seats = [dict(SEATS[0], ingressHost="bo.lab.example.com"), SEATS[1], {"name": "cy", "notebookPort": 8803, "tensorboardPort": 6603}]
    problems = problems_of({"backend": "kubernetes", "seats": seats, "ingressHost": "lab.example.com", "ingressClassName": "Nginx!",
                            "ingressAnnotations": {"bad key!": "x", "ok.example.com/n": ["list"]},
                            "tlsCerts": certs(ana=("ana.lab.example.com",), bo=("bo.lab.example.com",), cy=("cy.lab.example.com",))})
    text = "\n".join(problems)
    assert "tfbox:ingressClassName: 'Nginx!' is not an IngressClass name. Fix:" in text
    assert "tfbox:ingressAnnotations: 'bad key!' is not a valid annotation name. Fix:" in text
    assert "tfbox:ingressAnnotations.ok.example.com/n: ['list'] is not a text value. Fix:" in text
    # ana's own host does not match its certificate; then bo's default host is ana's
    assert ("tfbox:tlsCerts.ana: names localhost, ana.lab.example.com but not bo.lab.example.com, the Ingress host of seat ana, "
            "so browsers would refuse it. Fix:") in text
    assert "`make tls STACK=lab` (its certificate names the Ingress host)" in text and "cert-manager.io/cluster-issuer" in text
    assert "tfbox:ingressHost: bo.lab.example.com is also the Ingress host of seat ana. Fix: give every seat its own host." in text
    assert len(problems) == 5, problems


@pytest.mark.parametrize("host", ["Lab.Example.com", "lab_1.example.com", "-lab.example.com", "lab.example.com.", "*.example.com",
                                  "10.0.0.1", "a" * 64 + ".example.com", "lab..example.com"])
def test_a_host_that_is_not_a_dns_name_is_refused(host: str) -> None:
    (problem,) = problems_of(seats_stack(ingressHost=host))
    assert problem.startswith(f"tfbox:ingressHost: {host!r} is ") and "Fix: write the name users type, e.g. lab.example.com" in problem


def test_a_seat_without_tls_is_refused_naming_the_host_key() -> None:
    problems = problems_of({"backend": "kubernetes", "seats": SEATS, "ingressHost": "lab.example.com"})
    assert [p.split(":", 2)[1] for p in problems] == ["ingressHost", "ingressHost"]
    assert problems[0].startswith("tfbox:ingressHost: seat ana serves no TLS, so its Ingress at ana.lab.example.com has no "
                                  "certificate to serve and the password and session cookie would cross the network in cleartext. Fix: run `make tls STACK=lab`")
    (single,) = problems_of({"backend": "kubernetes", "ingressHost": "lab.example.com"})
    assert single.startswith("tfbox:ingressHost: the notebook serves no TLS") and "tfbox:tlsCert/tlsKey" in single


def test_a_shared_certificate_must_name_every_seats_host() -> None:
    problems = problems_of({"backend": "kubernetes", "seats": SEATS, "ingressHost": "lab.example.com",
                            "tlsCert": pair("ana.lab.example.com").cert_pem})
    (problem,) = problems
    assert problem.startswith("tfbox:tlsCert: names localhost, ana.lab.example.com but not bo.lab.example.com, the Ingress host of seat bo")


def test_cert_manager_issues_the_ingress_certificate_but_the_seat_still_serves_tls() -> None:
    issuer = {"cert-manager.io/cluster-issuer": "letsencrypt"}
    cfg = parse(seats_stack(tlsCerts=certs(ana=("ana.internal",), bo=("bo.internal",)), ingressAnnotations=issuer))  # names checked by cert-manager
    assert cfg.cluster.ingress.cert_manager
    problems = problems_of({"backend": "kubernetes", "seats": SEATS, "ingressHost": "lab.example.com", "ingressAnnotations": issuer})
    assert len(problems) == 2 and all("serves no TLS" in p for p in problems)


def test_ingress_keys_on_a_docker_stack_are_refused() -> None:
    seats = [dict(SEATS[0], gpus="0", ingressHost="ana.example.org"), dict(SEATS[1], gpus="1")]
    text = "\n".join(problems_of({"seats": seats, "ingressHost": "lab.example.com", "ingressClassName": "nginx",
                                  "ingressAnnotations": {"a": "b"}}))
    for key in ("ingressHost", "ingressClassName", "ingressAnnotations"):
        assert f"tfbox:{key}: is set but only the kubernetes backend reads it. Fix: `pulumi config rm tfbox:{key}`" in text
    assert "tfbox:seats[0].ingressHost: is set but only the kubernetes backend reads it. Fix: remove it from the seat" in text
    assert parse({"ingressHost": "", "ingressAnnotations": {}}).cluster is None  # the typed config's defaults pass


def test_class_or_annotations_without_a_host_are_refused() -> None:
    problems = problems_of({"backend": "kubernetes", "seats": SEATS, "ingressClassName": "nginx", "ingressAnnotations": {"a": "b"}})
    assert problems == [
        "tfbox:ingressClassName: is set but no seat has an Ingress host. Fix: set tfbox:ingressHost, or `pulumi config rm tfbox:ingressClassName`.",
        "tfbox:ingressAnnotations: is set but no seat has an Ingress host. Fix: set tfbox:ingressHost, or `pulumi config rm tfbox:ingressAnnotations`."]


def test_names_match_as_a_browser_matches_them() -> None:
    assert names_host(["lab.example.com"], "lab.example.com")
    assert names_host(["*.example.com"], "lab.example.com")
    assert not names_host(["*.example.com"], "example.com")
    assert not names_host(["*.example.com"], "ana.lab.example.com")  # one label only
    assert not names_host(["lab.example.com"], "ana.lab.example.com")
    assert cert_dns_names(pair("Lab.Example.com").cert_pem) == ("localhost", "lab.example.com")
    assert host_problem("lab") is None and host_problem("lab.example.com") is None

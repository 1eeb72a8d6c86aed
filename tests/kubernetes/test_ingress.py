"""An Ingress per seat (tfbox:ingressHost): the manifests as data, and the program under Pulumi's mocks: what
`kubectl get ingress,secret,netpol -o yaml` would show a cluster admin, and the outputs a user opens."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.kubernetes import ingress as ki
from components.kubernetes import objects
from components.model.ingress import DEFAULT_ANNOTATIONS, IngressSettings
from components.model.tls import SubjectNames, generate_self_signed
from policy import k8s_rules
from tests.docker.program import is_secret_value, run_program
from tests.kubernetes.test_backend import config
from tests.kubernetes.test_objects import POD
from tests.kubernetes.test_policy import analyze, analyze_stack

# the same two GPU nodes (autouse) and program run as the NodePort tests
from tests.kubernetes.test_service_access import gpu_nodes, run  # noqa: F401

INGRESS, SECRET = "kubernetes:networking.k8s.io/v1:Ingress", "kubernetes:core/v1:Secret"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
ANA = generate_self_signed(SubjectNames(("localhost", "ana.lab.example.com"), ("127.0.0.1",)))
BO = generate_self_signed(SubjectNames(("localhost", "bo.lab.example.com"), ("127.0.0.1",)))
TLS_SEATS = {"tfbox:tlsCerts": json.dumps({"ana": ANA.cert_pem, "bo": BO.cert_pem}),
             "tfbox:tlsKeys": json.dumps({"ana": ANA.key_pem, "bo": BO.key_pem})}
WITH_INGRESS = {**TLS_SEATS, "tfbox:ingressHost": "lab.example.com", "tfbox:tensorboardProxy": True}


def plain(value: Any) -> Any:
    """`value` with every secret-wrapped part dropped: what is left may be shown anywhere."""
    if is_secret_value(value):
        return None
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# --- the manifests as data ---------------------------------------------------------------------------

SETTINGS = IngressSettings(hosts=(("ana", "ana.lab.example.com"),), class_name="nginx", annotations=DEFAULT_ANNOTATIONS)


def test_the_ingress_routes_its_host_over_tls_to_jupyter_only() -> None:
    m = ki.make_ingress("tfbox-lab-ana-notebook", "tfbox-lab", "ana.lab.example.com", "tfbox-lab-ana-notebook", SETTINGS,
                        {"tfbox.seat": "ana"})
    assert m["apiVersion"] == "networking.k8s.io/v1" and m["kind"] == "Ingress"
    spec = m["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["ana.lab.example.com"], "secretName": "tfbox-lab-ana-notebook-ingress-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "ana.lab.example.com"
    assert rule["http"]["paths"] == [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "tfbox-lab-ana-notebook", "port": {"number": 8888}}}}]  # never 6006
    assert m["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert k8s_rules.check_ingress_tls(k8s_rules.INGRESS, m) == []
    assert "ingressClassName" not in ki.make_ingress("n", "ns", "h.example.com", "s", IngressSettings(hosts=()), {})["spec"]


def test_the_tls_secret_is_of_the_type_controllers_read() -> None:
    m = ki.make_tls_secret("s", "ns", "CERT", "KEY", {"tfbox.seat": "ana"})
    assert m["type"] == "kubernetes.io/tls" and m["stringData"] == {"tls.crt": "CERT", "tls.key": "KEY"}
    assert ki.ingress_urls("ana.lab.example.com", proxy=True) == {
        "ingressUrl": "https://ana.lab.example.com/", "tensorboardProxyUrl": "https://ana.lab.example.com/tensorboard/"}
    assert ki.ingress_urls("lab.example.com", proxy=False) == {"ingressUrl": "https://lab.example.com/"}


def _selects(selector: Mapping[str, Any], found: Mapping[str, str]) -> bool:
    """A LabelSelector as the API server reads it: matchLabels and matchExpressions all hold."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if found.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        has, value = e["key"] in found, found.get(e["key"])
        ok = {"In": has and value in e.get("values", []), "NotIn": not has or value not in e.get("values", []),
              "Exists": has, "DoesNotExist": not has}[e["operator"]]
        if not ok:
            return False
    return True


def admits(policy: Mapping[str, Any], port: int, namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]) -> bool:
    """Whether a NetworkPolicy lets a pod (in a namespace with these labels) reach `port` of the pods it selects."""
    for rule in policy["spec"]["ingress"]:
        if not any(p["port"] == port for p in rule["ports"]):
            continue
        for peer in rule["from"]:
            if "ipBlock" in peer:
                continue
            ns_ok = "namespaceSelector" in peer and _selects(peer["namespaceSelector"], namespace_labels)
            if ns_ok and _selects(peer.get("podSelector", {}), pod_labels):
                return True
    return False


def test_the_network_policy_lets_an_ingress_controller_in_and_other_seats_out() -> None:
    policy = objects.make_network_policy("tfbox-lab-ana-notebook", POD)
    controller_ns = {"kubernetes.io/metadata.name": "ingress-nginx"}
    controller = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}
    assert admits(policy, 8888, controller_ns, controller)  # the NotIn stack selector matches pods without tfbox's label
    assert not admits(policy, 6006, controller_ns, controller)  # TensorBoard's own port: no one
    other_seat = objects.labels(POD.project, POD.stack, "bo", "notebook")
    assert not admits(policy, 8888, {"kubernetes.io/metadata.name": "tfbox-lab"}, other_seat)


# --- the program under Pulumi's mocks ---------------------------------------------------------------


def test_each_seat_gets_an_ingress_at_its_host_and_a_secret_tls_secret() -> None:
    rec, out = run(**WITH_INGRESS)
    for seat, pair in (("ana", ANA), ("bo", BO)):
        host = f"{seat}.lab.example.com"
        ing = rec.one(INGRESS, f"{seat}-ingress").inputs
        assert ing["metadata"]["namespace"] == "tfbox-lab" and ing["metadata"]["name"] == f"tfbox-lab-{seat}-notebook"
        assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
        assert ing["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"  # no controller needed for `up` to return
        assert ing["spec"]["tls"] == [{"hosts": [host], "secretName": f"tfbox-lab-{seat}-notebook-ingress-tls"}]
        assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
            "name": f"tfbox-lab-{seat}-notebook", "port": {"number": 8888}}
        assert "ingressClassName" not in ing["spec"]
        secret = rec.one(SECRET, f"{seat}-ingress-tls").inputs
        assert secret["type"] == "kubernetes.io/tls" and secret["metadata"]["name"] == f"tfbox-lab-{seat}-notebook-ingress-tls"
        assert is_secret_value(secret["stringData"])
        assert secret["stringData"]["value"] == {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem}
        config = json.loads(rec.one(SECRET, f"{seat}-secret").inputs["stringData"]["value"]["etc.jupyter.jupyter_server_config.json"])
        assert config["ServerApp"]["allow_remote_access"] is True  # the controller forwards the Ingress host as Host
        assert out["seats"][seat]["ingressUrl"] == f"https://{host}/"
        assert out["seats"][seat]["tensorboardProxyUrl"] == f"https://{host}/tensorboard/"
        assert out["seats"][seat]["notebookUrl"].startswith(f"https://tfbox-lab-{seat}-notebook.tfbox-lab.svc")  # as before
    text = json.dumps([plain(r.inputs) for r in rec.resources]) + json.dumps(out)
    for pair in (ANA, BO):  # no private key outside a secret value
        body = pair.key_pem.split("-----")[2].strip().splitlines()[0]
        assert body not in text


def test_the_policy_pack_passes_tfboxs_own_ingress() -> None:
    rec, _ = run(**WITH_INGRESS, **{"tfbox:ingressClassName": "nginx"})
    resources = [(d.type, d.name, json.loads(json.dumps(d.inputs))) for d in rec.resources if d.type.startswith("kubernetes:")]
    assert sum(t == INGRESS for t, _, _ in resources) == 2
    for t, n, p in resources:
        assert analyze(t, n, p) == {}, (t, n)
    assert [f for f in analyze_stack(resources) if f[0].startswith("k8s-")] == []


def test_a_single_seat_stack_with_cert_manager_makes_no_certificate_secret() -> None:
    pair = generate_self_signed(SubjectNames(("localhost",), ("127.0.0.1",)))
    cfg = config(**{"tfbox:tlsCert": pair.cert_pem, "tfbox:tlsKey": pair.key_pem, "tfbox:ingressHost": "lab.example.com",
                    "tfbox:ingressAnnotations": json.dumps({"cert-manager.io/cluster-issuer": "letsencrypt",
                                                            "nginx.ingress.kubernetes.io/proxy-body-size": "1g"})})
    del cfg["tfbox:seats"], cfg["tfbox:passwords"]
    rec, out = run_program({**cfg, "tfbox:password": "a-long-password-1"}, stack="lab")
    ing = rec.one(INGRESS, "ingress").inputs
    assert ing["spec"]["tls"] == [{"hosts": ["lab.example.com"], "secretName": "tfbox-lab-notebook-ingress-tls"}]
    annotations = ing["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt" and annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "1g"
    assert not [r for r in rec.resources if r.type == SECRET and r.name.endswith("ingress-tls")]  # cert-manager makes it
    assert out["ingressUrl"] == "https://lab.example.com/"


def test_without_the_keys_a_stack_declares_the_same_objects_as_before() -> None:
    def objects_of(rec: Any) -> dict[tuple[str, str], Any]:
        return {(r.type, r.name): json.loads(json.dumps(plain(r.inputs))) for r in rec.resources}

    before, out_before = run(**TLS_SEATS)
    # the typed config hands every stack the keys' defaults
    after, out_after = run(**TLS_SEATS, **{"tfbox:ingressHost": "", "tfbox:ingressClassName": "", "tfbox:ingressAnnotations": "{}"})
    assert objects_of(after) == objects_of(before) and out_after == out_before
    assert not any(t == INGRESS or n.endswith("ingress-tls") for t, n in objects_of(before))
    assert not any("ingressUrl" in s for s in out_before["seats"].values())
    config = json.loads(before.one(SECRET, "ana-secret").inputs["stringData"]["value"]["etc.jupyter.jupyter_server_config.json"])
    assert config["ServerApp"]["allow_remote_access"] is False  # the DNS-rebinding guard stays on without an Ingress


def test_status_tells_a_user_the_ingress_address(tmp_path: Path) -> None:
    """`make status` reads the stack file's plan: a seat with an Ingress is reached at its host."""
    from components.config import check_stack_file
    from components.kubernetes.health import ClusterRead, expects_of, seat_states
    from components.model.plan import make_plan

    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump({"config": {
        "tfbox:backend": "kubernetes", "tfbox:ingressHost": "lab.example.com", "tfbox:tlsCerts": {"ana": ANA.cert_pem, "bo": BO.cert_pem},
        "tfbox:seats": [{"name": "ana", "notebookPort": 8801, "tensorboardPort": 6601},
                        {"name": "bo", "notebookPort": 8802, "tensorboardPort": 6602, "ingressHost": "bo.lab.example.com"}]}}))
    namespace, expects = expects_of(make_plan(check_stack_file(path, siblings=False)))
    assert [e.ingress_host for e in expects] == ["ana.lab.example.com", "bo.lab.example.com"]
    service = {"kind": "Service", "metadata": {"name": "tfbox-lab-ana-notebook", "namespace": namespace},
               "spec": {"type": "ClusterIP", "ports": [{"name": "jupyter", "port": 8888}]}}
    [ana] = seat_states(expects[:1], ClusterRead(services=(service,)), namespace)
    assert ana.reach == "https://ana.lab.example.com/ (Ingress)" and ana.urls["ingress"] == "https://ana.lab.example.com/"
    assert ana.urls["notebook"] == "https://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:8888/"

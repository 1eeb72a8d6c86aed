"""Access from outside the cluster (tfbox:serviceType) in the program under Pulumi's mocks: what `kubectl get svc,netpol
-o yaml` would show a cluster admin, and the outputs a user reads to connect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.kubernetes.backend import KubernetesBackend
from tests.docker.program import is_secret_value, run_program
from tests.kubernetes.test_backend import config, node
from tests.kubernetes.test_policy import NODE_PORT, SEATS_30K, TLS, TLS_BO

SERVICE, POLICY, SECRET = "kubernetes:core/v1:Service", "kubernetes:networking.k8s.io/v1:NetworkPolicy", "kubernetes:core/v1:Secret"


@pytest.fixture(autouse=True)
def gpu_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [node("gpu-1", 2, gpu="h100"), node("gpu-2", 2, gpu="h100")]
    monkeypatch.setattr(KubernetesBackend, "read_cluster", lambda self: (nodes, [], None))


def run(**extra: Any) -> tuple[Any, dict[str, Any]]:
    return run_program(config(**extra), stack="lab", secret_keys=("tfbox:passwords", "tfbox:tlsKeys"))


def node_port_stack() -> tuple[Any, dict[str, Any]]:
    return run(**{"tfbox:seats": SEATS_30K, "tfbox:tlsCerts": json.dumps({"ana": TLS.cert_pem, "bo": TLS_BO.cert_pem}),
                  "tfbox:tlsKeys": json.dumps({"ana": TLS.key_pem, "bo": TLS_BO.key_pem}), **NODE_PORT})


def jupyter_server(rec: Any, seat: str) -> dict[str, Any]:
    data = rec.one(SECRET, f"{seat}-secret").inputs["stringData"]
    assert is_secret_value(data)
    return dict(json.loads(data["value"]["etc.jupyter.jupyter_server_config.json"])["ServerApp"])


def test_cluster_ip_stays_as_it_was() -> None:
    rec, out = run()
    spec = rec.one(SERVICE, "ana-service").inputs["spec"]
    # TensorBoard's port is on its own pod's headless Service now (components.kubernetes.tensorboard)
    assert spec["type"] == "ClusterIP" and [p["name"] for p in spec["ports"]] == ["jupyter"]
    tb = rec.one(SERVICE, "ana-tensorboard-service").inputs["spec"]
    assert tb["clusterIP"] == "None" and [p["name"] for p in tb["ports"]] == ["tensorboard"]
    assert not any("nodePort" in p for p in spec["ports"])
    peers = rec.one(POLICY, "ana-network-policy").inputs["spec"]["ingress"][0]["from"]
    assert not any("ipBlock" in p for p in peers)
    assert jupyter_server(rec, "ana")["allow_remote_access"] is False  # `kubectl port-forward` sends Host: localhost
    assert "notebookNodePort" not in out["seats"]["ana"] and out["seats"]["ana"]["tensorboardUrl"]


def test_a_node_port_publishes_only_jupyter_at_the_seats_port_to_the_listed_networks() -> None:
    rec, out = node_port_stack()
    for seat, port in (("ana", 30801), ("bo", 30802)):
        spec = rec.one(SERVICE, f"{seat}-service").inputs["spec"]
        assert spec["type"] == "NodePort"
        assert spec["ports"] == [{"name": "jupyter", "port": 8888, "targetPort": 8888, "nodePort": port}]  # no TensorBoard
        peers = rec.one(POLICY, f"{seat}-network-policy").inputs["spec"]["ingress"][0]["from"]
        assert {"ipBlock": {"cidr": "192.168.10.0/24"}} in peers
        server = jupyter_server(rec, seat)
        assert server["allow_remote_access"] is True and server["certfile"] and server["keyfile"]  # a node's address as Host
        assert out["seats"][seat]["notebookNodePort"] == port
        assert out["seats"][seat]["notebookUrl"].startswith("https://")
        assert "tensorboardUrl" not in out["seats"][seat]

"""The policy pack's Kubernetes rules and `tfbox:serviceType: NodePort` with the real engine, the built
pulumi-kubernetes provider and the test kit's API server (kwok GPU nodes: docs/kubernetes.md).

What a user would check: `pulumi up --policy-pack policy` of a NodePort stack with TLS passes and the cluster
has a NodePort Service at the seat's port carrying Jupyter only, with the NetworkPolicy letting the listed
network in; the same stack without TLS is refused at preview naming tfbox:serviceType, before anything is
created; an Ingress stack (tfbox:ingressHost) with TLS passes the pack, the API server holds its Ingress and
kubernetes.io/tls Secret, a second preview changes nothing and the key is in no export or CLI output, and without
TLS it is refused at preview naming tfbox:ingressHost; a cluster stack made by the release before these keys (`BEFORE`) changes on `up` only what the
CHANGELOG says (its notebook pods replaced once, TensorBoard's own objects created, the claims kept), the
policy pack included, and a second `up` changes nothing; and a program that breaks the rules (a privileged hostNetwork pod with a hostPath, a private key in a
ConfigMap, a NodePort to a plain-HTTP notebook, an Ingress without TLS) is refused by `pulumi preview --policy-pack` naming each policy.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.model.tls import SubjectNames, generate_self_signed, subject_names
from tests.e2e.harness import ROOT, Project, Stack, change_summary
from tests.e2e.k8s import Cluster, provider_project, start_cluster, stop_cluster
from tests.e2e.test_k8s_backend import k8s_stack

NAME = "k8spol"
BEFORE = "92b8d58"  # the last commit before tfbox:serviceType and the Kubernetes policies: its cluster stacks must not change
SEAT = [{"name": "ana", "gpus": "count=1", "notebookPort": 30801, "tensorboardPort": 6601}]
CPU_SEAT = [{"name": "ana", "notebookPort": 8801, "tensorboardPort": 6601}]  # holds no GPU the later tests need


@pytest.fixture(scope="module")
def cluster(k8s_kit: Path) -> Iterator[Cluster]:
    c = start_cluster(NAME)
    try:
        c.gpu_node("gpu-1", 2, gpu="h100")
        c.volumes(8, "1Gi")  # the kit has no provisioner: static volumes the claims bind to (kept claims keep theirs)
        yield c
    finally:
        stop_cluster(NAME)


@pytest.fixture(scope="module")
def project(cluster: Cluster, k8s_kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provider_project(tmp_path_factory.mktemp("k8spol"), k8s_kit)


def test_a_node_port_stack_with_tls_passes_the_pack_and_publishes_jupyter_only(project: Project, cluster: Cluster) -> None:
    pair = generate_self_signed(subject_names("kubernetes://kit", "0.0.0.0"))
    st = k8s_stack(project, cluster, "np", SEAT, {"ana": secrets.token_urlsafe(18)}, **{
        "tfbox:serviceType": "NodePort", "tfbox:nodePortSources": ["192.168.10.0/24"], "tfbox:tlsCerts": {"ana": pair.cert_pem}})
    project.pulumi("config", "set", "--secret", "--path", "tfbox:tlsKeys.ana", "--stack", "np", input=pair.key_pem)
    res = st.preview("--policy-pack", "policy")
    assert "[mandatory]" not in res.output and "k8s-" not in res.output, res.output[-3000:]
    res = st.up("--policy-pack", "policy", timeout=600)
    assert "[mandatory]" not in res.output and "k8s-" not in res.output, res.output[-3000:]

    svc = cluster.get("service", "-n", "tfbox-np", "tfbox-np-ana-notebook")
    assert svc["spec"]["type"] == "NodePort"
    assert [(p["name"], p["port"], p["nodePort"]) for p in svc["spec"]["ports"]] == [("jupyter", 8888, 30801)]
    policy = cluster.get("networkpolicy", "-n", "tfbox-np", "tfbox-np-ana-notebook")
    assert {"ipBlock": {"cidr": "192.168.10.0/24"}} in policy["spec"]["ingress"][0]["from"]
    assert st.outputs()["seats"]["ana"]["notebookNodePort"] == 30801
    st.destroy()


def test_a_node_port_without_tls_is_refused_at_preview_and_nothing_is_created(project: Project, cluster: Cluster) -> None:
    st = k8s_stack(project, cluster, "plain", SEAT, {"ana": secrets.token_urlsafe(18)}, **{
        "tfbox:serviceType": "NodePort", "tfbox:nodePortSources": ["192.168.10.0/24"]})
    res = st.preview("--policy-pack", "policy", check=False)
    assert res.returncode != 0
    assert "tfbox:serviceType: NodePort publishes seat ana on every node's address over plain HTTP" in res.output, res.output[-3000:]
    assert "make tls" in res.output
    gone = cluster.kubectl("get", "namespace", "tfbox-plain", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_an_ingress_stack_passes_the_pack_and_its_key_stays_secret(project: Project, cluster: Cluster) -> None:
    """The API server takes tfbox's Ingress and kubernetes.io/tls Secret (the kit has no ingress controller: what
    one does with them is not proven here); a second preview changes nothing; the key is in no output or export."""
    pair = generate_self_signed(SubjectNames(("localhost", "ana.lab.example.test"), ("127.0.0.1",)))
    st = k8s_stack(project, cluster, "ing", CPU_SEAT, {"ana": secrets.token_urlsafe(18)}, **{
        "tfbox:ingressHost": "lab.example.test", "tfbox:tlsCerts": {"ana": pair.cert_pem}, "tfbox:tensorboardProxy": True})
    project.pulumi("config", "set", "--secret", "--path", "tfbox:tlsKeys.ana", "--stack", "ing", input=pair.key_pem)
    res = st.up("--policy-pack", "policy", timeout=600)
    assert "[mandatory]" not in res.output and "k8s-" not in res.output, res.output[-3000:]

    ing = cluster.get("ingress", "-n", "tfbox-ing", "tfbox-ing-ana-notebook")
    assert ing["spec"]["tls"] == [{"hosts": ["ana.lab.example.test"], "secretName": "tfbox-ing-ana-notebook-ingress-tls"}]
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "ana.lab.example.test"
    assert rule["http"]["paths"] == [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "tfbox-ing-ana-notebook", "port": {"number": 8888}}}}]
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    tls = cluster.get("secret", "-n", "tfbox-ing", "tfbox-ing-ana-notebook-ingress-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.crt"]).decode() == pair.cert_pem
    assert base64.b64decode(tls["data"]["tls.key"]).decode() == pair.key_pem  # the controller's to read, in the cluster only
    svc = cluster.get("service", "-n", "tfbox-ing", "tfbox-ing-ana-notebook")
    assert svc["spec"]["type"] == "ClusterIP"  # beside the Ingress, as before
    outputs = st.outputs()
    assert outputs["seats"]["ana"]["ingressUrl"] == "https://ana.lab.example.test/"
    assert outputs["seats"]["ana"]["tensorboardProxyUrl"] == "https://ana.lab.example.test/tensorboard/"

    again = st.preview("--expect-no-changes", "--policy-pack", "policy")
    assert "[mandatory]" not in again.output, again.output[-3000:]
    body = "".join(pair.key_pem.strip().splitlines()[1:-1])
    seen = st.export() + "\n".join(project.transcript) + res.output + again.output + json.dumps(st.outputs())
    for secret_text in (body[:40], body[-40:], base64.b64encode(pair.key_pem.encode()).decode()[:40], "PRIVATE KEY"):
        assert secret_text not in seen.replace("\n", ""), "the TLS key shows in the state, an output or the CLI's output"
    st.destroy()


def test_an_ingress_without_tls_is_refused_at_preview_naming_the_key(project: Project, cluster: Cluster) -> None:
    st = k8s_stack(project, cluster, "ingplain", CPU_SEAT, {"ana": secrets.token_urlsafe(18)}, **{"tfbox:ingressHost": "lab.example.test"})
    res = st.preview("--policy-pack", "policy", check=False)
    assert res.returncode != 0
    assert "tfbox:ingressHost: seat ana serves no TLS, so its Ingress at ana.lab.example.test has no certificate" in res.output, \
        res.output[-3000:]
    assert "make tls STACK=ingplain" in res.output
    gone = cluster.kubectl("get", "namespace", "tfbox-ingplain", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


VIOLATING_PROGRAM = '''
import json
import pulumi_kubernetes as k8s

ns = "default"
labels = {"app": "nb"}
k8s.core.v1.ConfigMap("files", metadata={"name": "files", "namespace": ns},
                      data={"notebook.key": "-----BEGIN PRIVATE KEY-----\\nMIGHAgEA\\n-----END PRIVATE KEY-----\\n"})
k8s.core.v1.Secret("secret", metadata={"name": "nb-secret", "namespace": ns}, string_data={
    "config.json": json.dumps({"PasswordIdentityProvider": {"hashed_password": "argon2:x"}, "ServerApp": {}})})
k8s.apps.v1.Deployment("nb", metadata={"name": "nb", "namespace": ns}, spec={
    "selector": {"matchLabels": labels},
    "template": {"metadata": {"labels": labels}, "spec": {
        "hostNetwork": True,
        "volumes": [{"name": "node", "hostPath": {"path": "/srv"}},
                    {"name": "secret", "secret": {"secretName": "nb-secret"}}],
        "containers": [{"name": "notebook", "image": "tensorflow/tensorflow:latest-jupyter",
                        "ports": [{"containerPort": 8888}],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "secret", "mountPath": "/etc/jupyter/jupyter_server_config.json",
                                          "subPath": "config.json"}]}]}}})
k8s.core.v1.Service("svc", metadata={"name": "nb", "namespace": ns}, spec={
    "type": "NodePort", "selector": labels, "ports": [{"port": 8888, "targetPort": 8888, "nodePort": 30999}]})
k8s.networking.v1.Ingress("in", metadata={"name": "nb", "namespace": ns}, spec={"rules": [{"host": "lab.example.com", "http": {
    "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "nb", "port": {"number": 8888}}}}]}}]})
'''


def test_the_engine_refuses_a_program_that_breaks_the_kubernetes_rules(project: Project, cluster: Cluster) -> None:
    program = project.dir / "violating"
    program.mkdir()
    (program / ".venv").symlink_to(project.dir / ".venv")
    (program / "Pulumi.yaml").write_text("name: violating\nruntime:\n  name: python\n  options:\n    virtualenv: .venv\n")
    (program / "__main__.py").write_text(VIOLATING_PROGRAM)
    (program / "Pulumi.bad.yaml").write_text(yaml.safe_dump({"config": {"kubernetes:kubeconfig": str(cluster.kubeconfig)}}))
    project.pulumi("-C", "violating", "stack", "init", "bad", "--secrets-provider", "passphrase")
    res = project.pulumi("-C", "violating", "preview", "--stack", "bad", "--policy-pack", str(project.dir / "policy"), check=False)
    out = res.output
    assert res.returncode != 0, out[-3000:]
    for policy in ("k8s-no-host-access", "k8s-no-privilege", "k8s-secrets-in-secrets", "k8s-exposed-notebook-requires-tls",
                   "k8s-ingress-requires-tls"):
        assert f"[mandatory]  {policy}" in out, (policy, out[-4000:])
    assert "sets hostNetwork: true" in out and "mounts the node's directory '/srv'" in out
    assert "ConfigMap 'files' holds a PEM private key" in out
    assert "Service 'nb' (type NodePort) exposes port 8888 of Deployment 'nb' over plain HTTP" in out
    assert cluster.kubectl("get", "deployment", "nb", "-n", "default", check=False).returncode != 0  # preview made nothing


def test_a_cluster_stack_of_the_release_before_previews_with_no_change(project: Project, cluster: Cluster,
                                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """ClusterIP stays the default: an existing stack's Secrets (the Jupyter config) and claims are kept; its
    StatefulSets are replaced once (the readiness probe's Host header, TensorBoard moved to a pod of its own), its
    ConfigMaps replaced (the proxy's target), its Services and NetworkPolicies updated and TensorBoard's objects
    created, as the CHANGELOG says;
    tfbox's objects pass the new policies, and a second `up` changes nothing."""
    archive = subprocess.run(["git", "archive", "--format=tar", BEFORE], cwd=ROOT, capture_output=True, check=True).stdout
    old = tmp_path_factory.mktemp("before") / "project"
    old.mkdir()
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    (old / ".venv").symlink_to(ROOT / ".venv")
    before = copy.copy(project)
    before.dir = old
    seats = [{"name": "ana", "gpus": "count=1", "notebookPort": 8801, "tensorboardPort": 6601},
             {"name": "bo", "gpus": "count=1", "notebookPort": 8802, "tensorboardPort": 6602}]
    st = k8s_stack(before, cluster, "old", seats, {"ana": secrets.token_urlsafe(18), "bo": secrets.token_urlsafe(18)},
                   **{"tfbox:tensorboardProxy": True})
    st.up(timeout=600)
    outputs = st.outputs()
    shutil.copy(old / "Pulumi.old.yaml", project.dir / "Pulumi.old.yaml")  # the stack file, its secrets included
    now = Stack(project, "old")
    res = now.preview("--diff", "--policy-pack", "policy")
    assert "[mandatory]" not in res.output and "k8s-" not in res.output, res.output[-3000:]
    # what the CHANGELOG names since: the notebook's readiness probe sends Host: localhost, and TensorBoard moved
    # to a pod of its own (the notebook's pod template, its selector by role and its affinity changed), so each
    # seat's StatefulSet is replaced once (components/kubernetes/lab.py); the claims stay
    assert "httpHeaders" in res.output, res.output[-3000:]
    # with its ConfigMap (the proxy's new target: the provider replaces a ConfigMap whose data changes)
    replaced = sorted(re.findall(r"^\s*\+-\s*(kubernetes:\S+?):?\s", res.output, re.M))
    assert replaced == sorted(["kubernetes:apps/v1:StatefulSet", "kubernetes:core/v1:ConfigMap"] * 2), res.output[-3000:]
    # each seat's notebook Service (pulumi.com/skipAwait; the selector by role; TensorBoard's port gone to its own
    # Service) and NetworkPolicy (by role) in place
    updated = sorted(re.findall(r"^\s*~\s*(kubernetes:\S+?):?\s", res.output, re.M))
    assert updated == sorted(["kubernetes:core/v1:Service", "kubernetes:networking.k8s.io/v1:NetworkPolicy"] * 2), res.output[-3000:]
    # and TensorBoard's Deployment, headless Service and NetworkPolicy created per seat; nothing deleted
    created = sorted(re.findall(r"^\s*\+\s*(kubernetes:\S+?):?\s", res.output, re.M))
    assert created == sorted(["kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service",
                              "kubernetes:networking.k8s.io/v1:NetworkPolicy"] * 2), res.output[-3000:]
    assert "to delete" not in res.output, res.output[-3000:]
    claims = cluster.get("pvc", "-n", "tfbox-old")["items"]
    res = now.up("--policy-pack", "policy", timeout=600)
    assert change_summary(res.output) == {"replaced": 4, "updated": 4, "created": 6}, res.output[-3000:]
    # the claims are kept, not replaced: the same objects, still bound to the same volumes
    assert ([(c["metadata"]["uid"], c["spec"]["volumeName"]) for c in cluster.get("pvc", "-n", "tfbox-old")["items"]]
            == [(c["metadata"]["uid"], c["spec"]["volumeName"]) for c in claims])
    after = now.outputs()
    # the up rewrote them from this version's program: the same, plus the gpuLedger output by seat, and TensorBoard's
    # new address and Deployment (CHANGELOG)
    assert after.pop("gpuLedger") == {s["name"]: {"gpus": 1, "resource": "nvidia.com/gpu", "nodeSelector": {"gpu": "h100"}}
                                      for s in seats}
    for s in seats:
        was, now_seat = outputs["seats"][s["name"]], after["seats"][s["name"]]
        assert was.pop("tensorboardUrl") == f"http://tfbox-old-{s['name']}-notebook.tfbox-old.svc.cluster.local:6006/"
        assert now_seat.pop("tensorboardUrl") == f"http://tfbox-old-{s['name']}-tensorboard.tfbox-old.svc.cluster.local:6006/"
        assert now_seat["containerNames"] == [*was["containerNames"], f"tfbox-old-{s['name']}-tensorboard"]
        was["containerNames"] = now_seat["containerNames"]
    assert after.pop("containerNames") == [n for s in seats for n in (f"tfbox-old-{s['name']}-notebook-0",
                                                                      f"tfbox-old-{s['name']}-tensorboard")]
    outputs.pop("containerNames")
    assert after == outputs
    # and a second up changes nothing
    assert change_summary(now.up("--policy-pack", "policy", timeout=600).output) == {}
    now.destroy()

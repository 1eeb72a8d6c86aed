"""The policy pack's Kubernetes rules (policy/k8s_rules.py) on manifests as data, through pulumi-policy's own
analyzer servicer, and against what the real program declares under Pulumi's mocks. The engine itself, with the
kit's API server: tests/e2e/test_k8s_backend.py."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy.policy import EnforcementLevel, _PolicyAnalyzerServicer

from components.kubernetes import objects, tensorboard
from components.kubernetes.backend import KubernetesBackend
from components.model.tls import generate_self_signed, subject_names
from policy import k8s_rules
from policy.pack import PACK_NAME, build_policies
from tests.kubernetes.test_backend import config, node, run
from tests.kubernetes.test_objects import POD

STS, DEPLOY, POD_T, CRONJOB = ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Pod",
                               "kubernetes:batch/v1:CronJob")
JUPYTER_JSON = "/etc/jupyter/jupyter_server_config.json"
HASH = "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHQ$" + "a" * 43
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"


def jupyter_json(tls: bool) -> str:
    server: dict[str, Any] = {"allow_remote_access": True}
    if tls:
        server.update(certfile="/etc/jupyter/tfbox-notebook.crt", keyfile="/etc/jupyter/tfbox-notebook.key")
    return json.dumps({"PasswordIdentityProvider": {"hashed_password": HASH}, "ServerApp": server})


def seat(tls: bool = True, service_type: str = "NodePort", tensorboard_mode: str = "sidecar") -> list[tuple[str, dict[str, Any]]]:
    """One seat's objects as tfbox makes them (objects.py, tensorboard.py), as (type, inputs) pairs: the notebook's
    at 0-4, a sidecar's Deployment, Service and policy at 5-7."""
    pod = replace(POD, tls=tls, tensorboard_mode=tensorboard_mode,
                  secret_files=POD.secret_files if tls else POD.secret_files[:1],
                  plain_files=POD.plain_files if tls else POD.plain_files[:1])
    files = {JUPYTER_JSON: jupyter_json(tls), **({"/etc/jupyter/tfbox-notebook.key": PEM_KEY} if tls else {})}
    return [
        ("kubernetes:core/v1:Secret", objects.make_secret("ana-secret", "tfbox-team", files, {})),
        ("kubernetes:core/v1:ConfigMap", objects.make_config_map("ana-files", "tfbox-team", {
            "/etc/jupyter/jupyter_server_config.py": "c = get_config()\n",
            "/etc/jupyter/tfbox-notebook.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}, {})),
        (STS, objects.make_statefulset("ana", pod)),
        ("kubernetes:core/v1:Service", objects.make_service("ana", pod, service_type,
                                                             {"jupyter": 30888} if service_type == "NodePort" else None)),
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", objects.make_network_policy("ana", pod)),
        *([(DEPLOY, tensorboard.make_tensorboard_deployment("ana-tensorboard", pod)),
           ("kubernetes:core/v1:Service", tensorboard.make_tensorboard_service("ana-tensorboard", pod)),
           ("kubernetes:networking.k8s.io/v1:NetworkPolicy", tensorboard.make_tensorboard_network_policy("ana-tensorboard", pod))]
          if tensorboard_mode == "sidecar" else []),
    ]


RESOURCE_RULES = (k8s_rules.check_no_host_access, k8s_rules.check_no_privilege, k8s_rules.check_secrets_in_secrets,
                  k8s_rules.check_ingress_tls)


def all_violations(resources: list[tuple[str, dict[str, Any]]]) -> list[str]:
    found = [m for t, p in resources for rule in RESOURCE_RULES for m in rule(t, p)]
    return found + [m for _, m in k8s_rules.check_exposed_services(resources)]


def workload(**pod_spec: Any) -> dict[str, Any]:
    """A Deployment whose pod spec has these fields over a compliant container."""
    container = {"name": "app", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": False}}
    spec = {"containers": [container], **pod_spec}
    return {"metadata": {"name": "web"}, "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}}


# --- the objects tfbox makes pass ------------------------------------------------------------------


@pytest.mark.parametrize("tls,service_type", [(True, "NodePort"), (True, "ClusterIP"), (False, "ClusterIP")])
def test_tfboxs_own_objects_pass_every_rule(tls: bool, service_type: str) -> None:
    assert all_violations(seat(tls, service_type)) == []


# --- host access and privilege --------------------------------------------------------------------


@pytest.mark.parametrize("key", ["hostNetwork", "hostPID", "hostIPC"])
def test_a_host_namespace_is_refused(key: str) -> None:
    (message,) = k8s_rules.check_no_host_access(DEPLOY, workload(**{key: True}))
    assert f"Deployment 'web' sets {key}: true" in message and "remove it" in message
    assert k8s_rules.check_no_host_access(DEPLOY, workload(**{key: False})) == []


def test_a_host_path_volume_is_refused_in_every_workload_kind() -> None:
    volumes = [{"name": "data", "hostPath": {"path": "/srv"}}, {"name": "ok", "emptyDir": {}}]
    (message,) = k8s_rules.check_no_host_access(DEPLOY, workload(volumes=volumes))
    assert "mounts the node's directory '/srv' (hostPath volume 'data')" in message and "PersistentVolumeClaim" in message
    spec = workload(volumes=volumes)["spec"]["template"]["spec"]
    assert k8s_rules.check_no_host_access(POD_T, {"metadata": {"name": "p"}, "spec": spec})
    cron = {"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}
    assert k8s_rules.check_no_host_access(CRONJOB, cron)
    assert k8s_rules.check_no_host_access("kubernetes:apps/v1:DeploymentPatch", workload(volumes=volumes))


def test_a_privileged_container_is_refused() -> None:
    props = workload()
    props["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    (message,) = k8s_rules.check_no_privilege(DEPLOY, props)
    assert "container 'app' of Deployment 'web' is privileged" in message


@pytest.mark.parametrize("context", [None, {}, {"allowPrivilegeEscalation": True}], ids=["no-context", "unset", "true"])
def test_privilege_escalation_must_be_off_explicitly_in_init_containers_too(context: dict[str, Any] | None) -> None:
    init = {"name": "init", "image": "busybox", **({"securityContext": context} if context is not None else {})}
    (message,) = k8s_rules.check_no_privilege(DEPLOY, workload(initContainers=[init]))
    assert "container 'init' of Deployment 'web' may gain privileges" in message
    assert "allowPrivilegeEscalation: false" in message


def test_resources_that_run_no_pod_are_not_read() -> None:
    for rule in RESOURCE_RULES:
        assert rule("kubernetes:core/v1:Service", {"spec": {"hostNetwork": True}}) == []
        assert rule("docker:index/container:Container", workload(hostNetwork=True)) == []


# --- secrets only in Secrets ------------------------------------------------------------------------


@pytest.mark.parametrize("text,what", [
    (PEM_KEY, "a PEM private key"),
    ("-----BEGIN EC PRIVATE KEY-----\n...", "a PEM private key"),
    (json.dumps({"PasswordIdentityProvider": {"hashed_password": "x"}}), "a Jupyter password hash"),
    ("c.PasswordIdentityProvider.hashed_password = 'argon2:...'", "a Jupyter password hash"),
    ("$argon2id$v=19$m=10240,t=10,p=8$abc$def", "an argon2 password hash"),
    ("sha1:0123456789ab:" + "0" * 40, "a Jupyter password hash"),
])
def test_a_config_map_holding_a_secret_is_refused(text: str, what: str) -> None:
    cm = objects.make_config_map("files", "ns", {"/etc/x/secret.txt": text}, {})
    (message,) = k8s_rules.check_secrets_in_secrets(k8s_rules.CONFIG_MAP, cm)
    assert message.startswith(f"ConfigMap 'files' holds {what} in data.etc.x.secret.txt: put it in a Secret")
    binary = {"metadata": {"name": "bin"}, "binaryData": {"k": base64.b64encode(text.encode()).decode()}}
    assert k8s_rules.check_secrets_in_secrets(k8s_rules.CONFIG_MAP, binary)


def test_a_certificate_in_a_config_map_is_no_secret() -> None:
    cm = objects.make_config_map("files", "ns", {"/etc/jupyter/tfbox-notebook.crt": "-----BEGIN CERTIFICATE-----\nMIIB"}, {})
    assert k8s_rules.check_secrets_in_secrets(k8s_rules.CONFIG_MAP, cm) == []


def test_a_secret_in_a_plain_env_value_is_refused_but_a_secret_ref_is_fine() -> None:
    props = workload()
    env = props["spec"]["template"]["spec"]["containers"][0].setdefault("env", [])
    env += [{"name": "JUPYTER_PASSWORD", "value": "hunter2hunter2"},
            {"name": "TLS", "value": PEM_KEY},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
            {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
            {"name": "HF_TOKEN", "value": "hf_abcdef"},
            {"name": "API_TOKEN", "value": ""}]
    messages = k8s_rules.check_secrets_in_secrets(DEPLOY, props)
    assert len(messages) == 3
    assert "a secret by its name in the plain env value JUPYTER_PASSWORD" in messages[0] and "secretKeyRef" in messages[0]
    assert "a PEM private key in the plain env value TLS" in messages[1]
    assert "a secret by its name in the plain env value HF_TOKEN" in messages[2]


# --- Services exposed beyond the cluster ------------------------------------------------------------


def test_a_node_port_to_a_notebook_without_tls_is_refused() -> None:
    resources = seat(tls=False, service_type="NodePort")
    ((index, message),) = k8s_rules.check_exposed_services(resources)
    assert resources[index][0] == "kubernetes:core/v1:Service"
    assert "Service 'ana' (type NodePort) exposes port 8888 of StatefulSet 'ana' over plain HTTP" in message
    assert "make tls" in message and "kubectl port-forward" in message


def test_a_tls_config_whose_key_is_not_mounted_does_not_count() -> None:
    resources = seat(tls=True)
    sts = resources[2][1]
    notebook = sts["spec"]["template"]["spec"]["containers"][0]
    notebook["volumeMounts"] = [m for m in notebook["volumeMounts"] if not m["mountPath"].endswith(".key")]
    assert len(k8s_rules.check_exposed_services(resources)) == 1


def test_the_jupyter_config_may_come_base64_in_data_but_not_from_a_config_map() -> None:
    resources = seat(tls=True)
    secret = resources[0][1]
    secret["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in secret.pop("stringData").items()}
    assert k8s_rules.check_exposed_services(resources) == []
    resources = [r for r in resources if r[0] != "kubernetes:core/v1:Secret"]  # no Secret of that name in the stack
    assert len(k8s_rules.check_exposed_services(resources)) == 1


@pytest.mark.parametrize("how", ["LoadBalancer", "externalIPs"])
def test_other_ways_out_of_the_cluster_count_too(how: str) -> None:
    resources = seat(tls=False, service_type="ClusterIP", tensorboard_mode="exec")  # exec: the notebook's Service has 6006
    spec = resources[3][1]["spec"]
    if how == "LoadBalancer":
        spec["type"] = "LoadBalancer"
    else:
        spec["externalIPs"] = ["192.0.2.7"]
    messages = [m for _, m in k8s_rules.check_exposed_services(resources)]
    assert any("over plain HTTP" in m for m in messages)
    assert any("exposes TensorBoard (port 6006" in m and "no login" in m for m in messages)  # a ClusterIP Service has 6006


def test_an_exposed_tensorboard_is_refused_even_with_tls() -> None:
    resources = seat(tls=True, service_type="ClusterIP", tensorboard_mode="exec")
    resources[3][1]["spec"]["type"] = "NodePort"
    (message,) = [m for _, m in k8s_rules.check_exposed_services(resources)]
    assert "exposes TensorBoard" in message


@pytest.mark.parametrize("how", ["NodePort", "LoadBalancer"])
def test_tensorboards_own_pod_is_never_exposed_either(how: str) -> None:
    """Its headless Service turned into a NodePort or LoadBalancer one (the seat's notebook serves TLS)."""
    resources = seat(tls=True, service_type="ClusterIP")
    assert resources[6][1]["spec"]["clusterIP"] == "None" and k8s_rules.check_exposed_services(resources) == []
    spec = resources[6][1]["spec"]
    del spec["clusterIP"]
    spec["type"] = how
    ((index, message),) = k8s_rules.check_exposed_services(resources)
    assert index == 6 and "exposes TensorBoard (port 6006" in message and "no login" in message


def test_a_node_port_to_a_port_no_container_declares_is_refused() -> None:
    resources = seat(tls=True)
    resources[3][1]["spec"]["ports"][0]["targetPort"] = 9000  # a process may listen there undeclared
    ((_, message),) = k8s_rules.check_exposed_services(resources)
    assert "exposes port 9000, which no container of its pods declares" in message


def test_a_node_port_to_pods_the_stack_does_not_declare_is_refused() -> None:
    resources = [r for r in seat(tls=True) if r[0] != STS]
    ((_, message),) = k8s_rules.check_exposed_services(resources)
    assert "exposes pods this stack does not declare" in message


# --- Ingresses ---------------------------------------------------------------------------------------


def ingress(tls_hosts: list[str] | None, port: dict[str, Any], host: str | None = "lab.example.com") -> dict[str, Any]:
    rule: dict[str, Any] = {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                "backend": {"service": {"name": "ana", "port": port}}}]}}
    if host:
        rule["host"] = host
    spec: dict[str, Any] = {"rules": [rule]}
    if tls_hosts is not None:
        spec["tls"] = [{"hosts": tls_hosts, "secretName": "lab-tls"}]
    return {"metadata": {"name": "lab"}, "spec": spec}


def test_an_ingress_serving_every_host_over_tls_to_jupyter_passes() -> None:
    assert k8s_rules.check_ingress_tls(k8s_rules.INGRESS, ingress(["lab.example.com"], {"number": 8888})) == []
    assert k8s_rules.check_ingress_tls(k8s_rules.INGRESS, ingress([], {"name": "jupyter"}, host=None)) == []


@pytest.mark.parametrize("tls_hosts,host", [(None, "lab.example.com"), (["other.example.com"], "lab.example.com"),
                                            (None, None)], ids=["no-tls", "host-not-covered", "no-tls-any-host"])
def test_an_ingress_with_a_plain_http_host_is_refused(tls_hosts: list[str] | None, host: str | None) -> None:
    (message,) = k8s_rules.check_ingress_tls(k8s_rules.INGRESS, ingress(tls_hosts, {"number": 8888}, host))
    assert message.startswith("Ingress 'lab' serves ") and "over plain HTTP: add it to spec.tls" in message


@pytest.mark.parametrize("port", [{"number": 6006}, {"number": 6006.0}, {"name": "tensorboard"}])
def test_an_ingress_to_tensorboard_is_refused_even_with_tls(port: dict[str, Any]) -> None:
    (message,) = k8s_rules.check_ingress_tls("kubernetes:networking.k8s.io/v1:IngressPatch", ingress(["lab.example.com"], port))
    assert "routes to TensorBoard (service 'ana'), which has no login" in message


# --- the wired pack, through pulumi-policy's analyzer -------------------------------------------------

SIG, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(json.loads(json.dumps(props)))
    return message


def _servicer() -> Any:
    return _PolicyAnalyzerServicer(PACK_NAME, "0.0.1", build_policies(), EnforcementLevel.MANDATORY, None, None, None, None, None, None, None)


def analyze(resource_type: str, name: str, props: dict[str, Any]) -> dict[str, str]:
    request = analyzer_pb2.AnalyzeRequest(type=resource_type, properties=_struct(props),
                                          urn=f"urn:pulumi:team::tfbox::{resource_type}::{name}", name=name)
    response = _servicer().Analyze(request, None)
    return {d.policyName: analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel) for d in response.diagnostics}


def analyze_stack(resources: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(policy, level, urn) of every stack-policy diagnostic."""
    request = analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=t, urn=f"urn:pulumi:team::tfbox::{t}::{n}", name=n, properties=_struct(p))
        for t, n, p in resources])
    response = _servicer().AnalyzeStack(request, None)
    return [(d.policyName, analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel), d.urn) for d in response.diagnostics]


def test_the_pack_refuses_a_privileged_host_network_pod_by_rule_name() -> None:
    props = workload(hostNetwork=True)
    props["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    assert analyze(DEPLOY, "web", props) == {"k8s-no-host-access": "MANDATORY", "k8s-no-privilege": "MANDATORY"}


def test_the_pack_reads_a_secret_wrapped_config_map_value() -> None:
    props = {"metadata": {"name": "files"}, "data": {"k": {SIG: SECRET_SIG, "value": PEM_KEY}}}
    assert analyze(k8s_rules.CONFIG_MAP, "files", props) == {"k8s-secrets-in-secrets": "MANDATORY"}


def test_the_stack_policy_names_the_service_and_reads_the_secret_through_its_secret_wrapping() -> None:
    plain = [(t, f"r{i}", p) for i, (t, p) in enumerate(seat(tls=False))]
    found = analyze_stack(plain)
    assert [(policy, level) for policy, level, _ in found] == [("k8s-exposed-notebook-requires-tls", "MANDATORY")]
    assert found[0][2].endswith("kubernetes:core/v1:Service::r3")
    wrapped = [(t, n, {**p, "stringData": {SIG: SECRET_SIG, "value": p["stringData"]}} if "stringData" in p else p)
               for t, n, p in ((t, f"r{i}", p) for i, (t, p) in enumerate(seat(tls=True)))]
    assert [f for f in analyze_stack(wrapped) if f[0].startswith("k8s-")] == []


def test_an_unknown_service_spec_defers_the_verdict_to_up() -> None:
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    resources = [(t, f"r{i}", p) for i, (t, p) in enumerate(seat(tls=True))]
    resources[3] = (resources[3][0], "r3", {**resources[3][2], "spec": unknown})
    assert [(p, level) for p, level, _ in analyze_stack(resources) if p.startswith("k8s-")] == [
        ("k8s-exposed-notebook-requires-tls", "ADVISORY")]


# --- against what the program declares ----------------------------------------------------------------

TLS, TLS_BO = (generate_self_signed(subject_names("kubernetes://lab", "0.0.0.0")) for _ in range(2))


@pytest.fixture
def gpu_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [node("gpu-1", 2, gpu="h100"), node("gpu-2", 2, gpu="h100")]
    monkeypatch.setattr(KubernetesBackend, "read_cluster", lambda self: (nodes, [], None))


def program_resources(cfg: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    rec, _ = run(cfg)
    return [(d.type, d.name, json.loads(json.dumps(d.inputs))) for d in rec.resources if d.type.startswith("kubernetes:")]


NODE_PORT = {"tfbox:serviceType": "NodePort", "tfbox:nodePortSources": json.dumps(["192.168.10.0/24"])}
SEATS_30K = json.dumps([{"name": "ana", "gpus": "count=1", "notebookPort": 30801, "tensorboardPort": 6601},
                        {"name": "bo", "gpus": "count=2", "notebookPort": 30802, "tensorboardPort": 6602}])


@pytest.mark.parametrize("extra", [
    {},
    {"tfbox:seats": SEATS_30K, "tfbox:tlsCerts": json.dumps({"ana": TLS.cert_pem, "bo": TLS_BO.cert_pem}),
     "tfbox:tlsKeys": json.dumps({"ana": TLS.key_pem, "bo": TLS_BO.key_pem}), **NODE_PORT},
], ids=["cluster-ip", "node-port-tls"])
@pytest.mark.usefixtures("gpu_nodes")
def test_the_pack_accepts_every_object_the_program_declares(extra: dict[str, Any]) -> None:
    cfg = config(**extra)
    resources = program_resources(cfg) if "tfbox:tlsKeys" not in extra else _with_tls_keys(cfg)
    for t, n, p in resources:
        assert analyze(t, n, p) == {}, (t, n)
    assert [f for f in analyze_stack(resources) if f[0].startswith("k8s-")] == []
    services = [p for t, _, p in resources if t == "kubernetes:core/v1:Service"]
    notebooks = [s for s in services if s["spec"].get("clusterIP") != "None"]
    assert len(notebooks) == 2 and {s["spec"]["type"] for s in notebooks} == {"NodePort" if extra else "ClusterIP"}
    tensorboards = [s for s in services if s["spec"].get("clusterIP") == "None"]  # TensorBoard's: headless, in the cluster
    assert len(tensorboards) == 2 and {s["spec"]["type"] for s in tensorboards} == {"ClusterIP"}


def _with_tls_keys(cfg: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    from tests.docker.program import run_program

    rec, _ = run_program(cfg, stack="lab", secret_keys=("tfbox:passwords", "tfbox:tlsKeys"))
    return [(d.type, d.name, json.loads(json.dumps(d.inputs))) for d in rec.resources if d.type.startswith("kubernetes:")]

"""The kubernetes backend's config (components.model.cluster): what a cluster can do, and what it refuses at preview."""

import json

import pytest

from components.model.cluster import ClusterSettings, object_name_problem
from components.model.errors import ConfigError
from components.model.parse import parse_config

SALT = "0123456789abcdef0123456789abcdef"
SEATS = [{"name": "ana", "gpus": "count=1", "notebookPort": 8801, "tensorboardPort": 6601},
         {"name": "bo", "gpus": "count=2", "notebookPort": 8802, "tensorboardPort": 6602}]


def parse(raw, stack="lab"):
    raw = {"passwordSalt": SALT, **raw}
    seats = bool(raw.get("seats"))
    return parse_config(raw, stack=stack, password_state="missing" if seats else "secret", tls_key_state="missing",
                        require_seat_passwords=False)


def problems_of(raw):
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return info.value.problems


def test_a_docker_stack_has_no_cluster_settings():
    cfg = parse({})
    assert cfg.backend == "docker" and cfg.cluster is None


def test_kubernetes_defaults():
    cfg = parse({"backend": "kubernetes", "seats": SEATS})
    assert cfg.backend == "kubernetes"
    assert cfg.cluster == ClusterSettings(namespace="tfbox-lab", notebooks_bytes=10 << 30, logs_bytes=1 << 30)


def test_kubernetes_settings_from_engine_json_text():
    cfg = parse({"backend": "kubernetes", "seats": json.dumps(SEATS), "namespace": "ml-lab",
                 "gpuNodeSelector": json.dumps({"gpu": "h100"}), "storageClass": "fast-ssd",
                 "gpuTolerations": json.dumps([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]),
                 "notebooksSize": "20g", "logsSize": "512m"})
    c = cfg.cluster
    assert c is not None
    assert c.namespace == "ml-lab" and c.gpu_node_selector == (("gpu", "h100"),) and c.storage_class == "fast-ssd"
    assert c.tolerations == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert c.notebooks_bytes == 20 << 30 and c.logs_bytes == 512 << 20


def test_everything_a_cluster_cannot_do_is_refused_at_once_naming_each_key():
    seats = [{**SEATS[0], "gpus": "0,1"}, {**SEATS[1], "gpus": "all"}]
    problems = problems_of({"backend": "kubernetes", "seats": seats, "gpuMode": "nvidia-runtime", "gpuCheck": True,
                            "namespace": "Bad_NS", "notebooksSize": "lots", "logsSize": "0",
                            "gpuNodeSelector": ["gpu"], "gpuTolerations": [{"key": "x", "operator": "Maybe"}]})
    text = "\n".join(problems)
    assert "tfbox:seats[0].gpus: 0,1 picks GPUs by index" in text and "write count=N" in text
    assert "tfbox:seats[1].gpus: all picks GPUs" in text
    assert "tfbox:gpuMode: nvidia-runtime" in text
    assert "tfbox:gpuCheck" not in text  # the gpu-check init container (tests/kubernetes/test_gpu_check.py)
    assert "tfbox:namespace: 'Bad_NS' is not a valid Kubernetes name" in text
    assert "tfbox:notebooksSize:" in text and "tfbox:logsSize:" in text
    assert "tfbox:gpuNodeSelector: is not a map" in text
    assert "tfbox:gpuTolerations[0]: operator 'Maybe'" in text
    assert all("Fix:" in p for p in problems)


def test_single_seat_gpu_indices_and_host_path_are_refused():
    text = "\n".join(problems_of({"backend": "kubernetes", "gpus": "GPU-12345678-1234-1234-1234-123456789abc", "image": "tensorflow/tensorflow:2.16.1-gpu-jupyter",
                                  "notebooksHostPath": "/srv/tfbox/nb"}))
    assert "tfbox:gpus: GPU-12345678-1234-1234-1234-123456789abc picks GPUs by index, UUID or all" in text
    assert "tfbox:notebooksHostPath: binds a host directory" in text


def test_object_names_must_be_dns_labels():
    text = "\n".join(problems_of({"backend": "kubernetes", "namePrefix": "Lab_1", "seats": SEATS}))
    assert "tfbox:namePrefix: 'Lab_1' is not a valid Kubernetes name" in text
    assert "tfbox:seats[0].name:" in text
    assert object_name_problem("tfbox-lab-ana") is None and object_name_problem("x" * 64)


def test_unknown_backend_is_refused():
    assert any(p.startswith("tfbox:backend: unknown backend 'k8s'") for p in problems_of({"backend": "k8s"}))


def test_cluster_keys_on_a_docker_stack_are_refused():
    text = "\n".join(problems_of({"namespace": "lab", "gpuNodeSelector": {"gpu": "h100"}}))
    assert "tfbox:namespace: is set but only the kubernetes backend reads it" in text
    assert "tfbox:gpuNodeSelector: is set but only the kubernetes backend reads it" in text


def test_a_count_ask_on_kubernetes_parses():
    cfg = parse({"backend": "kubernetes", "gpus": "count=2", "image": "tensorflow/tensorflow:2.16.1-gpu-jupyter"})
    assert cfg.gpus.count == 2 and cfg.cluster is not None


def test_cluster_ip_is_the_default_and_node_port_sources_need_a_node_port():
    cfg = parse({"backend": "kubernetes", "seats": SEATS})
    assert cfg.cluster.service_type == "ClusterIP" and not cfg.cluster.node_port
    text = "\n".join(problems_of({"backend": "kubernetes", "seats": SEATS, "nodePortSources": ["10.0.0.0/8"]}))
    assert "tfbox:nodePortSources: is set but tfbox:serviceType is ClusterIP" in text


def test_a_node_port_without_tls_outside_the_range_and_without_sources_is_refused_naming_each_key():
    problems = problems_of({"backend": "kubernetes", "seats": SEATS, "serviceType": "NodePort"})
    assert len(problems) == 4
    assert problems[0].startswith("tfbox:serviceType: NodePort publishes seat ana, seat bo on every node's address over plain HTTP")
    assert "make tls STACK=lab" in problems[0] and "kubectl port-forward" in problems[0]
    assert problems[1] == ("tfbox:seats[0].notebookPort: 8801 is outside the cluster's NodePort range 30000-32767, where "
                           "tfbox:serviceType NodePort publishes it. Fix: pick a free port in 30000-32767, e.g. 30801.")
    assert problems[2].startswith("tfbox:seats[1].notebookPort: 8802 is outside")
    assert problems[3].startswith("tfbox:nodePortSources: is empty") and "Fix:" in problems[3]


def test_a_single_seat_node_port_names_the_stack_keys():
    problems = problems_of({"backend": "kubernetes", "serviceType": "NodePort", "nodePortSources": ["10.0.0.1/8", "lan"]})
    text = "\n".join(problems)
    assert "tfbox:serviceType: NodePort publishes the notebook on every node's address over plain HTTP" in text
    assert "tfbox:notebookPort: 8888 is outside the cluster's NodePort range" in text and "e.g. 30888" in text
    assert "tfbox:nodePortSources[0]: '10.0.0.1/8' is not a network address" in text
    assert "tfbox:nodePortSources[1]: 'lan' is not a network address" in text


@pytest.mark.parametrize("value", ["LoadBalancer", "clusterip"])
def test_an_unknown_service_type_is_refused(value):
    (problem,) = problems_of({"backend": "kubernetes", "seats": SEATS, "serviceType": value})
    assert problem.startswith(f"tfbox:serviceType: {value!r} is not ClusterIP or NodePort. Fix:")


def test_the_service_keys_on_a_docker_stack_are_refused():
    text = "\n".join(problems_of({"serviceType": "NodePort", "nodePortSources": ["10.0.0.0/8"]}))
    assert "tfbox:serviceType: is set but only the kubernetes backend reads it" in text
    assert "tfbox:nodePortSources: is set but only the kubernetes backend reads it" in text
    assert parse({"serviceType": "ClusterIP"}).cluster is None  # the default, as the typed config hands every stack

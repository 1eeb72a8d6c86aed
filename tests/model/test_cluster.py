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
    assert "tfbox:gpuCheck: is not done on the kubernetes backend yet" in text
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

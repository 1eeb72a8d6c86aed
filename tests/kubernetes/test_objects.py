"""The Kubernetes backend's manifests as data (components/kubernetes/objects.py): what a cluster admin
reviewing `kubectl get -o yaml` would check, before any cluster is involved."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from components.kubernetes import objects
from components.kubernetes.objects import SeatPod
from components.model.hardening import GIB, NotebookResources

POD = SeatPod(
    project="tfbox", stack="team", seat="ana", namespace="tfbox-team", image="registry.example/tf:2.20-gpu-jupyter",
    notebooks_claim="ana-notebooks", logs_claim="ana-logs", logs_dir="/tf/logs", secret_name="ana-secret",
    config_map_name="ana-files", secret_files=("/etc/jupyter/jupyter_server_config.json", "/etc/jupyter/tfbox-notebook.key"),
    plain_files=("/etc/jupyter/jupyter_server_config.py", "/etc/jupyter/tfbox-notebook.crt"),
    tls=True, gpus=2, resources=NotebookResources(shm_bytes=2 * GIB, memory_bytes=16 * GIB, nano_cpus=4_500_000_000),
    envs=(("TF_CPP_MIN_LOG_LEVEL", "2"),), node_selector=(("gpu", "h100"),),
    tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
)


def containers(pod: SeatPod) -> dict[str, dict[str, Any]]:
    spec: Any = objects.make_statefulset("ana", pod)["spec"]
    return {c["name"]: c for c in spec["template"]["spec"]["containers"]}


def pod_spec(pod: SeatPod) -> dict[str, Any]:
    spec: Any = objects.make_statefulset("ana", pod)["spec"]
    return dict(spec["template"]["spec"])


def test_a_gpu_seat_asks_the_scheduler_for_its_gpus_on_matching_nodes() -> None:
    nb = containers(POD)["notebook"]
    assert nb["resources"]["limits"] == {"nvidia.com/gpu": "2", "memory": "16Gi", "cpu": "4500m"}
    assert nb["resources"]["requests"] == nb["resources"]["limits"]
    spec = pod_spec(POD)
    assert spec["nodeSelector"] == {"gpu": "h100"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    cpu_only = containers(replace(POD, gpus=0, resources=NotebookResources()))["notebook"]
    assert "nvidia.com/gpu" not in json.dumps(cpu_only)


def test_a_sharing_seat_goes_to_time_sliced_nodes_only_and_the_others_as_before() -> None:
    shared = objects.gpu_node_selector(POD.node_selector, share_gpus=True)
    assert pod_spec(replace(POD, node_selector=shared))["nodeSelector"] == {
        "gpu": "h100", "nvidia.com/gpu.sharing-strategy": "time-slicing"}
    assert objects.gpu_node_selector({"gpu": "h100"}, share_gpus=False) == (("gpu", "h100"),)  # unchanged: no roll on upgrade
    assert dict(objects.gpu_node_selector((), share_gpus=True)) == {"nvidia.com/gpu.sharing-strategy": "time-slicing"}


def test_a_gpu_seat_that_does_not_share_keeps_off_nodes_whose_gpus_are_shared() -> None:
    own = pod_spec(POD)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    # NotIn also matches nodes without the label: every ordinary GPU node stays a candidate
    assert own == {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "nvidia.com/gpu.sharing-strategy", "operator": "NotIn", "values": ["time-slicing", "mps"]}]}]}
    sharing = replace(POD, share_gpus=True, node_selector=objects.gpu_node_selector(POD.node_selector, share_gpus=True))
    assert "nodeAffinity" not in pod_spec(sharing)["affinity"]
    assert "nodeAffinity" not in pod_spec(replace(POD, gpus=0, node_selector=()))["affinity"]  # a CPU seat goes anywhere


def test_the_password_hash_and_tls_key_come_from_a_secret_read_only_never_from_env() -> None:
    spec = pod_spec(POD)
    nb = containers(POD)["notebook"]
    assert all(set(e) == {"name", "value"} for e in nb["env"]) and [e["name"] for e in nb["env"]] == ["TF_CPP_MIN_LOG_LEVEL"]
    secret_volume = next(v for v in spec["volumes"] if v["name"] == "secret-files")
    assert secret_volume["secret"]["secretName"] == "ana-secret"
    mounted = {m["mountPath"]: m for m in nb["volumeMounts"] if m["name"] == "secret-files"}
    assert set(mounted) == set(POD.secret_files) and all(m["readOnly"] for m in mounted.values())
    secret = objects.make_secret("ana-secret", "tfbox-team", {p: "<secret>" for p in POD.secret_files}, {})
    assert secret["kind"] == "Secret" and set(secret["stringData"]) == {m["subPath"] for m in mounted.values()}  # type: ignore[call-overload]
    # the notebook is a root shell: no API credentials in it
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False


def test_hardening_matches_docker_seccomp_caps_and_a_memory_backed_shm() -> None:
    spec = pod_spec(POD)
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    nb = containers(POD)["notebook"]
    assert nb["securityContext"]["allowPrivilegeEscalation"] is False
    assert "NET_RAW" in nb["securityContext"]["capabilities"]["drop"]
    shm = next(v for v in spec["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert {"name": "shm", "mountPath": "/dev/shm"} in nb["volumeMounts"]
    text = json.dumps(objects.make_statefulset("ana", POD))
    for forbidden in ("hostPath", "hostNetwork", "privileged", "hostPID"):
        assert forbidden not in text


def test_the_notebook_is_ready_when_jupyter_answers_over_https_with_tls() -> None:
    assert containers(POD)["notebook"]["readinessProbe"]["httpGet"] == {
        "path": "/api", "port": 8888, "scheme": "HTTPS", "httpHeaders": [{"name": "Host", "value": "localhost"}]}
    plain = containers(replace(POD, tls=False))["notebook"]
    assert plain["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_tensorboard_modes_sidecar_exec_and_off() -> None:
    # the sidecar is a pod of its own (components.kubernetes.tensorboard): the notebook's pod is the same in
    # sidecar and off mode, so turning TensorBoard off or on leaves it (and its kernels) alone
    assert set(containers(POD)) == {"notebook"}
    assert objects.make_statefulset("ana", POD) == objects.make_statefulset("ana", replace(POD, tensorboard_mode="off"))
    assert objects.make_service("ana", POD) == objects.make_service("ana", replace(POD, tensorboard_mode="off"))
    assert objects.make_network_policy("ana", POD) == objects.make_network_policy("ana", replace(POD, tensorboard_mode="off"))
    exec_mode = replace(POD, tensorboard_mode="exec")
    assert set(containers(exec_mode)) == {"notebook"}
    assert "tensorboard --logdir" in " ".join(containers(exec_mode)["notebook"]["command"])
    assert [p["name"] for p in containers(exec_mode)["notebook"]["ports"]] == ["jupyter", "tensorboard"]
    assert [p["name"] for p in objects.make_service("ana", exec_mode)["spec"]["ports"]] == ["jupyter", "tensorboard"]  # type: ignore[index]
    off = replace(POD, tensorboard_mode="off")
    assert set(containers(off)) == {"notebook"}
    assert [p["name"] for p in objects.make_service("ana", off)["spec"]["ports"]] == ["jupyter"]  # type: ignore[index]


def test_claims_keep_their_size_and_class_and_the_pod_mounts_them() -> None:
    pvc = objects.make_pvc("ana-notebooks", "tfbox-team", 50 * GIB, "fast", objects.labels("tfbox", "team", "ana", "storage"))
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}},
                           "storageClassName": "fast"}
    assert "storageClassName" not in objects.make_pvc("x", "ns", GIB, None, {})["spec"]  # type: ignore[operator]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod_spec(POD)["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"ana-notebooks", "ana-logs"}


def test_the_service_is_cluster_internal_unless_asked_and_selects_only_its_seat() -> None:
    svc: Any = objects.make_service("ana", POD)
    assert svc["spec"]["type"] == "ClusterIP"
    # by role too: the seat's TensorBoard pod carries the same seat labels and must never get Jupyter's traffic
    assert svc["spec"]["selector"] == {"tfbox.project": "tfbox", "tfbox.stack": "team", "tfbox.seat": "ana",
                                       "tfbox.role": "notebook"}
    sts: Any = objects.make_statefulset("ana", POD)
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    # the StatefulSet's selector is immutable: as it was before roles, so an existing lab's StatefulSet can be replaced
    assert sts["spec"]["selector"]["matchLabels"] == {"tfbox.project": "tfbox", "tfbox.stack": "team", "tfbox.seat": "ana"}
    assert [p["name"] for p in svc["spec"]["ports"]] == ["jupyter"]  # TensorBoard's port is on its own Service
    node: Any = objects.make_service("ana", POD, "NodePort", {"jupyter": 30888})
    assert node["spec"]["type"] == "NodePort" and node["spec"]["ports"][0]["nodePort"] == 30888


def test_another_seat_of_the_stack_cannot_open_this_seat_and_tensorboard_is_closed() -> None:
    policy: Any = objects.make_network_policy("ana", POD)
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == objects.selector("tfbox", "team", "ana", "notebook")
    assert spec["policyTypes"] == ["Ingress"]
    assert [r["ports"] for r in spec["ingress"]] == [[{"port": 8888, "protocol": "TCP"}]]  # no rule opens 6006
    (peer,) = spec["ingress"][0]["from"]
    assert peer["podSelector"]["matchExpressions"] == [{"key": "tfbox.stack", "operator": "NotIn", "values": ["team"]}]
    opened: Any = objects.make_network_policy("ana", replace(POD, tensorboard_mode="exec"), tensorboard_open=True,
                                              external_cidrs=["10.0.0.0/8"])
    assert [r["ports"][0]["port"] for r in opened["spec"]["ingress"]] == [8888, 6006]  # exec: TensorBoard in this pod
    assert {"ipBlock": {"cidr": "10.0.0.0/8"}} in opened["spec"]["ingress"][0]["from"]


def test_a_replaced_notebook_pod_prefers_the_node_of_its_tensorboard_pod() -> None:
    # the logs claim is ReadWriteOnce and the TensorBoard pod holds it on its node: the notebook comes back there
    (term,) = pod_spec(POD)["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {"labelSelector": {"matchLabels": objects.selector("tfbox", "team", "ana", "tensorboard")},
                                       "topologyKey": "kubernetes.io/hostname"}
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in pod_spec(POD)["affinity"]["podAffinity"]


def test_a_changed_config_rolls_the_pod_through_its_checksum() -> None:
    a = objects.make_statefulset("ana", replace(POD, config_checksum="1"))
    b = objects.make_statefulset("ana", replace(POD, config_checksum="2"))
    assert a["spec"]["template"]["metadata"]["annotations"] != b["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]


def test_quantities_are_exact() -> None:
    assert objects.quantity(GIB) == "1Gi" and objects.quantity(1536 * 1024 * 1024) == "1536Mi" and objects.quantity(1000) == "1000"
    assert objects.cpu_quantity(1_500_000_000) == "1500m"

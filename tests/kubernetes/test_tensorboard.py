"""A seat's TensorBoard pod on a cluster as data (components/kubernetes/tensorboard.py): hardened as the Docker
sidecar, beside its notebook on the same node (the logs claim is ReadWriteOnce), reachable by the notebook only."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from components.kubernetes import objects, tensorboard
from tests.kubernetes.test_objects import POD


def deployment(pod: objects.SeatPod = POD) -> Any:
    return tensorboard.make_tensorboard_deployment("ana-tensorboard", pod)


def test_tensorboard_is_unprivileged_read_only_and_reads_the_logs_read_only() -> None:
    spec = deployment()["spec"]["template"]["spec"]
    (tb,) = spec["containers"]
    sc = tb["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == 65534 and sc["readOnlyRootFilesystem"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    logs = next(m for m in tb["volumeMounts"] if m["name"] == "logs")
    assert logs["mountPath"] == "/tf/logs" and logs["readOnly"] is True
    claim = next(v for v in spec["volumes"] if v["name"] == "logs")["persistentVolumeClaim"]
    assert claim == {"claimName": "ana-logs", "readOnly": True}  # the claim itself read-only too
    assert tb["readinessProbe"]["httpGet"] == {"path": "/data/logdir", "port": 6006, "scheme": "HTTP"}
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    text = json.dumps(deployment())
    for forbidden in ("hostPath", "hostNetwork", "privileged", "hostPID", "ana-notebooks", "secret"):
        assert forbidden not in text  # no notebooks, no Secret: it serves the logs only


def test_one_replica_recreated_selected_by_role_and_never_asking_a_gpu() -> None:
    d = deployment()
    assert d["kind"] == "Deployment" and d["spec"]["replicas"] == 1 and d["spec"]["strategy"] == {"type": "Recreate"}
    want = {"tfbox.project": "tfbox", "tfbox.stack": "team", "tfbox.seat": "ana", "tfbox.role": "tensorboard"}
    assert d["spec"]["selector"]["matchLabels"] == want == d["spec"]["template"]["metadata"]["labels"]
    notebook = objects.make_statefulset("ana-notebook", POD)["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    assert not want.items() <= notebook.items()  # neither selects the other's pod
    spec = d["spec"]["template"]["spec"]
    assert "resources" not in spec["containers"][0]  # no GPU (nor any limit) asked
    assert "nodeSelector" not in spec  # its node is the notebook's: the affinity says which
    # a GPU seat's notebook is on a (maybe tainted) GPU node: TensorBoard must be able to sit beside it
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "tolerations" not in deployment(replace(POD, gpus=0, tolerations=()))["spec"]["template"]["spec"]


def test_it_must_run_on_its_notebooks_node() -> None:
    (term,) = deployment()["spec"]["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == {"labelSelector": {"matchLabels": objects.selector("tfbox", "team", "ana", "notebook")},
                    "topologyKey": "kubernetes.io/hostname"}


def test_its_service_is_headless_and_carries_tensorboard_only() -> None:
    svc: Any = tensorboard.make_tensorboard_service("ana-tensorboard", POD)
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == objects.selector("tfbox", "team", "ana", "tensorboard")
    assert svc["spec"]["ports"] == [{"name": "tensorboard", "port": 6006, "targetPort": 6006}]


def test_only_the_seats_own_notebook_reaches_it() -> None:
    pol: Any = tensorboard.make_tensorboard_network_policy("ana-tensorboard", POD)
    spec = pol["spec"]
    assert spec["podSelector"]["matchLabels"] == objects.selector("tfbox", "team", "ana", "tensorboard")
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": 6006, "protocol": "TCP"}]
    assert rule["from"] == [{"podSelector": {"matchLabels": objects.selector("tfbox", "team", "ana", "notebook")}}]
    opened: Any = tensorboard.make_tensorboard_network_policy("ana-tensorboard", POD, tensorboard_open=True,
                                                              external_cidrs=["10.0.0.0/8"])
    peers = opened["spec"]["ingress"][0]["from"]
    assert objects.other_stacks("team") in peers and {"ipBlock": {"cidr": "10.0.0.0/8"}} in peers


def test_the_proxy_names_the_service_without_assuming_the_cluster_domain() -> None:
    assert tensorboard.proxy_target("ana-tensorboard", "tfbox-team") == "http://ana-tensorboard.tfbox-team.svc:6006"

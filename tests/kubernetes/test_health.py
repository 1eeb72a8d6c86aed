"""doctor's and status's reading of a kubernetes stack (components.kubernetes.health): the API's JSON in, words out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config import check_stack_file
from components.kubernetes.health import ClusterRead, SeatExpect, expects_of, seat_states, stack_problems
from components.kubernetes.scheduling import gpu_ledger
from components.model.plan import make_plan

NS = "tfbox-lab"
H100 = {"gpu": "h100"}
ANA = SeatExpect("ana", "tfbox-lab-ana-notebook", ("tfbox-lab-ana-notebooks", "tfbox-lab-ana-logs"), 1,
                 "tfbox:seats[0].gpus", node_selector=H100)
BO = SeatExpect("bo", "tfbox-lab-bo-notebook", ("tfbox-lab-bo-notebooks", "tfbox-lab-bo-logs"), 2,
                "tfbox:seats[1].gpus", node_selector=H100)


def node(name: str, gpus: int, allocatable: int | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    alloc = gpus if allocatable is None else allocatable
    return {"kind": "Node", "metadata": {"name": name, "labels": H100 if labels is None else labels}, "spec": {},
            "status": {"capacity": {"nvidia.com/gpu": str(gpus)}, "allocatable": {"nvidia.com/gpu": str(alloc)}}}


def pod(seat: str, node_name: str | None, gpus: int, phase: str = "Running", ready: bool = True, ns: str = NS,
        waiting: dict[str, str] | None = None, conditions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions if conditions is not None else
                              [{"type": "Ready", "status": "True" if ready else "False"}]}
    if node_name:
        status["hostIP"] = "10.0.0.7"
    if waiting:
        status["containerStatuses"] = [{"name": "notebook", "image": "registry.example/tf:1", "state": {"waiting": waiting}}]
    spec: dict[str, Any] = {"containers": [{"name": "notebook", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"kind": "Pod", "metadata": {"name": f"tfbox-lab-{seat}-notebook-0", "namespace": ns,
                                        "labels": {"tfbox.stack": "lab", "tfbox.seat": seat}},
            "spec": spec, "status": status}


def event(kind: str, name: str, message: str, when: str = "2026-12-07T18:00:00Z") -> dict[str, Any]:
    return {"kind": "Event", "metadata": {"namespace": NS}, "involvedObject": {"kind": kind, "name": name},
            "message": message, "lastTimestamp": when}


def service(seat: str, kind: str = "ClusterIP", node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "jupyter", "port": 8888, "targetPort": 8888}
    if node_port:
        port["nodePort"] = node_port
    return {"kind": "Service", "metadata": {"name": f"tfbox-lab-{seat}-notebook", "namespace": NS},
            "spec": {"type": kind, "ports": [port, {"name": "tensorboard", "port": 6006, "targetPort": 6006}]}}


def claim(name: str, phase: str = "Bound", storage_class: str | None = None) -> dict[str, Any]:
    spec = {"storageClassName": storage_class} if storage_class else {}
    return {"kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS}, "spec": spec, "status": {"phase": phase}}


def statefulset(seat: str) -> dict[str, Any]:
    return {"kind": "StatefulSet", "metadata": {"name": f"tfbox-lab-{seat}-notebook", "namespace": NS}}


def bound(*seats: str) -> list[dict[str, Any]]:
    return [claim(f"tfbox-lab-{s}-{k}") for s in seats for k in ("notebooks", "logs")]


def tb_pod(seat: str, node_name: str | None, phase: str = "Running", ready: bool = True, suffix: str = "7c9f8-x2k4q") -> dict[str, Any]:
    """A seat's TensorBoard pod (sidecar mode), as its Deployment names it; no GPU."""
    p = pod(seat, node_name, 0, phase=phase, ready=ready)
    p["metadata"] = {"name": f"tfbox-lab-{seat}-tensorboard-{suffix}", "namespace": NS, "uid": f"uid-{suffix}",
                     "labels": {"tfbox.stack": "lab", "tfbox.seat": seat, "tfbox.role": "tensorboard"}}
    p["spec"]["containers"] = [{"name": "tensorboard"}]
    return p


def tb_service(seat: str) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": f"tfbox-lab-{seat}-tensorboard", "namespace": NS},
            "spec": {"type": "ClusterIP", "clusterIP": "None", "ports": [{"name": "tensorboard", "port": 6006, "targetPort": 6006}]}}


def deployment(seat: str) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": f"tfbox-lab-{seat}-tensorboard", "namespace": NS,
                                               "labels": {"tfbox.stack": "lab", "tfbox.seat": seat, "tfbox.role": "tensorboard"}}}


def tensorboard(*seats: str, node_name: str = "gpu-1") -> list[dict[str, Any]]:
    """Each seat's TensorBoard: a ready pod on `node_name`, its Deployment and headless Service."""
    return [x for seat in seats for x in (tb_pod(seat, node_name), tb_service(seat), deployment(seat))]


def read(*items: dict[str, Any]) -> ClusterRead:
    return ClusterRead.of(items, NS)


PENDING_GPU = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found."


def test_running_ready_seats_say_where_and_what_they_hold() -> None:
    got = read(node("gpu-1", 2), node("gpu-2", 2), pod("ana", "gpu-1", 1), pod("bo", "gpu-2", 2),
               service("ana"), service("bo"), *bound("ana", "bo"))
    states, problems = stack_problems([ANA, BO], got, NS)
    assert problems == []
    ana, bo = states
    assert (ana.ok, ana.state, ana.gpus_asked, ana.gpus_allocated) == (True, "Running, ready on gpu-1", 1, 1)
    assert (bo.ok, bo.node, bo.gpus_allocated) == (True, "gpu-2", 2)
    assert ana.urls == {"notebook": "http://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:8888/",
                        "tensorboard": "http://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:6006/"}
    assert ana.reach.startswith("`kubectl port-forward -n tfbox-lab svc/tfbox-lab-ana-notebook 8888:8888`, then http://127.0.0.1:8888/")


def test_a_pod_pending_for_gpus_is_named_with_the_free_numbers_the_lost_gpu_and_the_fix() -> None:
    got = read(node("gpu-1", 2), node("gpu-2", 2, allocatable=1), node("a100", 8, allocatable=0, labels={"gpu": "a100"}),
               pod("ana", "gpu-1", 1), pod("bo", None, 2, phase="Pending", ready=False),
               pod("other", "gpu-2", 0, ns="elsewhere"),
               event("Pod", "tfbox-lab-bo-notebook-0", PENDING_GPU), *bound("ana", "bo"))
    states, problems = stack_problems([ANA, BO], got, NS)
    bo = states[1]
    assert bo.problem is not None and (bo.phase, bo.ready, bo.gpus_allocated) == ("Pending", False, 0)
    assert bo.problem.cause == ("Pending: seat bo asks 2 nvidia.com/gpu; nodes matching gpu=h100 have 2 free, at most 1 on "
                                "one node (a pod runs on one node); node gpu-2 lost 1 of its 2")
    assert bo.problem.fix.startswith("lower tfbox:seats[1].gpus (`pulumi config set --path 'tfbox:seats[1].gpus' count=N`, then "
                                     "`make up`), free GPUs on those nodes, or add a node (or bring the lost GPUs back")
    [lost] = problems  # the a100 node lost all its GPUs, but no seat of this stack lands there
    assert (lost.what, lost.role, lost.state) == ("gpu-2", "node", "1/2 GPUs allocatable")
    assert lost.cause == "node gpu-2 (a GPU node this stack's seats land on) offers 1 of its 2 nvidia.com/gpu: 1 lost or unhealthy"
    assert "`kubectl drain gpu-2 --ignore-daemonsets`" in lost.fix and "dmesg | grep -i xid" in lost.fix
    assert states[0].ok


def test_a_lost_gpu_under_a_running_seat_names_the_seat_on_it() -> None:
    got = read(node("gpu-1", 4, allocatable=3), pod("ana", "gpu-1", 1), *bound("ana"))
    _, [lost] = stack_problems([ANA], got, NS)
    assert lost.cause.endswith("1 lost or unhealthy; on it now: seat(s) ana")


def test_an_unbound_claim_and_the_pod_waiting_on_it() -> None:
    got = read(node("gpu-1", 2), pod("ana", None, 1, phase="Pending", ready=False),
               event("Pod", "tfbox-lab-ana-notebook-0", '0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. '
                     'PersistentVolumeClaim is not bound: "tfbox-lab-ana-notebooks"'),
               claim("tfbox-lab-ana-notebooks", "Pending", "fast"), claim("tfbox-lab-ana-logs"),
               event("PersistentVolumeClaim", "tfbox-lab-ana-notebooks", "old", "2026-12-07T17:00:00Z"),
               event("PersistentVolumeClaim", "tfbox-lab-ana-notebooks", 'storageclass.storage.k8s.io "fast" not found'))
    [ana], [unbound] = stack_problems([ANA], got, NS)
    assert ana.problem is not None and ana.problem.cause == "Pending: its notebooks or logs claim is not bound to a volume"
    assert (unbound.seat, unbound.what, unbound.role, unbound.state) == ("ana", "tfbox-lab-ana-notebooks", "claim", "Pending")
    assert unbound.cause == ('claim tfbox-lab-ana-notebooks is Pending, not bound to a volume (storageclass.storage.k8s.io '
                             '"fast" not found); it asks for StorageClass fast')
    assert unbound.fix.startswith("set tfbox:storageClass to a class `kubectl get storageclass` lists")


def test_an_image_that_cannot_be_pulled() -> None:
    got = read(node("gpu-1", 2), pod("ana", "gpu-1", 1, phase="Pending", ready=False,
                                     waiting={"reason": "ImagePullBackOff", "message": "Back-off pulling image"}), *bound("ana"))
    [ana] = seat_states([ANA], got, NS)
    assert ana.problem is not None
    assert ana.problem.cause == "the image registry.example/tf:1 cannot be pulled (ImagePullBackOff: Back-off pulling image)"
    assert "imagePullSecret" in ana.problem.fix
    assert ana.gpus_allocated == 1  # placed: it holds its GPUs while it waits for the image


def test_a_missing_seat_says_whether_the_lab_or_only_the_pod_is_gone() -> None:
    [gone] = seat_states([ANA], read(node("gpu-1", 2)), NS)
    assert gone.problem is not None and gone.phase == "missing"
    assert gone.problem.cause == "no StatefulSet tfbox-lab-ana-notebook in namespace tfbox-lab (the lab is not deployed, or was destroyed)"
    assert gone.problem.fix.startswith("`make up`")
    [no_pod] = seat_states([ANA], read(statefulset("ana"), event("StatefulSet", "tfbox-lab-ana-notebook",
                                                                  'pods "x" is forbidden: exceeded quota')), NS)
    assert no_pod.problem is not None
    assert no_pod.problem.cause == 'its StatefulSet tfbox-lab-ana-notebook has no pod (pods "x" is forbidden: exceeded quota)'


def test_how_to_reach_a_seat_follows_its_service() -> None:
    tls = SeatExpect("ana", "tfbox-lab-ana-notebook", tls=True)
    [s] = seat_states([tls], read(pod("ana", "gpu-1", 0), service("ana", "NodePort", 30888)), NS)
    assert s.urls["notebook"] == "https://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:8888/"
    assert s.reach == "https://10.0.0.7:30888/ (NodePort 30888 on any node)"
    [s] = seat_states([tls], read(pod("ana", "gpu-1", 0)), NS)
    assert s.urls == {} and s.reach == "no Service tfbox-lab-ana-notebook in namespace tfbox-lab"


def test_only_the_stacks_namespace_counts_but_every_pod_holds_gpus() -> None:
    got = read(node("gpu-1", 2), pod("ana", "gpu-1", 1, ns="other"), event("Pod", "x", "m") | {"metadata": {"namespace": "other"}})
    assert len(got.pods) == 1 and got.events == ()
    [ana] = seat_states([ANA], got, NS)
    assert ana.phase == "missing"  # a pod of the same name in another namespace is not this seat's


def test_the_plan_names_what_should_be_there_and_the_ledger_counts_gpus_by_seat(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text("config:\n  tfbox:backend: kubernetes\n  tfbox:gpuNodeSelector: {gpu: h100}\n  tfbox:seats:\n"
                    "    - {name: ana, gpus: count=1, notebookPort: 8801, tensorboardPort: 6601}\n"
                    "    - {name: cy, notebookPort: 8803, tensorboardPort: 6603}\n")
    plan = make_plan(check_stack_file(path, siblings=False))
    namespace, expects = expects_of(plan)
    assert namespace == "tfbox-lab"
    assert [(e.seat, e.statefulset, e.pod, e.gpus, e.key, dict(e.node_selector), e.local_port) for e in expects] == [
        ("ana", "tfbox-lab-ana-notebook", "tfbox-lab-ana-notebook-0", 1, "tfbox:seats[0].gpus", H100, 8801),
        ("cy", "tfbox-lab-cy-notebook", "tfbox-lab-cy-notebook-0", 0, "tfbox:gpus", {}, 8803)]
    assert expects[0].claims == ("tfbox-lab-ana-notebooks", "tfbox-lab-ana-logs")
    assert gpu_ledger(plan) == {"ana": {"gpus": 1, "resource": "nvidia.com/gpu", "nodeSelector": H100}}


def test_doctor_looks_for_a_sharing_seat_on_the_time_sliced_nodes(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text("config:\n  tfbox:backend: kubernetes\n  tfbox:gpuNodeSelector: {gpu: h100}\n  tfbox:seats:\n"
                    "    - {name: ana, gpus: count=1, shareGpus: true, notebookPort: 8801, tensorboardPort: 6601}\n")
    _, [ana] = expects_of(make_plan(check_stack_file(path, siblings=False)))
    assert dict(ana.node_selector) == {**H100, "nvidia.com/gpu.sharing-strategy": "time-slicing"}


def test_events_of_an_earlier_pod_of_the_same_name_are_not_this_ones() -> None:
    earlier = event("Pod", "tfbox-lab-ana-notebook-0", PENDING_GPU)
    earlier["involvedObject"]["uid"] = "old-uid"
    now = pod("ana", None, 1, phase="Pending", ready=False, conditions=[])
    now["metadata"]["uid"] = "new-uid"
    [ana] = seat_states([ANA], read(node("gpu-1", 2), now, earlier), NS)
    assert ana.problem is not None and ana.problem.cause == "Pending"  # not the old pod's GPU shortage
    earlier["involvedObject"]["uid"] = "new-uid"
    [ana] = seat_states([ANA], read(node("gpu-1", 2), now, earlier), NS)
    assert ana.problem is not None and ana.problem.cause.startswith("Pending: seat ana asks 1 nvidia.com/gpu")


ANA_TB = SeatExpect("ana", "tfbox-lab-ana-notebook", ("tfbox-lab-ana-notebooks", "tfbox-lab-ana-logs"), 1,
                    "tfbox:seats[0].gpus", node_selector=H100, tensorboard="tfbox-lab-ana-tensorboard")
PENDING_AFFINITY = ("0/2 nodes are available: 2 node(s) didn't match pod affinity rules. preemption: 0/2 nodes are available: "
                    "2 Preemption is not helpful for scheduling.")


def test_a_seats_tensorboard_pod_is_read_beside_its_notebook() -> None:
    notebook_service = service("ana")
    notebook_service["spec"]["ports"] = notebook_service["spec"]["ports"][:1]  # sidecar mode: Jupyter only
    got = read(node("gpu-1", 2), pod("ana", "gpu-1", 1), notebook_service, *tensorboard("ana"), *bound("ana"))
    states, problems = stack_problems([ANA_TB], got, NS)
    (ana,) = states
    assert problems == [] and ana.ok
    assert (ana.tensorboard_pod, ana.tensorboard_state) == ("tfbox-lab-ana-tensorboard-7c9f8-x2k4q", "Running, ready on gpu-1")
    assert ana.urls == {"notebook": "http://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:8888/",
                        "tensorboard": "http://tfbox-lab-ana-tensorboard.tfbox-lab.svc.cluster.local:6006/"}
    assert ana.gpus_allocated == 1  # the TensorBoard pod holds none


def test_a_tensorboard_pod_that_cannot_join_its_notebooks_node_is_named_with_why() -> None:
    waiting = tb_pod("ana", None, phase="Pending", ready=False)
    got = read(node("gpu-1", 2), pod("ana", None, 1, phase="Pending", ready=False), service("ana"),
               waiting, tb_service("ana"), deployment("ana"), *bound("ana"),
               event("Pod", "tfbox-lab-ana-notebook-0", PENDING_GPU), event("Pod", waiting["metadata"]["name"], PENDING_AFFINITY))
    (ana,), _ = stack_problems([ANA_TB], got, NS)
    assert not ana.ok and ana.problem is not None and "asks 1 nvidia.com/gpu" in ana.problem.cause
    tb = ana.tensorboard_problem
    assert tb is not None and (tb.role, tb.state, tb.what) == ("tensorboard", "Pending", waiting["metadata"]["name"])
    assert "must run on its notebook pod's node (the logs claim is ReadWriteOnce)" in tb.cause
    assert "see the seat's notebook pod first" in tb.fix


def test_a_tensorboard_pod_whose_claim_is_held_on_another_node() -> None:
    stuck = tb_pod("ana", "gpu-2", phase="Pending", ready=False)
    got = read(node("gpu-1", 2), node("gpu-2", 2), pod("ana", "gpu-1", 1), service("ana"), stuck, tb_service("ana"),
               deployment("ana"), *bound("ana"), event("Pod", stuck["metadata"]["name"],
                                                        'Multi-Attach error for volume "pv-3" Volume is already used by pod(s) '
                                                        "tfbox-lab-ana-notebook-0"))
    (ana,), _ = stack_problems([ANA_TB], got, NS)
    assert ana.problem is None and ana.tensorboard_problem is not None
    assert "attached on another node (ReadWriteOnce" in ana.tensorboard_problem.cause
    assert "delete the TensorBoard pod" in ana.tensorboard_problem.fix


def test_a_missing_tensorboard_says_whether_its_deployment_is_there() -> None:
    got = read(node("gpu-1", 2), pod("ana", "gpu-1", 1), service("ana"), deployment("ana"), *bound("ana"),
               event("ReplicaSet", "tfbox-lab-ana-tensorboard-7c9f8", 'pods "x" is forbidden: exceeded quota: pods'))
    (ana,), _ = stack_problems([ANA_TB], got, NS)
    assert ana.tensorboard_problem is not None and ana.tensorboard_problem.state == "missing"
    assert ana.tensorboard_problem.cause == ("its Deployment tfbox-lab-ana-tensorboard has no pod (pods \"x\" is forbidden: "
                                             "exceeded quota: pods)")
    (gone,), _ = stack_problems([ANA_TB], read(node("gpu-1", 2), pod("ana", "gpu-1", 1), service("ana"), *bound("ana")), NS)
    assert gone.tensorboard_problem is not None and "no Deployment tfbox-lab-ana-tensorboard" in gone.tensorboard_problem.cause
    assert "the notebook's pod and kernels are not touched" in gone.tensorboard_problem.fix

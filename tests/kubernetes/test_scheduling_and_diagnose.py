"""The cluster preflight (GPU asks against free GPUs) and doctor's reading of a stuck pod, as data."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from components.kubernetes.diagnose import findings
from components.kubernetes.scheduling import Ask, Node, lost_gpus, nodes_from_api, schedule_problems, used_from_api

H100 = {"gpu": "h100"}


def node(name: str, gpus: int, allocatable: int | None = None, labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    alloc = gpus if allocatable is None else allocatable
    return {"metadata": {"name": name, "labels": labels if labels is not None else H100},
            "spec": {"taints": taints or []},
            "status": {"capacity": {"nvidia.com/gpu": str(gpus)}, "allocatable": {"nvidia.com/gpu": str(alloc)}}}


def pod(name: str, node_name: str, gpus: int, labels: dict[str, str] | None = None, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node_name, "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": {"phase": phase}}


def test_an_ask_that_fits_nowhere_is_refused_with_what_matching_nodes_have_free() -> None:
    nodes = nodes_from_api([node("n1", 4), node("n2", 8, labels={"gpu": "a100"})])
    used = used_from_api([pod("other", "n1", 2)])
    problems = schedule_problems([Ask("ana", 4, H100, key="tfbox:seats")], nodes, used)
    assert problems == ["tfbox:seats: seat ana asks 4 GPUs; nodes matching gpu=h100 have 2 free. "
                        "Fix: ask for fewer, free GPUs on those nodes, or change tfbox:gpuNodeSelector / tfbox:gpuTolerations."]


def test_asks_are_placed_one_pod_per_node_and_all_problems_come_at_once() -> None:
    nodes = nodes_from_api([node("n1", 2), node("n2", 2)])
    asks = [Ask("ana", 2, H100), Ask("ben", 2, H100), Ask("cy", 3, H100), Ask("dee", 1, H100)]
    problems = schedule_problems(asks, nodes, {})
    assert len(problems) == 2
    assert problems[0].startswith("tfbox:gpus: seat cy asks 3 GPUs; nodes matching gpu=h100 have 4 free, at most 2 on one node")
    assert problems[1].startswith("tfbox:gpus: seat dee asks 1 GPU;")  # ana and ben took both nodes
    assert schedule_problems(asks[:2], nodes, {}) == []


def test_this_stacks_own_pods_do_not_count_against_it_and_ended_pods_hold_nothing() -> None:
    mine = {"tfbox.stack": "team"}
    used = used_from_api([pod("team-ana-0", "n1", 4, {"tfbox.stack": "team", "tfbox.seat": "ana"}),
                          pod("done", "n1", 4, phase="Succeeded")], exclude=mine)
    assert used == {}
    assert schedule_problems([Ask("ana", 4, H100)], nodes_from_api([node("n1", 4)]), used) == []


def test_taints_need_tolerations_and_a_cordoned_node_takes_nothing() -> None:
    tainted = nodes_from_api([node("n1", 8, taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}])])
    refused = schedule_problems([Ask("ana", 1, H100)], tainted, {})
    assert len(refused) == 1 and "no schedulable node matches" in refused[0]
    tolerated = Ask("ana", 1, H100, ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},))
    assert schedule_problems([tolerated], tainted, {}) == []
    cordoned = [Node("n1", H100, 8, 8, schedulable=False)]
    assert schedule_problems([Ask("ana", 1, H100)], cordoned, {}) != []


SLICED = {**H100, "nvidia.com/gpu.sharing-strategy": "time-slicing"}


def shares(seat: str, gpus: int, index: int) -> Ask:
    return Ask(seat, gpus, SLICED, key=f"tfbox:seats[{index}].gpus", share_key=f"tfbox:seats[{index}].shareGpus")


def test_a_sharing_seat_without_a_time_sliced_node_is_refused_naming_the_key_with_the_others_problems() -> None:
    nodes = nodes_from_api([node("n1", 8), node("n2", 8)])  # GPUs enough, none time-sliced
    problems = schedule_problems([shares("ana", 1, 0), shares("bo", 1, 1), Ask("cy", 9, H100, key="tfbox:seats[2].gpus")],
                                 nodes, {})
    assert problems[0].startswith("tfbox:seats[2].gpus: seat cy asks 9 GPUs;")
    assert problems[1:] == [
        f"tfbox:seats[{i}].shareGpus: seat {s} sets shareGpus, but no node matching gpu=h100 advertises GPU time-slicing "
        "(label nvidia.com/gpu.sharing-strategy=time-slicing, set by the NVIDIA device plugin's time-slicing config). "
        f"Fix: remove tfbox:seats[{i}].shareGpus, or configure time-slicing on those nodes." for i, s in ((0, "ana"), (1, "bo"))]
    # no node matches even without the label: the selector is what is wrong, said as for any seat
    elsewhere = schedule_problems([shares("ana", 1, 0)], nodes_from_api([node("n1", 8, labels={"gpu": "a100"})]), {})
    assert len(elsewhere) == 1 and elsewhere[0].startswith("tfbox:seats[0].gpus: seat ana asks 1 GPU; no schedulable node matches")


def test_sharing_seats_count_only_the_time_sliced_nodes_gpus() -> None:
    # n2 is time-sliced with 4 replicas per GPU: the device plugin advertises 2 GPUs as 8
    nodes = nodes_from_api([node("n1", 8), node("n2", 8, labels=SLICED)])
    assert schedule_problems([shares("ana", 4, 0), shares("bo", 4, 1), Ask("cy", 8, H100)], nodes, {}) == []
    used = used_from_api([pod("other", "n2", 6)])
    problems = schedule_problems([shares("ana", 4, 0)], nodes, used)  # n1's 8 free GPUs are not shared ones
    assert problems == ["tfbox:seats[0].gpus: seat ana asks 4 GPUs; nodes matching gpu=h100,"
                        "nvidia.com/gpu.sharing-strategy=time-slicing have 2 free. Fix: ask for fewer, free GPUs on those "
                        "nodes, or change tfbox:gpuNodeSelector / tfbox:gpuTolerations."]


def test_a_seat_of_its_own_gpus_counts_only_nodes_that_do_not_share_them() -> None:
    nodes = nodes_from_api([node("n1", 2), node("n2", 8, labels=SLICED), node("n3", 8, labels={**H100, "nvidia.com/gpu.sharing-strategy": "mps"})])
    own = Ask("cy", 2, H100, key="tfbox:seats[2].gpus", exclusive=True)
    assert schedule_problems([own], nodes, {}) == []
    assert schedule_problems([replace(own, gpus=3)], nodes, {}) == [
        "tfbox:seats[2].gpus: seat cy asks 3 GPUs; nodes matching gpu=h100 have 2 free. Fix: ask for fewer, free GPUs on "
        "those nodes, or change tfbox:gpuNodeSelector / tfbox:gpuTolerations."]  # n2's and n3's 16 are slices
    only_shared = nodes_from_api([node("n2", 8, labels=SLICED)])
    assert schedule_problems([own], only_shared, {}) == [
        "tfbox:seats[2].gpus: seat cy asks GPUs of its own, but every node matching gpu=h100 shares its GPUs "
        "(nvidia.com/gpu.sharing-strategy: time-slicing or mps), where other pods would use the same GPUs. Fix: set "
        "tfbox:seats[2].shareGpus: true if sharing is fine, or add GPU nodes without sharing (or change tfbox:gpuNodeSelector)."]
    assert schedule_problems([shares("ana", 4, 0)], only_shared, {}) == []  # a sharing seat is what such a node is for


def test_a_node_whose_allocatable_gpus_dropped_below_capacity_is_named() -> None:
    assert lost_gpus(nodes_from_api([node("n1", 8, allocatable=7), node("n2", 8)])) == [
        "node n1: 7 of 8 GPUs allocatable (1 lost or unhealthy)"]


def stuck(phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "ana-0", "namespace": "tfbox-team", "labels": {"tfbox.seat": "ana"}},
            "status": {"phase": phase, **status}}


def event(message: str) -> dict[str, Any]:
    return {"involvedObject": {"name": "ana-0"}, "reason": "FailedScheduling", "message": message}


def test_doctor_explains_a_pending_pod_from_its_events() -> None:
    gpu = findings([stuck()], [event("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")])
    assert len(gpu) == 1 and "Insufficient nvidia.com/gpu" in gpu[0].cause and gpu[0].seat == "ana"
    assert str(gpu[0]).startswith("seat ana (pod ana-0): Pending: no matching node has the GPUs")
    pvc = findings([stuck()], [event("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.")])
    assert "claim is not bound" in pvc[0].cause and "tfbox:storageClass" in pvc[0].fix
    pull = findings([stuck(containerStatuses=[{"name": "notebook", "image": "reg/tf:x",
                                               "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}])], [])
    assert "cannot be pulled" in pull[0].cause and "tfbox:image" in pull[0].fix
    other_pod = findings([stuck(phase="Running", conditions=[{"type": "Ready", "status": "True"}])],
                         [event("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")])
    assert other_pod == []
    unready = findings([stuck(phase="Running", conditions=[{"type": "Ready", "status": "False"}])], [])
    assert "not ready" in unready[0].cause

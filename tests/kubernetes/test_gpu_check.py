"""tfbox:gpuCheck on the kubernetes backend (components.kubernetes.gpu_check): the gpu-check init container as
data, its script run against the stand-in nvidia-smi (scripts/nvidia/nvidia-smi), the pod the backend declares,
and doctor's words for a pod whose check failed (the API's JSON in)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.kubernetes.diagnose import explain
from components.kubernetes.gpu_check import check_state, failed_check, gpu_check_script, make_gpu_check_container
from components.kubernetes.health import stack_problems
from tests.docker.program import ROOT
from tests.kubernetes.test_backend import SEATS, cluster, config, run
from tests.kubernetes.test_health import ANA, bound, node, read, service
from tests.model.test_cluster import parse, problems_of

__all__ = ["cluster"]  # the fixture, used by name
UUID0 = "GPU-b780f725-fe96-b196-3303-e4a68e6a6860"


def test_the_init_container_has_the_seats_gpus_its_verdict_as_termination_message_and_no_privileges() -> None:
    c: dict[str, Any] = make_gpu_check_container("registry.example/tf:2-gpu", 2)
    assert c["name"] == "gpu-check" and c["image"] == "registry.example/tf:2-gpu"
    assert c["resources"] == {"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "2"}}
    assert c["terminationMessagePath"] == "/dev/termination-log" and c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["securityContext"] == {"runAsUser": 65534, "runAsGroup": 65534, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert {"name": "NVIDIA_DISABLE_REQUIRE", "value": "true"} in c["env"]
    assert c["command"][:2] == ["sh", "-c"] and "[ $n -ne 2 ]" in c["command"][2]


@pytest.fixture
def smi(tmp_path: Path) -> dict[str, str]:
    """An env whose PATH has the stand-in nvidia-smi (8 GPUs, driver 580.159.04, CUDA 13.0)."""
    shutil.copy(ROOT / "scripts" / "nvidia" / "nvidia-smi", tmp_path / "nvidia-smi")
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}", "TFBOX_NVIDIA_LOST": str(tmp_path / "lost")}


def check(gpus: int, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(["sh", "-c", gpu_check_script(gpus)], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.strip()


@pytest.mark.parametrize(("visible", "extra", "rc", "says"), [
    (UUID0, {}, 0, f"tfbox gpu-check passed: GPU 0: NVIDIA H200 (UUID: {UUID0})"),
    ("0,1", {}, 1, "tfbox gpu-check failed: nvidia-smi -L exited 0 listing 2 GPUs (1 given)"),
    ("", {}, 1, "tfbox gpu-check failed: nvidia-smi -L exited 9 listing 0 GPUs (1 given): NVIDIA-SMI has failed"),
    ("0", {"CUDA_VERSION": "13.1.0"}, 1, "tfbox gpu-check failed: CUDA does not fit: the image needs CUDA 13.1 or newer"),
    ("0", {"NVIDIA_REQUIRE_CUDA": "cuda>=12.3 brand=tesla,driver>=470,driver<471"}, 0, "tfbox gpu-check passed"),
])
def test_the_check_passes_only_with_exactly_the_gpus_asked_and_a_fitting_cuda(
        smi: dict[str, str], visible: str, extra: dict[str, str], rc: int, says: str) -> None:
    got_rc, out = check(1, {**smi, "NVIDIA_VISIBLE_DEVICES": visible, **extra})
    assert (got_rc, out.startswith(says)) == (rc, True), out


def test_a_container_without_nvidia_smi_or_with_lost_gpus_fails_the_check(smi: dict[str, str]) -> None:
    rc, out = check(1, {"PATH": "/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES": "0"})
    assert rc == 1 and out.startswith("tfbox gpu-check failed: nvidia-smi -L exited 127 listing 0 GPUs (1 given)"), out
    Path(smi["TFBOX_NVIDIA_LOST"]).touch()
    rc, out = check(1, {**smi, "NVIDIA_VISIBLE_DEVICES": "0"})
    assert rc == 1 and "exited 255" in out and "Failed to initialize NVML: Unknown Error" in out, out


def test_gpu_seats_get_the_check_as_init_container_and_others_do_not(cluster: list[dict[str, Any]]) -> None:
    seats = [*SEATS, {"name": "cy", "notebookPort": 8803, "tensorboardPort": 6603}]
    rec, _ = run(config(**{"tfbox:gpuCheck": "true", "tfbox:seats": json.dumps(seats),
                           "tfbox:passwords": json.dumps({"ana": "ana-password-long", "bo": "bo-password-longer",
                                                          "cy": "cy-password-long"})}))
    for seat, gpus in (("ana", "1"), ("bo", "2")):
        spec = rec.one("kubernetes:apps/v1:StatefulSet", f"{seat}-notebook").inputs["spec"]["template"]["spec"]
        [init] = spec["initContainers"]
        assert init["name"] == "gpu-check" and init["image"] == spec["containers"][0]["image"]
        assert init["resources"]["limits"] == {"nvidia.com/gpu": gpus} == {
            k: v for k, v in spec["containers"][0]["resources"]["limits"].items() if k == "nvidia.com/gpu"}
    cy = rec.one("kubernetes:apps/v1:StatefulSet", "cy-notebook").inputs["spec"]["template"]["spec"]
    assert "initContainers" not in cy


def test_without_gpu_check_no_init_container(cluster: list[dict[str, Any]]) -> None:
    rec, _ = run(config())
    assert "initContainers" not in rec.one("kubernetes:apps/v1:StatefulSet", "ana-notebook").inputs["spec"]["template"]["spec"]


def test_gpu_check_is_accepted_on_a_cluster_and_a_check_image_is_refused() -> None:
    seats = [{**SEATS[0]}]
    assert parse({"backend": "kubernetes", "seats": seats, "gpuCheck": True}).gpu_check
    [problem] = problems_of({"backend": "kubernetes", "seats": seats, "gpuCheck": True, "gpuCheckImage": "nvidia/cuda:12.3.2-base"})
    assert problem.startswith("tfbox:gpuCheckImage: the kubernetes backend checks the GPUs in the notebook's own pod")
    assert "pulumi config rm tfbox:gpuCheckImage" in problem


def checking_pod(init: dict[str, Any]) -> dict[str, Any]:
    """ana's pod as the API shows it while its gpu-check init container is in `init` (taken from the kit's real node)."""
    return {"kind": "Pod", "metadata": {"name": "tfbox-lab-ana-notebook-0", "namespace": "tfbox-lab",
                                        "labels": {"tfbox.stack": "lab", "tfbox.seat": "ana"}},
            "spec": {"nodeName": "gpu-1", "initContainers": [{"name": "gpu-check"}],
                     "containers": [{"name": "notebook", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Pending", "conditions": [{"type": "Initialized", "status": "False",
                                                           "message": "containers with incomplete status: [gpu-check]"}],
                       "initContainerStatuses": [{"name": "gpu-check", **init}],
                       "containerStatuses": [{"name": "notebook", "state": {"waiting": {"reason": "PodInitializing"}}}]}}


NO_SMI = ("tfbox gpu-check failed: nvidia-smi -L exited 127 listing 0 GPUs (1 given): sh: 2: nvidia-smi: not found")
CRASHLOOP = {"restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": NO_SMI + "\n"}}}


def test_doctor_quotes_a_failed_check_with_the_node_and_the_fix() -> None:
    pod = checking_pod(CRASHLOOP)
    cause, fix = failed_check(pod) or ("", "")
    assert cause == f"the GPU check failed on node gpu-1 (init container gpu-check, 3 restarts): {NO_SMI}"
    assert "`nvidia-smi -L` must list the GPUs" in fix and "tfbox:gpuCheck to false" in fix
    assert check_state(pod) == "Init:CrashLoopBackOff"
    finding = explain(pod, [])
    assert finding is not None and finding.cause == cause  # not "Pending": the check says why

    [ana], [] = stack_problems([ANA], read(node("gpu-1", 2), pod, service("ana"), *bound("ana")), "tfbox-lab")
    assert not ana.ok and ana.problem is not None
    assert (ana.problem.seat, ana.problem.state, ana.problem.cause) == ("ana", "Init:CrashLoopBackOff", cause)


def test_a_cuda_misfit_is_quoted_with_its_own_fix_and_a_first_failure_reads_init_error() -> None:
    msg = "tfbox gpu-check failed: CUDA does not fit: the image needs CUDA 13.1 or newer (CUDA_VERSION=13.1.0) but ..."
    pod = checking_pod({"restartCount": 0, "state": {"terminated": {"exitCode": 1, "message": msg}}})
    cause, fix = failed_check(pod) or ("", "")
    assert cause.endswith(msg) and "(init container gpu-check):" in cause and fix.startswith("as the check says")
    assert check_state(pod) == "Init:Error"


def test_a_passed_or_running_check_is_no_finding() -> None:
    assert failed_check(checking_pod({"state": {"terminated": {"exitCode": 0, "message": "tfbox gpu-check passed: GPU 0"}}})) is None
    assert failed_check(checking_pod({"state": {"running": {"startedAt": "2026-12-07T21:00:00Z"}}})) is None
    # passed after a failure: the last failure is history
    assert failed_check(checking_pod({**CRASHLOOP, "state": {"terminated": {"exitCode": 0}}})) is None


def test_a_gpu_checked_seat_passes_every_policy_rule() -> None:
    # the pack reads init containers too (policy/k8s_rules.py CONTAINER_LISTS): the check must pass it as the notebook does
    from dataclasses import replace

    from components.kubernetes import objects
    from tests.kubernetes.test_objects import POD
    from tests.kubernetes.test_policy import all_violations, seat

    pod = replace(POD, gpus=2, gpu_check=True)
    sts = objects.make_statefulset("ana", pod)
    assert [c["name"] for c in sts["spec"]["template"]["spec"]["initContainers"]] == ["gpu-check"]  # type: ignore[index]
    resources = [(t, sts if t == "kubernetes:apps/v1:StatefulSet" else p) for t, p in seat(True, "ClusterIP")]
    assert all_violations(resources) == []

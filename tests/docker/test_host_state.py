"""The cross-stack GPU ledger read from the live host (components/docker/host_state.py): what runs where, which
containers count, and the program stopping before anything is declared when another stack has the GPU."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from components.docker.host_state import HOST_GPUS, docker_argv, read_host_gpus, read_live_ledger
from components.model.gpus import GpuSpec
from tests.docker.program import Recorder, run_program
from tests.docker.test_program import config_for

H200 = "GPU {i}: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a68{u:02x})"
LISTING = "\n".join(H200.format(i=i, u=0x60 + i) for i in range(8)) + "\n"


def container(stack: str, role: str, *, seat: str = "", device_ids: list[str] | None = None, count: int = 0,
              project: str = "tfbox", share: bool = False, cid: str = "c0ffee") -> dict[str, Any]:
    labels = {"tfbox.project": project, "tfbox.stack": stack, "tfbox.role": role}
    if seat:
        labels |= {"tfbox.seat": seat, "tfbox.share-gpus": str(share).lower()}
    requests = [{"Driver": "nvidia", "Count": count, "DeviceIDs": device_ids or [], "Capabilities": [["gpu"]]}]
    return {"Id": cid, "Config": {"Labels": labels, "Env": []},
            "HostConfig": {"DeviceRequests": requests if (device_ids or count) else None, "Runtime": "runc"}}


class Host:
    """A fake host: answers the inspect line with `containers` and `docker logs` with the check's listing."""

    def __init__(self, containers: list[dict[str, Any]], fail: tuple[int, str] | None = None) -> None:
        self.containers, self.fail = containers, fail
        self.commands: list[tuple[list[str], Mapping[str, str]]] = []

    def __call__(self, argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
        self.commands.append((argv, env))
        if self.fail:
            return self.fail[0], "", self.fail[1]
        if "docker logs" in argv[-1]:
            return 0, LISTING, ""
        return 0, json.dumps(self.containers), ""


def test_commands_run_here_with_docker_host_or_on_the_box_over_strict_ssh() -> None:
    argv, env = docker_argv("unix:///run/user/1000/docker.sock", [], "docker ps")
    assert argv == ["sh", "-c", "docker ps"] and env == {"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}
    argv, env = docker_argv("ssh://tfbox@gpu-box:2222/var/run/other.sock", ["-F", "/cfg"], "docker ps")
    assert env == {}
    assert argv[:7] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=8"]
    assert argv[7:-1] == ["-T", "-F", "/cfg", "-p", "2222", "-l", "tfbox", "--", "gpu-box"]
    assert "command docker --host=unix:///var/run/other.sock" in argv[-1] and argv[-1].endswith("docker ps")


def test_other_stacks_notebooks_are_claims_this_stacks_own_are_not() -> None:
    host = Host([
        container("lab-a", "notebook", seat="alice", device_ids=["0"]),
        container("lab-b", "notebook", device_ids=["GPU-b780f725-fe96-b196-3303-e4a68e6a6863"]),
        container("gpu-box", "notebook", seat="me", device_ids=["1"]),  # this stack: its config decides
        container("lab-a", "tensorboard"),  # no GPUs, not a notebook
        container("cpu-lab", "notebook"),  # a notebook without GPUs claims nothing
        container("gpu-box", "notebook", project="other-project", device_ids=["2"]),  # same stack name, another project
    ])
    live = read_live_ledger("unix:///var/run/docker.sock", [], "tfbox", "gpu-box", runner=host)
    assert live.problem is None
    assert sorted((c.stack, c.seat, c.gpus) for c in live.claims) == [
        ("gpu-box", "", GpuSpec("devices", devices=("2",))),
        ("lab-a", "alice", GpuSpec("devices", devices=("0",))),
        ("lab-b", "", GpuSpec("devices", devices=("GPU-b780f725-fe96-b196-3303-e4a68e6a6863",))),
    ]
    assert live.listing is None, "no GPU check on the host saw every GPU"


def test_a_whole_machine_gpu_check_gives_the_listing() -> None:
    host = Host([container("lab-a", "notebook", device_ids=["3"]), container("lab-a", "gpu-check", count=-1, cid="check1")])
    live = read_live_ledger("unix:///var/run/docker.sock", [], "tfbox", "gpu-box", runner=host)
    assert live.listing is not None and [g.index for g in live.listing] == list(range(8))
    assert host.commands[-1][0][-1] == "docker logs check1"


def test_an_unreadable_host_is_a_problem_not_a_crash() -> None:
    live = read_live_ledger("unix:///var/run/docker.sock", [], "tfbox", "gpu-box",
                            runner=Host([], fail=(127, "sh: 1: docker: not found")))
    assert live.claims == [] and live.problem == "sh: 1: docker: not found"


def test_the_program_stops_when_another_stack_on_the_host_has_the_gpu() -> None:
    rec = Recorder()
    rec.host_result = (0, json.dumps([container("team-b", "notebook", seat="carol", device_ids=["1"])]), "")
    with pytest.raises(Exception, match=r"tfbox:gpus: .*GPU 1.*stack 'team-b'.*carol.*Fix"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)  # gpu-box asks for 0,1
    assert [r for r in rec.resources if r.type.startswith("docker:")] == [], "nothing declared"
    assert rec.host_commands and rec.host_commands[0][:2] == ["ssh", "-o"], "read on the box, over ssh"


def test_the_same_gpu_by_uuid_is_found_through_a_whole_machine_check() -> None:
    rec = Recorder()
    uuid0 = "GPU-b780f725-fe96-b196-3303-e4a68e6a6860"
    rec.host_result = (0, json.dumps([container("team-b", "notebook", device_ids=[uuid0]),
                                      container("team-b", "gpu-check", count=-1, cid="chk")]), "")
    rec.host_logs = LISTING
    with pytest.raises(Exception, match=rf"GPU 0 \({uuid0}\), which stack 'team-b' on the same Docker host already has\. Fix: pick other GPUs$"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)


def test_shared_on_both_sides_and_other_gpus_pass() -> None:
    rec = Recorder()
    rec.host_result = (0, json.dumps([container("team-b", "notebook", seat="carol", device_ids=["5"])]), "")
    run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)
    assert any(r.type == "docker:index/container:Container" for r in rec.resources)


def test_cpu_stacks_do_not_read_the_gpu_ledger_only_the_volumes_and_the_daemon_version() -> None:
    rec = Recorder()
    run_program(config_for("dev"), stack="dev", recorder=rec)
    assert not any("docker ps" in c[-1] for c in rec.host_commands), "no GPU ledger"
    assert any("docker volume" in c[-1] for c in rec.host_commands)
    assert "docker version --format '{{.Server.Version}}'" in [c[-1] for c in rec.host_commands], \
        "the version, for the loopback check (components.docker.loopback)"
    quiet = Recorder()
    run_program(config_for("dev", loopbackPublishFiltered="true"), stack="dev", recorder=quiet)
    assert not any("docker version" in c[-1] for c in quiet.host_commands), "filtered: the version is not read"


# --- issue 22: an unreadable host stops a machine stack; another stack's volumes are refused -----------


def test_an_unreadable_host_stops_a_machine_stack_with_the_fix() -> None:
    rec = Recorder()
    rec.host_result = (255, "", "ssh: connect to host gpu-box port 22: Connection refused")
    with pytest.raises(Exception, match=r"GPU ledger: could not read ssh://tfbox@gpu-box .*Connection refused.*machine stack.*Fix:"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)
    assert [r for r in rec.resources if r.type.startswith("docker:")] == [], "nothing declared"


def test_an_unreadable_host_only_warns_on_a_local_stack() -> None:
    rec = Recorder()
    rec.host_result = rec.host_volumes = (127, "", "sh: 1: docker: not found")
    run_program(config_for("dev", gpus="0", image="tensorflow/tensorflow:2.17.0-gpu-jupyter"), stack="dev", recorder=rec)
    assert any(r.type == "docker:index/container:Container" for r in rec.resources), "a local stack goes on"


def volume(name: str, stack: str, project: str = "tfbox", seat: str = "") -> dict[str, Any]:
    labels = {"tfbox.project": project, "tfbox.stack": stack, "tfbox.role": "notebooks"}
    return {"Name": name, "Driver": "local", "Labels": labels | ({"tfbox.seat": seat} if seat else {})}


def test_a_volume_labelled_for_another_stack_is_refused_before_anything_is_declared() -> None:
    rec = Recorder()
    rec.host_volumes = (0, json.dumps([volume("tfbox-gpu-box-alice-notebooks", "gpu-box", seat="alice")]), "")
    with pytest.raises(Exception, match=r"tfbox:notebooksVolume: the volume tfbox-gpu-box-alice-notebooks on .* belongs to stack "
                                        r"'gpu-box', seat 'alice' \(its tfbox.stack label\).*Fix:"):
        run_program(config_for("dev", notebooksVolume="tfbox-gpu-box-alice-notebooks"), stack="dev", recorder=rec)
    assert [r for r in rec.resources if r.type.startswith("docker:")] == []


def test_the_stacks_own_volumes_and_unlabelled_ones_pass() -> None:
    rec = Recorder()
    rec.host_volumes = (0, json.dumps([volume("tfbox-dev-notebooks", "dev"), volume("tfbox-dev-logs", "dev"),
                                       volume("tfbox-other-notebooks", "dev", project="other")]), "")
    run_program(config_for("dev"), stack="dev", recorder=rec)
    assert any(r.type == "docker:index/volume:Volume" for r in rec.resources)
    from components.docker.host_state import volume_owner_problems

    labels = {"shared": {"tfbox.project": "other", "tfbox.stack": "dev"}}
    (problem,) = volume_owner_problems({"shared": "tfbox:logsVolume"}, labels, "tfbox", "dev", "unix:///var/run/docker.sock")
    assert "belongs to stack 'dev' of project 'other'" in problem, "the same stack name in another project is another lab"
    assert volume_owner_problems({"mine": "tfbox:logsVolume"}, {}, "tfbox", "dev", "unix:///x") == []


def test_a_void_notebook_under_a_default_nvidia_runtime_claims_no_gpu() -> None:
    """On a daemon whose default runtime is nvidia, a GPU-less notebook runs under `nvidia` with `void`."""
    from components.docker.host_state import claim_from_inspect

    info = container("cpu-lab", "notebook")
    info["HostConfig"]["Runtime"] = "nvidia"
    info["Config"]["Env"] = ["NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]
    assert claim_from_inspect(info) is None


# --- a GPU the machine does not have stops the program with tfbox's words (NVIDIA's CDI runtime gives Docker's) ---

ONE_GPU = "GPU 0: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6860)\n"
MADE_UP = "GPU-00000000-0000-0000-0000-000000000007"


@pytest.mark.parametrize("gpus, named", [("7", "GPU 7"), (MADE_UP, MADE_UP), ("0,7", "GPU 7")])
def test_a_gpu_the_machine_does_not_list_stops_the_program_before_anything_is_declared(gpus: str, named: str) -> None:
    rec = Recorder()
    rec.host_gpus = (0, ONE_GPU, "")
    with pytest.raises(Exception) as raised:
        run_program(config_for("gpu-box", gpus=gpus), stack="gpu-box", recorder=rec)
    message = str(raised.value)
    assert f"tfbox:gpus: stack 'gpu-box' asks for {named}, which this machine does not have: its nvidia-smi -L lists " \
           "GPU 0 (NVIDIA H200, GPU-b780f725-fe96-b196-3303-e4a68e6a6860)" in message, message
    assert "Fix: name GPUs it lists, by index or UUID, e.g. `pulumi config set tfbox:gpus 0`" in message
    assert [r for r in rec.resources if r.type.startswith("docker:")] == [], "nothing declared: no check, no notebook"
    asked = [c for c in rec.host_commands if c[-1].endswith("nvidia-smi -L")]
    assert asked and asked[0][:2] == ["ssh", "-o"], "the box's own nvidia-smi, over ssh"


def test_gpus_the_machine_lists_and_a_machine_without_nvidia_smi_go_on_to_the_gpu_check() -> None:
    for answer in [(0, ONE_GPU.replace("GPU 0", "GPU 1").replace("6860", "6861") + ONE_GPU, ""), (3, "", "")]:
        rec = Recorder()
        rec.host_gpus = answer
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)  # 0,1
        assert any(r.name == "gpu-check" and r.type == "docker:index/container:Container" for r in rec.resources)


def test_the_machine_is_asked_where_the_daemon_runs_and_never_behind_tcp() -> None:
    host = Host([])
    assert read_host_gpus("tcp://10.0.0.5:2376", [], runner=host) is None and host.commands == []
    calls: list[tuple[list[str], Mapping[str, str]]] = []

    def here(a: list[str], e: Mapping[str, str]) -> tuple[int, str, str]:
        calls.append((a, e))
        return 0, ONE_GPU, ""

    listing = read_host_gpus("unix:///var/run/docker.sock", [], runner=here)
    assert listing is not None and [g.index for g in listing] == [0]
    assert calls[0][0] == ["sh", "-c", HOST_GPUS] and calls[0][1] == {"DOCKER_HOST": "unix:///var/run/docker.sock"}
    assert read_host_gpus("unix:///var/run/docker.sock", [], runner=lambda a, e: (3, "", "")) is None


def test_the_machines_listing_resolves_an_index_against_another_stacks_uuid() -> None:
    rec = Recorder()
    uuid0 = "GPU-b780f725-fe96-b196-3303-e4a68e6a6860"
    rec.host_result = (0, json.dumps([container("team-b", "notebook", device_ids=[uuid0])]), "")
    rec.host_gpus = (0, LISTING, "")  # no whole-machine GPU check on the host: the machine's own listing
    with pytest.raises(Exception, match=rf"GPU 0 \({uuid0}\), which stack 'team-b' on the same Docker host already has"):
        run_program(config_for("gpu-box"), stack="gpu-box", recorder=rec)

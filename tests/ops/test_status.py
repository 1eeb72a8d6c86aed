"""The status board's pure part (ops/status_model.py) and its command lines, as data."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from components.model.commands import notebook_probe
from ops.status import SEPARATOR, nvidia_smi_argv, status
from ops.status_model import (
    EXIT_IDLE,
    EXIT_OK,
    EXIT_PROBLEM,
    ComputeApp,
    GpuReading,
    Holder,
    IdleRule,
    idle_while_held,
    machine_status,
    parse_apps_query,
    parse_gpus_query,
    parse_top,
    render,
    to_json,
)
from tests.shared_data import ROOT, shared_testdata

H200 = "GPU-b780f725-fe96-b196-3303-e4a68e6a6860"
STANDIN = ROOT / "scripts" / "nvidia" / "nvidia-smi"


def test_real_h200_query_with_header_and_units() -> None:
    text = shared_testdata("nvidia-smi", "h200-query.csv").read_text()
    fields = ("index", "uuid", "name", "memory.total", "driver_version", "pci.bus_id")
    assert parse_gpus_query(text, fields) == [GpuReading(0, H200, "NVIDIA H200", None, 143771, None)]


def test_standin_answers_the_status_queries_like_a_real_h200(tmp_path: Any) -> None:
    """The stand-in's CSV parses to the real capture's GPU 0, and its processes come from the marker."""
    marker = tmp_path / "apps"
    marker.write_text("4242 0 20480 0\n4343 1 1024 37\n")
    env = {"PATH": "/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES": "all", "TFBOX_NVIDIA_APPS": str(marker)}
    real = parse_gpus_query(shared_testdata("nvidia-smi", "h200-query.csv").read_text(),
                            ("index", "uuid", "name", "memory.total", "driver_version", "pci.bus_id"))[0]

    def smi(*args: str) -> str:
        return subprocess.run(["sh", str(STANDIN), *args], env=env, capture_output=True, text=True, check=True).stdout

    gpus = parse_gpus_query(smi("--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu", "--format=csv,noheader,nounits"))
    assert len(gpus) == 8
    assert (gpus[0].index, gpus[0].uuid, gpus[0].name, gpus[0].memory_total_mib) == (real.index, real.uuid, real.name, real.memory_total_mib)
    assert (gpus[0].memory_used_mib, gpus[0].utilization_pct, gpus[1].memory_used_mib, gpus[1].utilization_pct) == (20480, 0, 1024, 37)
    apps = parse_apps_query(smi("--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"))
    assert apps == [ComputeApp(4242, H200, 20480), ComputeApp(4343, H200[:-2] + "61", 1024)]
    # with a header and units, as a user would type it, the same rows
    assert parse_apps_query(smi("--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv")) == apps
    env["NVIDIA_VISIBLE_DEVICES"] = "1"
    assert [a.pid for a in parse_apps_query(smi("--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv"))] == [4343]
    marker.unlink()
    assert smi("--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits") == ""


def test_not_supported_values_are_unknown() -> None:
    text = "0, GPU-x, NVIDIA H200, [N/A], 143771, [Not Supported]\nWARNING: something\n"
    assert parse_gpus_query(text) == [GpuReading(0, "GPU-x", "NVIDIA H200", None, 143771, None)]


def test_docker_top() -> None:
    assert parse_top("PID                 ELAPSED\n1234                3600\n1300                5\n") == {1234: 3600, 1300: 5}


GPU = GpuReading(0, H200, "NVIDIA H200", 20480, 143771, 0)


@pytest.mark.parametrize(("util", "mib", "age", "flagged"), [
    (0, 20480, 3600, True),  # the case: idle, 20 GB held by a kernel an hour old
    (5, 20480, 3600, True),  # at the threshold
    (6, 20480, 3600, False),  # busy enough
    (0, 1023, 3600, False),  # too little memory to matter
    (0, 20480, 1799, False),  # a kernel that has just started (loading data)
    (None, 20480, 3600, False),  # no utilisation reading: nothing said
])
def test_idle_rule(util: int | None, mib: int, age: int, flagged: bool) -> None:
    gpu = GpuReading(0, H200, "NVIDIA H200", mib, 143771, util)
    holder = Holder(pid=1, used_mib=mib, stack="s", seat="a", age_s=age)
    assert bool(idle_while_held(gpu, [holder], IdleRule(max_utilization_pct=5, min_memory_mib=1024, min_age_s=1800))) is flagged


def inspect(seat: str, role: str, gpus: str | None, running: bool = True, cid: str = "", tls: bool = False) -> dict[str, Any]:
    port = 8888 if role == "notebook" else 6006
    info: dict[str, Any] = {
        "Id": cid or f"id-{seat}-{role}", "Name": f"/tfbox-box-{seat}-{role}", "Image": "sha256:img",
        "Config": {"Labels": {"tfbox.stack": "box", "tfbox.seat": seat, "tfbox.role": role, "tfbox.project": "tfbox"},
                   "Healthcheck": {"Test": notebook_probe(tls=tls, gpus=1 if gpus else None) if role == "notebook"
                                   else ["CMD", "python3", "-c", "http://127.0.0.1:6006/"]}},
        "State": {"Status": "running" if running else "exited", "Running": running, "ExitCode": 0 if running else 137},
        "HostConfig": {"PortBindings": {f"{port}/tcp": [{"HostIp": "0.0.0.0" if role == "notebook" else "127.0.0.1",
                                                         "HostPort": str(30000 + ord(seat) + (0 if role == "notebook" else 100))}]},
                       "DeviceRequests": [{"DeviceIDs": [gpus], "Capabilities": [["gpu"]]}] if gpus and role == "notebook" else []},
    }
    return info


def board(running_b: bool = True, age: int = 60) -> Any:
    proxied = inspect("a", "notebook", "0", tls=True)
    proxied["Config"]["Labels"]["tfbox.tensorboard-proxy"] = "true"  # tfbox:tensorboardProxy
    infos = [proxied, inspect("a", "tensorboard", None),
             inspect("b", "notebook", "1", running=running_b), inspect("b", "tensorboard", None)]
    readings = [GpuReading(i, H200[:-2] + f"6{i}", "NVIDIA H200", 20480 if i == 0 else 0, 143771, 0) for i in range(8)]
    apps = [ComputeApp(4242, H200, 20480), ComputeApp(999, H200, 512)]
    return machine_status("box", "ssh://me@gpu-box", infos, readings, apps, {"id-a-notebook": {4242: age, 4200: 900}},
                          IdleRule(min_age_s=1800))


def test_processes_are_joined_to_their_seat_and_gpus_to_seats() -> None:
    m = board()
    a, b = m.seats
    assert (a.seat, a.gpus_requested, [g.index for g in a.gpus], a.ok) == ("a", "0", [0], True)
    assert a.urls == {"notebook": "https://gpu-box:30097/", "tensorboard": "http://127.0.0.1:30197/",
                      "tensorboard-proxy": "https://gpu-box:30097/tensorboard/"}
    assert "tensorboard-proxy" not in b.urls
    held = {h.pid: (h.seat, h.container) for h in a.gpus[0].processes}
    assert held == {4242: ("a", "tfbox-box-a-notebook"), 999: ("", "")}
    assert (b.seat, [g.index for g in b.gpus], b.gpus[0].processes) == ("b", [1], ())
    assert len(m.gpus) == 8 and not any(g.idle_held for g in m.gpus)


def test_json_has_the_table_rows_and_the_exit_status() -> None:
    m = board()
    doc = json.loads(to_json([m]))
    seat_a = doc["machines"][0]["seats"][0]
    assert seat_a["gpus"][0]["uuid"] == H200 and seat_a["gpus"][0]["processes"][1]["seat"] == "a"
    assert doc["exit_status"] == EXIT_OK
    table = render([m])
    assert "a (pid 4242, 20.0G)" in table and "not a lab (pid 999, 512M)" in table and "20.0G/140.4G" in table
    assert "in no lab container" in table


def test_exit_status_problem_and_idle() -> None:
    broken = board(running_b=False)
    assert not broken.seats[1].ok and "exited (137)" in broken.seats[1].health
    assert json.loads(to_json([broken]))["exit_status"] == EXIT_PROBLEM
    assert "PROBLEM" in render([broken])
    idle = board(age=7200)
    assert idle.gpus[0].idle_held and json.loads(to_json([idle]))["exit_status"] == EXIT_IDLE
    assert "IDLE, MEMORY HELD" in render([idle]) and "a (20.0G for 120 min)" in render([idle])


def test_nvidia_smi_runs_in_a_one_shot_container_of_the_notebook_image() -> None:
    nb = inspect("a", "notebook", "0")
    argv = nvidia_smi_argv(nb)
    assert argv[:3] == ["docker", "run", "--rm"] and "--pid=host" in argv and "--network=none" in argv
    assert argv[argv.index("--gpus") + 1] == "all" and "sha256:img" in argv
    nb["HostConfig"]["Runtime"] = "nvidia"
    assert "--runtime=nvidia" in nvidia_smi_argv(nb) and "--gpus" not in nvidia_smi_argv(nb)


def test_status_reads_the_host_through_docker_commands_only(tmp_path: Any) -> None:
    (tmp_path / "Pulumi.box.yaml").write_text("config:\n  docker:host: unix:///tmp/x.sock\n  tfbox:gpus: '0'\n")
    infos = [inspect("a", "notebook", "0")]
    calls: list[list[str]] = []

    def run(argv: list[str], env: Any) -> tuple[int, str, str]:
        calls.append(argv)
        assert argv[0] == "docker" and env == {"DOCKER_HOST": "unix:///tmp/x.sock"}
        if argv[1] == "ps":
            return 0, "id-a-notebook\n", ""
        if argv[1] == "inspect":
            return 0, json.dumps(infos), ""
        if argv[1] == "run":
            return 0, f"0, {H200}, NVIDIA H200, 20480, 143771, 0\n{SEPARATOR}\n4242, {H200}, 20480\n", ""
        if argv[1] == "top":
            return 0, "PID ELAPSED\n4242 10\n", ""
        raise AssertionError(argv)

    [m] = status(tmp_path, None, IdleRule(), run)
    assert m.seats[0].gpus[0].processes[0].seat == "a"
    assert [c[1] for c in calls] == ["ps", "inspect", "run", "top"]


@pytest.mark.parametrize("tensorboard_inside, gpus", [(False, None), (True, None), (False, 2), (True, 1)])
def test_the_url_scheme_is_the_notebooks_own_tls_from_what_its_health_check_runs(tensorboard_inside: bool, gpus: int | None) -> None:
    """The bash probe names no `https:`; a TLS notebook was listed as http:// (and its /tensorboard/ too)."""
    from ops.status_model import container_urls

    for tls in (True, False):
        info = inspect("a", "notebook", "0", tls=tls)
        info["Config"]["Healthcheck"]["Test"] = notebook_probe(tensorboard_inside, tls=tls, gpus=gpus)
        info["Config"]["Labels"]["tfbox.tensorboard-proxy"] = "true"
        scheme = "https" if tls else "http"
        assert container_urls(info, "ssh://me@gpu-box") == {
            "notebook": f"{scheme}://gpu-box:30097/", "tensorboard-proxy": f"{scheme}://gpu-box:30097/tensorboard/"}
    legacy = inspect("a", "notebook", "0")
    legacy["Config"]["Healthcheck"]["Test"] = ["CMD", "python3", "-c", "urllib.request.urlopen('https://127.0.0.1:8888/api')"]
    assert container_urls(legacy, "ssh://me@gpu-box")["notebook"] == "https://gpu-box:30097/", "a probe from before bash"

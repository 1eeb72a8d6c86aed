"""ops/doctor.py's classification on real texts: `docker inspect` JSON and `ps` output captured from Docker
20.10 daemons of scripts/dockerd.sh (tests/ops/testdata/doctor/), and the errors a killed `up` prints.

How they were made: gpu-nb / plain-nb run with a health check printing NVML's "Unknown Error" / "connection
refused"; killed-tb was `docker kill`ed; oom ran out of its 8m memory limit; crash-* were running (restart
`unless-stopped` and `always`) when dockerd got SIGKILL and was started again (crash-ps.txt: `ps` then);
stale-* were captured after dockerd got SIGKILL while `docker run -p 127.0.0.1:29801:80 … tt` was starting tt.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ops import doctor as d

DATA = Path(__file__).parent / "testdata" / "doctor"


def inspect(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"{name}.json").read_text()))


def ps(name: str) -> tuple[datetime, list[d.Proc]]:
    """A `ps -eo pid=,ppid=,etimes=,args=` capture, with the time it was taken on its first line."""
    when, _, rest = (DATA / name).read_text().partition("\n")
    taken = d.parse_time(when)
    assert taken is not None
    return taken, d.parse_ps(rest)


def daemon_start(capture: str, socket: str = "/tmp/hd/crash/docker.sock") -> datetime:
    taken, procs = ps(capture)
    dockerd = d.find_dockerd(procs, socket)
    assert dockerd is not None
    return taken - timedelta(seconds=dockerd.elapsed_s)


def test_gpus_lost_names_nvml_and_the_host_fixes() -> None:
    f = d.classify_container(inspect("gpu-nb"))
    assert (f.ok, f.state, f.repairable, f.seat, f.stack) == (False, "unhealthy", True, "alice", "s1")
    assert f.cause.startswith("GPUs lost") and "Failed to initialize NVML: Unknown Error" in f.cause
    assert "nvidia-ctk system create-dev-char-symlinks --create-all" in f.fix
    assert "native.cgroupdriver=cgroupfs" in f.fix and "nvidia-container-toolkit#48" in f.fix
    assert "make repair" in f.fix


def test_tfbox_probe_line_is_gpus_lost_too() -> None:
    info = inspect("plain-nb")
    # the line the notebook's GPU probe (components/model/commands.py, branch gpuhealth) prints
    info["State"]["Health"]["Log"][-1]["Output"] = "tfbox: GPUs lost: nvidia-smi -L exited 0 listing 1 GPUs (2 given): GPU 0: …\n"
    f = d.classify_container(info)
    assert f.cause.startswith("GPUs lost") and "(2 given)" in f.cause and "nvidia-ctk" in f.fix


def test_unhealthy_gives_the_health_checks_last_output_and_the_seat_is_the_stack_for_legacy_labs() -> None:
    f = d.classify_container(inspect("plain-nb"))
    assert (f.ok, f.state, f.seat) == (False, "unhealthy", "s2")  # no tfbox.seat label: the stack's name
    assert "health check failed" in f.cause and "connection refused" in f.cause
    assert "GPUs lost" not in f.cause and "make repair STACK=s2" in f.fix


def test_killed_container_says_killed() -> None:
    f = d.classify_container(inspect("killed-tb"))
    assert (f.ok, f.state, f.role, f.repairable) == (False, "exited (137)", "tensorboard", True)
    assert "killed (exit 137" in f.cause


def test_oom() -> None:
    f = d.classify_container(inspect("oom"))
    assert not f.ok and "out of memory (OOM" in f.cause and "notebookMemory" in f.fix


def test_daemon_crash_legacy_lab_stays_exited_and_doctor_says_so() -> None:
    started = daemon_start("crash-ps.txt")
    legacy = d.classify_container(inspect("crash-legacy-nb"), started)
    assert not legacy.ok and legacy.repairable
    assert "when the Docker daemon restarted" in legacy.cause and "`unless-stopped`" in legacy.cause
    assert "restart policy `always`" in legacy.fix
    # the same crash, restart policy `always`: back by itself
    new = d.classify_container(inspect("crash-new-nb"), started)
    assert new.ok and new.state == "running"
    host = d.daemon_restart_finding(started, [legacy, new], "unix:///tmp/hd/crash/docker.sock")
    assert host is not None and "after it had died" in host.cause and "1 lab container" in host.cause
    assert d.daemon_restart_finding(started, [new], "x") is None


def test_a_container_stopped_long_after_the_daemon_started_is_not_blamed_on_it() -> None:
    started = daemon_start("crash-ps.txt") - timedelta(hours=1)
    f = d.classify_container(inspect("crash-legacy-nb"), started)
    assert "daemon" not in f.cause and "killed (exit 137" in f.cause


def test_an_always_container_killed_just_after_a_daemon_restart_is_not_blamed_on_it() -> None:
    """The daemon starts `always` containers again: one that is down was stopped by someone, however soon."""
    info = inspect("crash-legacy-nb")
    info["HostConfig"]["RestartPolicy"]["Name"] = "always"
    f = d.classify_container(info, daemon_start("crash-ps.txt"))
    assert "daemon" not in f.cause and "killed (exit 137" in f.cause


def test_stale_docker_proxy_is_found_and_attributed_to_its_daemon() -> None:
    _, procs = ps("stale-ps.txt")
    dockerd = d.find_dockerd(procs, "/tmp/hd/crash/docker.sock")
    assert dockerd is not None and dockerd.pid == 10579
    proxies = d.proxies_of(procs, dockerd.pid)  # another daemon's proxy (other parent) is not ours
    assert sorted(p.host_port for p in proxies) == [29801, 29990]
    infos = json.loads((DATA / "stale-inspect.json").read_text())
    assert {i["Name"].lstrip("/"): i["State"]["Status"] for i in infos} == {"tt": "created", "good-tb": "running"}
    stale = d.stale_proxies(proxies, d.published_ports(infos))
    assert [(p.host_ip, p.host_port, p.pid) for p in stale] == [("127.0.0.1", 29801, 17817)]
    [f] = d.stale_port_findings(stale, {29801: "half"}, "unix:///tmp/hd/crash/docker.sock")
    assert f.stack == "half" and not f.ok and not f.repairable
    assert "stale docker-proxy (pid 17817)" in f.cause and "127.0.0.1:29801" in f.cause and "port is already allocated" in f.cause
    assert "restart the Docker daemon once, gracefully" in f.fix
    half = d.classify_container(next(i for i in infos if i["Name"] == "/tt"))
    assert half.state == "created (0)" and "never started" in half.cause and "stale port" in half.fix


def test_find_dockerd_on_the_default_socket() -> None:
    procs = d.parse_ps(" 900 1 50 /usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n"
                       " 950 900 40 /usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8888 -container-ip 172.17.0.2 -container-port 8888\n")
    dockerd = d.find_dockerd(procs, "/var/run/docker.sock")
    assert dockerd is not None and dockerd.pid == 900
    assert d.stale_proxies(d.proxies_of(procs, 900), {("0.0.0.0", 8888)}) == []
    assert d.find_dockerd(procs, "/tmp/other.sock") is None


# What a killed `up` prints: the Docker API errors the provider passes on (captured from the docker CLI
# and from `pulumi up` against a dockerd killed mid-way).
# pulumi-up-*.txt: tests/e2e/test_doctor.py's `up` killed with its daemon, and the next `up` after the restart.
@pytest.mark.parametrize(("capture", "meaning"), [
    ("stale-run.txt", "the Docker daemon went away during `up`"),
    ("stale-start.txt", "stale docker-proxy"),
    ("pulumi-up-dockerd-killed.txt", "the Docker daemon went away during `up`"),
    ("pulumi-up-after-restart.txt", "stale docker-proxy"),
])
def test_killed_up_errors_are_explained(capture: str, meaning: str) -> None:
    explained = d.explain_up_error((DATA / capture).read_text())
    assert explained is not None and meaning in explained


@pytest.mark.parametrize(("text", "meaning"), [
    ("Error: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", "not running"),
    ('Unable to create container: error during connect: Post "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/containers/create": EOF',
     "went away during `up`"),
    ('Error response from daemon: Conflict. The container name "/tfbox-dev-notebook" is already in use by container "abc"',
     "interrupted `up`"),
])
def test_other_up_errors(text: str, meaning: str) -> None:
    explained = d.explain_up_error(text)
    assert explained is not None and meaning in explained


def test_unrelated_errors_are_not_explained() -> None:
    assert d.explain_up_error("tfbox configuration has 1 problem: tfbox:gpus …") is None


def test_report_and_exit_status() -> None:
    ok = d.classify_container(inspect("crash-new-nb"))
    bad = d.classify_container(inspect("killed-tb"))
    text = d.render([ok, bad])
    assert "new-nb" in text and "killed-tb" in text and "<- PROBLEM" in text
    assert "killed-tb: not running: killed" in text and "fix: `make repair STACK=s2`" in text
    assert "all labs healthy" in d.render([ok])


def test_missing_legacy_container() -> None:
    found = [d.classify_container(inspect("plain-nb"))]
    missing = d.missing_findings("s2", ("notebook", "tensorboard"), found)
    assert [(m.role, m.state) for m in missing] == [("tensorboard", "missing")] and "make up STACK=s2" in missing[0].fix


def test_repair_plan_takes_exactly_the_broken_containers() -> None:
    state = {"deployment": {"resources": [
        {"type": "docker:index/container:Container", "urn": "urn:pulumi:s2::tfbox::docker:index/container:Container::notebook",
         "outputs": {"name": "plain-nb"}},
        {"type": "docker:index/container:Container", "urn": "urn:pulumi:s2::tfbox::docker:index/container:Container::tensorboard",
         "outputs": {"name": "killed-tb"}},
        {"type": "docker:index/volume:Volume", "urn": "urn:v", "outputs": {"name": "plain-nb"}},
    ]}}
    urns = d.container_urns(state)
    assert set(urns) == {"plain-nb", "killed-tb"}
    healthy = d.classify_container(inspect("crash-new-nb"))
    healthy.stack = "s2"
    broken = d.classify_container(inspect("killed-tb"))
    stale = d.stale_port_findings([d.Proxy(1, "127.0.0.1", 1, "", 0)], {1: "s2"}, "h")
    assert d.repair_plan([healthy, broken, *stale], {"s2": urns}) == {
        "s2": ["urn:pulumi:s2::tfbox::docker:index/container:Container::tensorboard"]}


def test_ssh_hosts_run_docker_and_ps_on_the_box() -> None:
    host = d.Host("ssh://me@box:2222/run/user/docker.sock", ["-F", "/cfg"])
    argv, env = host.argv(["docker", "ps", "-aq"])
    assert argv[:7] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=8"]
    assert argv[-2:] == ["box", "docker --host=unix:///run/user/docker.sock ps -aq"] and "-F" in argv and "2222" in argv
    assert env == {}
    assert host.socket_path() == "/run/user/docker.sock"
    assert d.Host("ssh://me@box").socket_path() == "/var/run/docker.sock"
    local = d.Host("unix:///tmp/x.sock")
    assert local.argv(["docker", "ps"]) == (["docker", "ps"], {"DOCKER_HOST": "unix:///tmp/x.sock"})
    assert local.socket_path() == "/tmp/x.sock" and d.Host("tcp://h:2376").socket_path() is None


def test_doctor_over_a_stand_in_host(tmp_path: Path) -> None:
    """The thin part end to end with a stand-in runner: two stacks on one host, one broken container, a stale port."""
    (tmp_path / "Pulumi.yaml").write_text("name: tfbox\n")
    (tmp_path / "Pulumi.s1.yaml").write_text("config:\n  docker:host: unix:///tmp/hd/crash/docker.sock\n  tfbox:tensorboardMode: 'off'\n")
    (tmp_path / "Pulumi.half.yaml").write_text(
        "config:\n  docker:host: unix:///tmp/hd/crash/docker.sock\n  tfbox:notebookPort: 29801\n  tfbox:tensorboardMode: 'off'\n")
    infos = [inspect("gpu-nb"), *json.loads((DATA / "stale-inspect.json").read_text())]
    _, ps_text = (DATA / "stale-ps.txt").read_text().split("\n", 1)
    calls = []

    def run(argv: list[str], env: Any) -> tuple[int, str, str]:
        calls.append(argv)
        if argv[:2] == ["docker", "ps"]:
            return 0, "\n".join(i["Id"] for i in infos), ""
        if argv[:2] == ["docker", "inspect"]:
            return 0, json.dumps(infos), ""
        return 0, ps_text, ""

    findings, errors = d.doctor(tmp_path, run=run)
    assert errors == []
    by = {(f.stack, f.container or f.role): f for f in findings}
    assert by[("s1", "gpu-nb")].cause.startswith("GPUs lost")
    assert by[("half", "tt")].state == "created (0)"
    assert by[("half", "port")].state == "127.0.0.1:29801 stale"
    assert len(calls) == 3  # one host: asked once for both stacks
    # one stack: its own problems only (the stale port is on the other stack's port)
    only, _ = d.doctor(tmp_path, "s1", run=run)
    assert [(f.stack, f.container or f.role) for f in only if not f.ok] == [("s1", "gpu-nb")]


def test_doctor_reads_whole_command_lines_when_columns_is_set(tmp_path: Path) -> None:
    """procps `ps` cuts each line at $COLUMNS when it is exported (pytest-xdist's workers export 80): doctor asks for
    whole lines (`-ww`), else the dockerd and docker-proxy flags that name the daemon and the port are cut off."""
    (tmp_path / "Pulumi.yaml").write_text("name: tfbox\n")
    (tmp_path / "Pulumi.half.yaml").write_text(
        "config:\n  docker:host: unix:///tmp/hd/crash/docker.sock\n  tfbox:notebookPort: 29801\n  tfbox:tensorboardMode: 'off'\n")
    infos = json.loads((DATA / "stale-inspect.json").read_text())
    _, ps_text = (DATA / "stale-ps.txt").read_text().split("\n", 1)

    def run(argv: list[str], env: Any) -> tuple[int, str, str]:
        if argv[:2] == ["docker", "ps"]:
            return 0, "\n".join(i["Id"] for i in infos), ""
        if argv[:2] == ["docker", "inspect"]:
            return 0, json.dumps(infos), ""
        assert argv[0] == "ps"
        wide = "-ww" in argv
        return 0, "\n".join(line if wide else line[:80] for line in ps_text.splitlines()), ""

    findings, _ = d.doctor(tmp_path, "half", run=run)
    assert "127.0.0.1:29801 stale" in [f.state for f in findings]


def test_a_seats_stack_owns_its_seats_ports(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.box.yaml").write_text(
        "config:\n  docker:host: ssh://me@box\n  docker:sshOpts: ['-F', '/cfg']\n  tfbox:seats:\n"
        "    - {name: a, gpus: '0', notebookPort: 8890, tensorboardPort: 6010}\n"
        "    - {name: b, gpus: '1', notebookPort: 8891, tensorboardPort: 6011}\n")
    [ref] = d.stack_refs(tmp_path)
    assert ref.ports == (8890, 6010, 8891, 6011)
    assert ref.host.docker_host == "ssh://me@box" and ref.host.ssh_opts == ["-F", "/cfg"]


def test_doctor_never_runs_a_stack_files_unsafe_ssh_opts(tmp_path: Path) -> None:
    """`make doctor` runs ssh with each stack file's docker:sshOpts: a ProxyCommand there is refused, not run."""
    (tmp_path / "Pulumi.yaml").write_text("name: tfbox\n")
    (tmp_path / "Pulumi.box.yaml").write_text(
        "config:\n  docker:host: ssh://me@box\n  docker:sshOpts: ['-o', 'ProxyCommand=touch /tmp/pwned']\n")
    calls: list[list[str]] = []

    def run(argv: list[str], env: Any) -> tuple[int, str, str]:
        calls.append(argv)
        return 0, "", ""

    findings, errors = d.doctor(tmp_path, run=run)
    assert calls == [] and findings == []
    (error,) = errors
    assert error.startswith("stack box: docker:sshOpts:") and "ProxyCommand" in error and "Fix:" in error

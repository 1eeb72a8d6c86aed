"""Issue 22 (part B, finding 2): a port published on 127.0.0.1 is reachable from the LAN on Docker < 28.

Two network namespaces of the test's own joined by a veth pair: the "host" (10.218.0.2) runs a Docker
daemon with iptables on (scripts/dockerd.sh with TFBOX_NETNS), publishing a TensorBoard-like HTTP server
(busybox httpd, no login) on 127.0.0.1:PORT; the "LAN neighbour" (10.218.0.1) sends a crafted TCP SYN for
127.0.0.1:PORT as a raw Ethernet frame to the host's MAC (tests/e2e/packets.py) and gets a SYN-ACK: the
DNAT rule Docker writes in PREROUTING rewrites it before the kernel's martian check (moby/moby#45610).
With the raw-table rule tfbox's warning recommends it gets nothing, and loopback on the host still works.
tfbox's preview against that daemon warns with the fixes; `tfbox:loopbackPublishFiltered` silences it.
Run on Debian 12's Docker 20.10 and on Docker 26 (scripts/docker-next.sh).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from components.docker.loopback import raw_table_rule
from tests.e2e.conftest import start_daemon, stop_daemon
from tests.e2e.harness import ROOT, Docker, Project, free_port

HOST_IP, NEIGHBOUR_IP = "10.218.0.2", "10.218.0.1"
PACKETS = ROOT / "tests" / "e2e" / "packets.py"


def sh(*cmd: str, timeout: float = 60) -> str:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def in_ns(ns: str, *cmd: str, timeout: float = 60) -> str:
    return sh("ip", "netns", "exec", ns, *cmd, timeout=timeout)


def crafted_syn(lab: SimpleNamespace, port: int) -> str:
    """What the neighbour gets back for a SYN to 127.0.0.1:port sent to the host's MAC: SYN-ACK, RST or NONE."""
    return in_ns(lab.neighbour, sys.executable, str(PACKETS), "--iface", "eth0", "--dst-mac", lab.host_mac,
                 "--src-ip", NEIGHBOUR_IP, "--dport", str(port), "--host-ip", HOST_IP, timeout=30).strip()


def local_get(lab: SimpleNamespace, port: int) -> str:
    """An HTTP request to 127.0.0.1:port from the host itself (its loopback), the way its users reach TensorBoard."""
    code = (f"import socket; s = socket.create_connection(('127.0.0.1', {port}), 5); s.settimeout(5); "
            "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(s.recv(64).decode(errors='replace'))")
    return in_ns(lab.host, sys.executable, "-c", code, timeout=30)


def docker_next() -> dict[str, str]:
    fetched = subprocess.run([str(ROOT / "scripts" / "docker-next.sh")], capture_output=True, text=True, check=False, timeout=600)
    if fetched.returncode != 0:
        raise RuntimeError(f"scripts/docker-next.sh failed ({fetched.returncode}):\n{fetched.stderr[-3000:]}")
    return {"TFBOX_DOCKERD_BIN": fetched.stdout.strip().splitlines()[-1]}


@pytest.fixture(scope="module", params=["debian-12", "docker-26"])
def lab(request: pytest.FixtureRequest, docker_a: Docker, registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tag = secrets.token_hex(3)
    host, neighbour = f"tfbl{tag}h", f"tfbl{tag}n"
    daemon = f"lbk-{tag}"
    made: list[str] = []
    try:
        for ns in (host, neighbour):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"tbl{tag}h", "netns", host, "type", "veth", "peer", "name", f"tbl{tag}n", "netns", neighbour)
        for ns, end, ip in ((host, f"tbl{tag}h", HOST_IP), (neighbour, f"tbl{tag}n", NEIGHBOUR_IP)):
            sh("ip", "-n", ns, "link", "set", end, "name", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        host_mac = json.loads(sh("ip", "-n", host, "-j", "link", "show", "eth0"))[0]["address"]

        env = {"TFBOX_NETNS": host, **(docker_next() if request.param == "docker-26" else {})}
        docker = start_daemon(daemon, env)
        # the busybox image of the NVIDIA stand-in, through a file: the namespace's daemon cannot reach the registry
        image = f"{registry}/tfbox-test/nvidia-smi:latest"
        docker_a("pull", image)
        tar = tmp_path_factory.mktemp("loopback") / "busybox.tar"
        docker_a("save", "-o", str(tar), image)
        docker("load", "-i", str(tar))
        port = free_port()
        docker("run", "-d", "--name", "tensorboard-like", "-p", f"127.0.0.1:{port}:6006", image,
               "httpd", "-f", "-p", "6006", "-h", "/tmp")
        info = docker.inspect("tensorboard-like")
        assert info is not None
        version = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        lab = SimpleNamespace(host=host, neighbour=neighbour, host_mac=host_mac, docker=docker, port=port, version=version)
        for _ in range(30):  # bounded: httpd answers on loopback within a few seconds
            try:
                if local_get(lab, port).startswith("HTTP/1."):
                    break
            except AssertionError:
                pass
        else:
            raise AssertionError("the TensorBoard-like server never answered on the host's loopback")
        yield lab
    finally:
        stop_daemon(daemon)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_1_a_crafted_packet_from_the_lan_reaches_the_loopback_port(lab: SimpleNamespace) -> None:
    assert int(lab.version.split(".")[0]) < 28, lab.version
    assert crafted_syn(lab, lab.port) == "SYN-ACK", f"Docker {lab.version}: the loopback-published port answered the LAN"
    # the control: a loopback port Docker does not publish is dropped as a martian, as 127.0.0.1 should be
    assert crafted_syn(lab, lab.port + 1 if lab.port < 65535 else lab.port - 1) == "NONE"


def test_2_tfbox_warns_at_preview_with_the_fixes(lab: SimpleNamespace, project: Project, cpu_image: str, password: str) -> None:
    name = f"lbk-{lab.port}"
    stack = project.stack(name, {"docker:host": lab.docker.host, "tfbox:image": cpu_image, "tfbox:notebookPort": free_port(),
                                 "tfbox:tensorboardPort": lab.port}, password)
    out = stack.preview().output
    assert "moby/moby#45610" in out and f"Docker {lab.version}" in out, out[-3000:]
    assert raw_table_rule(lab.port) in out and "Docker 28 or later" in out
    stack.set("loopbackPublishFiltered", "true")
    assert "45610" not in stack.preview().output, "the key silences it"
    project.pulumi("stack", "rm", "--yes", "--force", "--stack", name)


def test_3_the_recommended_raw_table_rule_stops_it_and_loopback_still_works(lab: SimpleNamespace) -> None:
    rule = raw_table_rule(lab.port).split()
    in_ns(lab.host, *rule)
    try:
        assert crafted_syn(lab, lab.port) == "NONE", "with the raw-table rule the crafted SYN is dropped"
        assert local_get(lab, lab.port).startswith("HTTP/1."), "the host's own loopback still reaches it"
    finally:
        in_ns(lab.host, "iptables", *[("-D" if a == "-I" else a) for a in rule[1:]])


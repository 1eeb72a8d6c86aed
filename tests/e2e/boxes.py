"""SSH boxes for the real-engine tests: separate hosts the engine reaches through `docker:host: ssh://…`.

A box (scripts/box.sh) is a network namespace with its own address (10.215.N.2), a private dockerd
inside it (iptables on, NVIDIA stand-ins) and Debian's sshd on port 22: key login only, the user
`tfbox` in the group that owns the box's Docker socket, `tfbox-nodocker` without Docker rights.

What a test gets (`start_boxes`): per box its `ssh://tfbox@<ip>:22` host string, the box daemon's
unix socket (to check the box from the side, not through SSH), and one `SshClient` for all boxes:
a key of the test's own, a `known_hosts` the test wrote from the boxes' host keys, and an
ssh_config that uses them with strict host key checking. Stacks pass `client.ssh_opts`
(`-i <key>` and `-o` options for its known_hosts) as `docker:sshOpts`: what ~/.ssh/config does for a user.

    boxes, client = start_boxes(["fleet-a", "fleet-b"], tmp_dir)
    stack config: {"docker:host": boxes[0].ssh_host, "docker:sshOpts": client.ssh_opts, ...}
    ...
    stop_boxes(boxes)
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import ROOT, Docker

BOX_SH = ROOT / "scripts" / "box.sh"
DOCKER_USER = "tfbox"
NO_DOCKER_USER = "tfbox-nodocker"


@dataclass(frozen=True)
class Box:
    name: str
    ip: str
    port: int
    host_key: str  # "ssh-ed25519 AAAA…", the box's public host key
    netns: str
    docker: Docker  # the box's daemon over its unix socket, for the tests' own checks

    def ssh_host(self, user: str = DOCKER_USER, port: int | None = None) -> str:
        """`docker:host` for this box, as a user writes it."""
        return f"ssh://{user}@{self.ip}:{port or self.port}"

    def known_hosts_line(self, key: str | None = None) -> str:
        host = self.ip if self.port == 22 else f"[{self.ip}]:{self.port}"
        return f"{host} {key or self.host_key}\n"

    def inside(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """A command in the box's network namespace (e.g. curl its loopback, where TensorBoard is)."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", *cmd], capture_output=True, text=True,
                              timeout=timeout, check=False)


@dataclass(frozen=True)
class SshClient:
    """The client side a user has in ~/.ssh: a key, known_hosts, a config using both strictly."""

    dir: Path
    identity: Path
    known_hosts: Path
    config: Path

    @property
    def ssh_opts(self) -> list[str]:
        """For `docker:sshOpts`: the provider appends them to its `ssh` command. The ssh_config's settings as
        -o options: tfbox takes only safe options from a stack file, never `-F` (a config may run commands)."""
        return ["-i", str(self.identity), "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=10"]

    def variant(self, name: str, known_hosts: str | None = None, identity: Path | None = None) -> SshClient:
        """Another client (its own ssh_config) with other known_hosts content or another key: the failure tests."""
        d = self.dir / name
        d.mkdir(exist_ok=True)
        kh = d / "known_hosts"
        kh.write_text(known_hosts if known_hosts is not None else self.known_hosts.read_text())
        return write_client(d, identity or self.identity, kh)


def keygen(path: Path, comment: str) -> Path:
    """A fresh ed25519 key pair without passphrase (path and path.pub)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True)
    return path


def write_client(d: Path, identity: Path, known_hosts: Path) -> SshClient:
    config = d / "ssh_config"
    config.write_text(
        "Host *\n"
        f"  IdentityFile {identity}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        "  ConnectTimeout 10\n"
    )
    return SshClient(d, identity, known_hosts, config)


def start_box(name: str, pubkey: Path | None = None) -> Box:
    """A fresh box: whatever an interrupted earlier run left under the same name is purged first."""
    stop_box(name)
    args = [str(BOX_SH), "start", name] + ([str(pubkey)] if pubkey else [])
    p = subprocess.run(args, capture_output=True, text=True, check=False, timeout=180)
    if p.returncode != 0:
        raise RuntimeError(f"box.sh start {name} failed:\n{p.stderr[-3000:]}")
    v = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    return Box(name, v["BOX_IP"], int(v["SSH_PORT"]), v["HOST_KEY"], v["NETNS"], Docker(v["DOCKER_HOST"]))


def restart_docker(box: Box) -> None:
    """Bring a box's daemon back after `stop_docker` (box.sh start is idempotent)."""
    p = subprocess.run([str(BOX_SH), "start", box.name], capture_output=True, text=True, check=False, timeout=180)
    if p.returncode != 0:
        raise RuntimeError(f"box.sh start {box.name} failed:\n{p.stderr[-3000:]}")


def stop_docker(box: Box) -> None:
    subprocess.run([str(BOX_SH), "docker-stop", box.name], capture_output=True, check=True, timeout=180)


def reset_box(box: Box) -> None:
    """A box as `start_box` gives it, except for the images its daemon already pulled: Docker running
    (a module may have left it stopped), no container, network or volume of an earlier module."""
    restart_docker(box)
    d = box.docker
    if containers := d("ps", "-aq").stdout.split():
        d("rm", "-f", *containers)
    d("network", "prune", "-f")
    if volumes := d("volume", "ls", "-q").stdout.split():
        d("volume", "rm", "-f", *volumes)


def stop_box(name: str) -> None:
    subprocess.run([str(BOX_SH), "purge", name], capture_output=True, check=False, timeout=300)


def start_boxes(names: list[str], workdir: Path) -> tuple[list[Box], SshClient]:
    """Start the boxes in parallel (a few seconds each) and write one client for all of them."""
    workdir.mkdir(parents=True, exist_ok=True)
    identity = keygen(workdir / "id_ed25519", "tfbox-e2e")
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        boxes = list(pool.map(lambda n: start_box(n, identity.with_suffix(".pub")), names))
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text("".join(b.known_hosts_line() for b in boxes))
    return boxes, write_client(workdir, identity, known_hosts)


def stop_boxes(boxes: list[Box]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(boxes))) as pool:
        list(pool.map(lambda b: stop_box(b.name), boxes))

"""The one way tfbox runs the docker CLI against a stack's daemon: the program's preflight reads
(components.docker.host_state), the pids limits (components.docker.pids), `make doctor`, `make status`
and `make fleet` (ops/). Here with DOCKER_HOST, or on the box over ssh with a strict host key and no
prompt (as components.docker.ssh's preflight), so a remote daemon's socket is never forwarded.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.docker import ssh

LOCAL_SOCKET = "/var/run/docker.sock"
TIMEOUT_S = 30  # the program's reads: a preview waits on them
Runner = Callable[[list[str], Mapping[str, str]], tuple[int, str, str]]


@dataclass
class Host:
    """A Docker host as a stack names it (`docker:host`, canonical) and the ssh options to reach it."""

    docker_host: str
    ssh_opts: list[str] = field(default_factory=list)

    @property
    def is_ssh(self) -> bool:
        return self.docker_host.startswith("ssh://")

    def socket_path(self) -> str | None:
        """The daemon's socket on its machine (None for tcp://: no process list to read)."""
        if self.is_ssh:
            target = ssh.parse_ssh_host(self.docker_host)
            return (target.socket_path if target else None) or LOCAL_SOCKET
        if self.docker_host.startswith("unix://"):
            return self.docker_host[len("unix://"):]
        return None

    def argv(self, remote: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """The command line (and extra environment) that runs the words `remote` against this host's daemon."""
        if self.is_ssh:
            target = ssh.parse_ssh_host(self.docker_host)
            assert target is not None
            words = list(remote)
            if words and words[0] == "docker":
                words[:1] = ssh.remote_docker(target)
            return [*ssh.ssh_argv(target, self.ssh_opts), shlex.join(words)], {}
        if remote and remote[0] == "docker":
            return list(remote), {"DOCKER_HOST": self.docker_host}
        return list(remote), {}

    def script_argv(self, script: str) -> tuple[list[str], dict[str, str]]:
        """The command line that runs `script` (a shell line whose `docker` means this host's daemon)."""
        target = ssh.parse_ssh_host(self.docker_host)
        if target is not None:
            docker = shlex.join(ssh.remote_docker(target))
            return [*ssh.ssh_argv(target, list(self.ssh_opts)), f"docker() {{ command {docker} \"$@\"; }}; {script}"], {}
        return ["sh", "-c", script], {"DOCKER_HOST": self.docker_host}


def docker_argv(docker_host: str, ssh_opts: Sequence[str], script: str) -> tuple[list[str], dict[str, str]]:
    """Host(docker_host, ssh_opts).script_argv(script)."""
    return Host(docker_host, list(ssh_opts)).script_argv(script)


def run(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run a command for the program; (exit status, stdout, stderr), 127 when the program is not installed."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env={**os.environ, **env}, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"no answer within {TIMEOUT_S} s"
    return p.returncode, p.stdout, p.stderr


def run_command(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run a command for `make doctor`/`status`/`fleet`, which wait longer (a whole host's inspect)."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **env}, check=False)
    except subprocess.TimeoutExpired:
        return -1, "", "timed out after 120 s"
    return p.returncode, p.stdout, p.stderr


def _one_line(text: str, limit: int = 200) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    joined = " / ".join(lines)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def inspect_containers(host: Host, run: Runner = run_command) -> tuple[list[dict[str, Any]], str]:
    """`docker inspect` of every container on the host (two calls), or why it could not be read."""
    argv, env = host.argv(["docker", "ps", "-aq", "--no-trunc"])
    code, out, err = run(argv, env)
    if code != 0:
        return [], f"{host.docker_host}: cannot list containers: {_one_line(err or out)}"
    ids = out.split()
    if not ids:
        return [], ""
    argv, env = host.argv(["docker", "inspect", *ids])
    code, out, err = run(argv, env)
    if code != 0:
        return [], f"{host.docker_host}: docker inspect failed: {_one_line(err)}"
    loaded: list[dict[str, Any]] = json.loads(out)
    return loaded, ""

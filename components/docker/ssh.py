"""Machines over SSH: check `ssh://user@host` before the engine touches anything.

The docker provider reaches an `ssh://` Docker host by running `ssh … docker system dial-stdio`;
when that fails, the user gets a ping error from deep inside the provider. tfbox runs the same
kind of ssh first (`docker version` on the box, key login only, host key checked strictly, a
short timeout) and turns what ssh or docker said into one line with the fix. An unknown or
changed host key is refused, never accepted on the user's behalf.

Pure parts (parsing, the command line, classifying stderr) are plain functions; `preflight`
runs the command.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

CONNECT_TIMEOUT_S = 8
# ssh's own connect timeout bounds the network part; this bounds a box that accepts and then hangs
PROBE_TIMEOUT_S = 30


@dataclass(frozen=True)
class SshTarget:
    """Where `ssh://[user@]host[:port][/socket/path]` points (Docker's own reading of it)."""

    host: str
    user: str | None = None
    port: int | None = None
    socket_path: str | None = None  # a daemon socket other than the box's default

    @property
    def display(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"


def parse_ssh_host(docker_host: str) -> SshTarget | None:
    """The target of an `ssh://` docker host; None for any other scheme. Raises ValueError when
    Docker would refuse the URL too (no host, a password, a query)."""
    parts = urlsplit(docker_host)
    if parts.scheme != "ssh":
        return None
    if not parts.hostname:
        raise ValueError(f"docker:host '{docker_host}' names no host: write ssh://user@host")
    if parts.password is not None:
        raise ValueError(f"docker:host '{docker_host}' has a password: SSH hosts log in with a key, drop ':<password>'")
    if parts.query or parts.fragment:
        raise ValueError(f"docker:host '{docker_host}' has a query or fragment; write ssh://user@host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"docker:host '{docker_host}' has an invalid port") from None
    path = parts.path.strip("/")
    return SshTarget(
        host=parts.hostname, user=unquote(parts.username) if parts.username else None, port=port,
        socket_path=f"/{path}" if path else None,
    )


def ssh_opts_from(configured: object) -> list[str]:
    """`docker:sshOpts` as the provider reads it (a list), else `DOCKER_SSH_OPTS` split on spaces."""
    if isinstance(configured, list):
        return [str(o) for o in configured]
    if isinstance(configured, str) and configured:
        return shlex.split(configured)
    return os.environ.get("DOCKER_SSH_OPTS", "").split()


# `docker:sshOpts` sits in a committed stack file, and ssh runs wherever `pulumi` does (a laptop, the CI
# runner holding every machine's key). ssh options that run a local command (ProxyCommand, LocalCommand,
# KnownHostsCommand, `Match exec`, PKCS11Provider, a whole `-F` config) would run a stranger's command
# there, so only these options, each a plain value, are taken from a stack file.
SAFE_SSH_OPTIONS = (
    "AddressFamily", "BatchMode", "Compression", "ConnectionAttempts", "ConnectTimeout", "GlobalKnownHostsFile",
    "HostKeyAlgorithms", "HostKeyAlias", "IdentitiesOnly", "IdentityFile", "LogLevel", "Port", "ServerAliveCountMax",
    "ServerAliveInterval", "StrictHostKeyChecking", "TCPKeepAlive", "User", "UserKnownHostsFile",
)
_SAFE_OPTIONS = {o.lower(): o for o in SAFE_SSH_OPTIONS}
_VALUE_FLAGS = {"-i": "IdentityFile", "-p": "Port", "-l": "User"}  # ssh's short forms of three of them
_BARE_FLAGS = ("-4", "-6", "-C", "-q")
_OTHER_VALUE_FLAGS = ("-B", "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-J", "-L", "-m", "-O", "-P", "-Q", "-R", "-S", "-W", "-w")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._/+@:~%,-]+$")
SSH_OPTS_FIX = ("keep only -i KEY, -p PORT, -l USER, -4/-6/-C/-q and -o NAME=VALUE with NAME one of "
                f"{', '.join(SAFE_SSH_OPTIONS)}; put anything else (ProxyJump, ProxyCommand, Match) in your own "
                "~/.ssh/config, which a stack file cannot change")


def ssh_opts_problems(opts: object) -> list[str]:
    """Why `docker:sshOpts` from a stack file is refused (empty: fine): anything but a list of safe ssh options."""
    if opts is None or opts == [] or opts == "":
        return []
    if isinstance(opts, str):
        try:
            opts = shlex.split(opts)
        except ValueError:
            return ["is not a list of ssh arguments such as [\"-i\", \"/path/key\"]"]
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        return ["is not a list of ssh arguments such as [\"-i\", \"/path/key\"]"]
    problems: list[str] = []
    i = 0
    while i < len(opts):
        arg = opts[i]
        flag, attached = arg[:2], arg[2:]
        if arg in _BARE_FLAGS:
            i += 1
            continue
        if flag in _VALUE_FLAGS or flag == "-o":
            value = attached if attached else (opts[i + 1] if i + 1 < len(opts) else None)
            i += 1 if attached else 2
            if value is None:
                problems.append(f"{arg} has no value")
                continue
            name = _VALUE_FLAGS.get(flag)
            if name is None:
                key, sep, val = value.partition("=")
                if not sep:
                    key, _, val = value.strip().partition(" ")
                name, value = _SAFE_OPTIONS.get(key.strip().lower(), ""), val.strip()
                if not name:
                    problems.append(f"the ssh option {key.strip()!r} is not one tfbox takes from a stack file "
                                    "(ProxyCommand, LocalCommand, KnownHostsCommand and the like run commands on this machine)")
                    continue
            if not _SAFE_VALUE.match(value):
                problems.append(f"{name} {value!r} has characters other than letters, digits and . _ / + @ : ~ % , -")
            elif name == "StrictHostKeyChecking" and value.lower() not in ("yes", "accept-new"):
                problems.append(f"StrictHostKeyChecking {value} would accept any host key")
            continue
        problems.append(f"{arg!r} is not an ssh argument tfbox takes from a stack file (-F, -J, -o ProxyCommand and the "
                        "like run commands or read a config on this machine)")
        i += 2 if flag in _OTHER_VALUE_FLAGS and not attached else 1
    return problems


def ssh_argv(target: SshTarget, ssh_opts: list[str]) -> list[str]:
    """ssh that never prompts and never accepts an unknown host key, up to the remote command.

    Our -o options come first: for each option ssh keeps the first value it sees, so neither
    `docker:sshOpts` nor ~/.ssh/config can turn strict host key checking off here."""
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
           "-T", *ssh_opts]
    if target.port:
        cmd += ["-p", str(target.port)]
    if target.user:
        cmd += ["-l", target.user]
    return [*cmd, "--", target.host]


def remote_docker(target: SshTarget) -> list[str]:
    """`docker` on the box, aimed at the daemon the URL names."""
    return ["docker", f"--host=unix://{target.socket_path}"] if target.socket_path else ["docker"]


def probe_command(target: SshTarget, ssh_opts: list[str]) -> list[str]:
    """`docker version` on the box over ssh_argv's ssh."""
    return [*ssh_argv(target, ssh_opts), *remote_docker(target), "version", "--format", "{{.Server.Version}}"]


def classify(target: SshTarget, returncode: int, stderr: str, ssh_opts: list[str] | None = None) -> str | None:
    """One line saying what is wrong and how to fix it; None when the box's Docker answered."""
    if returncode == 0:
        return None
    err = stderr.replace("\r", "")
    low = err.lower()
    where = f"docker:host {target.display}"
    host = target.host if not target.port or target.port == 22 else f"[{target.host}]:{target.port}"
    user = target.user or "your user"
    opts = f" (with docker:sshOpts {' '.join(ssh_opts)})" if ssh_opts else ""
    ssh_failed = returncode == 255  # a remote command's own exit status is passed through; 255 is ssh's
    if ssh_failed and ("remote host identification has changed" in low or "has changed and you have requested" in low):
        return (f"{where}: the box's SSH host key has CHANGED since it was added to known_hosts; tfbox refuses it. "
                f"If the box was reinstalled, check the new key with its admin, then `ssh-keygen -R {host}` and add the "
                f"new one (`ssh-keyscan -p {target.port or 22} {target.host} >> ~/.ssh/known_hosts` after checking its fingerprint)")
    if ssh_failed and ("host key is known for" in low or "host key verification failed" in low):
        return (f"{where}: the box's SSH host key is not in known_hosts, and tfbox never accepts one on its own. Check its "
                f"fingerprint with the box's admin and add it: `ssh-keyscan -p {target.port or 22} {target.host} >> "
                f"~/.ssh/known_hosts` (or log in once with `ssh {user}@{target.host}` and compare)")
    if ssh_failed and "permission denied (" in low and ("publickey" in low or "password" in low or "keyboard-interactive" in low):
        return (f"{where}: SSH login as '{user}' was refused (wrong user or key){opts}. Check the user in docker:host, "
                f"that your public key is in ~{user}/.ssh/authorized_keys on the box, and that `ssh {user}@{target.host} true` "
                f"works without a password (ssh-agent, or -i <key> in ~/.ssh/config or docker:sshOpts)")
    if ssh_failed and "could not resolve hostname" in low:
        return (f"{where}: the name '{target.host}' does not resolve. Fix the host in docker:host "
                f"(`pulumi config set docker:host ssh://user@<host>`), or add it to DNS, /etc/hosts or ~/.ssh/config")
    if ssh_failed:  # ssh itself failed: a remote command's own exit status is passed through, 255 is ssh's
        reason = _last_ssh_reason(err) or "no answer"
        return (f"{where}: the box is unreachable over SSH ({reason}). Check that it is on, that sshd listens on port "
                f"{target.port or 22}, and that no firewall is in between; then `ssh {user}@{target.host} true`")
    if "permission denied while trying to connect to the docker" in low or (
            "connect: permission denied" in low and "docker" in low):
        return (f"{where}: '{user}' may log in but not use Docker there (permission denied on the Docker socket). "
                f"On the box: `sudo usermod -aG docker {user}`, then log in again (or use a user of the docker group)")
    if "cannot connect to the docker daemon" in low or "is the docker daemon running" in low \
            or "failed to connect to the docker api" in low:
        return (f"{where}: Docker is not running on the box. Start it there: `sudo systemctl start docker` "
                f"(and `sudo systemctl enable docker` to keep it on), then check with `ssh {user}@{target.host} docker info`")
    if "docker: not found" in low or "docker: command not found" in low or returncode == 127:
        return (f"{where}: there is no `docker` command for '{user}' on the box. Install Docker Engine there "
                f"(https://docs.docker.com/engine/install/) and make sure `docker` is on the PATH of non-interactive SSH sessions")
    if returncode == -1:
        return (f"{where}: no answer from `ssh … docker version` within {PROBE_TIMEOUT_S}s; "
                f"check `ssh {user}@{target.host} docker version` by hand")
    last = _last_ssh_reason(err) or f"exit status {returncode}"
    return f"{where}: `ssh {user}@{target.host} docker version` failed: {last}. Run it by hand to see why"


def _last_ssh_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_probe(cmd: list[str]) -> tuple[int, str]:
    """Run the probe; (exit status, stderr), -1 on timeout. Module-level so tests can stand in for it."""
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return -1, ""
    except FileNotFoundError:
        return 127, "ssh: command not found"
    return p.returncode, p.stderr


def preflight(docker_host: str, ssh_opts: list[str]) -> str | None:
    """The problem with an `ssh://` docker host as one line, or None (also for non-SSH hosts)."""
    try:
        target = parse_ssh_host(docker_host)
    except ValueError as e:
        return str(e)
    if target is None:
        return None
    cmd = probe_command(target, ssh_opts)
    code, stderr = run_probe(cmd)
    if code == 127 and stderr == "ssh: command not found":
        return f"docker:host {target.display}: no `ssh` client on this machine; install OpenSSH's client (Debian: openssh-client)"
    return classify(target, code, stderr, ssh_opts)

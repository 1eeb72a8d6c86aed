"""The Docker backend: a lab on one Docker daemon (local, ssh://, or tcp:// with TLS), through pulumi-docker.

What the program asks of it (components.model.backend.Backend): the target from the docker provider's
config, the checks on the host before anything is declared, the live GPU claims of other stacks'
containers, the plan's resources and the outputs they give, and what `make doctor` reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pulumi.runtime.config import get_config

from components.docker import ssh
from components.docker.host import Host, inspect_containers
from components.docker.host_bind import readable_host, setuid_warning
from components.docker.host_state import read_live_ledger, read_mount_options, read_server_version, read_volumes, volume_owner_problems
from components.docker.lab import Lab, LabArgs
from components.docker.loopback import exposed, loopback_leak_warnings
from components.docker.pids import HostAccess
from components.docker.target import DOCKER_TLS_KEYS, docker_target, ssh_opts_value
from components.model.backend import LabSecrets, LiveClaims, PreflightError, unreadable_target
from components.model.errors import ConfigError
from components.model.lab_config import LabConfig
from components.model.ledger import ledger_problems
from components.model.plan import LabPlan
from components.model.target import Target


class DockerBackend:
    def __init__(self) -> None:
        # the docker provider's host (its config, else DOCKER_HOST as the provider does) and whether it has TLS material
        self.host: str | None = get_config("docker:host") or os.environ.get("DOCKER_HOST") or None
        self.tls = any(get_config(f"docker:{k}") for k in DOCKER_TLS_KEYS) or bool(os.environ.get("DOCKER_CERT_PATH"))
        # `docker:sshOpts` as the stack config has it (a list, passed by the engine as JSON text); None when unset
        self.configured_ssh_opts = ssh_opts_value(get_config("docker:sshOpts"))

    def ssh_opts(self) -> list[str]:
        """`docker:sshOpts` (a list in config, as the provider reads it), else DOCKER_SSH_OPTS."""
        return ssh.ssh_opts_from(self.configured_ssh_opts)

    def target(self) -> Target:
        return docker_target(self.host, tls=self.tls, ssh_opts=self.configured_ssh_opts)

    def _host(self, cfg: LabConfig) -> str:
        return self.host or cfg.target_host

    def live_claims(self, cfg: LabConfig) -> LiveClaims:
        live = read_live_ledger(self._host(cfg), self.ssh_opts(), cfg.project, cfg.stack)
        return LiveClaims(tuple(live.claims), None if live.listing is None else tuple(live.listing), live.problem)

    def preflight(self, cfg: LabConfig, warn: Callable[[str], None]) -> None:
        self.check_ssh_host()
        self.check_live_ledger(cfg, warn)
        self.check_host_volumes(cfg, warn)
        self.check_loopback_leak(cfg, warn)
        self.check_host_bind_nosuid(cfg, warn)

    def check_ssh_host(self) -> None:
        """An `ssh://` Docker host is tried (key login, strict host key, short timeout) before anything is
        declared, so an unreachable box, an unknown host key or missing Docker rights give one line with the fix."""
        if not self.host or not self.host.startswith("ssh://"):
            return
        problem = ssh.preflight(self.host, self.ssh_opts())
        if problem:
            raise PreflightError(problem)

    @staticmethod
    def host_unreadable(cfg: LabConfig, host: str, what: str, problem: str, warn: Callable[[str], None]) -> None:
        """A host tfbox cannot read: a machine stack stops (a check that is skipped protects nobody); a local stack
        (your own Docker, `tfbox:stackKind: local`) goes on with a warning, as before."""
        fix = ("make the docker CLI here reach it: install it (Debian: docker.io or docker-ce-cli), and for a tcp:// host "
               "export DOCKER_CERT_PATH (the directory with ca.pem, cert.pem, key.pem) and DOCKER_TLS_VERIFY=1"
               if not host.startswith("ssh://") else "run `docker ps` on the box as the ssh user by hand to see why")
        unreadable_target(cfg.stack_kind, what, host, problem, "another stack's GPUs or volumes could be handed to this one",
                          fix, warn, unless=", if this is your own Docker and not a shared machine,")

    def check_live_ledger(self, cfg: LabConfig, warn: Callable[[str], None]) -> None:
        """GPUs this stack asks for that another stack's notebook on the same host already has, read from the
        host itself (components.docker.host_state) before anything is declared; every clash at once, naming the
        other stack and seat. A host that cannot be read stops a machine stack, and only warns on a local one."""
        mine = cfg.claims()
        if not any(c.gpus.requested for c in mine):
            return
        live = self.live_claims(cfg)
        if live.problem:
            self.host_unreadable(cfg, self._host(cfg), "GPU ledger", live.problem, warn)
            return
        problems = ledger_problems(mine, live.claims, live.listing)
        if problems:
            raise PreflightError(str(ConfigError(problems)))

    def check_host_volumes(self, cfg: LabConfig, warn: Callable[[str], None]) -> None:
        """A volume this stack would mount that the host has labelled for another stack or project: refused
        before anything is declared (Docker hands an existing volume to whoever names it)."""
        host = self._host(cfg)
        found = read_volumes(host, self.ssh_opts())
        if found.problem:
            self.host_unreadable(cfg, host, "volume owners", found.problem, warn)
            return
        problems = volume_owner_problems(cfg.volumes(), found.labels, cfg.project, cfg.stack, cfg.target_host)
        if problems:
            raise PreflightError(str(ConfigError(problems)))

    def check_loopback_leak(self, cfg: LabConfig, warn: Callable[[str], None]) -> None:
        """TensorBoard on 127.0.0.1 of a Docker older than 28 is reachable from the LAN by crafted packets
        (components.docker.loopback): read the daemon's version and warn with the fix, before anything is declared.
        A warning, not a refusal: Debian 12's Docker 20.10 runs most labs, and TensorBoard only shows logs."""
        if cfg.loopback_publish_filtered or not exposed(cfg.published):
            return
        host = self._host(cfg)
        version = read_server_version(host, self.ssh_opts())
        for warning in loopback_leak_warnings(cfg, version or "", host):
            warn(warning)

    def check_host_bind_nosuid(self, cfg: LabConfig, warn: Callable[[str], None]) -> None:
        """A host directory bound at /tf on a mount that honours setuid bits lets the notebook (root) plant a
        setuid-root program for the host's users (components.docker.host_bind): read its mount options and warn."""
        host = self._host(cfg)
        if not cfg.notebooks_host_path or not readable_host(host):
            return
        options = read_mount_options(host, self.ssh_opts(), cfg.notebooks_host_path)
        warning = setuid_warning(cfg.notebooks_host_path, options or "", host)
        if warning:
            warn(warning)

    def declare(self, plan: LabPlan, secrets: LabSecrets) -> dict[str, Any]:
        """The Lab and its outputs, by name, exactly as a stack has always exported them."""
        host = HostAccess(self.host or plan.target_host, tuple(self.ssh_opts()))  # for `docker update --pids-limit`
        lab = Lab("lab", LabArgs(plan=plan, password=secrets.password, tls_key=secrets.tls_key,
                                 seat_passwords=secrets.seat_passwords, seat_tls_keys=secrets.seat_tls_keys, host=host))
        out: dict[str, Any] = {"notebookUrl": lab.notebook_url}
        if lab.notebook_cert_sha256 is not None:
            out["notebookCertSha256"] = lab.notebook_cert_sha256
        out["tensorboardUrl"] = lab.tensorboard_url
        if lab.tensorboard_proxy_url is not None:  # only when on: a stack that has not opted in sees no new output
            out["tensorboardProxyUrl"] = lab.tensorboard_proxy_url
        out.update(gpus=plan.gpus_text, imageDigest=lab.image.repo_digest, containerNames=lab.container_names)
        if plan.named_seats:
            out.update(seats=plan.seats_output(), gpuLedger=lab.gpu_ledger)
        if lab.gpu_check_output is not None:
            out["gpuCheck"] = lab.gpu_check_output
        return out

    def read_labs(self, host: str, options: list[str]) -> tuple[list[dict[str, Any]], str]:
        return inspect_containers(Host(host, options))


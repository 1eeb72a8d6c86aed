"""tfbox: a TensorFlow notebook lab on a Docker host, one Pulumi stack per machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pulumi
from pulumi.runtime.config import get_config, get_config_env, is_config_secret

from components.config import load_other_stacks
from components.docker import ssh
from components.docker.host_bind import readable_host, setuid_warning
from components.docker.host_state import read_live_ledger, read_mount_options, read_server_version, read_volumes, volume_owner_problems
from components.docker.lab import Lab, LabArgs
from components.docker.loopback import exposed, loopback_leak_warnings
from components.docker.pids import HostAccess
from components.docker.target import DOCKER_TLS_KEYS, docker_target
from components.model.cross_stack import cross_stack_problems
from components.model.errors import ConfigError
from components.model.keys import KEYS, KEYS_BY_NAME, NAMESPACE, PasswordState
from components.model.lab_config import LabConfig
from components.model.ledger import ledger_problems
from components.model.parse import parse_config
from components.model.seats import SeatPasswordState, parse_passwords
from components.model.stack_file import read_stack_file


def read_config() -> tuple[dict[str, object], PasswordState]:
    """Raw `tfbox:` values as the engine passes them (strings), and how the password was given."""
    raw: dict[str, object] = {}
    for key in KEYS:
        if key.secret:
            continue
        value = get_config(key.full)
        if value is not None:
            raw[key.name] = value
    # Unknown keys are typos worth reporting: find them in the stack's config.
    for full in {*pulumi.runtime.config.CONFIG.get(), *get_config_env()}:
        ns, _, name = full.partition(":")
        if ns == NAMESPACE and name not in raw and not (name in KEYS_BY_NAME and KEYS_BY_NAME[name].secret):
            raw[name] = get_config(full)
    return raw, secret_state("password")


def secret_state(name: str) -> PasswordState:
    """How a secret key was given: as a secret, in plaintext, or not at all."""
    full = f"{NAMESPACE}:{name}"
    if not get_config(full):
        return "missing"
    return "secret" if is_config_secret(full) else "plaintext"


def seat_passwords(stack: str, name: str = "passwords") -> tuple[dict[str, str] | None, dict[str, SeatPasswordState]]:
    """`tfbox:passwords` (seat -> password), or another per-seat secret map (`tfbox:tlsKeys`), and how each entry was given.

    The engine passes the map as JSON text with its secrets decrypted, and says only whether the key
    holds a secret at all; the stack file, where it is here, says it per entry (`secure:` or not).
    """
    full = f"{NAMESPACE}:{name}"
    values = parse_passwords(get_config(full))
    if not values:
        return values, {}
    state: SeatPasswordState = "secret" if is_config_secret(full) else "plaintext"
    states: dict[str, SeatPasswordState] = {seat: state for seat in values}
    stack_file = Path.cwd() / f"Pulumi.{stack}.yaml"
    if stack_file.is_file():
        sf = read_stack_file(stack_file)
        for seat, given in (sf.seat_tls_key_states if name == "tlsKeys" else sf.seat_password_states).items():
            if seat in states and given == "plaintext":
                states[seat] = "plaintext"
    return values, states


def docker_provider() -> tuple[str | None, bool]:
    """The docker provider's host (its config, else DOCKER_HOST as the provider does) and whether it has TLS material."""
    host = get_config("docker:host") or os.environ.get("DOCKER_HOST") or None
    tls = any(get_config(f"docker:{k}") for k in DOCKER_TLS_KEYS) or bool(os.environ.get("DOCKER_CERT_PATH"))
    return host, tls


def configured_ssh_opts() -> object:
    """`docker:sshOpts` as the stack config has it (a list, passed by the engine as JSON text); None when unset."""
    raw_opts = get_config("docker:sshOpts")
    try:
        return json.loads(raw_opts) if raw_opts else None
    except ValueError:
        return raw_opts


def docker_ssh_opts() -> list[str]:
    """`docker:sshOpts` (a list in config, as the provider reads it), else DOCKER_SSH_OPTS."""
    return ssh.ssh_opts_from(configured_ssh_opts())


def check_ssh_host(host: str | None) -> None:
    """An `ssh://` Docker host is tried (key login, strict host key, short timeout) before anything is
    declared, so an unreachable box, an unknown host key or missing Docker rights give one line with the fix."""
    if not host or not host.startswith("ssh://"):
        return
    problem = ssh.preflight(host, docker_ssh_opts())
    if problem:
        raise pulumi.RunError(problem)


def host_unreadable(cfg: LabConfig, host: str, what: str, problem: str) -> None:
    """A host tfbox cannot read: a machine stack stops (a check that is skipped protects nobody); a local stack
    (your own Docker, `tfbox:stackKind: local`) goes on with a warning, as before."""
    fix = ("make the docker CLI here reach it: install it (Debian: docker.io or docker-ce-cli), and for a tcp:// host "
           "export DOCKER_CERT_PATH (the directory with ca.pem, cert.pem, key.pem) and DOCKER_TLS_VERIFY=1"
           if not host.startswith("ssh://") else "run `docker ps` on the box as the ssh user by hand to see why")
    if cfg.stack_kind == "local":
        pulumi.log.warn(f"{what}: could not read {host} ({problem}); the check was skipped (a local stack). To run it: {fix}")
        return
    raise pulumi.RunError(f"{what}: could not read {host} ({problem}), and a machine stack does not go on without it "
                          f"(another stack's GPUs or volumes could be handed to this one). Fix: {fix}; or, if this is your "
                          f"own Docker and not a shared machine, `pulumi config set {NAMESPACE}:stackKind local`")


def check_live_ledger(cfg: LabConfig, docker_host: str | None) -> None:
    """GPUs this stack asks for that another stack's notebook on the same host already has, read from the
    host itself (components.docker.host_state) before anything is declared; every clash at once, naming the other
    stack and seat. A host that cannot be read stops a machine stack, and only warns on a local one."""
    mine = cfg.claims()
    if not any(c.gpus.requested for c in mine):
        return
    host = docker_host or cfg.target_host
    live = read_live_ledger(host, docker_ssh_opts(), cfg.project, cfg.stack)
    if live.problem:
        host_unreadable(cfg, host, "GPU ledger", live.problem)
        return
    problems = ledger_problems(mine, live.claims, live.listing)
    if problems:
        raise pulumi.RunError(str(ConfigError(problems)))


def check_host_volumes(cfg: LabConfig, docker_host: str | None) -> None:
    """A volume this stack would mount that the host has labelled for another stack or project: refused
    before anything is declared (Docker hands an existing volume to whoever names it)."""
    host = docker_host or cfg.target_host
    found = read_volumes(host, docker_ssh_opts())
    if found.problem:
        host_unreadable(cfg, host, "volume owners", found.problem)
        return
    problems = volume_owner_problems(cfg.volumes(), found.labels, cfg.project, cfg.stack, cfg.target_host)
    if problems:
        raise pulumi.RunError(str(ConfigError(problems)))


def check_loopback_leak(cfg: LabConfig, docker_host: str | None) -> None:
    """TensorBoard on 127.0.0.1 of a Docker older than 28 is reachable from the LAN by crafted packets
    (components.docker.loopback): read the daemon's version and warn with the fix, before anything is declared.
    A warning, not a refusal: Debian 12's Docker 20.10 runs most labs, and TensorBoard only shows logs."""
    if cfg.loopback_publish_filtered or not exposed(cfg.published):
        return
    host = docker_host or cfg.target_host
    version = read_server_version(host, docker_ssh_opts())
    for warning in loopback_leak_warnings(cfg, version or "", host):
        pulumi.log.warn(warning)


def check_host_bind_nosuid(cfg: LabConfig, docker_host: str | None) -> None:
    """A host directory bound at /tf on a mount that honours setuid bits lets the notebook (root) plant a
    setuid-root program for the host's users (components.docker.host_bind): read its mount options and warn."""
    host = docker_host or cfg.target_host
    if not cfg.notebooks_host_path or not readable_host(host):
        return
    options = read_mount_options(host, docker_ssh_opts(), cfg.notebooks_host_path)
    warning = setuid_warning(cfg.notebooks_host_path, options or "", host)
    if warning:
        pulumi.log.warn(warning)


def main() -> None:
    raw, password_state = read_config()
    stack, project = pulumi.get_stack(), pulumi.get_project()
    passwords, password_states = seat_passwords(stack)
    tls_keys, tls_key_states = seat_passwords(stack, "tlsKeys")
    try:
        problems: list[str] = []
        if passwords is None:
            problems.append(f"{NAMESPACE}:passwords: is not a map of seat name to password. Fix: set each with "
                            f"`pulumi config set --secret --path '{NAMESPACE}:passwords.<seat>' --stack {stack}`.")
        if tls_keys is None:
            problems.append(f"{NAMESPACE}:tlsKeys: is not a map of seat name to PEM private key. Fix: "
                            f"`pulumi config rm {NAMESPACE}:tlsKeys --stack {stack}`, then `make tls STACK={stack}`.")
        if problems:
            raise ConfigError(problems)
        docker_host, docker_tls = docker_provider()
        # the secrets' values are checked here (length, key matches certificate), never printed
        cfg = parse_config(raw, stack=stack, project=project, password_state=password_state,
                           target=docker_target(docker_host, tls=docker_tls, ssh_opts=configured_ssh_opts()), password=get_config(f"{NAMESPACE}:password"),
                           tls_key_state=secret_state("tlsKey"), tls_key=get_config(f"{NAMESPACE}:tlsKey"),
                           seat_password_states=password_states, seat_passwords=passwords,
                           seat_tls_key_states=tls_key_states, seat_tls_keys=tls_keys)
        clashes = cross_stack_problems(cfg, load_other_stacks(Path.cwd(), project, stack))
        if clashes:
            raise ConfigError(clashes)
    except ConfigError as e:
        # RunError prints the message alone, without a Python traceback, and declares nothing.
        raise pulumi.RunError(str(e)) from None
    for warning in cfg.warnings:
        pulumi.log.warn(warning)
    check_ssh_host(docker_host)
    check_live_ledger(cfg, docker_host)
    check_host_volumes(cfg, docker_host)
    check_loopback_leak(cfg, docker_host)
    check_host_bind_nosuid(cfg, docker_host)

    shared_key = cfg.tls and (not cfg.seats or any(s.tls and not s.tls_own for s in cfg.seats))
    tls_key = pulumi.Config(NAMESPACE).require_secret("tlsKey") if shared_key else None
    if cfg.seats:
        main_seats(cfg, tls_key, host_access(cfg, docker_host))
        return
    lab = Lab("lab", LabArgs(config=cfg, password=pulumi.Config(NAMESPACE).require_secret("password"), tls_key=tls_key,
                             host=host_access(cfg, docker_host)))
    export_lab(lab, cfg.gpus.describe())
    pulumi.export("password", pulumi.Config(NAMESPACE).require_secret("password"))
    if lab.gpu_check_output is not None:
        pulumi.export("gpuCheck", lab.gpu_check_output)


def export_lab(lab: Lab, gpus: str) -> None:
    """The outputs every lab has, with or without seats (a seats stack's read `seat=… seat=…`)."""
    pulumi.export("notebookUrl", lab.notebook_url)
    if lab.notebook_cert_sha256 is not None:
        pulumi.export("notebookCertSha256", lab.notebook_cert_sha256)
    pulumi.export("tensorboardUrl", lab.tensorboard_url)
    if lab.tensorboard_proxy_url is not None:  # only when on: a stack that has not opted in sees no new output
        pulumi.export("tensorboardProxyUrl", lab.tensorboard_proxy_url)
    pulumi.export("gpus", gpus)
    pulumi.export("imageDigest", lab.image.repo_digest)
    pulumi.export("containerNames", lab.container_names)


def host_access(cfg: LabConfig, docker_host: str | None) -> HostAccess:
    """The docker CLI's way to the stack's daemon (as the ledger reads it), for `docker update --pids-limit`."""
    return HostAccess(docker_host or cfg.target_host, tuple(docker_ssh_opts()))


def main_seats(cfg: LabConfig, tls_key: pulumi.Output[str] | None, host: HostAccess) -> None:
    """A shared box: per-seat URLs, GPUs and containers under `seats`, the GPU ledger, and the
    single-seat outputs kept meaningful (`seat=url …`) for scripts and `make fleet`."""
    passwords = pulumi.Config(NAMESPACE).require_secret_object("passwords")
    own_keys = any(s.tls_own for s in cfg.seats)
    lab = Lab("lab", LabArgs(config=cfg, password="", tls_key=tls_key, seat_passwords=passwords, host=host,
                             seat_tls_keys=pulumi.Config(NAMESPACE).require_secret_object("tlsKeys") if own_keys else None))
    export_lab(lab, " ".join(f"{s.name}={s.gpus.describe()}" for s in cfg.seats))
    pulumi.export("seats", {
        s.name: {"notebookUrl": lab.seats[s.name].notebook_url_text, "tensorboardUrl": lab.seats[s.name].tensorboard_url_text,
                 **({"tensorboardProxyUrl": lab.seats[s.name].tensorboard_proxy_url_text} if cfg.tensorboard_proxy else {}),
                 "gpus": s.gpus.describe(), "shareGpus": s.share_gpus, "containerNames": lab.seats[s.name].container_names,
                 **({"notebookCertSha256": lab.seats[s.name].notebook_cert_sha256_text} if s.tls else {})}
        for s in cfg.seats
    })
    pulumi.export("gpuLedger", lab.gpu_ledger)
    if lab.gpu_check_output is not None:
        pulumi.export("gpuCheck", lab.gpu_check_output)


main()

#!/usr/bin/env python3
"""Benchmark: tfbox against what a user would run instead, for the same two containers.

On one private daemon and image, each side is timed from nothing, as a no-op, and for a
TensorBoard-only change (its host port), and "ready" is the same for all: the command has returned
and Jupyter's `/api` and TensorBoard's `/data/logdir` answer over HTTP (polled every 0.1 s while the
command runs, as in bench/up_vs_recipe.py). The sides:

- recipe: `docker run -d -p … <image>` + `docker exec -d … tensorboard`, as a user's script; its no-op
  is `docker inspect` of the running container, its TensorBoard change a restart (the published
  ports of a running container cannot change);
- tfbox: `pulumi up --yes --skip-preview` of a one-seat stack;
- compose: `docker compose up -d --wait` of a compose file with the same containers, network,
  volumes, health checks and Jupyter config; `--wait` waits for the health checks, whose first probe
  runs one interval (30 s, tfbox's) after the start, so `compose -d` (without `--wait`) is timed too;
- tofu: `tofu apply -auto-approve` of the same with the kreuzwerker docker provider at the commit
  pulumi-docker 5.1.0 bridges (its refresh reads the network back: the provider's 2 s wait);
- ansible: `ansible-playbook` of the same with `community.docker`.

The peers' definitions are generated from what tfbox made (`docker inspect` of its converged stack:
command, environment, ports, mounts, health checks, restart policy, hardening, labels; the uploaded
Jupyter config and start-up file), so "the same containers" holds by construction. Each tool is
checked to replace only TensorBoard on the change, and to keep both containers on the no-op.

Prints a table (median, min, max; ratios to the recipe and to tfbox) and writes
bench/results/peers.json and bench/results/peers.png (bench/plot_peers.py, with the matplotlib of
bench/peers-toolchain.sh: neither the product nor the dev venv needs it).
Tools: bench/peers-toolchain.sh (built and cached on first use).

    bench/peers.py [-n RUNS] [--only recipe,tfbox,...] [--out DIR] [--plot 0] [--docker-host …] [--image …]
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from bench.common import ROOT, Setup, arguments_with, log, machine, median, setup, sh, wait_answering
from tests.e2e.harness import Docker, Project, Stack, free_port

SIDES = ("recipe", "tfbox", "compose-wait", "compose", "tofu", "ansible")
SCENARIOS = ("from nothing", "no-op", "TensorBoard change")
PREFIX = "peer"  # every peer's containers, network and volumes are named peer-<role>
NOTEBOOK, TENSORBOARD = f"{PREFIX}-notebook", f"{PREFIX}-tensorboard"
NETWORK, VOLUMES = f"{PREFIX}-net", (f"{PREFIX}-notebooks", f"{PREFIX}-logs")


# --- what tfbox made, as a spec the peers share ---------------------------------------------------------

@dataclass
class ContainerSpec:
    """One container as `docker inspect` shows it, less what the image brings."""

    role: str
    command: list[str]
    env: list[str]
    ports: list[tuple[str, int, int]]  # (host ip, host port, container port)
    mounts: list[dict[str, Any]]  # {"type", "source" (a role's volume name), "target", "read_only"}
    healthcheck: dict[str, Any]
    restart: str
    stop_timeout: int
    labels: dict[str, str]
    user: str = ""
    read_only: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    init: bool | None = None
    log_driver: str = ""
    log_opts: dict[str, str] = field(default_factory=dict)
    shm_size: int = 0
    memory: int = 0
    memory_swap: int = 0
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path in the container -> content (uploads)


@dataclass
class Spec:
    image: str
    notebook: ContainerSpec
    tensorboard: ContainerSpec
    volume_labels: dict[str, dict[str, str]]  # peer volume name -> labels
    network_labels: dict[str, str]
    nb_port: int
    tb_port: int

    @property
    def containers(self) -> list[ContainerSpec]:
        return [self.notebook, self.tensorboard]

    def name(self, role: str) -> str:
        return f"{PREFIX}-{role}"


def _ns(nanoseconds: int) -> str:
    """A duration as Go prints it, which is how the docker provider reads health-check durations back:
    "120s" would show as a change to "2m0s" on every OpenTofu plan (as in tfbox, components/model/commands.py)."""
    total = nanoseconds / 1e9
    hours, rest = divmod(int(total), 3600)
    minutes, whole = divmod(rest, 60)
    seconds = f"{whole + (total - int(total)):g}s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    return f"{minutes}m{seconds}" if minutes else seconds


def container_spec(docker: Docker, name: str, role: str, image_info: dict[str, Any], volumes: dict[str, str],
                   files: list[str]) -> ContainerSpec:
    """`volumes` maps tfbox's volume names to the peers' ones."""
    info = docker.inspect(name)
    assert info is not None, f"tfbox made no container {name}"
    cfg, host = info["Config"], info["HostConfig"]
    image_cfg = image_info["Config"]
    ports = [(b.get("HostIp") or "0.0.0.0", int(b["HostPort"]), int(port.split("/")[0]))
             for port, binds in (host.get("PortBindings") or {}).items() for b in binds or []]
    mounts = [{"type": m["Type"], "source": volumes.get(m.get("Source", ""), m.get("Source", "")), "target": m["Target"],
               "read_only": bool(m.get("ReadOnly"))} for m in host.get("Mounts") or []]
    hc = cfg.get("Healthcheck") or {}
    labels = {k: v for k, v in (cfg.get("Labels") or {}).items() if (image_cfg.get("Labels") or {}).get(k) != v}
    return ContainerSpec(
        role=role, command=list(cfg.get("Cmd") or []),
        env=[e for e in cfg.get("Env") or [] if e not in (image_cfg.get("Env") or [])],
        ports=ports, mounts=mounts,
        healthcheck={"test": hc.get("Test", []), "interval": _ns(hc.get("Interval", 0)), "timeout": _ns(hc.get("Timeout", 0)),
                     "start_period": _ns(hc.get("StartPeriod", 0)), "retries": hc.get("Retries", 0)},
        restart=host["RestartPolicy"]["Name"], stop_timeout=int(cfg.get("StopTimeout") or 10),
        labels={k.replace("tfbox.", "peer."): v for k, v in labels.items()},
        user=cfg.get("User") or "", read_only=bool(host.get("ReadonlyRootfs")), tmpfs=dict(host.get("Tmpfs") or {}),
        cap_drop=list(host.get("CapDrop") or []), security_opt=list(host.get("SecurityOpt") or []),
        init=host.get("Init"), log_driver=host.get("LogConfig", {}).get("Type", "") if host.get("LogConfig", {}).get("Config") else "",
        log_opts=dict(host.get("LogConfig", {}).get("Config") or {}), shm_size=int(host.get("ShmSize") or 0),
        memory=int(host.get("Memory") or 0), memory_swap=int(host.get("MemorySwap") or 0),
        ulimits=list(host.get("Ulimits") or []),
        files={path: docker("exec", name, "cat", path).stdout for path in files},
    )


def spec_from_tfbox(s: Setup, stack: Stack, nb_port: int, tb_port: int) -> Spec:
    """Read the converged tfbox stack back from the daemon."""
    outputs = stack.outputs()
    names = outputs["containerNames"]
    nb = next(n for n in names if n.endswith("-notebook"))
    tb = next(n for n in names if n.endswith("-tensorboard"))
    image_info = json.loads(s.docker("image", "inspect", s.image).stdout)[0]
    nb_info = s.docker.inspect(nb)
    assert nb_info is not None
    vols = {m["Source"]: "" for m in nb_info["HostConfig"]["Mounts"] if m["Type"] == "volume"}
    mapping = {}
    for src in vols:
        role = "notebooks" if "notebooks" in src else "logs"
        mapping[src] = f"{PREFIX}-{role}"
    volume_labels = {}
    for src, peer in mapping.items():
        labels = json.loads(s.docker("volume", "inspect", src).stdout)[0].get("Labels") or {}
        volume_labels[peer] = {k.replace("tfbox.", "peer."): v for k, v in labels.items()}
    net = nb_info["HostConfig"]["NetworkMode"]
    net_labels = json.loads(s.docker("network", "inspect", net).stdout)[0].get("Labels") or {}
    from components.model import commands
    files = [commands.JUPYTER_CONFIG_PATH, commands.CAPTURE_STARTUP_PATH]
    spec = Spec(
        image=s.image,
        notebook=container_spec(s.docker, nb, "notebook", image_info, mapping, files),
        tensorboard=container_spec(s.docker, tb, "tensorboard", image_info, mapping, []),
        volume_labels=volume_labels, network_labels={k.replace("tfbox.", "peer."): v for k, v in net_labels.items()},
        nb_port=nb_port, tb_port=tb_port,
    )
    return spec


# --- the peers' definitions -----------------------------------------------------------------------------

def with_tb_port(spec: Spec, tb_port: int) -> Spec:
    tb = ContainerSpec(**{**spec.tensorboard.__dict__, "ports": [(ip, tb_port, c) for ip, _, c in spec.tensorboard.ports]})
    return Spec(**{**spec.__dict__, "tensorboard": tb, "tb_port": tb_port})


def _literal(args: list[str]) -> list[str]:
    """Compose interpolates `$name` in the file: `$$` is a literal `$` (the probes' bash uses `$code`)."""
    return [a.replace("$", "$$") for a in args]


def compose_file(spec: Spec, files_dir: Path) -> dict[str, Any]:
    """A compose file: uploads become read-only binds of files written next to it (a compose user's way)."""
    services: dict[str, Any] = {}
    for c in spec.containers:
        svc: dict[str, Any] = {
            "image": spec.image, "container_name": spec.name(c.role), "command": _literal(c.command),
            "environment": _literal(c.env), "ports": [f"{ip}:{hp}:{cp}" for ip, hp, cp in c.ports],
            "volumes": [{"type": "volume", "source": m["source"].removeprefix(f"{PREFIX}-"), "target": m["target"],
                         "read_only": m["read_only"]} for m in c.mounts] + [
                {"type": "bind", "source": str(files_dir / Path(p).name), "target": p, "read_only": True} for p in c.files],
            "healthcheck": {"test": _literal(c.healthcheck["test"]), "interval": c.healthcheck["interval"],
                            "timeout": c.healthcheck["timeout"], "start_period": c.healthcheck["start_period"],
                            "retries": c.healthcheck["retries"]},
            "restart": c.restart, "stop_grace_period": f"{c.stop_timeout}s", "labels": c.labels,
            "networks": ["net"],
        }
        if c.user:
            svc["user"] = c.user
        if c.read_only:
            svc["read_only"] = True
        if c.tmpfs:
            svc["tmpfs"] = [f"{k}:{v}" if v else k for k, v in c.tmpfs.items()]
        if c.cap_drop:
            svc["cap_drop"] = c.cap_drop
        if c.security_opt:
            svc["security_opt"] = c.security_opt
        if c.init is not None:
            svc["init"] = c.init
        if c.log_driver:
            svc["logging"] = {"driver": c.log_driver, "options": c.log_opts}
        if c.shm_size:
            svc["shm_size"] = c.shm_size
        if c.memory:
            svc["mem_limit"] = c.memory
            svc["memswap_limit"] = c.memory_swap
        if c.ulimits:
            svc["ulimits"] = {u["Name"]: {"soft": u["Soft"], "hard": u["Hard"]} for u in c.ulimits}
        services[c.role] = svc
    return {
        "services": services,
        "networks": {"net": {"name": NETWORK, "driver": "bridge", "labels": spec.network_labels}},
        "volumes": {name.removeprefix(f"{PREFIX}-"): {"name": name, "labels": labels} for name, labels in spec.volume_labels.items()},
    }


def tofu_config(spec: Spec, docker_host: str) -> dict[str, Any]:
    """The same as OpenTofu JSON configuration (main.tf.json), uploads as the provider's `upload` blocks."""
    containers: dict[str, Any] = {}
    for c in spec.containers:
        res: dict[str, Any] = {
            "name": spec.name(c.role), "image": "${docker_image.image.image_id}", "command": c.command,
            "env": c.env, "network_mode": "${docker_network.net.name}",
            "ports": [{"internal": cp, "external": hp, "ip": ip, "protocol": "tcp"} for ip, hp, cp in c.ports],
            "mounts": [{"type": m["type"], "source": f"${{docker_volume.{m['source'].removeprefix(PREFIX + '-')}.name}}",
                        "target": m["target"], "read_only": m["read_only"]} for m in c.mounts],
            "upload": [{"file": p, "content": content} for p, content in c.files.items()],
            "healthcheck": [{"test": c.healthcheck["test"], "interval": c.healthcheck["interval"], "timeout": c.healthcheck["timeout"],
                             "start_period": c.healthcheck["start_period"], "retries": c.healthcheck["retries"]}],
            "restart": c.restart, "must_run": True, "destroy_grace_seconds": c.stop_timeout,
            "labels": [{"label": k, "value": v} for k, v in c.labels.items()],
            "security_opts": c.security_opt,
        }
        if c.user:
            res["user"] = c.user
        if c.read_only:
            res["read_only"] = True
        if c.tmpfs:
            res["tmpfs"] = c.tmpfs
        if c.cap_drop:
            res["capabilities"] = [{"drop": c.cap_drop}]
        if c.init is not None:
            res["init"] = c.init
        if c.log_driver:
            res["log_driver"] = c.log_driver
            res["log_opts"] = c.log_opts
        if c.shm_size:
            res["shm_size"] = c.shm_size // (1024 * 1024)
        if c.memory:
            res["memory"] = c.memory // (1024 * 1024)
            res["memory_swap"] = c.memory_swap if c.memory_swap < 0 else c.memory_swap // (1024 * 1024)
        if c.ulimits:
            res["ulimit"] = [{"name": u["Name"], "soft": u["Soft"], "hard": u["Hard"]} for u in c.ulimits]
        containers[c.role] = res
    return {
        "terraform": {"required_providers": {"docker": {"source": "kreuzwerker/docker"}}},
        "provider": {"docker": {"host": docker_host}},
        "resource": {
            "docker_image": {"image": {"name": spec.image, "keep_locally": True}},
            "docker_network": {"net": {"name": NETWORK, "driver": "bridge",
                                       "labels": [{"label": k, "value": v} for k, v in spec.network_labels.items()]}},
            "docker_volume": {name.removeprefix(f"{PREFIX}-"): {"name": name, "labels": [{"label": k, "value": v} for k, v in labels.items()]}
                              for name, labels in spec.volume_labels.items()},
            "docker_container": containers,
        },
    }


def ansible_playbook(spec: Spec, docker_host: str, files_dir: Path) -> list[dict[str, Any]]:
    """The same as a playbook of community.docker modules; uploads as read-only binds, like compose."""
    tasks: list[dict[str, Any]] = [
        {"name": "network", "community.docker.docker_network": {"name": NETWORK, "driver": "bridge", "labels": spec.network_labels}},
    ]
    for name, labels in spec.volume_labels.items():
        tasks.append({"name": f"volume {name}", "community.docker.docker_volume": {"name": name, "labels": labels}})
    tasks.append({"name": "image", "community.docker.docker_image": {"name": spec.image, "source": "pull"}})
    for c in spec.containers:
        mod: dict[str, Any] = {
            "name": spec.name(c.role), "image": spec.image, "command": c.command, "command_handling": "correct",
            "env": dict(e.split("=", 1) for e in c.env),
            "published_ports": [f"{ip}:{hp}:{cp}" for ip, hp, cp in c.ports],
            "mounts": [{"type": m["type"], "source": m["source"], "target": m["target"], "read_only": m["read_only"]} for m in c.mounts]
            + [{"type": "bind", "source": str(files_dir / Path(p).name), "target": p, "read_only": True} for p in c.files],
            "healthcheck": {"test": c.healthcheck["test"], "interval": c.healthcheck["interval"], "timeout": c.healthcheck["timeout"],
                            "start_period": c.healthcheck["start_period"], "retries": c.healthcheck["retries"]},
            "restart_policy": c.restart, "stop_timeout": c.stop_timeout, "labels": c.labels,
            "network_mode": NETWORK, "networks": [{"name": NETWORK}], "networks_cli_compatible": True,
            "state": "started",
        }
        if c.user:
            mod["user"] = c.user
        if c.read_only:
            mod["read_only"] = True
        if c.tmpfs:
            mod["tmpfs"] = [f"{k}:{v}" if v else k for k, v in c.tmpfs.items()]
        if c.cap_drop:
            mod["cap_drop"] = c.cap_drop
        if c.security_opt:
            mod["security_opts"] = c.security_opt
        if c.init is not None:
            mod["init"] = c.init
        if c.log_driver:
            mod["log_driver"] = c.log_driver
            mod["log_options"] = c.log_opts
        if c.shm_size:
            mod["shm_size"] = str(c.shm_size)
        if c.memory:
            mod["memory"] = str(c.memory)
            mod["memory_swap"] = str(c.memory_swap)
        if c.ulimits:
            mod["ulimits"] = [f"{u['Name']}:{u['Soft']}:{u['Hard']}" for u in c.ulimits]
        tasks.append({"name": f"container {c.role}", "community.docker.docker_container": mod})
    return [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "module_defaults": {"group/community.docker.docker": {"docker_host": docker_host}}, "tasks": tasks}]


# --- the sides -------------------------------------------------------------------------------------------

class Side:
    """One tool: `apply(spec)` brings the host to `spec`; `clear()` removes everything it made (not timed)."""

    name = ""

    def __init__(self, s: Setup, work: Path) -> None:
        self.s = s
        self.work = work
        self.reported: str = ""  # what the tool itself said it changed on its last run, where it says so
        work.mkdir(parents=True, exist_ok=True)

    def prepare(self, spec: Spec) -> None:
        """Untimed one-off set-up (tofu init)."""

    def apply(self, spec: Spec) -> None:
        raise NotImplementedError

    def containers(self) -> tuple[str, ...]:
        return NOTEBOOK, TENSORBOARD

    def clear(self) -> None:
        d = self.s.docker
        d("rm", "-f", *self.containers(), check=False)
        d("network", "rm", NETWORK, check=False)
        d("volume", "rm", *VOLUMES, check=False)

    def run(self, *cmd: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        p = subprocess.run(list(cmd), cwd=cwd or self.work, env={**os.environ, "DOCKER_HOST": self.s.docker.host, **(env or {})},
                           capture_output=True, text=True, timeout=900, check=False)
        if p.returncode != 0:
            raise SystemExit(f"{self.name}: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p.stdout


def write_files(spec: Spec, files_dir: Path) -> None:
    files_dir.mkdir(parents=True, exist_ok=True)
    for c in spec.containers:
        for path, content in c.files.items():
            (files_dir / Path(path).name).write_text(content)


class Recipe(Side):
    name = "recipe"

    def containers(self) -> tuple[str, ...]:
        return (NOTEBOOK,)

    def apply(self, spec: Spec) -> None:
        d = self.s.docker
        info = d.inspect(NOTEBOOK)
        if info is not None and info["State"]["Running"]:
            ports = info["HostConfig"]["PortBindings"] or {}
            if any(int(b["HostPort"]) == spec.tb_port for b in ports.get("6006/tcp") or []):
                return  # running as wanted: nothing to do
            d("rm", "-f", NOTEBOOK)
        d("run", "-d", "--name", NOTEBOOK, "-e", f"PASSWORD={secrets.token_urlsafe(12)}",
          "-p", f"127.0.0.1:{spec.nb_port}:8888", "-p", f"127.0.0.1:{spec.tb_port}:6006", spec.image)
        d("exec", "-d", NOTEBOOK, "tensorboard", "--logdir", "/tf/logs", "--bind_all")


class Tfbox(Side):
    name = "tfbox"

    def __init__(self, s: Setup, work: Path) -> None:
        super().__init__(s, work)
        self.project = Project(work, s.toolchain_bin)
        self.stack: Stack | None = None
        self.tb_port = 0

    def make_stack(self, nb_port: int, tb_port: int) -> Stack:
        self.stack = self.project.stack(PREFIX, {
            "docker:host": self.s.docker.host, "tfbox:image": self.s.image,
            "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port,
        }, "bench-" + secrets.token_urlsafe(12))
        self.tb_port = tb_port
        return self.stack

    def containers(self) -> tuple[str, ...]:
        return f"tfbox-{PREFIX}-notebook", f"tfbox-{PREFIX}-tensorboard"

    def apply(self, spec: Spec) -> None:
        assert self.stack is not None
        if spec.tb_port != self.tb_port:
            self.stack.set("tensorboardPort", str(spec.tb_port))
            self.tb_port = spec.tb_port
        self.stack.up()

    def clear(self) -> None:
        assert self.stack is not None
        self.stack.destroy()
        self.s.docker("volume", "rm", f"tfbox-{PREFIX}-notebooks", f"tfbox-{PREFIX}-logs", check=False)


class Compose(Side):
    name = "compose"
    wait = False

    def __init__(self, s: Setup, work: Path, compose_bin: str) -> None:
        super().__init__(s, work)
        self.bin = compose_bin

    def apply(self, spec: Spec) -> None:
        write_files(spec, self.work / "files")
        (self.work / "compose.yaml").write_text(json.dumps(compose_file(spec, self.work / "files"), indent=1))
        self.run(self.bin, "-p", PREFIX, "-f", "compose.yaml", "up", "-d", *(["--wait"] if self.wait else []))

    def clear(self) -> None:
        self.run(self.bin, "-p", PREFIX, "-f", "compose.yaml", "down", "-v")
        super().clear()


class ComposeWait(Compose):
    name = "compose-wait"
    wait = True


class Tofu(Side):
    name = "tofu"

    def __init__(self, s: Setup, work: Path, peers: Path) -> None:
        super().__init__(s, work)
        self.tofu = str(peers / "bin" / "tofu")
        self.env = {"TF_CLI_CONFIG_FILE": str(peers / "tofurc"), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
                    "TF_PLUGIN_CACHE_DIR": ""}

    def write(self, spec: Spec) -> None:
        (self.work / "main.tf.json").write_text(json.dumps(tofu_config(spec, self.s.docker.host), indent=1))

    def prepare(self, spec: Spec) -> None:
        self.write(spec)
        self.run(self.tofu, "init", "-input=false", "-no-color", env=self.env)

    def apply(self, spec: Spec) -> None:
        self.write(spec)
        out = self.run(self.tofu, "apply", "-auto-approve", "-input=false", "-no-color", env=self.env)
        m = re.search(r"Apply complete! Resources: (\d+) added, (\d+) changed, (\d+) destroyed", out)
        self.reported = "no changes" if "No changes." in out else (f"{m.group(1)} added, {m.group(2)} changed, "
                                                                    f"{m.group(3)} destroyed" if m else "?")

    def clear(self) -> None:
        self.run(self.tofu, "destroy", "-auto-approve", "-input=false", "-no-color", env=self.env)
        super().clear()


class Ansible(Side):
    name = "ansible"

    def __init__(self, s: Setup, work: Path, peers: Path) -> None:
        super().__init__(s, work)
        self.venv = peers / "ansible"
        self.env = {"ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
                    "ANSIBLE_PYTHON_INTERPRETER": str(self.venv / "bin" / "python"), "ANSIBLE_NOCOLOR": "1",
                    "PATH": f"{self.venv / 'bin'}:{os.environ['PATH']}"}

    def apply(self, spec: Spec) -> None:
        write_files(spec, self.work / "files")
        (self.work / "playbook.yml").write_text(json.dumps(ansible_playbook(spec, self.s.docker.host, self.work / "files"), indent=1))
        out = self.run(str(self.venv / "bin" / "ansible-playbook"), "-i", "localhost,", "playbook.yml", env=self.env)
        m = re.search(r"changed=(\d+)", out)
        self.reported = f"changed={m.group(1)}" if m else "?"


# --- timing ----------------------------------------------------------------------------------------------

def timed(side: Side, spec: Spec) -> tuple[float, float]:
    """Seconds until `apply` returned, and until it had returned and both answered."""
    import threading
    answered: list[float] = []
    t0 = time.monotonic()

    def poll() -> None:
        answered.append(max(wait_answering(f"http://127.0.0.1:{spec.nb_port}/api"),
                            wait_answering(f"http://127.0.0.1:{spec.tb_port}/data/logdir")))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    side.apply(spec)
    returned = time.monotonic()
    poller.join(timeout=600)
    if not answered:
        raise SystemExit(f"{side.name}: Jupyter and TensorBoard did not answer")
    return returned - t0, max(returned, answered[0]) - t0


def ids(docker: Docker, names: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for n in names:
        info = docker.inspect(n)
        out[n] = info["Id"] if info else ""
    return out


@dataclass
class Series:
    returned: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)  # what the tool said it changed (tofu, ansible)


def one_round(side: Side, spec: Spec, changed: Spec, results: dict[str, dict[str, Series]]) -> None:
    """From nothing, no-op, TensorBoard change, then clear; each checked for what it replaced."""
    d = side.s.docker
    r = results.setdefault(side.name, {sc: Series() for sc in SCENARIOS})
    ret, ready = timed(side, spec)
    r["from nothing"].returned.append(ret)
    r["from nothing"].ready.append(ready)
    before = ids(d, side.containers())
    ret, ready = timed(side, spec)
    r["no-op"].returned.append(ret)
    r["no-op"].ready.append(ready)
    if ids(d, side.containers()) != before:
        raise SystemExit(f"{side.name}: the no-op replaced a container")
    if side.reported:
        r["no-op"].reported.append(side.reported)
    ret, ready = timed(side, changed)
    r["TensorBoard change"].returned.append(ret)
    r["TensorBoard change"].ready.append(ready)
    after = ids(d, side.containers())
    nb, tb = side.containers()[0], side.containers()[-1]
    if side.name != "recipe" and (after[nb] != before[nb] or after[tb] == before[tb]):
        raise SystemExit(f"{side.name}: the TensorBoard change did not replace TensorBoard alone")
    log(f"{side.name}: " + ", ".join(f"{sc} {r[sc].ready[-1]:.2f} s (returned {r[sc].returned[-1]:.2f} s)" for sc in SCENARIOS))
    side.clear()


def stats(values: list[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values)}


def summarize(results: dict[str, dict[str, Series]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for side, per in results.items():
        table[side] = {}
        for sc, series in per.items():
            table[side][sc] = {"ready": stats(series.ready), "returned": stats(series.returned),
                               "runs_ready": series.ready, "runs_returned": series.returned}
            if series.reported:
                table[side][sc]["tool_reported"] = series.reported
    for per in table.values():
        for sc, row in per.items():
            for base in ("recipe", "tfbox"):
                if base in table and table[base][sc]["ready"]["median"] > 0:
                    row[f"ratio_to_{base}"] = row["ready"]["median"] / table[base][sc]["ready"]["median"]
    return table


def print_table(table: dict[str, Any], runs: int) -> None:
    print(f"\npeers: same daemon, image and containers; ready = command returned and both answer  (median of {runs}; min-max)")
    print(f"machine: {machine()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  {'side':<14}{'scenario':<20}{'ready median':>13}{'min-max':>16}{'returned':>10}{'/recipe':>9}{'/tfbox':>9}")
    for side, per in table.items():
        for sc, row in per.items():
            rr = row["ready"]
            ratios = "".join(f"{row[k]:>8.2f}x" if k in row else f"{'-':>9}" for k in ("ratio_to_recipe", "ratio_to_tfbox"))
            said = f"  ({', '.join(sorted(set(row['tool_reported'])))})" if "tool_reported" in row else ""
            print(f"  {side:<14}{sc:<20}{rr['median']:>11.2f} s{rr['min']:>8.2f}-{rr['max']:<6.2f}"
                  f"{row['returned']['median']:>9.2f}s{ratios}{said}")


def main() -> None:
    args = arguments_with(__doc__ or "", [
        ("--only", str, ",".join(SIDES), f"comma-separated sides to run (default all: {','.join(SIDES)})"),
        ("--out", str, str(ROOT / "bench" / "results"), "where peers.json and peers.png go"),
        ("--plot", int, 1, "1: draw peers.png with bench/plot_peers.py (matplotlib from bench/peers-toolchain.sh); 0: no plot"),
    ])
    only = [x for x in args.only.split(",") if x]
    unknown = set(only) - set(SIDES)
    if unknown:
        raise SystemExit(f"--only: unknown side(s) {', '.join(sorted(unknown))}; choose from {', '.join(SIDES)}")
    skip = {"compose": "compose", "compose-wait": "compose", "tofu": "tofu", "ansible": "ansible"}
    needed = {skip[x] for x in only if x in skip} | ({"plot"} if args.plot else set())
    peers = Path()
    if needed:
        log("peer tools (bench/peers-toolchain.sh; built and cached on first use)")
        env = {"TFBOX_PEERS_SKIP": " ".join({"compose", "tofu", "ansible", "plot"} - needed)}
        peers = Path(sh("bench/peers-toolchain.sh", env=env, timeout=3600).strip().splitlines()[-1])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with setup(args) as s:
        nb_port, tb_port, tb_port2 = free_port(), free_port(), free_port()
        tfbox = Tfbox(s, s.workdir / "tfbox")
        stack = tfbox.make_stack(nb_port, tb_port)
        log("converging tfbox once to read its containers back (not timed)")
        stack.up()
        spec = spec_from_tfbox(s, stack, nb_port, tb_port)
        tfbox.clear()
        changed = with_tb_port(spec, tb_port2)
        makers: dict[str, Callable[[], Side]] = {
            "recipe": lambda: Recipe(s, s.workdir / "recipe"),
            "tfbox": lambda: tfbox,
            "compose": lambda: Compose(s, s.workdir / "compose", str(peers / "bin" / "docker-compose")),
            "compose-wait": lambda: ComposeWait(s, s.workdir / "compose-wait", str(peers / "bin" / "docker-compose")),
            "tofu": lambda: Tofu(s, s.workdir / "tofu", peers),
            "ansible": lambda: Ansible(s, s.workdir / "ansible", peers),
        }
        sides = [makers[x]() for x in SIDES if x in only]
        results: dict[str, dict[str, Series]] = {}
        try:
            for side in sides:
                side.prepare(spec)
            for i in range(args.runs):
                order = sides if i % 2 == 0 else list(reversed(sides))  # neither end always on a warmer host
                for side in order:
                    one_round(side, spec, changed, results)
                    if isinstance(side, Tfbox):
                        side.stack.set("tensorboardPort", str(tb_port))  # type: ignore[union-attr]
                        side.tb_port = tb_port
                log(f"round {i + 1} of {args.runs} done")
        finally:
            for side in sides:
                with contextlib.suppress(SystemExit):
                    side.clear()
        table = {name: summarize(results)[name] for name in SIDES if name in results}
        print_table(table, args.runs)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"started": started, "machine": machine(), "load_average": os.getloadavg(), "runs": args.runs,
                "docker": s.docker("version", "--format", "{{.Server.Version}}").stdout.strip(), "image": s.image,
                "ready": "the command returned, Jupyter's /api and TensorBoard's /data/logdir answer HTTP 200/302",
                "tools": tool_versions(peers, s.toolchain_bin, needed)}
        (out / "peers.json").write_text(json.dumps({"meta": meta, "results": table}, indent=1) + "\n")
        print(f"\nwrote {out / 'peers.json'}")
        if args.plot:
            sh(str(peers / "plot" / "bin" / "python"), "bench/plot_peers.py", str(out / "peers.json"), str(out / "peers.png"))
            print(f"wrote {out / 'peers.png'}")


def tool_versions(peers: Path, toolchain_bin: str, needed: set[str]) -> dict[str, str]:
    def first_line(*cmd: str) -> str:
        with_path = {**os.environ, "PATH": f"{toolchain_bin}:{os.environ['PATH']}", "TF_CLI_CONFIG_FILE": str(peers / "tofurc")}
        p = subprocess.run(list(cmd), capture_output=True, text=True, env=with_path, check=False)
        return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else "?"
    out = {"pulumi": first_line("pulumi", "version")}
    if "compose" in needed:
        out["compose"] = first_line(str(peers / "bin" / "docker-compose"), "version")
    if "tofu" in needed:
        out["tofu"] = first_line(str(peers / "bin" / "tofu"), "version")
        out["terraform-provider-docker"] = (peers / "provider-version").read_text().strip()
    if "ansible" in needed:
        out["ansible"] = f"{(peers / 'ansible').resolve().name} ({first_line(str(peers / 'ansible' / 'bin' / 'ansible'), '--version')})"
    return out


if __name__ == "__main__":
    main()

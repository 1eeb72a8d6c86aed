"""Notebook: the recipe's `docker run -d --name X -p 8888:8888 <image>` as a Container.

Password login only (an argon2id hash in an uploaded Jupyter config file, never in env),
HTTPS when the stack has a certificate (the key uploaded as a secret),
the chosen GPUs, `/tf` on the notebooks volume, the logs directory shared with
TensorBoard, the `capture` helper pre-installed, and a health check for `docker ps`
(`pulumi up` waits for the notebook to answer through components.docker.ready).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker.devices import GpuSettings, device_requests, expected_gpus
from components.docker.hardening import hardening_args
from components.docker.labels import docker_labels
from components.docker.pids import HostAccess, PidsLimit, PidsLimitArgs
from components.kernel import jupyter
from components.model import commands
from components.model.hardening import ContainerHardening
from components.model.labels import GPU_CHECK_LABEL
from components.model.password import hash_password
from components.model.plan import PortBinding as PortBinding

RESTART_POLICY = "always"


def hashed_jupyter_config(password: pulumi.Input[str], salt: str, tls: bool = False, cull_idle: int = 0,
                          remote_access: bool = False) -> pulumi.Output[str]:
    """The Jupyter config file content, secret because it carries the password's argon2id hash.

    The hash (about 0.1 s of CPU; argon2 releases the GIL) runs in a worker thread, so the program
    goes on registering the image, volumes and network with the engine meanwhile.
    """
    def render(p: str) -> Awaitable[str]:
        return asyncio.get_running_loop().run_in_executor(
            None, lambda: jupyter.jupyter_config(hash_password(p, salt), tls=tls, cull_idle_seconds=cull_idle,
                                            remote_access=remote_access))
    return pulumi.Output.secret(password).apply(render)


@dataclass
class NotebookArgs:
    container_name: str
    image_id: pulumi.Input[str]
    jupyter_config: pulumi.Input[str]  # secret: holds the password hash
    gpu: GpuSettings
    ports: list[PortBinding]
    notebooks_type: str  # "volume" or "bind"
    notebooks_source: pulumi.Input[str]
    logs_source: pulumi.Input[str]
    logs_dir: str
    tensorboard_inside: bool
    labels: dict[str, str]
    envs: list[str] = field(default_factory=list)  # plain settings, never secrets (`docker inspect` shows them)
    hardening: ContainerHardening = field(default_factory=ContainerHardening)
    gate: pulumi.Input[str] | None = None  # e.g. the GPU check's verdict: no notebook before it passes
    tls_cert: str = ""  # PEM: serve HTTPS with it (the config then names the uploaded files)
    tls_key: pulumi.Input[str] | None = None  # secret: the certificate's private key
    network: pulumi.Input[str] | None = None  # the stack's own network (components.docker.network); None: Docker's default bridge
    # TensorBoard at <notebook>/tensorboard/ (components.kernel.tensorboard_proxy): its upstream, e.g. http://<sidecar>:6006;
    # None: no proxy, and the uploads are exactly those of a notebook before the proxy existed
    tensorboard_proxy_target: str | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    host: HostAccess | None = None  # where `docker update --pids-limit` runs (components.docker.pids); None: no pids limit


def container_ports(ports: list[PortBinding]) -> list[docker.ContainerPortArgs]:
    return [docker.ContainerPortArgs(internal=p.internal, external=p.external, ip=p.ip, protocol="tcp") for p in ports]


def jupyter_py_uploads(proxy_target: str | None) -> list[docker.ContainerUploadArgs]:
    """The Python config and, with the proxy on, the proxy's module beside it; the JSON config stays as it was."""
    py_config = docker.ContainerUploadArgs(file=commands.JUPYTER_PY_CONFIG_PATH, content=jupyter.jupyter_py_config(proxy_target))
    if proxy_target is None:
        return [py_config]
    return [py_config,
            docker.ContainerUploadArgs(file=commands.TENSORBOARD_PROXY_MODULE_PATH, content=jupyter.TENSORBOARD_PROXY_SOURCE)]


class Notebook(pulumi.ComponentResource):
    container: docker.Container
    container_id: pulumi.Output[str]

    def __init__(self, name: str, args: NotebookArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Notebook", name, None, opts)
        labels = dict(args.labels)
        if args.gate is not None:
            labels_input: pulumi.Input[list[docker.ContainerLabelArgs]] = pulumi.Output.from_input(args.gate).apply(
                lambda verdict: docker_labels({**labels, GPU_CHECK_LABEL: verdict}, docker.ContainerLabelArgs)
            )
        else:
            labels_input = docker_labels(labels, docker.ContainerLabelArgs)
        gpus = expected_gpus(args.gpu)
        probe = commands.notebook_probe(args.tensorboard_inside, tls=bool(args.tls_cert), gpus=gpus)
        tls_uploads = []
        if args.tls_cert:
            if args.tls_key is None:
                raise ValueError("a TLS certificate needs its key")
            tls_uploads = [
                docker.ContainerUploadArgs(file=commands.TLS_CERT_PATH, content=args.tls_cert),
                docker.ContainerUploadArgs(file=commands.TLS_KEY_PATH, content=pulumi.Output.secret(args.tls_key)),
            ]
        self.container = docker.Container(
            name,
            name=args.container_name,
            image=args.image_id,
            command=commands.notebook_command(args.logs_dir, args.tensorboard_inside),
            envs=[*args.envs, *args.gpu.envs] or None,
            device_requests=device_requests(args.gpu),
            runtime=args.gpu.runtime,
            # on the stack's network only, never on the default bridge (read back as given: no diff)
            network_mode=args.network,
            ports=container_ports(args.ports),
            mounts=[
                docker.ContainerMountArgs(target=commands.NOTEBOOK_DIR, type=args.notebooks_type, source=args.notebooks_source),
                docker.ContainerMountArgs(target=args.logs_dir, type="volume", source=args.logs_source),
            ],
            uploads=[
                docker.ContainerUploadArgs(file=commands.JUPYTER_CONFIG_PATH, content=args.jupyter_config),
                docker.ContainerUploadArgs(file=commands.CAPTURE_STARTUP_PATH, content=jupyter.CAPTURE_SOURCE),
                # password checks off Jupyter's event loop (a login flood cannot stall the notebook), and the
                # TensorBoard proxy's loader where it is on
                *jupyter_py_uploads(args.tensorboard_proxy_target),
                *tls_uploads,
            ],
            # For `docker ps` and monitoring only: `up` waits on components.docker.ready instead, so the interval
            # can be long (each probe is a docker exec, ~0.1 s of host CPU: bench/README.md).
            # Durations as the provider reads them back (Go's format): "120s" would diff as "2m0s" on every preview.
            # GPU notebooks are probed more often, so lost GPUs show within 30 s (commands.GPU_HEALTHCHECK_INTERVAL).
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=probe, timeout="5s", start_period="2m0s",
                interval=commands.HEALTHCHECK_INTERVAL if gpus is None else commands.GPU_HEALTHCHECK_INTERVAL,
                retries=commands.HEALTHCHECK_RETRIES if gpus is None else commands.GPU_HEALTHCHECK_RETRIES),
            # `always`, not `unless-stopped`: after a crash of dockerd (SIGKILL, OOM kill) Docker 20.10 records
            # the containers as stopped by hand, and only `always` brings them back (docs/troubleshooting.md, "Doctor and repair").
            restart=RESTART_POLICY,
            must_run=True,
            destroy_grace_seconds=30,  # a graceful stop lets kernels flush before the container goes
            labels=labels_input,
            **hardening_args(args.hardening),
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,  # fixed name and host ports: the old one must go first
                # the provider "updates" a changed mount in place and Docker keeps the old one (a new
                # tfbox:notebooksHostPath, e.g. a nosuid mount: components.docker.host_bind, never took effect)
                replace_on_changes=["mounts"],
                depends_on=args.depends_on,
            ),
        )
        self.container_id = self.container.id
        if args.host is not None and args.hardening.pids_limit:
            PidsLimit(f"{name}-pids", PidsLimitArgs(args.host, self.container.id, args.container_name, args.hardening.pids_limit),
                      pulumi.ResourceOptions(parent=self))
        self.register_outputs({"containerId": self.container_id, "name": self.container.name})

"""TensorBoard: a sidecar container reading the notebook's logs, read-only.

A container of its own so changing anything of TensorBoard never replaces or restarts
the notebook (a training kernel survives it). TensorBoard has no login, so it is
published on loopback unless the stack opts in (validated in components.model.parse).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker.devices import NO_GPUS_ENV
from components.docker.hardening import hardening_args
from components.docker.labels import docker_labels
from components.docker.notebook import RESTART_POLICY, PortBinding, container_ports
from components.docker.pids import HostAccess, PidsLimit, PidsLimitArgs
from components.model import commands
from components.model.hardening import TENSORBOARD_PIDS_LIMIT, tensorboard_hardening


@dataclass
class TensorBoardArgs:
    container_name: str
    image_id: pulumi.Input[str]
    port: PortBinding
    logs_source: pulumi.Input[str]
    logs_dir: str
    labels: dict[str, str]
    network: pulumi.Input[str] | None = None  # the stack's own network (components.docker.network)
    host: HostAccess | None = None  # where `docker update --pids-limit` runs (components.docker.pids)
    pids_limit: int | None = TENSORBOARD_PIDS_LIMIT  # None: no limit (tfbox:notebookPidsLimit 0 turns off every limit)


class TensorBoard(pulumi.ComponentResource):
    container: docker.Container

    def __init__(self, name: str, args: TensorBoardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:TensorBoard", name, None, opts)
        self.container = docker.Container(
            name,
            name=args.container_name,
            image=args.image_id,
            command=commands.tensorboard_command(args.logs_dir),
            envs=[NO_GPUS_ENV],  # TensorBoard needs no GPU, even on a daemon whose default runtime is nvidia
            network_mode=args.network,  # the stack's network only, so other stacks' containers cannot reach it
            ports=container_ports([args.port]),
            mounts=[docker.ContainerMountArgs(target=args.logs_dir, type="volume", source=args.logs_source, read_only=True)],
            # for `docker ps` and monitoring; `up` waits on components.docker.ready (see notebook.py)
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=commands.tensorboard_probe(), interval=commands.HEALTHCHECK_INTERVAL, timeout="5s", retries=3, start_period="2m0s"
            ),
            # `always`: comes back after a crash of dockerd, as the notebook (components/docker/notebook.py)
            restart=RESTART_POLICY,
            must_run=True,
            destroy_grace_seconds=10,
            labels=docker_labels(args.labels, docker.ContainerLabelArgs),
            **hardening_args(tensorboard_hardening(args.pids_limit)),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        hardening = tensorboard_hardening(args.pids_limit)
        if args.host is not None and hardening.pids_limit:
            PidsLimit(f"{name}-pids", PidsLimitArgs(args.host, self.container.id, args.container_name, hardening.pids_limit),
                      pulumi.ResourceOptions(parent=self))
        self.register_outputs({"containerId": self.container.id, "name": self.container.name})

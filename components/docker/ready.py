"""Ready: `pulumi up` returns the moment the notebook and TensorBoard answer, not seconds later.

A one-shot container in the notebook's network namespace polls the notebook (and TensorBoard,
by its container name on the stack's network) every 0.1 s and exits when both answer; the provider waits
for that exit (`attach`), which Docker reports at once. Waiting on Docker health checks
instead (`wait=True`) costs up to an interval plus the provider's 1 s polling per container,
and a short interval costs CPU for as long as the lab runs (bench/README.md has the numbers).
The container's inputs carry the notebook's and TensorBoard's ids, so it runs again whenever
either is replaced, and only then: a converged stack's `up` does not touch it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker.devices import NO_GPUS_ENV
from components.docker.hardening import hardening_args
from components.docker.labels import docker_labels
from components.model import commands
from components.model.hardening import tensorboard_hardening


class LabNotReady(RuntimeError):
    pass


def verdict(exit_code: int | None, logs: str | None, container_name: str) -> str:
    """'ready', or raise with what did not answer and where to look; pure, so the tests read it directly."""
    if exit_code in (0, None):
        return "ready"
    said = (logs or "").strip() or f"the ready check exited with {exit_code}"
    raise LabNotReady(
        f"{said}. Its logs say why: `docker logs <the notebook or tensorboard container>`. "
        f"Once it answers, `pulumi up --replace` the ready container ({container_name}) to check again."
    )


@dataclass
class ReadyArgs:
    container_name: str
    image_id: pulumi.Input[str]
    notebook_id: pulumi.Input[str]  # the container whose network namespace the checks run in
    notebook_tls: bool
    tensorboard_inside: bool  # exec mode: TensorBoard answers on the notebook's own address
    tensorboard_id: pulumi.Input[str] | None  # sidecar mode: waited for, so a new TensorBoard is checked again
    # sidecar mode: its container name, which Docker's DNS resolves on the stack's network. Not its address from
    # the state: a daemon restart hands out new addresses, and a later `up` would poll one nobody has.
    tensorboard_host: str | None
    labels: dict[str, str]
    tensorboard_proxy: bool = False  # the notebook must serve /tensorboard/ (components.kernel.tensorboard_proxy)


class Ready(pulumi.ComponentResource):
    verdict: pulumi.Output[str]

    def __init__(self, name: str, args: ReadyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Ready", name, None, opts)
        tls, inside = args.notebook_tls, args.tensorboard_inside

        checks = {"the notebook": commands.notebook_check(tls)}
        if inside:
            checks["TensorBoard"] = commands.tensorboard_check()
        elif args.tensorboard_host:
            checks["TensorBoard"] = commands.tensorboard_check(args.tensorboard_host)

        labels = dict(args.labels)
        waits_for: list[pulumi.Input[str]] = [args.notebook_id]
        if args.tensorboard_id is not None:
            waits_for.append(args.tensorboard_id)
        container = docker.Container(
            name,
            name=args.container_name,
            image=args.image_id,
            command=commands.ready_command(
                checks, after=[commands.tensorboard_proxy_check(tls)] if args.tensorboard_proxy else []),
            network_mode=pulumi.Output.concat("container:", args.notebook_id),
            # a new TensorBoard container (new id) must be waited for too: the id is an input
            envs=pulumi.Output.all(*waits_for).apply(lambda ids: [f"TFBOX_WAITS_FOR={','.join(ids)}", NO_GPUS_ENV]),
            must_run=False,  # it exits by design; refresh must not delete it for that
            attach=True,
            logs=True,
            restart="no",
            # it only needs bash and a socket: TensorBoard's hardening (unprivileged, read-only, no capabilities)
            **hardening_args(tensorboard_hardening()),
            labels=docker_labels(labels, docker.ContainerLabelArgs),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        container_name = args.container_name
        self.verdict = pulumi.Output.all(container.exit_code, container.container_logs).apply(
            lambda v: verdict(v[0], v[1], container_name)
        )
        self.register_outputs({"verdict": self.verdict})

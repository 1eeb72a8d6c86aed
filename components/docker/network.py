"""Network: the stack's own Docker network, so other containers on the host cannot reach its parts.

On Docker's default bridge every container can open a connection to every other one, so another
stack's notebook (a root shell) would reach this stack's Jupyter and TensorBoard directly,
whatever the loopback publishing says. A user-defined bridge network per stack, with Docker's
inter-network isolation (its iptables rules), keeps them apart; containers of one stack still
reach each other, by name too. Published ports work as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker.labels import docker_labels


@dataclass(frozen=True)
class NetworkArgs:
    name: str  # `<namePrefix>-net`
    labels: dict[str, str]


class Network(pulumi.ComponentResource):
    """A user-defined bridge network; `name` is what containers put in `network_mode`."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Network", name, None, opts)
        network = docker.Network(
            name,
            name=args.name,
            driver="bridge",
            labels=docker_labels(args.labels, docker.NetworkLabelArgs),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = network.name
        self.register_outputs({"name": self.name})

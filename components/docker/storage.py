"""Storage: the Docker volumes that hold what users make (notebooks, TensorBoard logs).

They outlive containers and, by default, the stack itself: `retainOnDelete` keeps a
volume on the host when Pulumi deletes or replaces it, so neither a config change nor
`pulumi destroy` loses a notebook unless the stack's config asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker.labels import docker_labels
from components.model.labels import RETAIN_LABEL, ROLE_LABEL


@dataclass(frozen=True)
class StorageArgs:
    notebooks_volume: str
    notebooks_host_path: str  # "" means: use the volume
    logs_volume: str
    keep_volumes: bool
    protect_volumes: bool
    labels: dict[str, str]
    resource_prefix: str = ""  # `<seat>-` on a seat's storage: resource names must differ between seats (URNs)


class Storage(pulumi.ComponentResource):
    """Mount sources for `/tf` and the logs directory."""

    notebooks_source: pulumi.Output[str]
    notebooks_type: str
    logs_source: pulumi.Output[str]

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Storage", name, None, opts)
        vol_opts = pulumi.ResourceOptions(parent=self, retain_on_delete=args.keep_volumes, protect=args.protect_volumes)
        # Policy packs cannot see retainOnDelete; the label says it where the policy can read it.
        labels = {**args.labels, RETAIN_LABEL: str(args.keep_volumes).lower()}
        if args.notebooks_host_path:
            self.notebooks_type = "bind"
            self.notebooks_source = pulumi.Output.from_input(args.notebooks_host_path)
        else:
            notebooks = docker.Volume(
                f"{args.resource_prefix}notebooks", name=args.notebooks_volume,
                labels=docker_labels({**labels, ROLE_LABEL: "notebooks"}, docker.VolumeLabelArgs),
                opts=vol_opts,
            )
            self.notebooks_type = "volume"
            self.notebooks_source = notebooks.name
        logs = docker.Volume(
            f"{args.resource_prefix}logs", name=args.logs_volume,
            labels=docker_labels({**labels, ROLE_LABEL: "logs"}, docker.VolumeLabelArgs),
            opts=vol_opts,
        )
        self.logs_source = logs.name
        self.register_outputs({"notebooks": self.notebooks_source, "logs": self.logs_source})

"""LabConfig: a stack's validated configuration, the input of the plan (components.model.plan)."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.model.cluster import ClusterSettings
from components.model.gpus import GpuSpec
from components.model.hardening import NotebookResources
from components.model.image_ref import ImageRef
from components.model.kernels import parse_cull_idle
from components.model.keys import NAMESPACE, PasswordState
from components.model.labels import PROJECT_LABEL, ROLE_LABEL, STACK_LABEL
from components.model.ledger import Claim
from components.model.seats import SeatConfig
from components.model.target import LOCAL_HOST


@dataclass(frozen=True)
class Published:
    """A host port a service is published on."""

    service: str
    key: str  # the config key of the port, for messages
    bind: str
    port: int
    internal: int
    login: bool = True  # False: TensorBoard, which anyone who reaches the port may use (components.docker.loopback)


@dataclass(frozen=True)
class LabConfig:
    stack: str
    project: str
    image: ImageRef
    image_track_registry: bool
    keep_image: bool
    gpus: GpuSpec
    gpu_mode: str
    gpu_check: bool
    gpu_check_image: ImageRef | None
    password_state: PasswordState
    password_salt: str
    notebook_port: int
    notebook_bind: str
    tensorboard_mode: str
    tensorboard_port: int
    tensorboard_bind: str
    tensorboard_public: bool
    notebooks_volume: str
    notebooks_host_path: str
    logs_volume: str
    logs_dir: str
    keep_volumes: bool
    protect_volumes: bool
    name_prefix: str
    tf_log_level: int = 2
    target_host: str = LOCAL_HOST  # canonical, as the backend spells it (components.model.target)
    notebook_resources: NotebookResources = field(default_factory=NotebookResources)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    tls_cert: str = ""  # PEM; the key stays a secret outside the config
    allow_plain_http_on_lan: bool = False
    seats: tuple[SeatConfig, ...] = ()  # empty: the single-seat lab of the keys above
    cull_idle_kernels: int = 0  # seconds (components.model.kernels); 0: never
    cull_idle_text: str = ""  # tfbox:cullIdleKernels as given: a seats stack's default depends on each seat's GPUs
    stack_kind: str = "machine"  # tfbox:stackKind: a machine's host must be readable (components.docker.host_state), fail closed
    tensorboard_proxy: bool = False  # TensorBoard at <notebook>/tensorboard/ (components.kernel.tensorboard_proxy); off with mode off
    tensorboard_proxy_key: bool = False  # the key as written, mode off or not (a cluster notebook keeps its route)
    loopback_publish_filtered: bool = False  # the host drops crafted packets to 127.0.0.1 (components.docker.loopback)
    target_identity: str = "local"  # what "the same machine" compares across stacks (components.model.target)
    backend: str = "docker"  # tfbox:backend
    cluster: ClusterSettings | None = None  # the kubernetes backend's settings (components.model.cluster); None on Docker

    @property
    def tls(self) -> bool:
        """The notebook serves HTTPS."""
        return bool(self.tls_cert)

    @property
    def published(self) -> list[Published]:
        if self.seats:
            return [p for s in self.seats for p in (
                Published(f"seat '{s.name}' notebook", f"seats[{s.index}].notebookPort", s.notebook_bind, s.notebook_port, 8888),
                *([Published(f"seat '{s.name}' TensorBoard", f"seats[{s.index}].tensorboardPort", s.tensorboard_bind,
                             s.tensorboard_port, 6006, login=False)] if self.tensorboard_mode != "off" else []),
            )]
        out = [Published("notebook", "notebookPort", self.notebook_bind, self.notebook_port, 8888)]
        if self.tensorboard_mode != "off":
            # exec mode publishes TensorBoard on the notebook container, at the same host port key
            out.append(Published("tensorboard", "tensorboardPort", self.tensorboard_bind, self.tensorboard_port, 6006, login=False))
        return out

    def container_name(self, role: str) -> str:
        return f"{self.name_prefix}-{role}"

    def cull_idle_for(self, gpus: bool) -> int:
        """Idle-kernel timeout of a notebook with or without GPUs: the key's default is on only for GPU notebooks."""
        return parse_cull_idle(self.cull_idle_text, gpus)

    def volumes(self) -> dict[str, str]:
        """The Docker volumes this stack mounts: name -> the config key that names them (for messages)."""
        if self.seats:
            return {f"{self.name_prefix}-{s.name}-{kind}": f"{NAMESPACE}:seats[{s.index}]" for s in self.seats
                    for kind in ("notebooks", "logs")}
        out = {} if self.notebooks_host_path else {self.notebooks_volume: f"{NAMESPACE}:notebooksVolume"}
        return {**out, self.logs_volume: f"{NAMESPACE}:logsVolume"}

    def claims(self) -> list[Claim]:
        """The GPUs this stack takes, for the ledger (components.model.ledger): one claim per seat, or the lab's."""
        if self.seats:
            return [s.claim(self.stack) for s in self.seats]
        return [Claim(stack=self.stack, seat="", gpus=self.gpus, key=f"{NAMESPACE}:gpus")] if self.gpus.requested else []

    def labels(self, role: str) -> dict[str, str]:
        """Labels on every container and volume, so `docker ps --filter label=…` finds a stack's parts."""
        return {PROJECT_LABEL: self.project, STACK_LABEL: self.stack, ROLE_LABEL: role}


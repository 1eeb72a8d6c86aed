"""LabPlan: the whole lab a stack asks for, as frozen data, before any backend spells it.

`make_plan(cfg)` decides every name, label, port, limit, GPU claim and URL; a backend
(components.docker for Docker) only turns the plan into its resources. A lab is always one or more
seats: a single-seat stack is the default seat (`name` ""), through the same code path as a stack
with `tfbox:seats`. The default seat's names are the lab's own (`storage`, `notebook`, …, and
containers `<namePrefix>-notebook`), a named seat's start with the seat's name, so a stack deployed
before this plan existed gets exactly the resources it has.

Secrets are not in the plan: the password (its hash) and TLS keys travel beside it as the backend's
own secret values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.model.binds import is_loopback
from components.model.cluster import ClusterSettings
from components.model.commands import JUPYTER_PORT, TENSORBOARD_PORT, tensorboard_proxy_target
from components.model.gpus import GpuSpec
from components.model.hardening import TENSORBOARD_PIDS_LIMIT, ContainerHardening, NotebookResources, notebook_hardening
from components.model.keys import NAMESPACE
from components.model.lab_config import LabConfig
from components.model.labels import (
    PLAIN_HTTP_LABEL,
    SEAT_LABEL,
    SHARE_LABEL,
    TENSORBOARD_PROXY_LABEL,
    TENSORBOARD_PUBLIC_LABEL,
)
from components.model.ledger import Claim, ledger_table
from components.model.tls import fingerprint_sha256
from components.model.urls import service_url

DEFAULT_SEAT = ""  # the name of a single-seat stack's one seat
# Two kernels on one GPU: TensorFlow otherwise maps nearly all of a GPU's memory at its first op.
SHARED_GPU_ENV = "TF_FORCE_GPU_ALLOW_GROWTH=true"


@dataclass(frozen=True)
class PortBinding:
    """A container port published on the host: `ip:external` -> `internal`."""

    internal: int
    external: int
    ip: str


@dataclass(frozen=True)
class ImagePlan:
    resource: str  # the resource's name: `image`, `<seat>-image`, `gpu-check-image`
    reference: str  # repo[:tag][@sha256:…]
    keep_locally: bool
    track_registry: bool


@dataclass(frozen=True)
class StoragePlan:
    notebooks_volume: str
    notebooks_host_path: str  # "" means: the volume
    logs_volume: str
    keep_volumes: bool
    protect_volumes: bool
    labels: dict[str, str]
    resource_prefix: str  # "" for the default seat, `<seat>-` for a named one


@dataclass(frozen=True)
class NetworkPlan:
    name: str  # `<namePrefix>-net`, `<namePrefix>-<seat>-net`
    labels: dict[str, str]


@dataclass(frozen=True)
class NotebookPlan:
    container_name: str
    image: str  # the ImagePlan.resource it runs
    ports: tuple[PortBinding, ...]
    labels: dict[str, str]
    envs: tuple[str, ...]  # plain settings, never secrets (the runtime shows them)
    hardening: ContainerHardening
    gpus: GpuSpec
    gpu_mode: str
    logs_dir: str
    tensorboard_inside: bool
    tls_cert: str  # PEM, "" for plain HTTP
    tls_own_key: bool  # the seat's own key (tfbox:tlsKeys.<seat>), else the stack's tfbox:tlsKey
    # the Jupyter config's inputs besides the password (components.kernel.jupyter)
    password_salt: str
    cull_idle: int
    remote_access: bool
    tensorboard_proxy_target: str | None  # None: no /tensorboard/ proxy
    gated: bool  # waits for the lab's GPU check (and ledger) verdict

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


@dataclass(frozen=True)
class TensorBoardPlan:
    """The sidecar (tensorboardMode sidecar); exec mode runs TensorBoard in the notebook's container."""

    container_name: str
    port: PortBinding
    labels: dict[str, str]
    pids_limit: int | None


@dataclass(frozen=True)
class ReadyPlan:
    """The health checks `up` waits on: the notebook (and TensorBoard, and the proxy) answering."""

    container_name: str
    labels: dict[str, str]
    notebook_tls: bool
    tensorboard_inside: bool
    tensorboard_host: str | None  # the sidecar's container name on the seat's network
    tensorboard_proxy: bool


@dataclass(frozen=True)
class SeatPlan:
    name: str  # DEFAULT_SEAT for a single-seat stack
    resource_prefix: str  # "" or `<seat>-`: what every resource name of the seat starts with
    storage: StoragePlan
    network: NetworkPlan
    notebook: NotebookPlan
    tensorboard: TensorBoardPlan | None
    ready: ReadyPlan
    claim: Claim | None  # the GPUs it takes, for the ledger
    gpus_text: str
    share_gpus: bool
    notebook_url: str
    tensorboard_url: str | None
    tensorboard_proxy_url: str | None
    notebook_cert_sha256: str | None
    container_names: tuple[str, ...]
    tensorboard_port: PortBinding | None = None  # TensorBoard's host port as configured, published or not

    @property
    def named(self) -> bool:
        return self.name != DEFAULT_SEAT


@dataclass(frozen=True)
class GpuCheckPlan:
    container_name: str
    image: str  # the ImagePlan.resource it runs
    spec: GpuSpec  # the stack's GPUs, or every GPU on a seats stack (the ledger resolves them)
    mode: str
    labels: dict[str, str]
    check_cuda: bool  # False when it runs another image than the notebook's
    ledger: bool  # a seats stack: the verdict also waits for the ledger against the machine's GPU list


@dataclass(frozen=True)
class LabPlan:
    stack: str
    project: str
    target_host: str  # where it runs (components.model.target), canonical
    seats: tuple[SeatPlan, ...]  # one DEFAULT_SEAT, or the named seats
    images: tuple[ImagePlan, ...]  # the first is `image`, whose digest is the stack's imageDigest
    gpu_check: GpuCheckPlan | None
    claims: tuple[Claim, ...]
    gpus_text: str  # the `gpus` output
    tensorboard_proxy: bool
    container_names: tuple[str, ...]
    tensorboard_proxy_key: bool = False  # tfbox:tensorboardProxy as written, also with tensorboardMode off
    ledger_table: dict[str, dict[str, object]] = field(default_factory=dict)  # before the GPU check's listing
    cluster: ClusterSettings | None = None  # where a cluster backend puts the lab (components.model.cluster); None on Docker

    @property
    def named_seats(self) -> bool:
        return any(s.named for s in self.seats)

    def seats_output(self) -> dict[str, dict[str, object]]:
        return seats_output(self)


def make_plan(cfg: LabConfig) -> LabPlan:
    """The plan of a validated config: the default seat, or one seat per `tfbox:seats` entry."""
    images = [ImagePlan("image", str(cfg.image), cfg.keep_image, cfg.image_track_registry)]
    by_ref = {str(cfg.image): "image"}
    claims = tuple(cfg.claims())
    gpu_check: GpuCheckPlan | None = None
    if cfg.gpu_check and (claims or not cfg.seats):
        check_image = "image"
        if cfg.gpu_check_image is not None:
            images.append(ImagePlan("gpu-check-image", str(cfg.gpu_check_image), cfg.keep_image, False))
            check_image = "gpu-check-image"
        gpu_check = GpuCheckPlan(container_name=cfg.container_name("gpu-check"), image=check_image,
                                 spec=GpuSpec("all") if cfg.seats else cfg.gpus, mode=cfg.gpu_mode,
                                 labels=cfg.labels("gpu-check"), check_cuda=cfg.gpu_check_image is None,
                                 ledger=bool(cfg.seats))
    seats: list[SeatPlan] = []
    if not cfg.seats:
        seats.append(_default_seat(cfg, gated=gpu_check is not None))
    for seat in cfg.seats:
        if str(seat.image) not in by_ref:
            by_ref[str(seat.image)] = f"{seat.name}-image"
            images.append(ImagePlan(f"{seat.name}-image", str(seat.image), cfg.keep_image, cfg.image_track_registry))
        seats.append(_named_seat(cfg, seat, by_ref[str(seat.image)], gated=gpu_check is not None and seat.gpus.requested))
    names = [n for s in seats for n in s.container_names]
    if gpu_check is not None:
        # the single-seat lab lists its check before `ready`, as it always has
        names.insert(len(names) - 1 if not cfg.seats else len(names), gpu_check.container_name)
    return LabPlan(
        stack=cfg.stack, project=cfg.project, target_host=cfg.target_host, seats=tuple(seats), images=tuple(images), gpu_check=gpu_check,
        claims=claims,
        gpus_text=" ".join(f"{s.name}={s.gpus.describe()}" for s in cfg.seats) if cfg.seats else cfg.gpus.describe(),
        tensorboard_proxy=cfg.tensorboard_proxy, tensorboard_proxy_key=cfg.tensorboard_proxy_key, container_names=tuple(names),
        ledger_table=ledger_table(list(claims)) if cfg.seats else {}, cluster=cfg.cluster,
    )


@dataclass(frozen=True)
class _SeatInputs:
    """What differs between the default seat and a named one; the rest is the same code."""

    name: str
    prefix: str
    image: str
    notebooks_volume: str
    notebooks_host_path: str
    logs_volume: str
    notebook_bind: str
    notebook_port: int
    tensorboard_bind: str
    tensorboard_port: int
    tls_cert: str
    tls_own_key: bool
    gpus: GpuSpec
    resources: NotebookResources
    cull_idle: int
    envs: tuple[str, ...]
    share_gpus: bool
    claim: Claim | None
    gated: bool


def _default_seat(cfg: LabConfig, gated: bool) -> SeatPlan:
    claim = Claim(stack=cfg.stack, seat="", gpus=cfg.gpus, key=f"{NAMESPACE}:gpus") if cfg.gpus.requested else None
    return _seat(cfg, _SeatInputs(
        name=DEFAULT_SEAT, prefix="", image="image", notebooks_volume=cfg.notebooks_volume,
        notebooks_host_path=cfg.notebooks_host_path, logs_volume=cfg.logs_volume, notebook_bind=cfg.notebook_bind,
        notebook_port=cfg.notebook_port, tensorboard_bind=cfg.tensorboard_bind, tensorboard_port=cfg.tensorboard_port,
        tls_cert=cfg.tls_cert, tls_own_key=False, gpus=cfg.gpus, resources=cfg.notebook_resources,
        cull_idle=cfg.cull_idle_kernels,
        # TensorFlow's import-time C++ info/warnings read as errors in a cell; tfbox:tfLogLevel sets how many show
        envs=(f"TF_CPP_MIN_LOG_LEVEL={cfg.tf_log_level}",), share_gpus=False, claim=claim, gated=gated,
    ))


def _named_seat(cfg: LabConfig, seat: object, image: str, gated: bool) -> SeatPlan:
    from components.model.seats import SeatConfig

    assert isinstance(seat, SeatConfig)
    envs = [f"TF_CPP_MIN_LOG_LEVEL={cfg.tf_log_level}"]
    if seat.share_gpus:
        envs.append(SHARED_GPU_ENV)
    return _seat(cfg, _SeatInputs(
        name=seat.name, prefix=f"{seat.name}-", image=image,
        notebooks_volume=cfg.container_name(f"{seat.name}-notebooks"), notebooks_host_path="",
        logs_volume=cfg.container_name(f"{seat.name}-logs"), notebook_bind=seat.notebook_bind,
        notebook_port=seat.notebook_port, tensorboard_bind=seat.tensorboard_bind, tensorboard_port=seat.tensorboard_port,
        tls_cert=seat.tls_cert, tls_own_key=seat.tls_own, gpus=seat.gpus, resources=seat.resources,
        cull_idle=cfg.cull_idle_for(seat.gpus.requested), envs=tuple(envs), share_gpus=seat.share_gpus,
        claim=seat.claim(cfg.stack) if seat.gpus.requested else None, gated=gated,
    ))


def _seat(cfg: LabConfig, s: _SeatInputs) -> SeatPlan:
    def named(role: str) -> str:
        return cfg.container_name(f"{s.prefix}{role}")

    def labels(role: str) -> dict[str, str]:
        return {**cfg.labels(role), SEAT_LABEL: s.name} if s.name else cfg.labels(role)

    tb_inside = cfg.tensorboard_mode == "exec"
    sidecar = cfg.tensorboard_mode == "sidecar"
    tb_port = PortBinding(TENSORBOARD_PORT, s.tensorboard_port, s.tensorboard_bind)
    ports = (PortBinding(JUPYTER_PORT, s.notebook_port, s.notebook_bind), *((tb_port,) if tb_inside else ()))
    notebook_labels = labels("notebook")
    if s.name:
        notebook_labels[SHARE_LABEL] = str(s.share_gpus).lower()  # read back by the live ledger
    if tb_inside:
        notebook_labels[TENSORBOARD_PUBLIC_LABEL] = str(cfg.tensorboard_public).lower()
    if cfg.allow_plain_http_on_lan and not s.tls_cert:
        notebook_labels[PLAIN_HTTP_LABEL] = "true"  # the opt-in, where the policy pack can see it
    if cfg.tensorboard_proxy:
        notebook_labels[TENSORBOARD_PROXY_LABEL] = "true"  # `make status` lists <notebook URL>/tensorboard/
    notebook = NotebookPlan(
        container_name=named("notebook"), image=s.image, ports=ports, labels=notebook_labels, envs=s.envs,
        hardening=notebook_hardening(s.resources), gpus=s.gpus, gpu_mode=cfg.gpu_mode, logs_dir=cfg.logs_dir,
        tensorboard_inside=tb_inside, tls_cert=s.tls_cert, tls_own_key=s.tls_own_key, password_salt=cfg.password_salt,
        cull_idle=s.cull_idle, remote_access=not is_loopback(s.notebook_bind),
        # TensorBoard behind the notebook's login: the sidecar by name on the seat's network, or exec's own
        tensorboard_proxy_target=(tensorboard_proxy_target(None if tb_inside else named("tensorboard"))
                                  if cfg.tensorboard_proxy else None),
        gated=s.gated,
    )
    tensorboard = TensorBoardPlan(
        container_name=named("tensorboard"), port=tb_port,
        labels={**labels("tensorboard"), TENSORBOARD_PUBLIC_LABEL: str(cfg.tensorboard_public).lower()},
        pids_limit=TENSORBOARD_PIDS_LIMIT if s.resources.pids_limit else None,
    ) if sidecar else None
    ready = ReadyPlan(container_name=named("ready"), labels=labels("ready"), notebook_tls=bool(s.tls_cert),
                      tensorboard_inside=tb_inside, tensorboard_host=named("tensorboard") if sidecar else None,
                      tensorboard_proxy=cfg.tensorboard_proxy)
    notebook_url = service_url(cfg.target_host, s.notebook_bind, s.notebook_port, scheme="https" if s.tls_cert else "http")
    return SeatPlan(
        name=s.name, resource_prefix=s.prefix,
        storage=StoragePlan(notebooks_volume=s.notebooks_volume, notebooks_host_path=s.notebooks_host_path,
                            logs_volume=s.logs_volume, keep_volumes=cfg.keep_volumes, protect_volumes=cfg.protect_volumes,
                            labels=labels("storage"), resource_prefix=s.prefix),
        network=NetworkPlan(name=named("net"), labels=labels("network")),
        notebook=notebook, tensorboard=tensorboard, ready=ready, claim=s.claim, gpus_text=s.gpus.describe(),
        share_gpus=s.share_gpus, notebook_url=notebook_url,
        tensorboard_url=None if cfg.tensorboard_mode == "off" else service_url(cfg.target_host, s.tensorboard_bind, s.tensorboard_port),
        tensorboard_proxy_url=notebook_url + "tensorboard/" if cfg.tensorboard_proxy else None,
        notebook_cert_sha256=fingerprint_sha256(s.tls_cert) if s.tls_cert else None,
        container_names=(named("notebook"), *((named("tensorboard"),) if sidecar else ()), named("ready")),
        tensorboard_port=tb_port,
    )


def seats_output(plan: LabPlan) -> dict[str, dict[str, object]]:
    """The `seats` output of a stack with seats: per seat its URLs, GPUs and containers."""
    return {
        s.name: {"notebookUrl": s.notebook_url, "tensorboardUrl": s.tensorboard_url,
                 **({"tensorboardProxyUrl": s.tensorboard_proxy_url} if plan.tensorboard_proxy else {}),
                 "gpus": s.gpus_text, "shareGpus": s.share_gpus, "containerNames": list(s.container_names),
                 **({"notebookCertSha256": s.notebook_cert_sha256} if s.notebook.tls else {})}
        for s in plan.seats
    }

"""Seat: one person's part of a shared GPU box (`tfbox:seats`), declared beside the other seats.

Everything a single-seat lab has, per seat and named after it: the notebook
(`<prefix>-<seat>-notebook`, with the seat's password hash, GPUs and limits), its notebooks and
logs volumes (kept when the seat is removed, as the lab's are), TensorBoard, the ready check, and a
network of its own, so one seat's notebook (a root shell) cannot reach another seat's Jupyter or
TensorBoard (which has no login) except through the published ports, like anyone else. Children's
resource names start with the seat's name: URNs do not include the parent's name, so two seats'
`notebook`s would otherwise be the same resource. Changing one seat changes only its resources.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.docker.devices import container_gpu_settings
from components.docker.network import Network, NetworkArgs
from components.docker.notebook import Notebook, NotebookArgs, PortBinding, hashed_jupyter_config
from components.docker.pids import HostAccess
from components.docker.ready import Ready, ReadyArgs
from components.docker.storage import Storage, StorageArgs
from components.docker.tensorboard import TensorBoard, TensorBoardArgs
from components.model import commands
from components.model.binds import is_loopback
from components.model.hardening import TENSORBOARD_PIDS_LIMIT, notebook_hardening
from components.model.lab_config import LabConfig
from components.model.labels import PLAIN_HTTP_LABEL, SEAT_LABEL, SHARE_LABEL, TENSORBOARD_PROXY_LABEL, TENSORBOARD_PUBLIC_LABEL
from components.model.seats import SeatConfig
from components.model.tls import fingerprint_sha256
from components.model.urls import service_url

# Two kernels on one GPU: TensorFlow otherwise maps nearly all of a GPU's memory at its first op.
SHARED_GPU_ENV = "TF_FORCE_GPU_ALLOW_GROWTH=true"


@dataclass
class SeatArgs:
    config: LabConfig
    seat: SeatConfig
    image_id: pulumi.Input[str]
    password: pulumi.Input[str]  # secret: this seat's entry of tfbox:passwords
    tls_key: pulumi.Input[str] | None = None  # secret: the seat's own key (tfbox:tlsKeys.<seat>), else the stack's
    gate: pulumi.Input[str] | None = None  # the stack's GPU check (and ledger) verdict: no notebook before it passes
    host: HostAccess | None = None  # the docker CLI's way to the daemon, for the pids limits (components.docker.pids)


def seat_envs(cfg: LabConfig, seat: SeatConfig) -> list[str]:
    """The notebook's plain settings; shared GPUs let TensorFlow grow its memory instead of taking it all."""
    envs = [f"TF_CPP_MIN_LOG_LEVEL={cfg.tf_log_level}"]
    if seat.share_gpus:
        envs.append(SHARED_GPU_ENV)
    return envs


class Seat(pulumi.ComponentResource):
    notebook_url: pulumi.Output[str]
    tensorboard_url: pulumi.Output[str] | None
    container_names: list[str]

    def __init__(self, name: str, args: SeatArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Seat", name, None, opts)
        cfg, seat = args.config, args.seat
        child = pulumi.ResourceOptions(parent=self)
        n = seat.name

        def named(role: str) -> str:
            return cfg.container_name(f"{n}-{role}")

        def labels(role: str) -> dict[str, str]:
            return {**cfg.labels(role), SEAT_LABEL: n}

        storage = Storage(f"{n}-storage", StorageArgs(
            notebooks_volume=named("notebooks"), notebooks_host_path="", logs_volume=named("logs"),
            keep_volumes=cfg.keep_volumes, protect_volumes=cfg.protect_volumes, labels=labels("storage"),
            resource_prefix=f"{n}-",
        ), child)
        network = Network(f"{n}-network", NetworkArgs(name=named("net"), labels=labels("network")), child)

        tb_inside = cfg.tensorboard_mode == "exec"
        ports = [PortBinding(commands.JUPYTER_PORT, seat.notebook_port, seat.notebook_bind)]
        tb_port = PortBinding(commands.TENSORBOARD_PORT, seat.tensorboard_port, seat.tensorboard_bind)
        if tb_inside:
            ports.append(tb_port)
        notebook_labels = {**labels("notebook"), SHARE_LABEL: str(seat.share_gpus).lower()}  # read by claim_from_inspect
        if tb_inside:
            notebook_labels[TENSORBOARD_PUBLIC_LABEL] = str(cfg.tensorboard_public).lower()
        if cfg.allow_plain_http_on_lan and not seat.tls:
            notebook_labels[PLAIN_HTTP_LABEL] = "true"
        if cfg.tensorboard_proxy:
            notebook_labels[TENSORBOARD_PROXY_LABEL] = "true"  # `make status` lists <notebook URL>/tensorboard/
        salt, tls, cull_idle = cfg.password_salt, seat.tls, cfg.cull_idle_for(seat.gpus.requested)
        jupyter_config = hashed_jupyter_config(args.password, salt, tls=tls, cull_idle=cull_idle,
                                               remote_access=not is_loopback(seat.notebook_bind))
        notebook = Notebook(f"{n}-notebook", NotebookArgs(
            container_name=named("notebook"), image_id=args.image_id, jupyter_config=jupyter_config,
            gpu=container_gpu_settings(seat.gpus, cfg.gpu_mode), ports=ports,
            notebooks_type=storage.notebooks_type, notebooks_source=storage.notebooks_source,
            logs_source=storage.logs_source, logs_dir=cfg.logs_dir, tensorboard_inside=tb_inside,
            labels=notebook_labels, gate=args.gate, network=network.name,
            hardening=notebook_hardening(seat.resources), tls_cert=seat.tls_cert, tls_key=args.tls_key,
            envs=seat_envs(cfg, seat), host=args.host,
            tensorboard_proxy_target=(commands.tensorboard_proxy_target(None if tb_inside else named("tensorboard"))
                                      if cfg.tensorboard_proxy else None),
        ), child)

        tensorboard: TensorBoard | None = None
        if cfg.tensorboard_mode == "sidecar":
            tensorboard = TensorBoard(f"{n}-tensorboard", TensorBoardArgs(
                container_name=named("tensorboard"), image_id=args.image_id, port=tb_port,
                logs_source=storage.logs_source, logs_dir=cfg.logs_dir,
                labels={**labels("tensorboard"), TENSORBOARD_PUBLIC_LABEL: str(cfg.tensorboard_public).lower()},
                network=network.name, host=args.host,
                pids_limit=TENSORBOARD_PIDS_LIMIT if seat.resources.pids_limit else None,
            ), child)
        tb_container = tensorboard.container if tensorboard is not None else None
        Ready(f"{n}-ready", ReadyArgs(
            container_name=named("ready"), image_id=args.image_id, notebook_id=notebook.container_id,
            notebook_tls=seat.tls, tensorboard_inside=tb_inside,
            tensorboard_id=tb_container.id if tb_container is not None else None,
            tensorboard_host=named("tensorboard") if tb_container is not None else None,
            labels=labels("ready"), tensorboard_proxy=cfg.tensorboard_proxy,
        ), child)

        self.notebook_url_text = service_url(cfg.target_host, seat.notebook_bind, seat.notebook_port,
                                             scheme="https" if seat.tls else "http")
        # what the seat's users pin: its own certificate's fingerprint (components.model.seat_tls)
        self.notebook_cert_sha256_text = fingerprint_sha256(seat.tls_cert) if seat.tls else None
        self.tensorboard_url_text = (None if cfg.tensorboard_mode == "off"
                                     else service_url(cfg.target_host, seat.tensorboard_bind, seat.tensorboard_port))
        # the seat's TensorBoard behind its notebook's login (components.kernel.tensorboard_proxy), when on
        self.tensorboard_proxy_url_text = self.notebook_url_text + "tensorboard/" if cfg.tensorboard_proxy else None
        self.notebook_url = pulumi.Output.from_input(self.notebook_url_text)
        self.tensorboard_url = None if self.tensorboard_url_text is None else pulumi.Output.from_input(self.tensorboard_url_text)
        self.container_names = [named("notebook"), *([named("tensorboard")] if tensorboard is not None else []), named("ready")]
        self.register_outputs({"notebookUrl": self.notebook_url, "tensorboardUrl": self.tensorboard_url,
                               **({"tensorboardProxyUrl": self.tensorboard_proxy_url_text} if cfg.tensorboard_proxy else {}),
                               "notebookCertSha256": self.notebook_cert_sha256_text,
                               "containerNames": self.container_names})

"""Seat: one person's part of a shared GPU box (`tfbox:seats`), and `declare_seat`, which spells any seat's
plan (components.model.plan.SeatPlan) in Docker resources: the named seats' and a single-seat lab's.

Everything a lab has, per seat: the notebook (with the seat's password hash, GPUs and limits), its
notebooks and logs volumes (kept when the seat is removed, as the lab's are), TensorBoard, the ready
check, and a network of its own, so one seat's notebook (a root shell) cannot reach another seat's
Jupyter or TensorBoard (which has no login) except through the published ports, like anyone else.
A named seat's resources sit in a `Seat` component and their names start with the seat's name (URNs
do not include the parent's name, so two seats' `notebook`s would otherwise be the same resource);
the default seat's sit directly under the Lab with the names they always had. Changing one seat
changes only its resources.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.docker.devices import container_gpu_settings
from components.docker.network import Network, NetworkArgs
from components.docker.notebook import Notebook, NotebookArgs, hashed_jupyter_config
from components.docker.pids import HostAccess
from components.docker.ready import Ready, ReadyArgs
from components.docker.storage import Storage, StorageArgs
from components.docker.tensorboard import TensorBoard, TensorBoardArgs
from components.model.plan import SeatPlan


@dataclass
class DeclaredSeat:
    notebook: Notebook
    tensorboard: TensorBoard | None
    ready: Ready


def declare_seat(plan: SeatPlan, image_id: pulumi.Input[str], password: pulumi.Input[str], tls_key: pulumi.Input[str] | None,
                 gate: pulumi.Input[str] | None, host: HostAccess | None, opts: pulumi.ResourceOptions) -> DeclaredSeat:
    """The seat's storage, network, notebook, TensorBoard and ready check, named `<resource_prefix><role>`."""
    n = plan.resource_prefix
    st = plan.storage
    storage = Storage(f"{n}storage", StorageArgs(
        notebooks_volume=st.notebooks_volume, notebooks_host_path=st.notebooks_host_path, logs_volume=st.logs_volume,
        keep_volumes=st.keep_volumes, protect_volumes=st.protect_volumes, labels=dict(st.labels), resource_prefix=st.resource_prefix,
    ), opts)
    network = Network(f"{n}network", NetworkArgs(name=plan.network.name, labels=dict(plan.network.labels)), opts)
    nb = plan.notebook
    notebook = Notebook(f"{n}notebook", NotebookArgs(
        container_name=nb.container_name, image_id=image_id,
        jupyter_config=hashed_jupyter_config(password, nb.password_salt, tls=nb.tls, cull_idle=nb.cull_idle,
                                             remote_access=nb.remote_access),
        gpu=container_gpu_settings(nb.gpus, nb.gpu_mode), ports=list(nb.ports), notebooks_type=storage.notebooks_type,
        notebooks_source=storage.notebooks_source, logs_source=storage.logs_source, logs_dir=nb.logs_dir,
        tensorboard_inside=nb.tensorboard_inside, labels=dict(nb.labels), gate=gate, network=network.name,
        hardening=nb.hardening, tls_cert=nb.tls_cert, tls_key=tls_key, envs=list(nb.envs), host=host,
        tensorboard_proxy_target=nb.tensorboard_proxy_target,
    ), opts)
    tensorboard: TensorBoard | None = None
    if plan.tensorboard is not None:
        tb = plan.tensorboard
        tensorboard = TensorBoard(f"{n}tensorboard", TensorBoardArgs(
            container_name=tb.container_name, image_id=image_id, port=tb.port, logs_source=storage.logs_source,
            logs_dir=nb.logs_dir, labels=dict(tb.labels), network=network.name, host=host, pids_limit=tb.pids_limit,
        ), opts)
    # `up` returns when both answer (components.docker.ready), re-checked whenever either container is new
    tb_container = tensorboard.container if tensorboard is not None else None
    rd = plan.ready
    ready = Ready(f"{n}ready", ReadyArgs(
        container_name=rd.container_name, image_id=image_id, notebook_id=notebook.container_id,
        notebook_tls=rd.notebook_tls, tensorboard_inside=rd.tensorboard_inside,
        tensorboard_id=tb_container.id if tb_container is not None else None,
        tensorboard_host=rd.tensorboard_host if tb_container is not None else None,
        labels=dict(rd.labels), tensorboard_proxy=rd.tensorboard_proxy,
    ), opts)
    return DeclaredSeat(notebook, tensorboard, ready)


@dataclass
class SeatArgs:
    plan: SeatPlan
    image_id: pulumi.Input[str]
    password: pulumi.Input[str]  # secret: this seat's entry of tfbox:passwords
    tls_key: pulumi.Input[str] | None = None  # secret: the seat's own key (tfbox:tlsKeys.<seat>), else the stack's
    gate: pulumi.Input[str] | None = None  # the stack's GPU check (and ledger) verdict: no notebook before it passes
    host: HostAccess | None = None  # the docker CLI's way to the daemon, for the pids limits (components.docker.pids)


class Seat(pulumi.ComponentResource):
    notebook_url: pulumi.Output[str]
    tensorboard_url: pulumi.Output[str] | None
    container_names: list[str]

    def __init__(self, name: str, args: SeatArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Seat", name, None, opts)
        plan = args.plan
        self.declared = declare_seat(plan, args.image_id, args.password, args.tls_key, args.gate, args.host,
                                     pulumi.ResourceOptions(parent=self))
        self.notebook_url = pulumi.Output.from_input(plan.notebook_url)
        self.tensorboard_url = None if plan.tensorboard_url is None else pulumi.Output.from_input(plan.tensorboard_url)
        self.container_names = list(plan.container_names)
        self.register_outputs({"notebookUrl": self.notebook_url, "tensorboardUrl": self.tensorboard_url,
                               **({"tensorboardProxyUrl": plan.tensorboard_proxy_url} if plan.tensorboard_proxy_url else {}),
                               "notebookCertSha256": plan.notebook_cert_sha256,
                               "containerNames": self.container_names})

"""Lab: one machine's TensorFlow lab, everything a stack declares, wired from a LabConfig."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi

from components.docker.devices import container_gpu_settings
from components.docker.gpu_check import GpuCheck, GpuCheckArgs
from components.docker.image import Image, ImageArgs
from components.docker.network import Network, NetworkArgs
from components.docker.notebook import Notebook, NotebookArgs, PortBinding, hashed_jupyter_config
from components.docker.pids import HostAccess
from components.docker.ready import Ready, ReadyArgs
from components.docker.seat import Seat, SeatArgs
from components.docker.storage import Storage, StorageArgs
from components.docker.tensorboard import TensorBoard, TensorBoardArgs
from components.model import commands
from components.model.binds import is_loopback
from components.model.gpus import GpuSpec, parse_nvidia_smi_list
from components.model.hardening import TENSORBOARD_PIDS_LIMIT, notebook_hardening
from components.model.lab_config import LabConfig
from components.model.labels import PLAIN_HTTP_LABEL, TENSORBOARD_PROXY_LABEL, TENSORBOARD_PUBLIC_LABEL
from components.model.ledger import ledger_problems, ledger_table
from components.model.tls import fingerprint_sha256
from components.model.urls import service_url


@dataclass
class LabArgs:
    config: LabConfig
    password: pulumi.Input[str]  # a secret Output from `pulumi config set --secret`
    tls_key: pulumi.Input[str] | None = None  # secret; set when config.tls
    seat_passwords: pulumi.Input[dict[str, str]] | None = None  # secret map tfbox:passwords, on a stack with seats
    host: HostAccess | None = None  # the docker CLI's way to the daemon, for the pids limits (components.docker.pids)
    seat_tls_keys: pulumi.Input[dict[str, str]] | None = None  # secret map tfbox:tlsKeys: the seats' own keys


def _entry(seat: str) -> Callable[[dict[str, str]], str]:
    """One seat's entry (password, TLS key) out of a secret map (the result stays secret: it is applied on a secret)."""
    return lambda entries: entries[seat]


class GpuLedgerConflict(RuntimeError):
    pass


def ledger_verdict(cfg: LabConfig, listing_text: str) -> str:
    """'passed', or raise: with the machine's GPU list known, an index and a UUID of one GPU are one GPU."""
    problems = ledger_problems(cfg.claims(), [], parse_nvidia_smi_list(listing_text))
    if problems:
        raise GpuLedgerConflict("GPU ledger: " + "; ".join(problems))
    return "passed"


class Lab(pulumi.ComponentResource):
    notebook_url: pulumi.Output[str]
    notebook_cert_sha256: pulumi.Output[str] | None
    tensorboard_url: pulumi.Output[str] | None
    tensorboard_proxy_url: pulumi.Output[str] | None  # <notebook URL>tensorboard/ (per seat: `seat=url …`), when on
    gpu_check_output: pulumi.Output[str] | None

    def __init__(self, name: str, args: LabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Lab", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        if cfg.seats:
            self._seats(args, child)
            return

        storage = Storage("storage", StorageArgs(
            notebooks_volume=cfg.notebooks_volume, notebooks_host_path=cfg.notebooks_host_path,
            logs_volume=cfg.logs_volume, keep_volumes=cfg.keep_volumes, protect_volumes=cfg.protect_volumes,
            labels=cfg.labels("storage"),
        ), child)
        image = Image("image", ImageArgs(str(cfg.image), cfg.keep_image, cfg.image_track_registry), child)
        gpu = container_gpu_settings(cfg.gpus, cfg.gpu_mode)
        network = Network("network", NetworkArgs(name=cfg.container_name("net"), labels=cfg.labels("network")), child)

        gate: pulumi.Output[str] | None = None
        self.gpu_check_output = None
        if cfg.gpu_check:
            check_image = image
            if cfg.gpu_check_image is not None:
                check_image = Image("gpu-check-image", ImageArgs(str(cfg.gpu_check_image), cfg.keep_image, False), child)
            check = GpuCheck("gpu-check", GpuCheckArgs(
                container_name=cfg.container_name("gpu-check"), image_id=check_image.image_id,
                spec=cfg.gpus, mode=cfg.gpu_mode, gpu=gpu, labels=cfg.labels("gpu-check"),
                check_cuda=cfg.gpu_check_image is None,
            ), child)
            gate, self.gpu_check_output = check.verdict, check.output

        tb_inside = cfg.tensorboard_mode == "exec"
        ports = [PortBinding(commands.JUPYTER_PORT, cfg.notebook_port, cfg.notebook_bind)]
        tb_port = PortBinding(commands.TENSORBOARD_PORT, cfg.tensorboard_port, cfg.tensorboard_bind)
        if tb_inside:
            ports.append(tb_port)
        notebook_labels = cfg.labels("notebook")
        if tb_inside:
            notebook_labels[TENSORBOARD_PUBLIC_LABEL] = str(cfg.tensorboard_public).lower()
        if cfg.allow_plain_http_on_lan and not cfg.tls:
            notebook_labels[PLAIN_HTTP_LABEL] = "true"  # the opt-in, where the policy pack can see it
        if cfg.tensorboard_proxy:
            notebook_labels[TENSORBOARD_PROXY_LABEL] = "true"  # `make status` lists <notebook URL>/tensorboard/
        notebook = Notebook("notebook", NotebookArgs(
            container_name=cfg.container_name("notebook"), image_id=image.image_id,
            jupyter_config=hashed_jupyter_config(args.password, cfg.password_salt, tls=cfg.tls, cull_idle=cfg.cull_idle_kernels,
                                                 remote_access=not is_loopback(cfg.notebook_bind)),
            gpu=gpu, ports=ports, notebooks_type=storage.notebooks_type, notebooks_source=storage.notebooks_source,
            logs_source=storage.logs_source, logs_dir=cfg.logs_dir, tensorboard_inside=tb_inside,
            labels=notebook_labels, gate=gate, network=network.name, hardening=notebook_hardening(cfg.notebook_resources),
            tls_cert=cfg.tls_cert, tls_key=args.tls_key, host=args.host,
            # TensorFlow's import-time C++ info/warnings read as errors in a cell; tfbox:tfLogLevel sets how many show
            envs=[f"TF_CPP_MIN_LOG_LEVEL={cfg.tf_log_level}"],
            # TensorBoard behind the notebook's login: the sidecar by name on the stack's network, or exec's own
            tensorboard_proxy_target=(commands.tensorboard_proxy_target(None if tb_inside else cfg.container_name("tensorboard"))
                                      if cfg.tensorboard_proxy else None),
        ), child)
        self.notebook = notebook

        self.tensorboard: TensorBoard | None = None
        if cfg.tensorboard_mode == "sidecar":
            self.tensorboard = TensorBoard("tensorboard", TensorBoardArgs(
                container_name=cfg.container_name("tensorboard"), image_id=image.image_id, port=tb_port,
                logs_source=storage.logs_source, logs_dir=cfg.logs_dir,
                labels={**cfg.labels("tensorboard"), TENSORBOARD_PUBLIC_LABEL: str(cfg.tensorboard_public).lower()},
                network=network.name, host=args.host,
                pids_limit=TENSORBOARD_PIDS_LIMIT if cfg.notebook_resources.pids_limit else None,
            ), child)

        # `up` returns when both answer (components.docker.ready), re-checked whenever either container is new
        tb_container = self.tensorboard.container if self.tensorboard is not None else None
        self.ready = Ready("ready", ReadyArgs(
            container_name=cfg.container_name("ready"), image_id=image.image_id, notebook_id=notebook.container_id,
            notebook_tls=cfg.tls, tensorboard_inside=tb_inside,
            tensorboard_id=tb_container.id if tb_container is not None else None,
            tensorboard_host=cfg.container_name("tensorboard") if tb_container is not None else None,
            labels=cfg.labels("ready"), tensorboard_proxy=cfg.tensorboard_proxy,
        ), child)

        self.image = image
        self.notebook_url = pulumi.Output.from_input(
            service_url(cfg.target_host, cfg.notebook_bind, cfg.notebook_port, scheme="https" if cfg.tls else "http"))
        self.notebook_cert_sha256 = pulumi.Output.from_input(fingerprint_sha256(cfg.tls_cert)) if cfg.tls else None
        self.tensorboard_url = (
            None if cfg.tensorboard_mode == "off"
            else pulumi.Output.from_input(service_url(cfg.target_host, cfg.tensorboard_bind, cfg.tensorboard_port))
        )
        self.tensorboard_proxy_url = (
            self.notebook_url.apply(lambda url: url + "tensorboard/") if cfg.tensorboard_proxy else None)
        names = [cfg.container_name("notebook")]
        if self.tensorboard is not None:
            names.append(cfg.container_name("tensorboard"))
        if cfg.gpu_check:
            names.append(cfg.container_name("gpu-check"))
        names.append(cfg.container_name("ready"))
        self.container_names = names
        self.register_outputs({
            "notebookUrl": self.notebook_url, "notebookCertSha256": self.notebook_cert_sha256,
            "tensorboardUrl": self.tensorboard_url, **self._proxy_outputs(),
            "imageDigest": image.repo_digest, "containerNames": names,
        })

    def _proxy_outputs(self) -> dict[str, pulumi.Output[str]]:
        """The proxy's URL among the outputs only when on, so a stack that has not opted in keeps exactly its outputs."""
        return {} if self.tensorboard_proxy_url is None else {"tensorboardProxyUrl": self.tensorboard_proxy_url}

    def _seats(self, args: LabArgs, child: pulumi.ResourceOptions) -> None:
        """A shared box: the image(s), one GPU check of the whole machine, and one Seat per seat."""
        cfg = args.config
        if args.seat_passwords is None:
            raise ValueError("a stack with seats needs tfbox:passwords")
        image = Image("image", ImageArgs(str(cfg.image), cfg.keep_image, cfg.image_track_registry), child)
        self.image = image
        gate: pulumi.Output[str] | None = None
        self.gpu_check_output = None
        claims = cfg.claims()
        self.gpu_ledger: pulumi.Output[dict[str, dict[str, object]]] = pulumi.Output.from_input(ledger_table(claims))
        if cfg.gpu_check and claims:
            check_image = image
            if cfg.gpu_check_image is not None:
                check_image = Image("gpu-check-image", ImageArgs(str(cfg.gpu_check_image), cfg.keep_image, False), child)
            # The whole machine's list: the seats' GPUs by index and UUID, which the ledger resolves against each other.
            every = GpuSpec("all")
            check = GpuCheck("gpu-check", GpuCheckArgs(
                container_name=cfg.container_name("gpu-check"), image_id=check_image.image_id, spec=every,
                mode=cfg.gpu_mode, gpu=container_gpu_settings(every, cfg.gpu_mode), labels=cfg.labels("gpu-check"),
                check_cuda=cfg.gpu_check_image is None,
            ), child)
            self.gpu_check_output = check.output
            gate = pulumi.Output.all(check.verdict, check.output).apply(lambda v: ledger_verdict(cfg, v[1]))
            self.gpu_ledger = check.output.apply(lambda out: ledger_table(claims, parse_nvidia_smi_list(out)))
        images: dict[str, Image] = {str(cfg.image): image}
        passwords = pulumi.Output.secret(args.seat_passwords)
        seat_keys = pulumi.Output.secret(args.seat_tls_keys) if args.seat_tls_keys is not None else None
        self.seats: dict[str, Seat] = {}
        for seat in cfg.seats:
            if str(seat.image) not in images:
                images[str(seat.image)] = Image(f"{seat.name}-image", ImageArgs(str(seat.image), cfg.keep_image,
                                                                                  cfg.image_track_registry), child)
            self.seats[seat.name] = Seat(seat.name, SeatArgs(
                config=cfg, seat=seat, image_id=images[str(seat.image)].image_id,
                password=passwords.apply(_entry(seat.name)),
                tls_key=seat_keys.apply(_entry(seat.name)) if seat.tls_own and seat_keys is not None else args.tls_key,
                gate=gate if seat.gpus.requested else None, host=args.host,
            ), child)
        self.notebook_url = pulumi.Output.from_input(" ".join(f"{n}={s.notebook_url_text}" for n, s in self.seats.items()))
        self.tensorboard_url = (
            None if cfg.tensorboard_mode == "off"
            else pulumi.Output.from_input(" ".join(f"{n}={s.tensorboard_url_text}" for n, s in self.seats.items())))
        self.tensorboard_proxy_url = (
            pulumi.Output.from_input(" ".join(f"{n}={s.tensorboard_proxy_url_text}" for n, s in self.seats.items()))
            if cfg.tensorboard_proxy else None)
        # `seat=fingerprint …` like notebookUrl: each seat serves its own certificate (components.model.seat_tls)
        pins = {n: s.notebook_cert_sha256_text for n, s in self.seats.items() if s.notebook_cert_sha256_text}
        self.notebook_cert_sha256 = pulumi.Output.from_input(" ".join(f"{n}={p}" for n, p in pins.items())) if pins else None
        names = [name for s in self.seats.values() for name in s.container_names]
        if self.gpu_check_output is not None:
            names.append(cfg.container_name("gpu-check"))
        self.container_names = names
        self.register_outputs({
            "notebookUrl": self.notebook_url, "notebookCertSha256": self.notebook_cert_sha256,
            "tensorboardUrl": self.tensorboard_url, **self._proxy_outputs(),
            "imageDigest": image.repo_digest, "containerNames": names, "gpuLedger": self.gpu_ledger,
        })

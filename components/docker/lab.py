"""Lab: one machine's TensorFlow lab, everything a stack declares, spelled from its LabPlan.

The images and the GPU check are the lab's; then every seat of the plan (components.docker.seat):
the default seat of a single-seat stack directly under the Lab, with the names it always had
(`storage`, `network`, `notebook`, `tensorboard`, `ready`), a named seat in its own `Seat`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi

from components.docker.devices import container_gpu_settings
from components.docker.gpu_check import GpuCheck, GpuCheckArgs
from components.docker.image import Image, ImageArgs
from components.docker.notebook import Notebook
from components.docker.pids import HostAccess
from components.docker.ready import Ready
from components.docker.seat import Seat, SeatArgs, declare_seat
from components.docker.tensorboard import TensorBoard
from components.model.gpus import parse_nvidia_smi_list
from components.model.ledger import Claim, ledger_problems, ledger_table
from components.model.plan import LabPlan


@dataclass
class LabArgs:
    plan: LabPlan
    password: pulumi.Input[str] | None = None  # secret: tfbox:password, the default seat's
    tls_key: pulumi.Input[str] | None = None  # secret: tfbox:tlsKey, the stack's shared key
    seat_passwords: pulumi.Input[dict[str, str]] | None = None  # secret map tfbox:passwords, on a stack with seats
    host: HostAccess | None = None  # the docker CLI's way to the daemon, for the pids limits (components.docker.pids)
    seat_tls_keys: pulumi.Input[dict[str, str]] | None = None  # secret map tfbox:tlsKeys: the seats' own keys


def _entry(seat: str) -> Callable[[dict[str, str]], str]:
    """One seat's entry (password, TLS key) out of a secret map (the result stays secret: it is applied on a secret)."""
    return lambda entries: entries[seat]


class GpuLedgerConflict(RuntimeError):
    pass


def ledger_verdict(claims: Sequence[Claim], listing_text: str) -> str:
    """'passed', or raise: with the machine's GPU list known, an index and a UUID of one GPU are one GPU."""
    problems = ledger_problems(claims, [], parse_nvidia_smi_list(listing_text))
    if problems:
        raise GpuLedgerConflict("GPU ledger: " + "; ".join(problems))
    return "passed"


class Lab(pulumi.ComponentResource):
    notebook_url: pulumi.Output[str]
    notebook_cert_sha256: pulumi.Output[str] | None
    tensorboard_url: pulumi.Output[str] | None
    tensorboard_proxy_url: pulumi.Output[str] | None  # <notebook URL>tensorboard/ (per seat: `seat=url …`), when on
    gpu_check_output: pulumi.Output[str] | None
    gpu_ledger: pulumi.Output[dict[str, dict[str, object]]] | None

    def __init__(self, name: str, args: LabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:Lab", name, None, opts)
        plan = args.plan
        child = pulumi.ResourceOptions(parent=self)
        images = {i.resource: Image(i.resource, ImageArgs(i.reference, i.keep_locally, i.track_registry), child) for i in plan.images}
        self.image = images["image"]

        gate: pulumi.Output[str] | None = None
        self.gpu_check_output = None
        claims = list(plan.claims)
        self.gpu_ledger = pulumi.Output.from_input(plan.ledger_table) if plan.named_seats else None
        if plan.gpu_check is not None:
            gc = plan.gpu_check
            check = GpuCheck("gpu-check", GpuCheckArgs(
                container_name=gc.container_name, image_id=images[gc.image].image_id, spec=gc.spec, mode=gc.mode,
                gpu=container_gpu_settings(gc.spec, gc.mode), labels=dict(gc.labels), check_cuda=gc.check_cuda,
            ), child)
            self.gpu_check_output = check.output
            gate = check.verdict
            if gc.ledger:
                # the whole machine's list: the seats' GPUs by index and UUID, which the ledger resolves against each other
                gate = pulumi.Output.all(check.verdict, check.output).apply(lambda v: ledger_verdict(claims, v[1]))
                self.gpu_ledger = check.output.apply(lambda out: ledger_table(claims, parse_nvidia_smi_list(out)))

        passwords = pulumi.Output.secret(args.seat_passwords) if args.seat_passwords is not None else None
        seat_keys = pulumi.Output.secret(args.seat_tls_keys) if args.seat_tls_keys is not None else None
        self.seats: dict[str, Seat] = {}
        self.notebook: Notebook | None = None
        self.tensorboard: TensorBoard | None = None
        self.ready: Ready | None = None
        for seat in plan.seats:
            image_id = images[seat.notebook.image].image_id
            seat_gate = gate if seat.notebook.gated else None
            if not seat.named:
                if args.password is None:
                    raise ValueError("a single-seat lab needs tfbox:password")
                declared = declare_seat(seat, image_id, args.password, args.tls_key, seat_gate, args.host, child)
                self.notebook, self.tensorboard, self.ready = declared.notebook, declared.tensorboard, declared.ready
                continue
            if passwords is None:
                raise ValueError("a stack with seats needs tfbox:passwords")
            tls_key = seat_keys.apply(_entry(seat.name)) if seat.notebook.tls_own_key and seat_keys is not None else args.tls_key
            self.seats[seat.name] = Seat(seat.name, SeatArgs(
                plan=seat, image_id=image_id, password=passwords.apply(_entry(seat.name)), tls_key=tls_key,
                gate=seat_gate, host=args.host,
            ), child)

        named = plan.named_seats
        only = plan.seats[0]

        def joined(values: list[tuple[str, str]]) -> str:
            return " ".join(f"{n}={v}" for n, v in values)

        self.notebook_url = pulumi.Output.from_input(
            joined([(s.name, s.notebook_url) for s in plan.seats]) if named else only.notebook_url)
        tb_off = only.tensorboard_url is None
        self.tensorboard_url = None if tb_off else pulumi.Output.from_input(
            joined([(s.name, str(s.tensorboard_url)) for s in plan.seats]) if named else str(only.tensorboard_url))
        self.tensorboard_proxy_url = None if not plan.tensorboard_proxy else pulumi.Output.from_input(
            joined([(s.name, str(s.tensorboard_proxy_url)) for s in plan.seats]) if named else str(only.tensorboard_proxy_url))
        # `seat=fingerprint …` like notebookUrl: each seat serves its own certificate (components.model.seat_tls)
        pins = [(s.name, s.notebook_cert_sha256) for s in plan.seats if s.notebook_cert_sha256]
        self.notebook_cert_sha256 = None if not pins else pulumi.Output.from_input(joined(pins) if named else pins[0][1])
        self.container_names = list(plan.container_names)
        self.register_outputs({
            "notebookUrl": self.notebook_url, "notebookCertSha256": self.notebook_cert_sha256,
            "tensorboardUrl": self.tensorboard_url, **self._proxy_outputs(),
            "imageDigest": self.image.repo_digest, "containerNames": self.container_names,
            **({"gpuLedger": self.gpu_ledger} if named else {}),
        })

    def _proxy_outputs(self) -> dict[str, pulumi.Output[str]]:
        """The proxy's URL among the outputs only when on, so a stack that has not opted in keeps exactly its outputs."""
        return {} if self.tensorboard_proxy_url is None else {"tensorboardProxyUrl": self.tensorboard_proxy_url}

"""Seats: one GPU box shared by several people, each with a notebook, TensorBoard, volumes and GPUs of their own.

`tfbox:seats` is a list of `{name, gpus, notebookPort, tensorboardPort, …}`; the passwords are the
secret map `tfbox:passwords` (seat name -> password). This module turns the raw values (JSON text
from the engine, or YAML from a stack file) into typed seats and reports every problem at once,
each naming its key (`tfbox:seats[1].gpus`) and the fix. No Pulumi, no Docker.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from components.model.binds import bind_problem, binds_overlap, is_loopback, normalise_bind
from components.model.gpus import NO_GPUS, GpuSpec, GpuSpecError, parse_gpus
from components.model.hardening import DEFAULT_NOTEBOOK_PIDS_LIMIT, NotebookResources, parse_notebook_resources
from components.model.image_ref import ImageRef, ImageRefError, parse_image_ref
from components.model.ledger import Claim
from components.model.password import password_problem

SeatPasswordState = Literal["secret", "plaintext", "missing"]

# What a seat may say; everything else is the stack's (shmSize, ulimits, gpuMode, TLS, …).
SEAT_KEYS = ("name", "gpus", "notebookPort", "tensorboardPort", "notebookBind", "tensorboardBind",
             "memory", "cpus", "image", "shareGpus", "ingressHost")
# Seat names end up in container, volume and network names and in URNs: short, lower case, no dots.
_SEAT_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
MAX_SEAT_NAME = 32


@dataclass(frozen=True)
class SeatDefaults:
    """What a seat takes from the stack when it does not say otherwise."""

    image: ImageRef  # the stack's image (tfbox:image, or the default picked for the stack)
    notebook_bind: str = "127.0.0.1"
    tensorboard_bind: str = "127.0.0.1"
    memory: str = ""
    cpus: str = ""
    shm_size: str = "1g"
    ulimits: str = ""
    pids_limit: int = DEFAULT_NOTEBOOK_PIDS_LIMIT
    tensorboard_mode: str = "sidecar"
    tensorboard_public: bool = False
    tls: bool = False
    allow_plain_http_on_lan: bool = False


@dataclass(frozen=True)
class SeatConfig:
    """One seat, validated."""

    index: int
    name: str
    gpus: GpuSpec
    notebook_port: int
    tensorboard_port: int
    notebook_bind: str
    tensorboard_bind: str
    image: ImageRef
    resources: NotebookResources = field(default_factory=NotebookResources)
    share_gpus: bool = False
    tls_cert: str = ""  # PEM the seat serves HTTPS with (components.model.seat_tls); "" for plain HTTP
    tls_own: bool = False  # its key is tfbox:tlsKeys.<seat>, not the stack's shared tfbox:tlsKey

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def key(self, name: str) -> str:
        return f"tfbox:seats[{self.index}].{name}"

    def claim(self, stack: str) -> Claim:
        return Claim(stack=stack, seat=self.name, gpus=self.gpus, shared=self.share_gpus, key=self.key("gpus"))


def seat_name_problem(name: str) -> str | None:
    """Why a seat name cannot be part of Docker names and URNs, or None."""
    if not name:
        return "is empty"
    if len(name) > MAX_SEAT_NAME:
        return f"{name!r} is longer than {MAX_SEAT_NAME} characters"
    if any(c not in _SEAT_NAME_CHARS for c in name) or name[0] == "-" or name[-1] == "-":
        return f"{name!r} is not a seat name (lower-case letters, digits and inner dashes)"
    return None


def raw_seats(value: object) -> tuple[list[Any], list[str]]:
    """The list as given: JSON text from the engine, a list from YAML; [] when unset."""
    if value is None or value == "":
        return [], []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [], ["tfbox:seats: is not a list of seats. Fix: write it as a YAML list in the stack file, or "
                        "`pulumi config set --path 'tfbox:seats[0].name' alice` (see docs/gpus-and-seats.md)."]
    if not isinstance(value, list):
        return [], ["tfbox:seats: is not a list of seats. Fix: write it as a YAML list of {name, gpus, notebookPort, "
                    "tensorboardPort} (see docs/gpus-and-seats.md)."]
    return value, []


def seats_want_gpus(value: object) -> bool:
    """Whether any seat asks for GPUs, for picking the stack's default image before the seats are checked."""
    items, _ = raw_seats(value)
    for item in items:
        if isinstance(item, dict):
            try:
                if _seat_gpus(item.get("gpus")).requested:
                    return True
            except GpuSpecError:
                continue
    return False


def _seat_gpus(value: object) -> GpuSpec:
    """A seat's `gpus`: as `tfbox:gpus`, except that a bare number is a GPU index (`gpus: 0` is GPU 0)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return parse_gpus(value)


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"true": True, "false": False}.get(text)


def _as_port(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        port = int(str(value).strip())
    except ValueError:
        return None
    return port if 1 <= port <= 65535 else None


def parse_seats(value: object, defaults: SeatDefaults) -> tuple[tuple[SeatConfig, ...], list[str]]:
    """Typed seats and every problem (`tfbox:seats[i].key: what. Fix: how.`)."""
    items, problems = raw_seats(value)
    seats: list[SeatConfig] = []
    names: dict[str, int] = {}

    for i, item in enumerate(items):
        def add(name: str, problem: str, fix: str, i: int = i) -> None:
            problems.append(f"tfbox:seats[{i}].{name}: {problem}. Fix: {fix}.")

        if not isinstance(item, dict):
            problems.append(f"tfbox:seats[{i}]: {item!r} is not a seat. Fix: write {{name, gpus, notebookPort, tensorboardPort}}.")
            continue
        for k in item:
            if k not in SEAT_KEYS:
                close = difflib.get_close_matches(str(k), SEAT_KEYS, n=1)
                add(str(k), "is not a seat setting", f"did you mean {close[0]}?" if close else f"a seat takes {', '.join(SEAT_KEYS)}")

        name = str(item.get("name") or "").strip()
        why = seat_name_problem(name)
        if why:
            add("name", why, "name the seat after its user, e.g. alice (lower-case letters, digits, dashes)")
        elif name in names:
            add("name", f"seat {name!r} is also tfbox:seats[{names[name]}]", "give every seat its own name")
        else:
            names[name] = i

        try:
            gpus = _seat_gpus(item.get("gpus"))
        except GpuSpecError as e:
            add("gpus", str(e), "write GPU indices such as \"0\" or \"0,1\", UUIDs, or all; leave it out for none")
            gpus = NO_GPUS

        ports: dict[str, int] = {}
        wanted = ("notebookPort", "tensorboardPort") if defaults.tensorboard_mode != "off" else ("notebookPort",)
        for key in wanted:
            if item.get(key) is None:
                add(key, "is not set", "give every seat its own host port, e.g. 8888, 8889, … for notebooks and 6006, 6007, … for TensorBoard")
                continue
            port = _as_port(item.get(key))
            if port is None:
                add(key, f"{item.get(key)!r} is not a TCP port", "pick a port from 1 to 65535")
                continue
            ports[key] = port

        binds: dict[str, str] = {}
        for key, default in (("notebookBind", defaults.notebook_bind), ("tensorboardBind", defaults.tensorboard_bind)):
            text = str(item.get(key) or default).strip()
            problem = bind_problem(text)
            if problem:
                add(key, problem, "write 127.0.0.1 for this machine only, or 0.0.0.0 for every interface")
                binds[key] = "0.0.0.0"  # as Docker would read it, for the port clash check
            else:
                binds[key] = normalise_bind(text)
        if (item.get("notebookBind") and not is_loopback(binds["notebookBind"]) and not defaults.tls
                and not defaults.allow_plain_http_on_lan):
            add("notebookBind", f"{binds['notebookBind']} publishes the seat's notebook beyond this machine over plain HTTP",
                "run `make tls STACK=<stack>` (a certificate and key per seat), or bind it to 127.0.0.1")
        if (item.get("tensorboardBind") and defaults.tensorboard_mode != "off" and not is_loopback(binds["tensorboardBind"])
                and not defaults.tensorboard_public):
            add("tensorboardBind", f"TensorBoard has no login and {binds['tensorboardBind']} publishes it beyond this machine",
                "bind it to 127.0.0.1 (and use an SSH tunnel), or set tfbox:tensorboardPublic to true to accept that")

        image = defaults.image
        image_key = "tfbox:image"
        if item.get("image"):
            image_key = f"tfbox:seats[{i}].image"
            try:
                image = parse_image_ref(str(item["image"]).strip())
            except ImageRefError as e:
                add("image", str(e), "write an image such as tensorflow/tensorflow:latest-gpu-jupyter, or leave it out for tfbox:image")
        if gpus.requested and image.cpu_only:
            problems.append(f"{image_key}: {image} is a CPU-only TensorFlow image but tfbox:seats[{i}].gpus asks for "
                            f"{gpus.describe()}. Fix: use a -gpu- tag such as tensorflow/tensorflow:latest-gpu-jupyter.")

        share = _as_bool(item.get("shareGpus", False))
        if share is None:
            add("shareGpus", f"{item.get('shareGpus')!r} is not a boolean", "write true or false")
            share = False
        if share and not gpus.requested:
            add("shareGpus", "is true but the seat has no GPUs", "set gpus on the seat, or leave shareGpus out")

        memory = str(item.get("memory") or defaults.memory).strip()
        cpus = str(item.get("cpus") or defaults.cpus).strip()
        resources, resource_problems = parse_notebook_resources(defaults.shm_size, memory, cpus, defaults.ulimits, gpus.requested,
                                                                defaults.pids_limit)
        for p in resource_problems:
            if p.key == "notebookMemory" and item.get("memory"):
                add("memory", p.problem, p.fix)
            elif p.key == "notebookCpus" and item.get("cpus"):
                add("cpus", p.problem, p.fix)
            # anything else is a stack key, reported by the stack's own check

        seats.append(SeatConfig(
            index=i, name=name, gpus=gpus, notebook_port=ports.get("notebookPort", 0),
            tensorboard_port=ports.get("tensorboardPort", 0), notebook_bind=binds["notebookBind"],
            tensorboard_bind=binds["tensorboardBind"], image=image, resources=resources, share_gpus=share,
        ))

    problems += port_problems(seats, defaults.tensorboard_mode != "off")
    return tuple(seats), problems


def port_problems(seats: Sequence[SeatConfig], tensorboard: bool) -> list[str]:
    """Two published host ports of the seats (notebook or TensorBoard) that Docker could not both bind."""
    published: list[tuple[str, str, int]] = []  # (key, bind, port)
    for s in seats:
        if s.notebook_port:
            published.append((s.key("notebookPort"), s.notebook_bind, s.notebook_port))
        if tensorboard and s.tensorboard_port:
            published.append((s.key("tensorboardPort"), s.tensorboard_bind, s.tensorboard_port))
    problems = []
    for j, (key, bind, port) in enumerate(published):
        for other_key, other_bind, other_port in published[:j]:
            if port == other_port and binds_overlap(bind, other_bind):
                problems.append(f"{key}: host port {port} is also {other_key}. Fix: give every seat's notebook and "
                                "TensorBoard a port of their own.")
                break
    return problems


def password_problems(seats: Sequence[SeatConfig], states: Mapping[str, SeatPasswordState], values: Mapping[str, str] | None,
                      stack: str, require: bool = True) -> list[str]:
    """Each seat's password: set, a secret, long enough, not another seat's; values are checked, never quoted."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for s in seats:
        if seat_name_problem(s.name):
            continue
        key = f"tfbox:passwords.{s.name}"
        set_it = f"`pulumi config set --secret --path '{key}' --stack {stack}` (reads it from stdin)"
        state = states.get(s.name, "missing")
        if state == "missing":
            if require:
                problems.append(f"{key}: seat '{s.name}' has no password. Fix: {set_it}.")
            continue
        if state == "plaintext":
            problems.append(f"{key}: is stored in plaintext in the stack file. Fix: `pulumi config rm --path '{key}' "
                            f"--stack {stack}`, then {set_it}.")
            continue
        value = (values or {}).get(s.name)
        if value is None:
            continue
        why = password_problem(value)
        if why:
            problems.append(f"{key}: {why}. Fix: choose a longer one: {set_it}.")
        elif value in seen:
            problems.append(f"{key}: is the same as seat '{seen[value]}''s password, so each could log in to the "
                            f"other's notebook. Fix: give every seat its own password: {set_it}.")
        else:
            seen[value] = s.name
    return problems


def parse_passwords(text: object) -> dict[str, str] | None:
    """`tfbox:passwords` as the engine passes it (JSON text of the map), or None when it is not a map."""
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    try:
        value = json.loads(str(text))
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}


def stack_file_password_states(value: object) -> dict[str, SeatPasswordState]:
    """Per seat, how a stack file holds `tfbox:passwords`: `{secure: …}` entries are secrets, the rest plaintext."""
    if not isinstance(value, dict):
        return {}
    return {str(k): ("secret" if isinstance(v, dict) and "secure" in v else "plaintext") for k, v in value.items()}

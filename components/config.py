"""Stack configuration: the `tfbox:*` keys, their defaults, and validation.

Everything here is plain Python. The program, the stack-file checker
(`python -m components.config --stack-file Pulumi.<machine>.yaml`) and the tests share
it, so a bad value is reported the same way everywhere: every problem at once, each
naming its key and the fix, before a single resource is declared.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from components.binds import bind_problem, binds_overlap, is_loopback, normalise_bind
from components.docker_host import LOCAL_DOCKER_HOST, docker_host_problems, normalise_docker_host
from components.gpus import GPU_MODES, GpuSpec, GpuSpecError, parse_gpus
from components.hardening import (
    DEFAULT_NOTEBOOK_PIDS_LIMIT,
    DEFAULT_SHM_SIZE,
    GPU_ULIMITS_TEXT,
    NotebookResources,
    parse_notebook_resources,
)
from components.image_ref import ImageRef, ImageRefError, parse_image_ref
from components.kernels import parse_cull_idle
from components.ledger import Claim, ledger_problems
from components.password import password_problem, valid_salt
from components.paths import (
    DEFAULT_HOST_PATH_ROOT,
    host_path_root_problems,
    logs_dir_problems,
    notebooks_host_path_problems,
    outside_root_problem,
)
from components.seat_tls import seat_tls
from components.seats import (
    SeatConfig,
    SeatDefaults,
    SeatPasswordState,
    parse_passwords,
    parse_seats,
    password_problems,
    raw_seats,
    seats_want_gpus,
    stack_file_password_states,
)
from components.ssh import SSH_OPTS_FIX, ssh_opts_problems
from components.tls import TlsError, check_pair, load_cert

NAMESPACE = "tfbox"
CPU_IMAGE = "tensorflow/tensorflow:latest-jupyter"
GPU_IMAGE = "tensorflow/tensorflow:latest-gpu-jupyter"
TENSORBOARD_MODES = ("sidecar", "exec", "off")
DOCKER_TLS_KEYS = ("certPath", "certMaterial", "keyMaterial")  # docker: provider keys that make tcp:// use TLS
STACK_KINDS = ("machine", "local")

ConfigType = Literal["string", "integer", "boolean", "array", "object"]
PasswordState = Literal["secret", "plaintext", "missing"]


@dataclass(frozen=True)
class ConfigKey:
    """One `tfbox:` setting; the README table and Pulumi.yaml are checked against these."""

    name: str
    type: ConfigType
    default: str | int | bool | list[Any] | dict[str, Any] | None
    doc: str
    secret: bool = False

    @property
    def full(self) -> str:
        return f"{NAMESPACE}:{self.name}"


KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("image", "string", "", f"Image tag or `repo@sha256:` digest; empty picks `{CPU_IMAGE}`, or `{GPU_IMAGE}` when GPUs are set."),
    ConfigKey("imageTrackRegistry", "boolean", False, "Re-pull (and replace the containers) when the registry digest of the tag changes."),
    ConfigKey("keepImage", "boolean", True, "Leave the image on the host at `pulumi destroy`."),
    ConfigKey("gpus", "string", "", "`all`, `count=N`, a list of indices `0,1`, or UUIDs `GPU-…`; empty for none."),
    ConfigKey("gpuMode", "string", "device-requests", "`device-requests` (`docker run --gpus`) or `nvidia-runtime` (`--runtime=nvidia` + `NVIDIA_VISIBLE_DEVICES`)."),
    ConfigKey("gpuCheck", "boolean", False, "Run `nvidia-smi -L` with the same GPUs before the notebook starts and check the image's CUDA against the "
              "driver; its output becomes the `gpuCheck` output."),
    ConfigKey("gpuCheckImage", "string", "", "Image for the GPU check; empty uses the notebook image."),
    ConfigKey("password", "string", None, "Notebook password; required (except on a stack with `seats`: see `passwords`), "
              "set with `pulumi config set --secret tfbox:password`.", secret=True),
    ConfigKey("passwordSalt", "string", "", "Random salt of the password's argon2id hash (16-64 letters or digits); `make up`, `make machine` or "
              "`python -m components.password salt` make it. Required."),
    ConfigKey("notebookPort", "integer", 8888, "Host port of the notebook."),
    ConfigKey("notebookBind", "string", "127.0.0.1", "Host IP address the notebook port is published on (`0.0.0.0` for every interface; `localhost` means `127.0.0.1`)."),
    ConfigKey("tlsCert", "string", "", "PEM certificate (chain) the notebook serves HTTPS with; `make tls STACK=…` makes a self-signed one. Empty: plain HTTP."),
    ConfigKey("tlsKey", "string", "", "PEM private key of `tlsCert`; set with `pulumi config set --secret tfbox:tlsKey < key.pem` (or `make tls`).", secret=True),
    ConfigKey("tlsCerts", "object", {}, "Seat name -> PEM certificate, on a stack with `seats`: each seat serves HTTPS with its own "
              "certificate and key; `make tls STACK=…` makes one per seat. Replaces `tlsCert` there (a shared key lets one seat "
              "impersonate another)."),
    ConfigKey("tlsKeys", "object", None, "Seat name -> PEM private key of that seat's `tlsCerts` entry, each a secret "
              "(`pulumi config set --secret --path 'tfbox:tlsKeys.<seat>' < key.pem`, or `make tls`).", secret=True),
    ConfigKey("allowPlainHttpOnLan", "boolean", False, "Must be `true` to publish the notebook beyond loopback without TLS "
              "(password and session cookie cross the network in cleartext)."),
    ConfigKey("tensorboardMode", "string", "sidecar", "`sidecar` (own container), `exec` (inside the notebook container, as the recipe) or `off`."),
    ConfigKey("tensorboardPort", "integer", 6006, "Host port of TensorBoard."),
    ConfigKey("tensorboardBind", "string", "127.0.0.1", "Host IP address TensorBoard is published on (`localhost` means `127.0.0.1`)."),
    ConfigKey("loopbackPublishFiltered", "boolean", False, "`true` once the Docker host drops packets for 127.0.0.1 that "
              "come from other hosts (Docker 28+ does; older: the raw-table rule the preflight warning names): silences "
              "that warning, and skips reading the daemon's version."),
    ConfigKey("tensorboardPublic", "boolean", False, "Must be `true` to publish TensorBoard (which has no login) beyond loopback."),
    ConfigKey("tensorboardProxy", "boolean", False,
              "Serve each notebook's TensorBoard at `<notebook URL>/tensorboard/`, behind the notebook's login and TLS. "
              "Off when absent (stacks made before it keep their notebook); `make up` and `make machine` write `true` "
              "on new stacks. Turning it on replaces the notebook container once (notebooks are kept)."),
    ConfigKey("notebooksVolume", "string", "", "Docker volume for `/tf`; empty means `<namePrefix>-notebooks`."),
    ConfigKey("notebooksHostPath", "string", "", "Absolute host directory to bind at `/tf` instead of a volume; it must lie below "
              "`tfbox:hostPathRoot` (and not be a system or hidden directory or hold the Docker socket)."),
    ConfigKey("hostPathRoot", "string", DEFAULT_HOST_PATH_ROOT, "The machine's data root: `notebooksHostPath` must be a directory "
              "strictly below it (the notebook is root in `/tf`). Set it to where your notebooks directories live, e.g. `/data/tfbox`."),
    ConfigKey("logsVolume", "string", "", "Docker volume for the TensorBoard logs; empty means `<namePrefix>-logs`."),
    ConfigKey("logsDir", "string", "/tf/logs", "Where notebooks write logs and TensorBoard reads them, inside the containers; a directory below `/tf`."),
    ConfigKey("tfLogLevel", "integer", 2, "`TF_CPP_MIN_LOG_LEVEL` in the notebook: 0 shows TensorFlow's C++ info and warnings, 2 only errors, 3 nothing."),
    ConfigKey("keepVolumes", "boolean", True, "Keep the Docker volumes when Pulumi deletes them (`retainOnDelete`)."),
    ConfigKey("protectVolumes", "boolean", False, "Refuse any delete of the volumes (`protect`)."),
    ConfigKey("namePrefix", "string", "", "Prefix of container and volume names; empty means `tfbox-<stack>`."),
    ConfigKey("shmSize", "string", DEFAULT_SHM_SIZE,
              "Size of the notebook's `/dev/shm` (`docker run --shm-size`, e.g. `2g`); TensorFlow input pipelines crash in Docker's 64m."),
    ConfigKey("notebookMemory", "string", "", "Memory limit of the notebook (`docker run --memory`, e.g. `16g`; swap not limited); empty for none."),
    ConfigKey("notebookCpus", "string", "", "CPU limit of the notebook (`docker run --cpus`, e.g. `4` or `1.5`); empty for none."),
    ConfigKey("notebookUlimits", "string", "",
              f"Notebook ulimits `name=soft[:hard],…` (`docker run --ulimit`); empty gives GPU stacks NVIDIA's `{GPU_ULIMITS_TEXT}` "
              "and others Docker's defaults; `none` for Docker's defaults everywhere."),
    ConfigKey("notebookPidsLimit", "integer", DEFAULT_NOTEBOOK_PIDS_LIMIT,
              "Most processes and threads a notebook may run (`docker update --pids-limit`), so a fork bomb stops there "
              "(TensorBoard: 1024); 0 for no pids limits."),
    ConfigKey("cullIdleKernels", "string", "",
              "Shut down kernels idle this long with no browser tab connected (`3600`, `30m`, `1h`; `off`), so a closed tab "
              "frees its GPU memory; empty: `1h` on GPU stacks, `off` otherwise."),
    ConfigKey("stackKind", "string", "machine", "`machine` (previewed on PRs, drift-checked, in `make fleet`) or `local` (your own Docker; CI never runs it)."),
    ConfigKey("seats", "array", [], "Seats sharing this machine, a list of `{name, gpus, notebookPort, tensorboardPort}` (optional per seat: "
              "`memory`, `cpus`, `image`, `notebookBind`, `tensorboardBind`, `shareGpus`); each gets its own notebook, TensorBoard, "
              "volumes, password and GPUs. Empty: one notebook, as the keys above say. See docs/gpus-and-seats.md."),
    ConfigKey("passwords", "object", None, "Seat name -> password, each a secret of 12+ characters, required for every seat: "
              "`pulumi config set --secret --path 'tfbox:passwords.<seat>'` (replaces `tfbox:password` on a stack with seats).", secret=True),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


class ConfigError(ValueError):
    """All problems of a stack's configuration; str() is what the user reads."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "tfbox configuration has {} problem{}:\n{}".format(
                len(problems), "" if len(problems) == 1 else "s", "\n".join(f"  - {p}" for p in problems)
            )
        )


@dataclass(frozen=True)
class Published:
    """A host port a service is published on."""

    service: str
    key: str  # the config key of the port, for messages
    bind: str
    port: int
    internal: int
    login: bool = True  # False: TensorBoard, which anyone who reaches the port may use (components.loopback)


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
    docker_host: str = LOCAL_DOCKER_HOST  # canonical (components.docker_host.normalise_docker_host)
    notebook_resources: NotebookResources = field(default_factory=NotebookResources)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    tls_cert: str = ""  # PEM; the key stays a secret outside the config
    allow_plain_http_on_lan: bool = False
    seats: tuple[SeatConfig, ...] = ()  # empty: the single-seat lab of the keys above
    cull_idle_kernels: int = 0  # seconds (components.kernels); 0: never
    cull_idle_text: str = ""  # tfbox:cullIdleKernels as given: a seats stack's default depends on each seat's GPUs
    stack_kind: str = "machine"  # tfbox:stackKind: a machine's host must be readable (components.host_state), fail closed
    tensorboard_proxy: bool = False  # TensorBoard at <notebook>/tensorboard/ (components.tensorboard_proxy); off with mode off
    loopback_publish_filtered: bool = False  # the host drops crafted packets to 127.0.0.1 (components.loopback)

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
        """The GPUs this stack takes, for the ledger (components.ledger): one claim per seat, or the lab's."""
        if self.seats:
            return [s.claim(self.stack) for s in self.seats]
        return [Claim(stack=self.stack, seat="", gpus=self.gpus, key=f"{NAMESPACE}:gpus")] if self.gpus.requested else []

    def labels(self, role: str) -> dict[str, str]:
        """Labels on every container and volume, so `docker ps --filter label=…` finds a stack's parts."""
        return {"tfbox.project": self.project, "tfbox.stack": self.stack, "tfbox.role": role}


class _Reader:
    """Turns raw values (strings from Pulumi, native types from YAML) into typed ones, collecting problems."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def value(self, name: str) -> Any:
        key = KEYS_BY_NAME[name]
        v = self.raw.get(name)
        if v is None or (isinstance(v, str) and v == "" and key.type != "string"):
            return key.default
        if key.type == "boolean":
            if isinstance(v, bool):
                return v
            if str(v).strip().lower() in ("true", "false"):
                return str(v).strip().lower() == "true"
            self.problems.append(f"{key.full}: {v!r} is not a boolean. Fix: write true or false.")
            return key.default
        if key.type in ("array", "object"):
            return v  # JSON text from the engine or YAML from a stack file; components.seats reads it
        if key.type == "integer":
            try:
                if isinstance(v, bool):
                    raise ValueError
                return int(str(v).strip())
            except ValueError:
                self.problems.append(f"{key.full}: {v!r} is not a whole number. Fix: write a port such as {key.default}.")
                return key.default
        return str(v).strip() if not isinstance(v, (list, tuple)) else v

    def add(self, name: str, problem: str, fix: str) -> None:
        self.problems.append(f"{NAMESPACE}:{name}: {problem}. Fix: {fix}.")


def parse_config(
    raw: Mapping[str, Any],
    *,
    stack: str,
    project: str = "tfbox",
    password_state: PasswordState,
    docker_host: str | None = None,
    docker_tls: bool = False,
    password: str | None = None,
    tls_key_state: PasswordState | None = None,
    tls_key: str | None = None,
    require_salt: bool = True,
    seat_password_states: Mapping[str, SeatPasswordState] | None = None,
    seat_passwords: Mapping[str, str] | None = None,
    require_seat_passwords: bool = True,
    docker_ssh_opts: object = None,
    seat_tls_key_states: Mapping[str, SeatPasswordState] | None = None,
    seat_tls_keys: Mapping[str, str] | None = None,
) -> LabConfig:
    """Validate raw `tfbox:` values (keys without the namespace) and return the typed config.

    `docker_host` is the provider's host (`docker:host` or DOCKER_HOST), `docker_tls` whether client
    TLS material is configured for it (docker:certPath/certMaterial/keyMaterial or DOCKER_CERT_PATH).
    `password` and `tls_key` are the secrets' values when the caller can read them (the program
    can; a committed stack file cannot): checked, never quoted. `tls_key_state` None means the
    key is set per machine and unknown here (the stack-file checker), so TLS is not required.
    `seat_password_states`/`seat_passwords` are `tfbox:passwords` per seat (how each is given, the values
    where readable); `require_seat_passwords` False lets a committed stack file leave them to each machine.
    `docker_ssh_opts` is the stack's `docker:sshOpts` (never DOCKER_SSH_OPTS, the user's own): only safe options.
    `seat_tls_key_states`/`seat_tls_keys` are `tfbox:tlsKeys` the same way (components.seat_tls).
    Raises ConfigError listing every problem.
    """
    r = _Reader(raw)
    host_text = docker_host or LOCAL_DOCKER_HOST
    r.problems.extend(f"docker:host: {p}" for p in docker_host_problems(host_text, tls=docker_tls))
    r.problems.extend(f"docker:sshOpts: {p}. Fix: {SSH_OPTS_FIX}." for p in ssh_opts_problems(docker_ssh_opts))
    host = normalise_docker_host(host_text, tls=docker_tls)
    warnings: list[str] = []
    for name in raw:
        if name not in KEYS_BY_NAME:
            close = difflib.get_close_matches(name, KEYS_BY_NAME, n=1)
            hint = f"did you mean {NAMESPACE}:{close[0]}?" if close else "see the config reference in docs/configuration.md"
            r.add(name, "is not a tfbox setting", hint)

    try:
        gpus = parse_gpus(r.value("gpus"))
    except GpuSpecError as e:
        r.add("gpus", str(e), "write all, count=N, or indices/UUIDs separated by commas, e.g. 0,1")
        gpus = GpuSpec("none")

    seat_items, seat_shape = raw_seats(r.value("seats"))
    r.problems += seat_shape
    with_seats = bool(seat_items)
    any_gpus = gpus.requested or (with_seats and seats_want_gpus(r.value("seats")))
    if with_seats and gpus.requested:
        r.add("gpus", "is set but the stack declares tfbox:seats, whose GPUs are per seat",
              "move the GPUs to the seats (`gpus:` on each seat) and `pulumi config rm tfbox:gpus`")
    image_text = r.value("image") or (GPU_IMAGE if any_gpus else CPU_IMAGE)
    try:
        image = parse_image_ref(image_text)
    except ImageRefError as e:
        r.add("image", str(e), f"use e.g. {GPU_IMAGE if any_gpus else CPU_IMAGE}")
        image = parse_image_ref(CPU_IMAGE)
    if gpus.requested and image.cpu_only:
        r.add("image", f"{image} is a CPU-only TensorFlow image but tfbox:gpus asks for {gpus.describe()}",
              f"use a -gpu- tag such as {GPU_IMAGE}, or clear tfbox:gpus")

    gpu_mode = r.value("gpuMode")
    if gpu_mode not in GPU_MODES:
        r.add("gpuMode", f"unknown mode {gpu_mode!r}", "write device-requests or nvidia-runtime")
    elif gpu_mode == "nvidia-runtime" and gpus.kind == "count":
        r.add("gpuMode", "nvidia-runtime takes GPU indices or all, not count=N",
              "list the indices in tfbox:gpus (e.g. 0,1) or use gpuMode device-requests")

    gpu_check = r.value("gpuCheck")
    if gpu_check and not any_gpus:
        r.add("gpuCheck", "is true but tfbox:gpus selects no GPU", "set tfbox:gpus or set gpuCheck to false")
    gpu_check_image: ImageRef | None = None
    if r.value("gpuCheckImage"):
        try:
            gpu_check_image = parse_image_ref(r.value("gpuCheckImage"))
        except ImageRefError as e:
            r.add("gpuCheckImage", str(e), "leave it empty to use the notebook image")

    if with_seats and password_state != "missing":
        r.add("password", "is set but the stack declares tfbox:seats, whose passwords are tfbox:passwords.<seat>",
              "move it to a seat: `pulumi config get tfbox:password | pulumi config set --secret --path 'tfbox:passwords.<seat>'`, "
              "then `pulumi config rm tfbox:password`")
    elif with_seats:
        pass
    elif password_state == "missing":
        r.add("password", "is not set", "run `pulumi config set --secret tfbox:password` (or `make up` on the dev stack)")
    elif password_state == "plaintext":
        r.add("password", "is stored in plaintext in the stack file",
              "run `pulumi config rm tfbox:password` then `pulumi config set --secret tfbox:password`")
    elif password is not None and (why := password_problem(password)):
        r.add("password", why, f"choose a longer one: `pulumi config set --secret tfbox:password --stack {stack}` "
              "(reads it from stdin; leave it unset on the dev stack and `make up` generates one)")
    if not with_seats:
        for name in ("tlsCerts", "tlsKeys"):
            given = parse_passwords(r.value("tlsCerts")) != {} if name == "tlsCerts" else seat_tls_key_states
            if given:
                r.add(name, "is set but the stack declares no tfbox:seats", "use tfbox:tlsCert and tfbox:tlsKey (`make tls`), "
                      f"and `pulumi config rm {NAMESPACE}:{name}`")
    salt = r.value("passwordSalt")
    salt_fix = f"run `pulumi config set --plaintext tfbox:passwordSalt $(python -m components.password salt) --stack {stack}` (`make up` does it by itself)"
    if not salt and require_salt:
        r.add("passwordSalt", "is not set (the password hash needs a random salt made once per stack)", salt_fix)
    elif salt and not valid_salt(salt):
        r.add("passwordSalt", "must be 16 to 64 letters or digits", salt_fix)

    ports: dict[str, int] = {}
    for name in ("notebookPort", "tensorboardPort"):
        port = r.value(name)
        if not 1 <= port <= 65535:
            r.add(name, f"{port} is not a TCP port", "pick a port from 1 to 65535")
        ports[name] = port
    binds: dict[str, str] = {}
    valid_binds = True
    for name in ("notebookBind", "tensorboardBind"):
        bind = r.value(name)
        problem = bind_problem(bind)
        if problem:
            valid_binds = False
            r.add(name, problem, "write 127.0.0.1 for this machine only, or 0.0.0.0 for every interface")
        else:
            bind = normalise_bind(bind)
        binds[name] = bind

    seat_certs = parse_passwords(r.value("tlsCerts"))  # the same shape as tfbox:passwords: a map, JSON text from the engine
    tls_cert = _check_tls(r, stack, binds["notebookBind"], tls_key_state, tls_key,
                          seat_tls=with_seats and bool(seat_certs or seat_tls_key_states))
    allow_plain = r.value("allowPlainHttpOnLan")

    tb_mode = r.value("tensorboardMode")
    if tb_mode not in TENSORBOARD_MODES:
        r.add("tensorboardMode", f"unknown mode {tb_mode!r}", "write sidecar, exec or off")
    tb_public = r.value("tensorboardPublic")
    if tb_mode != "off" and valid_binds and not is_loopback(binds["tensorboardBind"]) and not tb_public:
        r.add("tensorboardBind", f"TensorBoard has no login and {binds['tensorboardBind']} publishes it beyond this machine",
              "bind it to 127.0.0.1 (and use an SSH tunnel), or set tfbox:tensorboardPublic to true to accept that")
    tb_proxy = r.value("tensorboardProxy")
    if tb_proxy and tb_mode == "off":
        # new stacks get the key written true: turning TensorBoard off then must not need a second edit
        warnings.append(f"{NAMESPACE}:tensorboardProxy is true but {NAMESPACE}:tensorboardMode is off: there is no "
                        "TensorBoard to serve, so the notebook serves no /tensorboard/ (set tensorboardMode to sidecar "
                        "or exec for it, or tensorboardProxy to false to silence this)")
        tb_proxy = False
    if (tb_mode in TENSORBOARD_MODES and tb_mode != "off" and ports["notebookPort"] == ports["tensorboardPort"]
            and binds_overlap(*(b if bind_problem(b) is None else "0.0.0.0"  # as Docker would read it
                                for b in (binds["notebookBind"], binds["tensorboardBind"])))):
        r.add("tensorboardPort", f"host port {ports['notebookPort']} is also the notebook's port, {NAMESPACE}:notebookPort",
              f"give {NAMESPACE}:tensorboardPort and {NAMESPACE}:notebookPort different ports (6006 and 8888 are usual)")

    stack_slug = re.sub(r"[^a-zA-Z0-9_.-]", "-", stack)
    prefix = r.value("namePrefix") or f"tfbox-{stack_slug}"
    if not _NAME_RE.match(prefix):
        r.add("namePrefix", f"{prefix!r} is not a valid container name prefix", "use letters, digits, '.', '_' or '-'")
    volumes: dict[str, str] = {}
    for name, suffix in (("notebooksVolume", "notebooks"), ("logsVolume", "logs")):
        vol = r.value(name) or f"{prefix}-{suffix}"
        if not _NAME_RE.match(vol):
            r.add(name, f"{vol!r} is not a valid Docker volume name", "use letters, digits, '.', '_' or '-'")
        volumes[name] = vol
    if volumes["notebooksVolume"] == volumes["logsVolume"]:
        r.add("logsVolume", "is the same volume as notebooksVolume", "give the logs their own volume")
    host_path = r.value("notebooksHostPath")
    sockets = (*((host[len("unix://"):],) if host.startswith("unix://") else ()), LOCAL_DOCKER_HOST[len("unix://"):])
    root = r.value("hostPathRoot") or DEFAULT_HOST_PATH_ROOT
    root_problems = host_path_root_problems(root, sockets)
    for problem in root_problems:
        r.add("hostPathRoot", problem, f"choose a directory that holds only notebooks directories, such as {DEFAULT_HOST_PATH_ROOT} "
              "or /data/tfbox, or `pulumi config rm tfbox:hostPathRoot` for the default")
    path_problems = notebooks_host_path_problems(host_path, sockets) if host_path else []
    for problem in path_problems:
        r.add("notebooksHostPath", problem, f"bind a directory of its own below the data root, such as {root.rstrip('/')}/notebooks, "
              "or leave it empty for a Docker volume")
    if host_path and not path_problems and not root_problems and (outside := outside_root_problem(host_path, root)):
        parent, below = _parent(host_path), f"{root.rstrip('/')}/notebooks"
        if host_path.rstrip("/") == root.rstrip("/"):
            fix = f"bind a directory below the root, such as {below}"
        elif not host_path_root_problems(parent, sockets):
            fix = (f"bind a directory below {root}; or, to keep {host_path} where it is, set the data root that holds it: "
                   f"`pulumi config set tfbox:hostPathRoot {parent}` (a directory only for notebooks)")
        else:
            fix = f"move the directory below a data root of its own (e.g. `mv {host_path} {below}`) and bind that"
        r.add("notebooksHostPath", outside, fix)
    logs_dir = r.value("logsDir")
    for problem in logs_dir_problems(logs_dir):
        r.add("logsDir", problem, "use a directory below /tf such as /tf/logs")
    logs_dir = logs_dir.rstrip("/")
    tf_log_level = r.value("tfLogLevel")
    if not 0 <= tf_log_level <= 3:
        r.add("tfLogLevel", f"{tf_log_level} is not a TensorFlow log level", "write 0 (everything), 1, 2 (errors only) or 3 (nothing)")

    resources, resource_problems = parse_notebook_resources(
        r.value("shmSize"), r.value("notebookMemory"), r.value("notebookCpus"), r.value("notebookUlimits"), gpus.requested,
        r.value("notebookPidsLimit"))
    for p in resource_problems:
        r.add(p.key, p.problem, p.fix)
    cull_idle = 0
    try:
        cull_idle = parse_cull_idle(r.value("cullIdleKernels"), gpus.requested)
        parse_cull_idle(r.value("cullIdleKernels"), True)  # a seats stack reads it per seat: valid either way
    except ValueError as e:
        r.add("cullIdleKernels", str(e), "write seconds or a duration such as 3600, 30m or 1h, or off")
    if r.value("stackKind") not in STACK_KINDS:
        r.add("stackKind", f"unknown kind {r.value('stackKind')!r}",
              "write machine (a shared machine CI previews) or local (your own Docker, never run by CI)")

    seats: tuple[SeatConfig, ...] = ()
    if with_seats:
        for name in ("notebooksVolume", "logsVolume", "notebooksHostPath"):
            if r.value(name):
                r.add(name, "is set but the stack declares tfbox:seats; each seat gets its own volumes "
                      "<namePrefix>-<seat>-notebooks and -logs", f"`pulumi config rm tfbox:{name}`")
        seats, seat_problems = parse_seats(r.value("seats"), SeatDefaults(
            image=image, notebook_bind=binds["notebookBind"] if not bind_problem(binds["notebookBind"]) else "127.0.0.1",
            tensorboard_bind=binds["tensorboardBind"] if not bind_problem(binds["tensorboardBind"]) else "127.0.0.1",
            memory=r.value("notebookMemory"), cpus=r.value("notebookCpus"), shm_size=r.value("shmSize"),
            ulimits=r.value("notebookUlimits"), pids_limit=r.value("notebookPidsLimit"), tensorboard_mode=tb_mode,
            tensorboard_public=tb_public, tls=bool(tls_cert or seat_certs), allow_plain_http_on_lan=allow_plain,
        ))
        r.problems += seat_problems
        pairs = seat_tls(seats, seat_certs, seat_tls_key_states or {}, seat_tls_keys, tls_cert, stack,
                         require_keys=require_seat_passwords)
        r.problems += pairs.problems
        warnings += pairs.warnings
        if pairs.own and (tls_cert or tls_key_state in ("secret", "plaintext")):
            warnings.append(f"{NAMESPACE}:tlsCert: is not used: every seat has its own (tfbox:tlsCerts). Fix: `pulumi config rm "
                            f"{NAMESPACE}:tlsCert --stack {stack}` and `pulumi config rm {NAMESPACE}:tlsKey --stack {stack}`")
        seats = tuple(replace(s, tls_cert=pairs.certs.get(s.name, ""), tls_own=s.name in pairs.own) for s in seats)
        for s in seats:
            if gpu_mode == "nvidia-runtime" and s.gpus.kind == "count":
                r.problems.append(f"{s.key('gpus')}: nvidia-runtime takes GPU indices or all, not count=N. Fix: list the "
                                  "indices (e.g. \"0,1\") or use gpuMode device-requests.")
        r.problems += password_problems(seats, seat_password_states or {}, seat_passwords, stack, require=require_seat_passwords)
        r.problems += ledger_problems([s.claim(stack) for s in seats])

    flags = {name: r.value(name) for name in ("imageTrackRegistry", "keepImage", "keepVolumes", "protectVolumes")}
    if r.problems:
        raise ConfigError(r.problems)
    if image.tag == "latest" or (not image.pinned and any_gpus):
        warnings.append(f"{NAMESPACE}:image: {image} is a moving tag; pin a digest (repo@sha256:…) so every machine runs the same bits")
    return LabConfig(
        stack=stack, project=project, image=image, image_track_registry=flags["imageTrackRegistry"],
        keep_image=flags["keepImage"], gpus=gpus, gpu_mode=gpu_mode, gpu_check=gpu_check,
        gpu_check_image=gpu_check_image, password_state=password_state, password_salt=salt,
        notebook_port=ports["notebookPort"], notebook_bind=binds["notebookBind"], tensorboard_mode=tb_mode,
        tensorboard_port=ports["tensorboardPort"], tensorboard_bind=binds["tensorboardBind"],
        tensorboard_public=tb_public, notebooks_volume=volumes["notebooksVolume"], notebooks_host_path=host_path,
        logs_volume=volumes["logsVolume"], logs_dir=logs_dir, keep_volumes=flags["keepVolumes"],
        protect_volumes=flags["protectVolumes"], name_prefix=prefix, tf_log_level=tf_log_level,
        docker_host=host, notebook_resources=resources, warnings=tuple(warnings), tls_cert=tls_cert,
        allow_plain_http_on_lan=allow_plain, seats=seats, cull_idle_kernels=cull_idle,
        cull_idle_text=str(r.value("cullIdleKernels")), stack_kind=str(r.value("stackKind")),
        tensorboard_proxy=tb_proxy, loopback_publish_filtered=r.value("loopbackPublishFiltered"),
    )


def _parent(path: str) -> str:
    """The directory holding `path`: what a stack bound outside the data root sets as its root."""
    return path.rstrip("/").rsplit("/", 1)[0] or "/"


def _check_tls(r: _Reader, stack: str, bind: str, key_state: PasswordState | None, key: str | None, seat_tls: bool = False) -> str:
    """The notebook's certificate (\"\" for plain HTTP), checking it against its key and the bind address;
    `seat_tls`: the seats have certificates of their own, so no shared one is needed."""
    cert = str(r.value("tlsCert")).strip()
    cert = cert + "\n" if cert else ""  # the engine drops a value's final newline; a PEM file ends with one
    make_tls = f"run `make tls STACK={stack}` (a self-signed certificate kept in the stack config)"
    own = (f"or give your own: `pulumi config set --plaintext tfbox:tlsCert --stack {stack} < cert.pem` and "
           f"`pulumi config set --secret tfbox:tlsKey --stack {stack} < key.pem`")
    if key_state == "plaintext":
        r.add("tlsKey", "is stored in plaintext in the stack file",
              f"run `pulumi config rm tfbox:tlsKey --stack {stack}` then `pulumi config set --secret tfbox:tlsKey --stack {stack} < key.pem`")
    if cert:
        try:
            load_cert(cert)
        except TlsError as e:
            r.add("tlsCert", str(e), f"{make_tls}, {own}")
            return ""
        if key_state == "missing":
            r.add("tlsKey", "is not set but tfbox:tlsCert is", f"`pulumi config set --secret tfbox:tlsKey --stack {stack} < key.pem`, or {make_tls}")
        elif key is not None:
            for problem in check_pair(cert, key):
                name, _, text = problem.partition(" ")
                r.add(name, text, f"{make_tls}, {own}")
        return cert
    if key_state in ("secret", "plaintext"):
        r.add("tlsCert", "is not set but tfbox:tlsKey is", f"`pulumi config set --plaintext tfbox:tlsCert --stack {stack} < cert.pem`, or {make_tls}")
    elif key_state == "missing" and not seat_tls and not bind_problem(bind) and not is_loopback(bind) and not r.value("allowPlainHttpOnLan"):
        r.add("notebookBind", f"{bind} publishes the notebook beyond this machine over plain HTTP, so the password and "
              "session cookie cross the network in cleartext",
              f"{make_tls}, {own}; or bind it to 127.0.0.1 and use an SSH tunnel; or set tfbox:allowPlainHttpOnLan "
              "to true to accept the risk")
    return ""


# --- stack files -------------------------------------------------------------------------


@dataclass(frozen=True)
class StackFile:
    stack: str
    path: Path
    raw: dict[str, Any]
    docker_host: str | None
    password_state: PasswordState
    docker_tls: bool = False
    tls_key_state: PasswordState = "missing"
    seat_password_states: dict[str, SeatPasswordState] = field(default_factory=dict)
    ssh_opts: object = None  # docker:sshOpts as the file has it
    seat_tls_key_states: dict[str, SeatPasswordState] = field(default_factory=dict)


# libyaml's loader where PyYAML has it: every `up` reads the sibling stack files, ten times faster in C
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_stack_file(path: Path) -> StackFile:
    """Read `Pulumi.<stack>.yaml` the way Pulumi does: `config:` with namespaced keys."""
    doc = yaml.load(path.read_text(), Loader=_YAML_LOADER) or {}
    config = doc.get("config") or {}
    raw: dict[str, Any] = {}
    docker_host = None
    docker_tls = False
    state: PasswordState = "missing"
    tls_key_state: PasswordState = "missing"
    seat_states: dict[str, SeatPasswordState] = {}
    ssh_opts: object = None
    seat_tls_states: dict[str, SeatPasswordState] = {}
    for full, value in config.items():
        ns, _, name = str(full).partition(":")
        if ns == "docker" and name == "host":
            docker_host = str(value)
        if ns == "docker" and name == "sshOpts":
            ssh_opts = value
        if ns == "docker" and name in DOCKER_TLS_KEYS and value:
            docker_tls = True
        if ns != NAMESPACE:
            continue
        if name == "passwords":
            seat_states = stack_file_password_states(value)
            continue
        if name == "tlsKeys":
            seat_tls_states = stack_file_password_states(value)
            continue
        if name in ("password", "tlsKey"):
            given: PasswordState = "secret" if isinstance(value, dict) and "secure" in value else "plaintext"
            if name == "password":
                state = given
            else:
                tls_key_state = given
            continue
        raw[name] = value
    stack = path.name[len("Pulumi."):-len(".yaml")]
    return StackFile(stack, path, raw, docker_host, state, docker_tls, tls_key_state, seat_states, ssh_opts, seat_tls_states)


def stack_files(project_dir: Path) -> list[Path]:
    return sorted(p for p in project_dir.glob("Pulumi.*.yaml") if p.name != "Pulumi.yaml")


def _same_host(a: str, b: str) -> bool:
    """Hosts are canonical in LabConfig; the local socket and Docker Desktop's pipe are the same local daemon."""
    local = {LOCAL_DOCKER_HOST, normalise_docker_host("npipe:////./pipe/docker_engine")}
    return a == b or (a in local and b in local)


def cross_stack_problems(this: LabConfig, others: Iterable[LabConfig]) -> list[str]:
    """Clashes with other stacks of this project that drive the same Docker host.

    Only the committed stack files are known, so this catches the common mistake (a
    second stack copied from the first onto the same machine), not every clash.
    """
    problems: list[str] = []
    for other in others:
        if other.stack == this.stack or not _same_host(this.docker_host, other.docker_host):
            continue
        for mine in this.published:
            for theirs in other.published:
                if mine.port == theirs.port and binds_overlap(mine.bind, theirs.bind):
                    problems.append(
                        f"{NAMESPACE}:{mine.key}: host port {mine.port} on {this.docker_host} is also used by "
                        f"stack '{other.stack}' ({theirs.service}). Fix: pick another port for one of them."
                    )
        if this.name_prefix == other.name_prefix:
            problems.append(f"{NAMESPACE}:namePrefix: '{this.name_prefix}' is also used by stack '{other.stack}' on the "
                            "same host. Fix: give each stack its own prefix.")
            continue  # every volume clashes too: the prefix is the fix
        their_volumes = other.volumes()
        for name, key in this.volumes().items():
            if name in their_volumes:
                problems.append(f"{key}: the volume {name} on {this.docker_host} is stack '{other.stack}''s ({their_volumes[name]}); "
                                "mounting it would give this stack that one's files. Fix: give this stack a volume of its own "
                                "(leave tfbox:notebooksVolume and tfbox:logsVolume empty for <namePrefix>-notebooks and -logs).")
        my_path, their_path = this.notebooks_host_path.rstrip("/"), other.notebooks_host_path.rstrip("/")
        if my_path and their_path and (my_path == their_path or my_path.startswith(their_path + "/")
                                       or their_path.startswith(my_path + "/")):
            problems.append(f"{NAMESPACE}:notebooksHostPath: {this.notebooks_host_path} on {this.docker_host} overlaps stack "
                            f"'{other.stack}''s {other.notebooks_host_path}; each would read and write the other's notebooks. "
                            "Fix: give each stack a directory of its own, side by side below the data root.")
    return problems


def load_other_stacks(project_dir: Path, project: str, exclude: str) -> list[LabConfig]:
    """The other committed stacks that parse; their own problems are theirs to report."""
    out: list[LabConfig] = []
    for path in stack_files(project_dir):
        sf = read_stack_file(path)
        if sf.stack == exclude:
            continue
        try:
            out.append(parse_config(sf.raw, stack=sf.stack, project=project, password_state=_unset_password(sf),
                                    docker_host=sf.docker_host, docker_tls=sf.docker_tls, require_salt=False,
                                    require_seat_passwords=False))
        except ConfigError:
            continue
    return out


def _unset_password(sf: StackFile) -> PasswordState:
    """A committed file's password as the checker takes it: one left unset is set per machine (`make up`),
    except on a stack with seats, which has none (its seats' passwords are tfbox:passwords)."""
    if sf.password_state != "missing" or raw_seats(sf.raw.get("seats"))[0]:
        return sf.password_state
    return "secret"


def check_stack_file(path: Path, project: str = "tfbox", defaults: Mapping[str, Any] | None = None,
                     siblings: bool = True) -> LabConfig:
    """Validate one committed stack file, including clashes with its siblings.

    A committed file may leave the password, its salt and the TLS key unset: they are made per
    stack (`make up`, `make machine`, `make tls`), and the program refuses to run without them.
    `defaults` are the project's own (Pulumi.yaml `config:`), which Pulumi applies under the file's;
    `siblings` False leaves out the clashes with the other stack files (a tool looking at one lab).
    """
    sf = read_stack_file(path)
    if defaults:
        sf = replace(sf, raw={**defaults, **sf.raw})
    state: PasswordState = _unset_password(sf)
    tls_state = None if sf.tls_key_state == "missing" else sf.tls_key_state
    cfg = parse_config(sf.raw, stack=sf.stack, project=project, password_state=state, docker_host=sf.docker_host,
                       docker_tls=sf.docker_tls, tls_key_state=tls_state, require_salt=False,
                       seat_password_states=sf.seat_password_states, require_seat_passwords=False,
                       docker_ssh_opts=sf.ssh_opts, seat_tls_key_states=sf.seat_tls_key_states)
    problems = cross_stack_problems(cfg, load_other_stacks(path.parent, project, sf.stack)) if siblings else []
    if problems:
        raise ConfigError(problems)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check tfbox stack files without Pulumi or Docker.")
    parser.add_argument("--stack-file", type=Path, action="append", required=True)
    args = parser.parse_args(argv)
    status = 0
    for path in args.stack_file:
        try:
            cfg = check_stack_file(path)
        except ConfigError as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
            continue
        except (OSError, yaml.YAMLError) as e:
            print(f"{path}: cannot read: {e}", file=sys.stderr)
            status = 1
            continue
        for w in cfg.warnings:
            print(f"{path}: warning: {w}", file=sys.stderr)
        gpus = (", ".join(f"seat {s.name}: {s.gpus.describe()}" for s in cfg.seats) if cfg.seats
                else f"{cfg.gpus.describe()} GPUs")
        print(f"{path}: ok ({gpus}, image {cfg.image}, TensorBoard {cfg.tensorboard_mode})")
    return status


if __name__ == "__main__":
    sys.exit(main())

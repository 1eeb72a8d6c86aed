"""Container hardening and notebook resources: what each tfbox container may do, as plain data.

Docker's and Jupyter docker-stacks' own guidance, applied per role:
- every container: `no-new-privileges`, so a setuid binary in the image cannot gain privileges;
- TensorBoard (serves files, has no login): an unprivileged numeric user that needs no passwd
  entry, a read-only root filesystem with a small tmpfs at /tmp (where TensorBoard keeps its
  `.tensorboard-info` and Keras its cache when HOME is not writable), every capability dropped;
- the notebook (a root shell by design, see docs/security.md): an init process that reaps the
  zombies kernels leave, a rotated container log (ipykernel copies fd 1/2 output there), a
  `/dev/shm` big enough for input pipelines, NVIDIA's ulimits on GPU stacks, optional memory and
  CPU limits, and the capabilities nothing in a notebook needs dropped.

No provider or Pulumi here: each backend renders these (components.docker.hardening for Docker).
`cpus_readback` stays here because the config check needs it: a CPU count that the provider reads
back spelled otherwise would replace the notebook on every `up`, so it is refused at preview.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

NO_NEW_PRIVILEGES = "no-new-privileges"
# nobody:nogroup in Debian/Ubuntu (TensorFlow's images): numeric, so it works in any image.
UNPRIVILEGED_USER = "65534:65534"
TENSORBOARD_TMPFS = (("/tmp", "rw,noexec,nosuid,nodev,size=64m"),)
# Raw sockets (ARP/DNS spoofing on the bridge), device nodes, audit writes, chroot, file capabilities:
# nothing a notebook, pip or TensorFlow does needs them. DAC_OVERRIDE/CHOWN/SETUID… stay: root must
# still write a bind-mounted notebook directory owned by a host user, and apt drops to its own user.
# Spelled with CAP_, as Docker 20.10+ stores and the provider reads them back (without it: a replacement
# on every `up`); `ALL` stays as it is.
NOTEBOOK_CAP_DROP = ("CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SYS_CHROOT")
ALL_CAPABILITIES = "ALL"
LOG_OPTS = (("max-file", "3"), ("max-size", "10m"))  # at most 30 MB of container log per notebook

MIB = 1024 * 1024
GIB = 1024 * MIB
DEFAULT_SHM_SIZE = "1g"  # what NVIDIA runs TensorFlow containers with; Docker's 64 MB crashes data loaders
MIN_NOTEBOOK_MEMORY = 512 * MIB  # Jupyter plus an imported TensorFlow needs about this much
# NVIDIA's recommended `docker run --ulimit memlock=-1 --ulimit stack=67108864` for its TF containers.
GPU_ULIMITS_TEXT = "memlock=-1,stack=67108864"
NO_ULIMITS = "none"
# At most this many processes and threads in a notebook (`docker run --pids-limit`): a fork bomb in a cell (or a
# runaway `multiprocessing` pool) stops there instead of exhausting the host's PIDs, which every other seat and
# the host itself share. TensorFlow starts about two threads per core per process, so a few kernels on a big
# box stay far below it; `tfbox:notebookPidsLimit` raises it (or 0: no limit).
DEFAULT_NOTEBOOK_PIDS_LIMIT = 4096
MIN_NOTEBOOK_PIDS_LIMIT = 64  # Jupyter, a kernel and TensorFlow's first threads
TENSORBOARD_PIDS_LIMIT = 1024  # a thread per request; it starts no processes
# The names `docker run --ulimit` knows (Docker's go-units).
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int

    def __str__(self) -> str:
        return f"{self.name}={self.soft}" if self.soft == self.hard else f"{self.name}={self.soft}:{self.hard}"


@dataclass(frozen=True)
class NotebookResources:
    """What the notebook may use; bytes and nano-CPUs, like the Docker API and Kubernetes quantities."""

    shm_bytes: int = GIB
    memory_bytes: int | None = None
    nano_cpus: int | None = None
    ulimits: tuple[Ulimit, ...] = ()
    pids_limit: int | None = DEFAULT_NOTEBOOK_PIDS_LIMIT  # None: no limit


@dataclass(frozen=True)
class ContainerHardening:
    """One container's security and resource settings; empty fields leave Docker's default."""

    security_opts: tuple[str, ...] = (NO_NEW_PRIVILEGES,)
    user: str | None = None
    read_only: bool = False
    tmpfs: tuple[tuple[str, str], ...] = ()
    cap_drop: tuple[str, ...] = ()
    init: bool | None = None
    log_opts: tuple[tuple[str, str], ...] = ()
    shm_bytes: int | None = None
    memory_bytes: int | None = None
    nano_cpus: int | None = None
    ulimits: tuple[Ulimit, ...] = field(default=())
    pids_limit: int | None = None  # applied by components.docker.pids (the docker provider has no input for it)


def notebook_hardening(resources: NotebookResources) -> ContainerHardening:
    return ContainerHardening(
        cap_drop=NOTEBOOK_CAP_DROP, init=True, log_opts=LOG_OPTS, shm_bytes=resources.shm_bytes,
        memory_bytes=resources.memory_bytes, nano_cpus=resources.nano_cpus, ulimits=resources.ulimits,
        pids_limit=resources.pids_limit,
    )


def tensorboard_hardening(pids_limit: int | None = TENSORBOARD_PIDS_LIMIT) -> ContainerHardening:
    """TensorBoard reads the logs read-only and serves HTTP on an unprivileged port: it needs nothing else."""
    return ContainerHardening(user=UNPRIVILEGED_USER, read_only=True, tmpfs=TENSORBOARD_TMPFS, cap_drop=(ALL_CAPABILITIES,),
                              pids_limit=pids_limit)


def gpu_check_hardening() -> ContainerHardening:
    # The NVIDIA hook works outside the container; nvidia-smi only opens the device nodes it is given.
    return ContainerHardening()


# --- parsing the config values ------------------------------------------------------------------

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": MIB, "g": GIB, "t": 1024 * GIB}


def parse_size(text: str) -> int:
    """`docker run --shm-size/--memory` sizes (binary units: 1g = 1024m), in bytes, whole MiB only.

    Whole MiB because the docker provider takes and reads back these sizes in MiB.
    """
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a size")
    value = Decimal(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != value.to_integral_value() or int(value) % MIB:
        raise ValueError(f"{text!r} is not a whole number of MiB")
    return int(value)


def format_size(n: int) -> str:
    return f"{n // GIB}g" if n % GIB == 0 else f"{n // MIB}m"


def parse_cpus(text: str) -> int:
    """`docker run --cpus` (1.5 = one and a half CPUs) in nano-CPUs, as Docker's API takes them."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{text!r} is not a positive number")
    nano = value * 1_000_000_000
    if nano != nano.to_integral_value():
        raise ValueError(f"{text!r} has more than 9 decimals")
    return int(nano)


def _limit(text: str) -> int:
    n = int(text)
    if n < -1:
        raise ValueError
    return n


def parse_ulimits(text: str) -> tuple[Ulimit, ...]:
    """`name=soft[:hard]` items separated by commas, as `docker run --ulimit` takes them; -1 is unlimited."""
    out: dict[str, Ulimit] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        name, sep, limits = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in ULIMIT_NAMES:
            raise ValueError(f"{item!r} is not name=limit with a name `docker run --ulimit` knows")
        soft_text, _, hard_text = limits.partition(":")
        try:
            soft = _limit(soft_text)
            hard = _limit(hard_text) if hard_text else soft
        except ValueError:
            raise ValueError(f"{item!r} needs whole numbers (or -1 for unlimited)") from None
        if hard != -1 and (soft == -1 or soft > hard):
            raise ValueError(f"{item!r} has a soft limit above its hard limit")
        if name in out:
            raise ValueError(f"{name} is given twice")
        out[name] = Ulimit(name, soft, hard)
    return tuple(sorted(out.values(), key=lambda u: u.name))


@dataclass(frozen=True)
class Problem:
    key: str
    problem: str
    fix: str


def parse_notebook_resources(shm_size: str, memory: str, cpus: str, ulimits: str,
                             gpus: bool, pids_limit: int = DEFAULT_NOTEBOOK_PIDS_LIMIT) -> tuple[NotebookResources, list[Problem]]:
    """The notebook's resources from the `tfbox:` values, and every problem with its key and fix.

    `ulimits` empty means NVIDIA's recommended ones on GPU stacks and Docker's defaults otherwise.
    """
    problems: list[Problem] = []
    shm = GIB
    try:
        shm = parse_size(shm_size or DEFAULT_SHM_SIZE)
        if shm < MIB:
            raise ValueError(f"{shm_size!r} is below 1 MiB")
    except ValueError as e:
        problems.append(Problem("shmSize", str(e), f"write a size such as {DEFAULT_SHM_SIZE} or 512m"))
    mem: int | None = None
    if memory:
        try:
            mem = parse_size(memory)
            if mem < MIN_NOTEBOOK_MEMORY:
                raise ValueError(f"{memory!r} is too little for Jupyter and TensorFlow")
        except ValueError as e:
            problems.append(Problem("notebookMemory", str(e), "write a size of at least 512m, such as 16g, or leave it empty for no limit"))
            mem = None
    if mem is not None and shm >= mem:
        problems.append(Problem("shmSize", f"{format_size(shm)} is not below tfbox:notebookMemory {format_size(mem)} "
                                "(/dev/shm counts against the memory limit)", "lower shmSize or raise notebookMemory"))
    nano: int | None = None
    if cpus:
        try:
            nano = parse_cpus(cpus)
            shown = cpus_readback(nano)
            if Decimal(shown) * 1_000_000_000 != nano:
                raise ValueError(f"the docker provider reads {cpus!r} back as {shown!r} and would replace the notebook "
                                 "on every up")
        except ValueError as e:
            problems.append(Problem("notebookCpus", str(e), "write a number of CPUs such as 4 or 1.5, or leave it empty for no limit"))
            nano = None
    limits: tuple[Ulimit, ...] = ()
    text = ulimits.strip() or (GPU_ULIMITS_TEXT if gpus else "")
    if text.lower() != NO_ULIMITS:
        try:
            limits = parse_ulimits(text)
        except ValueError as e:
            problems.append(Problem("notebookUlimits", str(e),
                                    f"write e.g. {GPU_ULIMITS_TEXT}, `none` for Docker's defaults, or leave it empty"))
    pids: int | None = pids_limit or None
    if pids_limit < 0 or 0 < pids_limit < MIN_NOTEBOOK_PIDS_LIMIT:
        problems.append(Problem("notebookPidsLimit", f"{pids_limit} is too few processes for Jupyter and TensorFlow",
                                f"write {DEFAULT_NOTEBOOK_PIDS_LIMIT} (the default) or at least {MIN_NOTEBOOK_PIDS_LIMIT}, "
                                "or 0 for no limit"))
        pids = DEFAULT_NOTEBOOK_PIDS_LIMIT
    return NotebookResources(shm_bytes=shm, memory_bytes=mem, nano_cpus=nano, ulimits=limits, pids_limit=pids), problems


def cpus_readback(nano: int) -> str:
    """`cpus` as the docker provider reads it back (its nanoInt64ToDecimalString, digit for digit).

    It writes 2 CPUs as "2.0", 10 as "10." and 0.05 as "0.1"; an input spelled otherwise differs from
    the read-back value and, `cpus` forcing a new container, replaces the notebook on every `up`.
    """
    if nano == 0:
        return "0"
    whole, frac = divmod(nano, 1_000_000_000)
    text = f"{whole}.{frac:09d}"  # big.Rat.FloatString(9) of a positive value
    if text.count("0") == 9:
        # FloatString(1): rounded half away from zero to one decimal
        tenths = (nano + 50_000_000) // 100_000_000
        return f"{tenths // 10}.{tenths % 10}"
    return text.rstrip("0")

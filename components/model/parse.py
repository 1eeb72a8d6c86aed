"""parse_config: a stack's raw `tfbox:` values validated into a LabConfig.

Everything here is plain Python. The program, the stack-file checker
(`python -m components.config --stack-file Pulumi.<machine>.yaml`) and the tests share
it, so a bad value is reported the same way everywhere: every problem at once, each
naming its key and the fix, before a single resource is declared.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from components.model.binds import bind_problem
from components.model.cluster import CLUSTER_BACKEND, parse_cluster
from components.model.errors import ConfigError
from components.model.gpus import GPU_MODES, GpuSpec, GpuSpecError, parse_gpus
from components.model.hardening import parse_notebook_resources
from components.model.image_ref import ImageRef, ImageRefError, parse_image_ref
from components.model.ingress import IngressSeat, parse_ingress
from components.model.kernels import parse_cull_idle
from components.model.keys import CPU_IMAGE, GPU_IMAGE, KEYS_BY_NAME, NAMESPACE, STACK_KINDS, PasswordState
from components.model.lab_config import LabConfig
from components.model.ledger import ledger_problems
from components.model.password import password_problem, valid_salt
from components.model.ports import read_ports_and_binds, read_tensorboard
from components.model.reader import NAME_RE, Reader
from components.model.seat_tls import seat_tls
from components.model.seats import (
    SeatConfig,
    SeatDefaults,
    SeatPasswordState,
    parse_passwords,
    parse_seats,
    password_problems,
    raw_seats,
    seats_want_gpus,
)
from components.model.storage import read_storage
from components.model.target import LOCAL, Target
from components.model.tls_check import check_tls


def parse_config(
    raw: Mapping[str, Any],
    *,
    stack: str,
    project: str = "tfbox",
    password_state: PasswordState,
    target: Target = LOCAL,
    password: str | None = None,
    tls_key_state: PasswordState | None = None,
    tls_key: str | None = None,
    require_salt: bool = True,
    seat_password_states: Mapping[str, SeatPasswordState] | None = None,
    seat_passwords: Mapping[str, str] | None = None,
    require_seat_passwords: bool = True,
    seat_tls_key_states: Mapping[str, SeatPasswordState] | None = None,
    seat_tls_keys: Mapping[str, str] | None = None,
) -> LabConfig:
    """Validate raw `tfbox:` values (keys without the namespace) and return the typed config.

    `target` is where the lab runs, as its backend read it (components.model.target): its canonical host,
    the backend's own config problems (listed first), and the host paths no notebook may bind.
    `password` and `tls_key` are the secrets' values when the caller can read them (the program
    can; a committed stack file cannot): checked, never quoted. `tls_key_state` None means the
    key is set per machine and unknown here (the stack-file checker), so TLS is not required.
    `seat_password_states`/`seat_passwords` are `tfbox:passwords` per seat (how each is given, the values
    where readable); `require_seat_passwords` False lets a committed stack file leave them to each machine.
    `seat_tls_key_states`/`seat_tls_keys` are `tfbox:tlsKeys` the same way (components.model.seat_tls).
    Raises ConfigError listing every problem.
    """
    r = Reader(raw)
    r.problems.extend(target.problems)
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

    pb = read_ports_and_binds(r)
    ports, binds = pb.ports, pb.binds

    seat_certs = parse_passwords(r.value("tlsCerts"))  # the same shape as tfbox:passwords: a map, JSON text from the engine
    tls_cert = check_tls(r, stack, binds["notebookBind"], tls_key_state, tls_key,
                          seat_tls=with_seats and bool(seat_certs or seat_tls_key_states))
    allow_plain = r.value("allowPlainHttpOnLan")

    tbs = read_tensorboard(r, pb, warnings)
    tb_mode, tb_public, tb_proxy = tbs.mode, tbs.public, tbs.proxy

    stack_slug = re.sub(r"[^a-zA-Z0-9_.-]", "-", stack)
    prefix = r.value("namePrefix") or f"tfbox-{stack_slug}"
    if not NAME_RE.match(prefix):
        r.add("namePrefix", f"{prefix!r} is not a valid container name prefix", "use letters, digits, '.', '_' or '-'")
    storage = read_storage(r, prefix, target)
    volumes, host_path, logs_dir = storage.volumes, storage.host_path, storage.logs_dir
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

    backend = str(r.value("backend"))
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
        if backend != CLUSTER_BACKEND:  # on a cluster the scheduler places counts (the backend's preflight checks them)
            r.problems += ledger_problems([s.claim(stack) for s in seats])

    cluster, cluster_problems = parse_cluster(
        raw, r.value, backend=backend, stack_slug=stack_slug,
        gpus=[(s.key("gpus"), s.gpus) for s in seats] if seats else [(f"{NAMESPACE}:gpus", gpus)],
        host_only={"notebooksHostPath": host_path, "gpuMode": gpu_mode, "gpuCheckImage": r.value("gpuCheckImage")},
        object_names=[("namePrefix", prefix)] + [(f"seats[{s.index}].name", f"{prefix}-{s.name}") for s in seats]
        + ([] if seats else [(k, volumes[k]) for k in ("notebooksVolume", "logsVolume")]),
        notebooks=[(f"seat {s.name}", s.key("notebookPort"), s.notebook_port, s.tls) for s in seats] if seats
        else [("the notebook", f"{NAMESPACE}:notebookPort", ports["notebookPort"], bool(tls_cert))])
    r.problems += cluster_problems
    ingress, ingress_problems = parse_ingress(r.value, [IngressSeat(
        s.name, s.index, seat_items[s.index].get("ingressHost") if isinstance(seat_items[s.index], dict) else None,
        s.tls_cert, f"{NAMESPACE}:tlsCerts.{s.name}" if s.tls_own else f"{NAMESPACE}:tlsCert") for s in seats]
        if seats else [IngressSeat("", -1, None, tls_cert, f"{NAMESPACE}:tlsCert")], cluster=cluster is not None, stack=stack)
    r.problems += ingress_problems
    if cluster is not None and ingress is not None:
        cluster = replace(cluster, ingress=ingress)
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
        target_host=target.host, target_identity=target.identity, notebook_resources=resources, warnings=tuple(warnings), tls_cert=tls_cert,
        allow_plain_http_on_lan=allow_plain, seats=seats, cull_idle_kernels=cull_idle,
        cull_idle_text=str(r.value("cullIdleKernels")), stack_kind=str(r.value("stackKind")),
        tensorboard_proxy=tb_proxy, tensorboard_proxy_key=tbs.proxy_key, loopback_publish_filtered=r.value("loopbackPublishFiltered"),
        backend=backend, cluster=cluster,
    )

"""One entry for scripts and ops: a stack's config as the model reads it.

`python -m components.model.check --stack NAME [--json | --shell] [--dir PROJECT_DIR]`

Scripts (`make up`, `make machine`) and ops tools (`make doctor`, `make status`) ask here instead of
re-reading YAML or hard-coding ports, so a key's default, a seat's ports or a container's name are
decided in one place: the model's parser (`components.config`). Pure: no Pulumi, no host is asked.

- no flag: the problems of `Pulumi.<stack>.yaml` (the same messages as a preview; exit 1), or one
  line per seat with its URLs;
- `--json`: the resolved lab, per seat (a single-seat stack is its default seat, named ""): ports,
  binds, URLs, scheme, container and volume names, TensorBoard, GPUs, image; the stack's kind and
  target host; and the secrets' states only (set, secret, plaintext or missing), never a value;
- `--shell`: `KEY=value` lines, each value shell-quoted, that `make up` evaluates. It reads the file
  even when the config has problems (the preview reports those), and fails only on an unreadable file.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import check_stack_file
from components.model.errors import ConfigError
from components.model.keys import KEYS_BY_NAME
from components.model.lab_config import LabConfig
from components.model.plan import LabPlan, SeatPlan, make_plan
from components.model.seats import raw_seats, seat_name_problem
from components.model.stack_file import StackFile, read_stack_file


@dataclass(frozen=True)
class ServiceView:
    """One published service of a seat: where it listens on the host and where a browser finds it."""

    port: int
    bind: str
    url: str | None  # None: not published (TensorBoard off)
    container: str | None  # None: no container of its own (TensorBoard inside the notebook, or off)


@dataclass(frozen=True)
class SeatView:
    """A seat as a user meets it; the default seat of a single-seat stack has the name ""."""

    name: str
    scheme: str  # https when the seat serves TLS
    notebook: ServiceView
    tensorboard: ServiceView
    tensorboard_proxy_url: str | None  # <notebook URL>tensorboard/, when the proxy is on
    containers: tuple[str, ...]  # every container the seat runs, in start order
    volumes: Mapping[str, str]  # notebooks / logs -> volume name (notebooks: a host path when bound)
    notebooks_host_path: str
    gpus: str  # as a user writes it (all, count=N, 0,1, none)
    image: str
    password: str  # secret / plaintext / missing


@dataclass(frozen=True)
class LabView:
    """The whole lab of one stack file, as frozen data scripts print and compare."""

    stack: str
    project: str
    kind: str  # tfbox:stackKind
    target_host: str  # canonical; the local daemon when the file names none
    target_host_set: bool  # the stack file names its host (else the environment's default applies)
    name_prefix: str
    tensorboard_mode: str
    tensorboard_proxy: bool
    gpu_mode: str
    gpu_check: bool
    seats: tuple[SeatView, ...]
    secrets: Mapping[str, Any]  # key -> state, or seat -> state for the per-seat maps
    warnings: tuple[str, ...] = field(default=())

    @property
    def ports(self) -> tuple[int, ...]:
        """Every host port the lab publishes, seat by seat (notebook first)."""
        return tuple(p for s in self.seats for p in (s.notebook.port, *((s.tensorboard.port,) if s.tensorboard.url else ())))

    @property
    def roles(self) -> tuple[str, ...]:
        """The long-running container roles of each seat: notebook, and tensorboard when it has its own."""
        return ("notebook", "tensorboard") if self.tensorboard_mode == "sidecar" else ("notebook",)


def project_of(project_dir: Path) -> tuple[str, dict[str, Any]]:
    """The project's name and its own config defaults (Pulumi.yaml `config:`), which Pulumi applies under a stack file's."""
    path = project_dir / "Pulumi.yaml"
    if not path.is_file():
        return "tfbox", {}
    doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # libyaml: every `up` asks
    defaults = {str(k): v["default"] for k, v in (doc.get("config") or {}).items()
                if ":" not in str(k) and isinstance(v, dict) and "default" in v}
    return str(doc.get("name") or "tfbox"), defaults


def stack_path(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def read(project_dir: Path, stack: str) -> StackFile:
    """The stack file through the model's reader; a stack with no file yet has an empty config."""
    path = stack_path(project_dir, stack)
    if not path.exists():
        return StackFile(stack, path, {}, "missing")
    return read_stack_file(path)


def _set(value: object) -> str:
    """The state of a public value a script makes once (the salt): set, or missing when empty."""
    return "set" if value not in ("", None) else "missing"


def secret_states(sf: StackFile) -> dict[str, Any]:
    """How the file holds each secret (and the salt, which is public): states, never values."""
    return {
        "password": sf.password_state,
        "passwordSalt": _set(sf.raw.get("passwordSalt")),
        "tlsKey": sf.tls_key_state,
        "passwords": dict(sf.seat_password_states),
        "tlsKeys": dict(sf.seat_tls_key_states),
    }


def seat_view(plan: LabPlan, seat: SeatPlan, password: str) -> SeatView:
    """One seat of the plan as a user meets it: the plan decides every name, port and URL."""
    nb_port, tb_port = seat.notebook.ports[0], seat.tensorboard_port
    tb = (tb_port.external, tb_port.ip) if tb_port is not None else (0, "")
    image = next(i.reference for i in plan.images if i.resource == seat.notebook.image)
    storage = seat.storage
    # the single-seat lab lists its GPU check among its containers (as `containerNames` does)
    containers = plan.container_names if not seat.named else seat.container_names
    return SeatView(
        name=seat.name, scheme="https" if seat.notebook.tls else "http",
        notebook=ServiceView(nb_port.external, nb_port.ip, seat.notebook_url, seat.notebook.container_name),
        tensorboard=ServiceView(tb[0], tb[1], seat.tensorboard_url,
                                seat.tensorboard.container_name if seat.tensorboard is not None else None),
        tensorboard_proxy_url=seat.tensorboard_proxy_url, containers=containers,
        volumes={"notebooks": storage.notebooks_host_path or storage.notebooks_volume, "logs": storage.logs_volume},
        notebooks_host_path=storage.notebooks_host_path, gpus=seat.gpus_text, image=image, password=password,
    )


def lab_view(cfg: LabConfig, sf: StackFile) -> LabView:
    """Resolve a parsed config into its seats through the lab's plan (components.model.plan), as plain data."""
    plan = make_plan(cfg)
    seats = tuple(seat_view(plan, s, sf.seat_password_states.get(s.name, "missing") if s.named else sf.password_state)
                  for s in plan.seats)
    return LabView(
        stack=cfg.stack, project=cfg.project, kind=cfg.stack_kind, target_host=cfg.target_host,
        target_host_set=any(k.endswith(":host") for k in sf.provider_config), name_prefix=cfg.name_prefix,
        tensorboard_mode=cfg.tensorboard_mode, tensorboard_proxy=cfg.tensorboard_proxy, gpu_mode=cfg.gpu_mode,
        gpu_check=cfg.gpu_check, seats=seats, secrets=secret_states(sf), warnings=cfg.warnings,
    )


def resolve(project_dir: Path, stack: str, *, siblings: bool = True) -> LabView:
    """The lab of `Pulumi.<stack>.yaml` as a committed file is checked (secrets set per machine may be
    unset); `siblings` False skips the clashes with the other stack files (a tool looking at one lab).
    Raises ConfigError with every problem, or OSError / yaml.YAMLError for a file it cannot read."""
    project, defaults = project_of(project_dir)
    path = stack_path(project_dir, stack)
    cfg = check_stack_file(path, project, defaults, siblings=siblings)
    return lab_view(cfg, read_stack_file(path))


def lab_shape(project_dir: Path, stack: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The container roles and host ports of a stack's lab, for tools that look at a host (`make doctor`).

    From the resolved lab; when the file has problems (the lab on the host predates them, and the
    preview reports them), what the file says key by key, over the model's defaults."""
    try:
        lab = resolve(project_dir, stack, siblings=False)
        return lab.roles, lab.ports
    except ConfigError:
        pass
    raw = {**project_of(project_dir)[1], **read(project_dir, stack).raw}

    def port(value: object) -> int | None:
        text = str(value).strip()
        return int(text) if text.isdigit() else None

    mode = str(raw.get("tensorboardMode") or KEYS_BY_NAME["tensorboardMode"].default)
    roles = ("notebook", "tensorboard") if mode == "sidecar" else ("notebook",)
    seats = [s for s in raw_seats(raw.get("seats"))[0] if isinstance(s, dict)]
    given = ([s.get(k) for s in seats for k in ("notebookPort", "tensorboardPort")] if seats else
             [raw.get(k) or KEYS_BY_NAME[k].default for k in ("notebookPort", "tensorboardPort")])
    return roles, tuple(p for p in map(port, given) if p is not None)


def to_json(lab: LabView) -> dict[str, Any]:
    """The lab as JSON keys (camelCase, as the config keys): `host` is the target host."""
    def camel(d: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            head, *rest = k.split("_")
            out[head + "".join(w.title() for w in rest)] = camel(v) if isinstance(v, Mapping) and k != "volumes" else v
        return out

    data = asdict(lab)
    data["host"], data["hostSet"] = data.pop("target_host"), data.pop("target_host_set")
    data["seats"] = [camel(s) for s in data["seats"]]
    data["ports"], data["roles"] = list(lab.ports), list(lab.roles)
    return camel(data)


def shell_facts(sf: StackFile, defaults: Mapping[str, Any]) -> dict[str, str]:
    """What `make up` decides on before its `up`, read from the file even when the config has problems
    (the preview reports them): seat names, which seats lack a password, the stack's password state,
    whether the salt is made and whether the file itself (not Pulumi.yaml) says tensorboardProxy."""
    raw = {**defaults, **sf.raw}
    names = [str(s["name"]) for s in raw_seats(raw.get("seats"))[0]
             if isinstance(s, dict) and s.get("name") and seat_name_problem(str(s["name"])) is None]
    return {
        "seats": " ".join(names),
        "seats_without_password": " ".join(n for n in names if n not in sf.seat_password_states),
        "password": sf.password_state,
        "password_salt": _set(raw.get("passwordSalt")),
        "tensorboard_proxy_in_file": "yes" if "tensorboardProxy" in sf.raw else "no",
    }


def summary(lab: LabView) -> list[str]:
    lines = []
    for s in lab.seats:
        who = f"seat {s.name}" if s.name else "notebook"
        tb = s.tensorboard_proxy_url or s.tensorboard.url or "off"
        lines.append(f"{lab.stack}: {who} {s.notebook.url} (GPUs {s.gpus}, image {s.image}), TensorBoard {tb}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A stack's config as tfbox's model reads it (no Pulumi, no host asked).")
    parser.add_argument("--stack", required=True, help="the stack: reads Pulumi.<stack>.yaml")
    parser.add_argument("--dir", type=Path, default=Path("."), help="the project directory (default: here)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the resolved lab as JSON (secrets as states only)")
    out.add_argument("--shell", action="store_true", help="KEY=value lines for `eval` in scripts (never fails on config problems)")
    args = parser.parse_args(argv)
    path = stack_path(args.dir, args.stack)
    try:
        if args.shell:
            facts = shell_facts(read(args.dir, args.stack), project_of(args.dir)[1])
            print("\n".join(f"{k}={shlex.quote(v)}" for k, v in facts.items()))
            return 0
        lab = resolve(args.dir, args.stack)
    except ConfigError as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 1
    except (OSError, yaml.YAMLError) as e:
        print(f"{path}: cannot read: {e}", file=sys.stderr)
        return 1
    for w in lab.warnings:
        print(f"{path}: warning: {w}", file=sys.stderr)
    print(json.dumps(to_json(lab), indent=2) if args.json else "\n".join(summary(lab)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the real `__main__.py` under Pulumi's mocks and record what it declares."""

from __future__ import annotations

import os
import runpy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.docker import host_state, ssh
from components.model.tls import generate_self_signed, subject_names

ROOT = Path(__file__).resolve().parents[2]
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Declared] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.options: dict[str, pulumi.ResourceOptions] = {}  # by resource name, from a stack transformation
        self.parents: dict[str, str] = {}
        self.output_secret: dict[str, bool] = {}
        self.gpu_check_result: tuple[int, str] = (0, GPU_LIST)
        self.ready_result: tuple[int, str] = (0, "ready\n")
        self.ssh_probes: list[list[str]] = []  # the ssh commands the program ran for an ssh:// docker host
        self.ssh_probe_result: tuple[int, str] = (0, "")
        self.host_commands: list[list[str]] = []  # what the program ran to read the host (components.docker.host_state)
        self.host_result: tuple[int, str, str] = (0, "[]", "")  # `docker inspect` of the host's tfbox containers
        self.host_logs = ""  # `docker logs` of a GPU check found there
        self.host_gpus: tuple[int, str, str] = (3, "", "")  # the machine's own `nvidia-smi -L` (3: it has none)
        self.host_volumes: tuple[int, str, str] = (0, "[]", "")  # `docker volume inspect` of the host's tfbox volumes
        self.pids_result: tuple[int, str, str] = (0, "", "")  # `docker update --pids-limit` (components.docker.pids)

    def transformation(self, args: pulumi.ResourceTransformationArgs) -> None:
        """Records each resource's options as the program gave them (mocks do not see options)."""
        self.options[f"{args.type_}::{args.name}"] = args.opts
        parent = args.opts.parent if args.opts else None
        self.parents[f"{args.type_}::{args.name}"] = parent._name if parent is not None else ""
        return None

    def opts(self, typ: str, name: str) -> pulumi.ResourceOptions:
        return self.options[f"{typ}::{name}"]

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(Declared(args.typ, args.name, args.inputs))
        state = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            state.update(imageId="sha256:" + "ab" * 32, repoDigest=f"{args.inputs['name'].split(':')[0]}@sha256:" + "cd" * 32)
        if args.typ == "docker:index/container:Container" and not args.inputs.get("mustRun", True):
            code, logs = self.ready_result if args.name == "ready" else self.gpu_check_result
            state.update(exitCode=code, containerLogs=logs)
        if args.typ == "docker:index/container:Container":
            state.update(networkDatas=[{"ipAddress": f"10.213.0.{len(self.resources)}"}])
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "docker:index/getRegistryImage:getRegistryImage":
            return {"name": args.args["name"], "sha256Digest": "sha256:" + "ef" * 32}, []
        return {}, []

    def by_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str) -> Declared:
        found = [r for r in self.resources if r.type == typ and r.name == name]
        assert len(found) == 1, f"expected one {typ} named {name}, got {[r.name for r in self.resources]}"
        return found[0]


GPU_LIST = (
    "GPU 0: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6860)\n"
    "GPU 1: NVIDIA H200 (UUID: GPU-c780f725-fe96-b196-3303-e4a68e6a6861)\n"
)


def stack_config(stack: str) -> dict[str, Any]:
    """The committed stack file's config, with Pulumi.yaml's typed defaults under it, as the engine passes it."""
    import yaml

    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {f"tfbox:{k}": v["default"] for k, v in project["config"].items()}
    stack_file = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    values.update(stack_file.get("config") or {})
    return values


TEST_SALT = "0123456789abcdef0123456789abcdef"
TLS = generate_self_signed(subject_names("ssh://tfbox@gpu-box", "0.0.0.0"))


def with_machine_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """A committed stack file's config plus what each machine makes for itself: the password's salt
    (`make up`) and, where the notebook is published beyond loopback, a certificate (`make tls`)."""
    out = dict(config)
    if not out.get("tfbox:passwordSalt"):
        out["tfbox:passwordSalt"] = TEST_SALT
    if out.get("tfbox:notebookBind") not in (None, "127.0.0.1") and not out.get("tfbox:tlsCert"):
        out.update({"tfbox:tlsCert": TLS.cert_pem, "tfbox:tlsKey": TLS.key_pem})
    return out


def as_engine_strings(config: dict[str, Any]) -> dict[str, str]:
    """The engine hands every config value to the program as a string."""
    out = {}
    for k, v in config.items():
        out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def run_program(config: dict[str, Any], stack: str = "dev", secret_keys: tuple[str, ...] = ("tfbox:password", "tfbox:tlsKey"),
                preview: bool = False, recorder: Recorder | None = None) -> tuple[Recorder, dict[str, Any]]:
    """Run __main__.py once; return the recorder and the stack outputs (resolved)."""
    recorder = recorder or Recorder()
    # a fresh root Stack per run: set_mocks keeps the last one, whose exports would leak into this run's outputs
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(recorder, project="tfbox", stack=stack, preview=preview)
    runtime_config.set_all_config(as_engine_strings(config), list(secret_keys))
    os.environ.pop("PULUMI_CONFIG", None)
    outputs: dict[str, Any] = {}
    secrets: dict[str, Any] = {}

    def fake_probe(cmd: list[str]) -> tuple[int, str]:
        recorder.ssh_probes.append(cmd)
        return recorder.ssh_probe_result

    def fake_host(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
        recorder.host_commands.append(argv)
        if "docker volume" in argv[-1]:
            return recorder.host_volumes
        if "docker update --pids-limit" in argv[-1]:
            return recorder.pids_result
        if argv[-1].endswith(host_state.HOST_GPUS):
            return recorder.host_gpus
        return (0, recorder.host_logs, "") if "docker logs" in argv[-1] else recorder.host_result

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def _run() -> pulumi.Output[Any]:
        pulumi.runtime.register_stack_transformation(recorder.transformation)
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        finally:
            os.chdir(cwd)
        stack_resource = pulumi.runtime.settings.get_root_resource()
        exported = stack_resource.outputs if stack_resource is not None else {}  # type: ignore[attr-defined]
        for key, value in exported.items():
            out = pulumi.Output.from_input(value)
            secrets[key] = out.is_secret()
        return pulumi.Output.all(**{k: pulumi.Output.from_input(v) for k, v in exported.items()}).apply(
            lambda resolved: outputs.update(resolved)
        )

    real_probe, real_host_run = ssh.run_probe, host_state.run
    ssh.run_probe = fake_probe  # no ssh from unit tests: the probe's answer is the recorder's
    host_state.run = fake_host  # nor docker: the host's containers are the recorder's (also in applies, e.g. components.docker.pids)
    try:
        _run()
    finally:
        ssh.run_probe, host_state.run = real_probe, real_host_run
    recorder.output_secret = {k: _resolve(v) for k, v in secrets.items()}
    return recorder, outputs


def _resolve(awaitable: Any) -> bool:
    from pulumi.runtime.sync_await import _sync_await

    return bool(_sync_await(awaitable))


def is_secret_value(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG

"""What the real-engine tests drive: a copy of the project with its own state backend, the
`pulumi` CLI, a Docker daemon through the docker CLI, Jupyter's HTTP/WebSocket API and
TensorBoard's HTTP API. Plain helpers, no assertions of their own."""

from __future__ import annotations

import atexit
import contextlib
import http.cookiejar
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


_given: set[int] = set()


def port_range() -> tuple[int, int]:
    """20000-32000, or this pytest-xdist worker's share of it: two workers never hand out the same port,
    which both could see free before either's stack binds it."""
    low, high = 20000, 32000
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2:
        return low, high
    share = (high - low) // count
    start = low + int(worker[2:]) * share
    return start, start + share


def free_port() -> int:
    """A port for a stack to publish: below the kernel's ephemeral range (32768+), where the
    CLI's and tests' own client connections would otherwise take it before Docker binds it."""
    rng = random.Random()
    low, high = port_range()
    for _ in range(1000):
        port = rng.randrange(low, high)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


def gpu_ulimits_here() -> dict[str, str]:
    """Config for GPU stacks on a machine whose daemon cannot raise `memlock` (no CAP_SYS_RESOURCE, as in
    this project's sandboxed CI): GPU stacks default to NVIDIA's memlock=-1, which such a daemon refuses with
    "error setting rlimit type 8". The daemons the tests start inherit this process's limits; where the hard
    limit is unlimited the default itself is tested."""
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard == resource.RLIM_INFINITY:
        return {}
    return {"tfbox:notebookUlimits": f"memlock={hard},stack=67108864"}


# The 'Resources:' counts the CLI prints: '- 1 deleted', '+ 2 created', '+-1 replaced', '~ 1 updated'.
SUMMARY_LINE = re.compile(r"^\s*[-+~]*\s*(\d+) (created|updated|replaced|deleted)\s*$", re.MULTILINE)


def change_summary(output: str) -> dict[str, int]:
    """What a CLI run changed, from its summary; {} for a run that changed nothing."""
    return {m.group(2): int(m.group(1)) for m in SUMMARY_LINE.finditer(output)}


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Docker:
    """The docker CLI against one daemon."""

    def __init__(self, host: str) -> None:
        self.host = host

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> Result:
        cmd = ["docker", "-H", self.host, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        res = Result(cmd, p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
        return res

    def inspect(self, name: str) -> dict[str, Any] | None:
        res = self("inspect", name, check=False)
        return json.loads(res.stdout)[0] if res.returncode == 0 else None

    def main_process_env(self, name: str) -> dict[str, str]:
        """The environment of the container's main process (so every kernel's). Docker's GPU device
        path adds NVIDIA_VISIBLE_DEVICES there, not to the container's config: `docker exec env` misses it."""
        raw = self("exec", name, "cat", "/proc/1/environ").stdout
        return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)

    def snapshot(self) -> dict[str, list[str]]:
        """Everything a deploy could have touched on the host."""
        return {
            "containers": sorted(self("ps", "-a", "--format", "{{.Names}} {{.ID}} {{.State}} {{.CreatedAt}}").stdout.splitlines()),
            "volumes": sorted(self("volume", "ls", "--format", "{{.Name}}").stdout.splitlines()),
            "images": sorted(self("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()),
        }

    def wait_running(self, name: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.inspect(name)
            if info and info["State"]["Running"]:
                return info
            time.sleep(1)
        raise TimeoutError(f"{name} is not running after {timeout}s")


def reap_session(proc: subprocess.Popen[str]) -> None:
    """Kill what a CLI run (started in a session of its own, so its session id is its pid) left running.

    The Pulumi CLI can exit without closing plugins it started: a command that fails early (e.g.
    `validating stack config`) abandons the language host it started for the update's metadata
    (`Language.About`), and a killed CLI abandons all of them. This project's language host exits within
    seconds of its engine (test_process_hygiene.py), the docker provider only after minutes; reaping here
    keeps a test's leftovers from outliving it (tests/e2e/conftest.py checks that none do).
    """
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    # plugins run in process groups of their own (Pulumi's cmdutil), but stay in the CLI's session
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == proc.pid:
                os.kill(int(entry.name), signal.SIGKILL)


_plugin_caches: dict[str, Path] = {}


def plugin_cache(toolchain_bin: str) -> Path | None:
    """A Pulumi plugin cache with the built docker provider registered (toolchain/register-provider.sh),
    one per test session: every Project's PULUMI_HOME links its plugins/ here, so the engine takes the
    provider from the cache and not from $PATH (which warns twice on every command)."""
    if not toolchain_bin or not (Path(toolchain_bin) / "pulumi-resource-docker").exists():
        return None
    if toolchain_bin not in _plugin_caches:
        home = Path(tempfile.mkdtemp(prefix="tfbox-plugins-"))
        atexit.register(shutil.rmtree, home, True)
        subprocess.run([str(ROOT / "toolchain" / "register-provider.sh"), toolchain_bin], env={**os.environ, "PULUMI_HOME": str(home)},
                       capture_output=True, text=True, check=True, timeout=300)
        _plugin_caches[toolchain_bin] = home / "plugins"
    return _plugin_caches[toolchain_bin]


class Project:
    """A copy of the repo with its own file state backend, passphrase and PULUMI_HOME."""

    def __init__(self, workdir: Path, toolchain_bin: str, extra_env: dict[str, str] | None = None) -> None:
        self.dir = workdir / "project"
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.splitlines()
        for rel in files:
            src = ROOT / rel
            if not src.is_file() or rel.startswith(("tests/", ".github/")):
                continue
            dst = self.dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        (self.dir / ".venv").symlink_to(ROOT / ".venv")
        # the policy pack's venv: the dev venv has its pins (requirements-dev.txt includes policy/requirements.txt)
        (self.dir / "policy" / ".venv").symlink_to(ROOT / ".venv")
        self.state = workdir / "state"
        self.state.mkdir()
        home = workdir / "pulumi-home"
        home.mkdir()
        plugins = plugin_cache(toolchain_bin)
        if plugins is not None:
            (home / "plugins").symlink_to(plugins)
        self.passphrase = secrets.token_urlsafe(24)  # generated per run, never written to the repo
        self.env = {
            **os.environ,
            "PATH": f"{toolchain_bin}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
            "PULUMI_BACKEND_URL": f"file://{self.state}",
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_HOME": str(home),
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "1",  # providers from the plugin cache (plugin_cache), none from $PATH
            "PULUMI_SKIP_UPDATE_CHECK": "1",
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "1",
            **(extra_env or {}),
        }
        self.env.pop("DOCKER_HOST", None)
        # as on a user's machine, the program's modules are compiled once, not on every run (this machine sets it)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.transcript: list[str] = []  # every CLI output, for the secrets test

    def run(self, *args: str, check: bool = True, timeout: float = 900, input: str | None = None,
            env: dict[str, str] | None = None) -> Result:
        with subprocess.Popen(list(args), cwd=self.dir, env={**self.env, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, text=True, start_new_session=True) as p:
            try:
                stdout, stderr = p.communicate(input, timeout=timeout)
            finally:
                reap_session(p)
        res = Result(list(args), p.returncode, stdout, stderr)
        self.transcript.append(f"$ {' '.join(args)}\n{res.output}")
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{res.output[-6000:]}")
        return res

    def start(self, *args: str, new_session: bool = True) -> subprocess.Popen[str]:
        """A CLI run in the background (interrupted or run in parallel by a test); finish it with `finish`.
        In a session of its own, so that `finish` can reap what it leaves behind (see reap_session)."""
        return subprocess.Popen(list(args), cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=new_session)

    def finish(self, proc: subprocess.Popen[str], label: str, timeout: float = 900) -> str:
        """Wait for a background run; its output joins the transcript, which the secrets test reads."""
        try:
            out, _ = proc.communicate(timeout=timeout)
        finally:
            reap_session(proc)
        self.transcript.append(f"$ {label}\n{out}")
        return out

    def pulumi(self, *args: str, **kw: Any) -> Result:
        return self.run("pulumi", "--non-interactive", *args, **kw)

    def lab(self, name: str, docker_host: str, image: str, password: str, **extra: Any) -> tuple[Stack, str, str]:
        """A stack on `docker_host` with free ports, brought up; its notebook and TensorBoard URLs."""
        nb_port, tb_port = free_port(), free_port()
        stack = self.stack(name, {
            "docker:host": docker_host, "tfbox:image": image,
            "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port, **extra,
        }, password)
        stack.up()
        return stack, f"http://127.0.0.1:{nb_port}", f"http://127.0.0.1:{tb_port}"

    def stack(self, name: str, config: dict[str, Any], password: str | None) -> Stack:
        """Write Pulumi.<name>.yaml, create the stack, set the password as a secret (from stdin).

        With a password the stack also gets a random salt, as `make up` gives it."""
        if password is not None:
            config = {"tfbox:passwordSalt": secrets.token_hex(16), **config}
        (self.dir / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
        self.pulumi("stack", "init", name, "--secrets-provider", "passphrase")
        st = Stack(self, name)
        if password is not None:
            self.pulumi("config", "set", "--secret", "tfbox:password", "--stack", name, input=password)
        return st


@dataclass
class Stack:
    project: Project
    name: str
    outputs_cache: dict[str, Any] = field(default_factory=dict)

    def _args(self, *args: str) -> list[str]:
        return [*args, "--stack", self.name]

    def up(self, *extra: str, check: bool = True, timeout: float = 900) -> Result:
        return self.project.pulumi(*self._args("up", "--yes", "--skip-preview", *extra), check=check, timeout=timeout)

    def preview(self, *extra: str, check: bool = True) -> Result:
        return self.project.pulumi(*self._args("preview", *extra), check=check)

    def preview_json(self) -> dict[str, Any]:
        return dict(json.loads(self.project.pulumi(*self._args("preview", "--json")).stdout))

    def refresh(self, *extra: str, check: bool = True) -> Result:
        return self.project.pulumi(*self._args("refresh", "--yes", *extra), check=check)

    def destroy(self, check: bool = True) -> Result:
        return self.project.pulumi(*self._args("destroy", "--yes"), check=check)

    def drift_check(self, check: bool = True) -> Result:
        """scripts/drift.sh: the nightly drift job's exact command (preview --refresh --expect-no-changes, policy pack)."""
        return self.project.run("scripts/drift.sh", self.name, check=check)

    def outputs(self, show_secrets: bool = False) -> dict[str, Any]:
        extra = ["--show-secrets"] if show_secrets else []
        return dict(json.loads(self.project.pulumi(*self._args("stack", "output", "--json", *extra)).stdout))

    def export(self) -> str:
        return self.project.pulumi(*self._args("stack", "export")).stdout

    def set(self, key: str, value: str) -> None:
        self.project.pulumi(*self._args("config", "set", f"tfbox:{key}", value))

    def set_docker_host(self, host: str) -> None:
        self.project.pulumi(*self._args("config", "set", "docker:host", host))


def http_get(url: str, timeout: float = 10, cert_pem: str | None = None) -> tuple[int, bytes]:
    """GET a URL; for https give the stack's certificate, the only one trusted then."""
    context = ssl.create_default_context(cadata=cert_pem) if cert_pem is not None else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# Scalars of a run as a training loop writes them, with TensorBoard's own event writer (no TensorFlow import:
# fractions of a second where a Keras fit takes ten): `python3 -c SCALARS <logdir/run>` in the notebook.
SCALARS = """
import sys, time
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter
w = EventFileWriter(sys.argv[1])
for step, loss in enumerate([1.0, 0.6, 0.35, 0.2, 0.12]):
    w.add_event(Event(step=step, wall_time=time.time(), summary=Summary(value=[Summary.Value(tag="loss", simple_value=loss)])))
w.close()
"""


def write_scalars(docker: Docker, container: str, run_dir: str) -> None:
    """A run with a `loss` scalar at steps 0-4, the last one 0.12, in the logs the notebook shares with TensorBoard."""
    docker("exec", container, "python3", "-c", SCALARS, run_dir)


def wait_http(url: str, timeout: float = 120, cert_pem: str | None = None) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return http_get(url, cert_pem=cert_pem)
        except (OSError, urllib.error.URLError) as e:
            last = e
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout}s: {last}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Jupyter:
    """A logged-in browser session against Jupyter Server 2, over its REST and kernel WebSocket APIs.

    For an https URL give the stack's certificate (`cert_pem`): the session trusts exactly that one."""

    def __init__(self, base_url: str, cert_pem: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.ssl_context: ssl.SSLContext | None = None
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()]
        if cert_pem is not None:
            self.ssl_context = ssl.create_default_context(cadata=cert_pem)  # no system CAs, no other cert
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        self.opener = urllib.request.build_opener(*handlers)

    def _xsrf(self) -> str:
        return next((c.value for c in self.jar if c.name == "_xsrf"), "") or ""

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self._xsrf():
            req.add_header("X-XSRFToken", self._xsrf())
        try:
            with self.opener.open(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            with contextlib.suppress(ValueError):
                return e.code, json.loads(raw)
            return e.code, raw.decode(errors="replace")

    def login(self, password: str) -> bool:
        """True when Jupyter accepts the password (it answers the form with a redirect)."""
        with contextlib.suppress(urllib.error.HTTPError):
            self.opener.open(self.base + "/login", timeout=30).read()
        form = urllib.parse.urlencode({"password": password, "_xsrf": self._xsrf()}).encode()
        req = urllib.request.Request(self.base + "/login?next=%2Ftree", data=form, method="POST")
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status in (301, 302, 303)
        except urllib.error.HTTPError as e:
            return e.code in (301, 302, 303)

    def save_notebook(self, path: str, source: str) -> None:
        nb = {"type": "notebook", "content": {
            "cells": [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
        status, body = self.request("PUT", f"/api/contents/{path}", nb)
        if status not in (200, 201):
            raise AssertionError(f"saving {path}: {status} {body}")

    def read_notebook_source(self, path: str) -> str | None:
        status, body = self.request("GET", f"/api/contents/{path}")
        if status != 200:
            return None
        return str(body["content"]["cells"][0]["source"])

    def execute(self, code: str, timeout: float = 600, kernel_id: str | None = None, keep: bool = False) -> dict[str, str]:
        """Run code in a new kernel (or the running one `kernel_id`); return what the cell showed on stdout/stderr,
        any error and the kernel's id. The kernel is shut down after unless `keep` or it was given."""
        import websocket  # websocket-client, a test dependency

        if kernel_id is None:
            status, kernel = self.request("POST", "/api/kernels", {"name": "python3"})
            if status != 201:
                raise AssertionError(f"starting a kernel: {status} {kernel}")
        else:
            kernel, keep = {"id": kernel_id}, True
        ws_url = self.base.replace("https://", "wss://").replace("http://", "ws://") + f"/api/kernels/{kernel['id']}/channels"
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        sslopt = {"context": self.ssl_context} if self.ssl_context is not None else None
        ws = websocket.create_connection(ws_url, header=[f"Cookie: {cookie}"], timeout=timeout, sslopt=sslopt)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out = {"stdout": "", "stderr": "", "error": "", "kernel": str(kernel["id"])}
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out[msg["content"]["name"]] += msg["content"]["text"]
                elif kind == "error":
                    out["error"] = "\n".join(msg["content"].get("traceback", [])) or msg["content"].get("evalue", "")
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
        finally:
            ws.close()
            if not keep:
                self.request("DELETE", f"/api/kernels/{kernel['id']}")
        return out

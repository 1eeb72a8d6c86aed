"""The GPU proof's checks: tfbox's own `up` (scripts/up.sh) on a GPU stack, checked as a user would.

Why: every GPU row of tfbox is proven in CI with stand-ins; on a real GPU host this shows, in one run, that the
same code gets the real GPU in both GPU modes (docs/gpu-proof.md says what each check proves). run.sh calls
it after it has started the daemon, built the image and made the .venv:

    proof.py checks --project DIR --docker-host unix://… --image TAG --checks FILE --log FILE [--rehearsal]
    proof.py summary --checks FILE --log FILE

Each check appends `name<TAB>PASS|FAIL<TAB>seconds<TAB>detail` to the checks file; a failed check does not stop
the others unless they depend on it. `summary` prints the host facts and every check, and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK = "gpu-proof"
ABSENT_STACK = "gpu-proof-absent"
MODES = ("device-requests", "nvidia-runtime")
MADE_UP_UUID = "GPU-00000000-1111-2222-3333-444444444444"
LISTED = re.compile(r"^GPU (\d+): (.+) \(UUID: (GPU-[0-9a-f-]+)\)$")
HEADER = re.compile(r"Driver Version: *([0-9.]+) +CUDA Version: *([0-9.]+)")
BEFORE, AFTER = "=== tfbox-gpu-proof: before ===", "=== tfbox-gpu-proof: after ==="

# The cell a user would run: nvidia-smi and a matrix product on the GPU (torch, else jax; numpy only in the
# rehearsal, which has neither), inside capture(), with the CUDA libraries asked to log (cuBLAS/cuBLASLt API
# logging, XLA's C++ log) so that their own C-level output is there for capture() to bring into the cell;
# then scalars for TensorBoard through TensorBoard's own writer (no TensorFlow needed).
CELL = r'''
import json, os, subprocess
os.environ.update(CUBLAS_LOGINFO_DBG="1", CUBLAS_LOGDEST_DBG="stderr", CUBLASLT_LOG_LEVEL="2", TF_CPP_MIN_LOG_LEVEL="0")
result = {"library": None, "device": None, "ok": False}
print("@BEFORE@", flush=True)
with capture():
    subprocess.run(["nvidia-smi"], check=False)   # the driver's table, written to fd 1 by another process
    try:
        import torch
        if torch.cuda.is_available():
            a = torch.arange(1.0, 65.0, device="cuda").reshape(8, 8)
            b = torch.eye(8, device="cuda") * 2
            c = (a @ b).cpu()
            torch.cuda.synchronize()
            result.update(library="torch " + torch.__version__, device=torch.cuda.get_device_name(0),
                          ok=bool(((c - a.cpu() * 2).abs().max() == 0).item()))
    except ImportError:
        pass
    if result["library"] is None:
        try:
            import jax, jax.numpy as jnp
            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            if gpus:
                a = jax.device_put(jnp.arange(1.0, 65.0).reshape(8, 8), gpus[0])
                c = a @ (jnp.eye(8) * 2)
                result.update(library="jax " + jax.__version__, device=str(gpus[0].device_kind),
                              ok=bool((c == a * 2).all()))
        except ImportError:
            pass
    if result["library"] is None:
        import numpy as np
        a = np.arange(1.0, 65.0).reshape(8, 8)
        result.update(library="numpy " + np.__version__, device="cpu", ok=bool(((a @ (np.eye(8) * 2)) == a * 2).all()))
print("@AFTER@", flush=True)
from tensorboard.summary import Writer
w = Writer("@LOGDIR@")
for step in range(5):
    w.add_scalar("gpu_proof/loss", 1.0 / (step + 1), step=step)
w.flush(); w.close()
print("RESULT " + json.dumps(result), flush=True)
'''


# ---------------------------------------------------------------- bookkeeping
@dataclass
class Proof:
    project: Path
    docker_host: str
    image: str
    checks: Path
    log: Path
    rehearsal: bool
    password: str = field(default_factory=lambda: "proof-" + secrets.token_urlsafe(18))
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def say(self, text: str) -> None:
        with self.log.open("a") as f:
            f.write(text.rstrip("\n") + "\n")

    def record(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        detail = " ".join(detail.split())[:300]
        with self.checks.open("a") as f:
            f.write(f"{name}\t{'PASS' if ok else 'FAIL'}\t{seconds:.1f}\t{detail}\n")
        self.say(f"---- {'PASS' if ok else 'FAIL'} {name} ({seconds:.1f} s) {detail}")

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[list[str]]:
        """Times a check; an AssertionError (or any error) inside makes it FAIL with its message."""
        self.say(f"\n==== {name} ({time.strftime('%H:%M:%S', time.gmtime())})")
        detail: list[str] = []
        t0 = time.monotonic()
        try:
            yield detail
        except Exception as e:  # every failure is a FAIL line, and the run goes on
            self.record(name, False, time.monotonic() - t0, f"{type(e).__name__}: {e}")
        else:
            self.record(name, True, time.monotonic() - t0, "; ".join(detail))

    def run(self, *args: str, check: bool = False, input: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """A command in the project directory, logged (output included) to the log file."""
        self.say(f"$ {' '.join(args)}")
        done = subprocess.run(list(args), cwd=self.project, env=self.env, capture_output=True, text=True,
                              input=input, timeout=timeout, check=False)
        self.say((done.stdout + done.stderr).rstrip() + f"\n[exit {done.returncode}]")
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}: {(done.stdout + done.stderr).strip()[-400:]}")
        return done

    def pulumi(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("pulumi", "--non-interactive", *args, **kw)

    def docker(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("docker", "-H", self.docker_host, *args, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- host facts
def host_facts(p: Proof) -> dict[str, str]:
    """What this host's own nvidia-smi says: the GPUs (-L), the driver and CUDA versions (plain nvidia-smi's header)."""
    listing = p.run("nvidia-smi", "-L").stdout.strip()
    table = p.run("nvidia-smi").stdout
    m = HEADER.search(table)
    names = [m2.group(2) for line in listing.splitlines() if (m2 := LISTED.match(line.strip()))]
    return {"host": socket.gethostname(), "list": listing, "driver": m.group(1) if m else "?", "cuda": m.group(2) if m else "?",
            "gpu": ", ".join(dict.fromkeys(names)) or "?", "count": str(len(names))}


# ---------------------------------------------------------------- the stack
def stack_file(p: Proof, name: str, config: dict[str, Any]) -> None:
    lines = ["# the GPU proof's stack (scripts/gpu-proof/proof.py); written by the proof, not a real machine", "config:"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in config.items()]
    (p.project / f"Pulumi.{name}.yaml").write_text("\n".join(lines) + "\n")


def init_stack(p: Proof, name: str, config: dict[str, Any]) -> None:
    """As a user would once per machine: the stack file, `pulumi stack init`, the password as a secret from stdin.
    The passphrase is the one scripts/up.sh generates (.state/passphrase), through its own scripts/passphrase.sh."""
    stack_file(p, name, config)
    script = ('unset PULUMI_CONFIG_PASSPHRASE_FILE && source scripts/passphrase.sh && tfbox_passphrase "$PWD" gpu-proof && '
              f'pulumi --non-interactive stack init {name} --secrets-provider passphrase && '
              f'pulumi --non-interactive config set --secret tfbox:password --stack {name}')
    p.run("bash", "-c", script, input=p.password, check=True)


def gpu_config(p: Proof) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "tfbox:stackKind": "local", "docker:host": p.docker_host, "tfbox:image": p.image,
        "tfbox:gpus": "0", "tfbox:gpuMode": MODES[0], "tfbox:gpuCheck": True,
        "tfbox:notebookBind": "127.0.0.1", "tfbox:notebookPort": p.ports["nb"],
        "tfbox:tensorboardMode": "sidecar", "tfbox:tensorboardBind": "127.0.0.1", "tfbox:tensorboardPort": p.ports["tb"],
    }
    import resource
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard != resource.RLIM_INFINITY:  # a daemon that may not raise memlock (a sandboxed CI machine), as the e2e tests do
        cfg["tfbox:notebookUlimits"] = f"memlock={hard},stack=67108864"
    return cfg


def set_config(p: Proof, stack: str, key: str, value: str) -> None:
    p.pulumi("config", "set", key, value, "--stack", stack, check=True)


def up(p: Proof, stack: str) -> subprocess.CompletedProcess[str]:
    """tfbox's `make up` path: scripts/up.sh STACK."""
    return p.run("scripts/up.sh", stack, timeout=1200)


def outputs(p: Proof, stack: str) -> dict[str, Any]:
    return dict(json.loads(p.pulumi("stack", "output", "--json", "--stack", stack, check=True).stdout))


# ---------------------------------------------------------------- checks
def check_absent(p: Proof, mode: str) -> None:
    """A GPU the host does not have stops `up` at preview, before any container exists, with tfbox's message
    (the host's own `nvidia-smi -L`, components.model.ledger.absent_gpu_problems): on the stand-in runtime and on
    NVIDIA's runtime in CDI mode alike, which would refuse the check container with Docker's words only."""
    for gpus in ("7", MADE_UP_UUID):
        with p.check(f"[{mode}] absent GPU {gpus}: up stops before the notebook, tfbox's message") as d:
            set_config(p, ABSENT_STACK, "tfbox:gpus", gpus)
            set_config(p, ABSENT_STACK, "tfbox:gpuMode", mode)
            done = up(p, ABSENT_STACK)
            out = done.stdout + done.stderr
            assert done.returncode != 0, "up succeeded with a GPU the host does not have"
            names = p.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
            assert f"tfbox-{ABSENT_STACK}-notebook" not in names, "the notebook container exists"
            assert f"tfbox-{ABSENT_STACK}-gpu-check" not in names, "a GPU check container was created"
            named = f"GPU {gpus}" if gpus.isdigit() else gpus
            said = f"tfbox:gpus: stack '{ABSENT_STACK}' asks for {named}, which this machine does not have"
            assert said in out and "Fix: name GPUs it lists" in out, (
                "up failed, but without tfbox's message: " + " ".join(out.split()[-60:]))
            assert "unresolvable CDI devices" not in out, "Docker's words reached the user"
            d.append(f"up exited {done.returncode}, no container, tfbox: '{said}'")


def check_gpu_output(p: Proof, mode: str, facts: dict[str, str]) -> None:
    with p.check(f"[{mode}] GPU check: the real nvidia-smi -L is the gpuCheck output") as d:
        out = str(outputs(p, STACK)["gpuCheck"])
        listed = [line for line in out.splitlines() if line.startswith("GPU ")]
        first = facts["list"].splitlines()[0] if facts["list"] else "?"
        assert listed == [first], f"gpuCheck lists {listed}, the host's GPU 0 is {first!r}"
        d.append(listed[0])
    with p.check(f"[{mode}] CUDA check reads the real driver") as d:
        m = HEADER.search(out)
        assert m, f"no driver header in the gpuCheck output: {out!r}"
        assert (m.group(1), m.group(2)) == (facts["driver"], facts["cuda"]), (
            f"the check saw driver {m.group(1)} CUDA {m.group(2)}, the host's nvidia-smi says {facts['driver']} / {facts['cuda']}")
        d.append(f"driver {m.group(1)}, CUDA {m.group(2)}")


def login(p: Proof) -> Any:
    from tests.e2e.harness import Jupyter  # the e2e tests' client: login form, REST and kernel WebSocket

    session = Jupyter(f"http://127.0.0.1:{p.ports['nb']}")
    assert not Jupyter(session.base).login(p.password + "x"), "a wrong password logged in"
    assert session.login(p.password), "the stack's password did not log in"
    status, _ = session.request("GET", "/api/contents")
    assert status == 200, f"/api/contents after login: {status}"
    return session


def check_notebook(p: Proof, mode: str, facts: dict[str, str]) -> None:
    session = None
    with p.check(f"[{mode}] notebook answers through the real login") as d:
        session = login(p)
        d.append("wrong password refused, the stack's password logs in, /api/contents 200")
    if session is None:
        return
    logdir = f"/tf/logs/gpu-proof-{mode}"
    cell_out: dict[str, str] = {}
    with p.check(f"[{mode}] a kernel cell sees the GPU; capture() brings the libraries' output in") as d:
        code = CELL.replace("@BEFORE@", BEFORE).replace("@AFTER@", AFTER).replace("@LOGDIR@", logdir)
        cell_out = session.execute(code, timeout=900)
        p.say("cell stdout:\n" + cell_out["stdout"] + "\ncell stderr:\n" + cell_out["stderr"] + "\ncell error:\n" + cell_out["error"])
        assert not cell_out["error"], "the cell raised: " + cell_out["error"][-600:]
        stdout = cell_out["stdout"]
        inside = stdout.split(BEFORE, 1)[-1].split(AFTER, 1)[0]
        assert HEADER.search(inside), "nvidia-smi's table did not reach the cell between the markers (capture())"
        gpu = facts["gpu"].split(", ")[0]
        assert gpu in inside, f"nvidia-smi's table in the cell does not name {gpu}"
        m = re.search(r"^RESULT (\{.*\})$", stdout, re.M)
        assert m, "the cell printed no RESULT line"
        result = json.loads(m.group(1))
        assert result["ok"], f"the matrix product is wrong: {result}"
        d.append(f"nvidia-smi in the cell names {gpu}")
        if str(result["library"]).startswith("numpy"):
            assert p.rehearsal, "neither torch nor jax sees the GPU in the notebook (numpy fell back to the CPU)"
            d.append(f"{result['library']} on the CPU (rehearsal: no torch/jax)")
        else:
            d.append(f"{result['library']} multiplied on {result['device']}")
            libs = [line for line in (stdout + cell_out["stderr"]).splitlines()
                    if re.search(r"cuBLAS|cublas|\[cublasLt\]|XLA|^[IWE]\d{4} ", line)]
            assert libs, "no output of the CUDA libraries themselves (cuBLAS/cuBLASLt/XLA logging) reached the cell"
            d.append(f"{len(libs)} lines of the CUDA libraries' own output in the cell, e.g. {libs[0][:80]!r}")
    with p.check(f"[{mode}] TensorBoard shows the run's scalars") as d:
        from tests.e2e.harness import http_get

        tb = f"http://127.0.0.1:{p.ports['tb']}"
        run = f"gpu-proof-{mode}"
        deadline = time.monotonic() + 90  # TensorBoard reloads its logdir every few seconds
        values: list[Any] = []
        while time.monotonic() < deadline:
            q = urllib.parse.urlencode({"run": run, "tag": "gpu_proof/loss"})
            status, body = http_get(f"{tb}/data/plugin/scalars/scalars?{q}")
            if status == 200:
                values = json.loads(body)
                if len(values) == 5:
                    break
            time.sleep(2)
        assert len(values) == 5, f"TensorBoard has {len(values)} of the 5 scalars of run {run}"
        assert abs(values[-1][2] - 0.2) < 1e-6, f"the last scalar is {values[-1]}"
        d.append(f"run {run}: 5 scalars, last {values[-1][2]:.2f}")


def wait_healthy(p: Proof, name: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = "?"
    while time.monotonic() < deadline:
        state = p.docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
        if state == "healthy":
            return state
        time.sleep(2)
    return state


def check_doctor_and_converged(p: Proof, mode: str) -> None:
    with p.check(f"[{mode}] doctor reports the GPU lab healthy") as d:
        # the notebook's health check runs nvidia-smi -L (components/model/commands.py): healthy means it saw the GPU
        state = wait_healthy(p, f"tfbox-{STACK}-notebook")
        assert state == "healthy", f"the notebook's health is {state!r}"
        done = p.run(".venv/bin/python", "scripts/doctor.py", "--stack", STACK)
        assert done.returncode == 0 and "all labs healthy" in done.stdout, f"doctor: {done.stdout[-500:]}"
        d.append("notebook healthy (its probe runs nvidia-smi -L), doctor exit 0: all labs healthy")
    with p.check(f"[{mode}] a second up changes nothing (pulumi preview --expect-no-changes)") as d:
        p.pulumi("preview", "--expect-no-changes", "--stack", STACK, check=True)
        done = up(p, STACK)
        assert done.returncode == 0, "the second up failed"
        from tests.e2e.harness import change_summary

        changed = change_summary(done.stdout)
        assert not changed, f"the second up changed {changed}"
        d.append("preview: no changes; second scripts/up.sh: no changes")


def check_mode(p: Proof, mode: str, facts: dict[str, str], first: bool) -> bool:
    ok = False
    with p.check(f"[{mode}] tfbox's up (scripts/up.sh) with tfbox:gpuCheck") as d:
        if not first:
            set_config(p, STACK, "tfbox:gpuMode", mode)
        done = up(p, STACK)
        assert done.returncode == 0, "up failed: " + " ".join((done.stdout + done.stderr).split()[-80:])
        info = json.loads(p.docker("inspect", f"tfbox-{STACK}-notebook", check=True).stdout)[0]
        runtime = info["HostConfig"].get("Runtime")
        requests = info["HostConfig"].get("DeviceRequests") or []
        if mode == "nvidia-runtime":
            assert runtime == "nvidia" and not requests, f"runtime {runtime}, device requests {requests}"
            d.append("notebook on runtime nvidia with NVIDIA_VISIBLE_DEVICES=0")
        else:
            assert [r.get("DeviceIDs") for r in requests] == [["0"]], f"device requests {requests}"
            d.append("notebook with the device request for GPU 0")
        ok = True
    if not ok:
        return False
    check_gpu_output(p, mode, facts)
    check_notebook(p, mode, facts)
    check_doctor_and_converged(p, mode)
    return True


def check_destroy(p: Proof) -> None:
    with p.check("destroy keeps the notebooks") as d:
        from tests.e2e.harness import Jupyter

        session = Jupyter(f"http://127.0.0.1:{p.ports['nb']}")
        assert session.login(p.password)
        session.save_notebook("gpu-proof.ipynb", "print('kept')")
        p.run("scripts/up.sh", STACK, "--destroy", check=True)
        names = p.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert not [n for n in names if n.startswith(f"tfbox-{STACK}-")], f"containers left: {names}"
        shown = p.docker("run", "--rm", "--network", "none", "-v", f"tfbox-{STACK}-notebooks:/tf", p.image,
                         "cat", "/tf/gpu-proof.ipynb")
        assert shown.returncode == 0 and "kept" in shown.stdout, "the saved notebook is not in the volume after destroy"
        d.append(f"no containers left; gpu-proof.ipynb still in volume tfbox-{STACK}-notebooks")


def checks(a: argparse.Namespace) -> int:
    project = Path(a.project).resolve()
    sys.path.insert(0, str(project))
    p = Proof(project=project, docker_host=a.docker_host, image=a.image, checks=Path(a.checks), log=Path(a.log),
              rehearsal=a.rehearsal)
    home = project.parent / "pulumi-home"
    home.mkdir(exist_ok=True)
    p.env = {
        **os.environ,
        "PATH": f"{project / '.venv' / 'bin'}:{os.environ['PATH']}",
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{project / '.state'}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(project / ".state" / "passphrase"),
        "PULUMI_SKIP_UPDATE_CHECK": "1", "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "1", "PULUMI_IGNORE_AMBIENT_PLUGINS": "1",
    }
    p.env.pop("DOCKER_HOST", None)
    p.ports = {"nb": free_port(), "tb": free_port()}
    facts: dict[str, str] = {}
    with p.check("host: nvidia-smi answers") as d:
        facts = host_facts(p)
        assert facts["list"] and facts["count"] != "0", "nvidia-smi -L lists no GPU on this host"
        (p.checks.parent / "host.json").write_text(json.dumps(facts))
        d.append(f"{facts['count']} x {facts['gpu']}, driver {facts['driver']}, CUDA {facts['cuda']}")
    if not facts:
        return 1
    cfg = gpu_config(p)
    init_stack(p, STACK, cfg)
    init_stack(p, ABSENT_STACK, {**cfg, "tfbox:notebookPort": free_port(), "tfbox:tensorboardMode": "off"})
    (p.project / ".state" / "passphrase").chmod(0o600)
    for i, mode in enumerate(MODES):
        check_absent(p, mode)
        if not check_mode(p, mode, facts, first=i == 0):
            break
    p.run("scripts/up.sh", ABSENT_STACK, "--destroy")
    check_destroy(p)
    return 0


# ---------------------------------------------------------------- summary
def summary(a: argparse.Namespace) -> int:
    rows = [[*line.rstrip("\n").split("\t"), "", "", ""][:4] for line in Path(a.checks).read_text().splitlines() if line.strip()]
    facts_file = Path(a.checks).parent / "host.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    failed = [r for r in rows if r[1] != "PASS"]
    lines = [
        "",
        "tfbox GPU proof " + ("PASSED" if rows and not failed else "FAILED") + f" ({len(rows) - len(failed)} of {len(rows)} checks)",
        f"  host {facts.get('host', socket.gethostname())}, GPU {facts.get('gpu', '?')} x {facts.get('count', '?')}, "
        f"driver {facts.get('driver', '?')}, CUDA {facts.get('cuda', '?')}",
    ]
    for name, verdict, took, detail in rows:
        lines.append(f"  {verdict:4} {took:>7} s  {name}" + (f"\n                  {detail}" if detail else ""))
    lines.append(f"  full log: {a.log}")
    text = "\n".join(lines)
    print(text)
    with open(a.log, "a") as f:
        f.write(text + "\n")
    return 0 if rows and not failed else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("checks")
    c.add_argument("--project", required=True)
    c.add_argument("--docker-host", required=True)
    c.add_argument("--image", required=True)
    c.add_argument("--checks", required=True)
    c.add_argument("--log", required=True)
    c.add_argument("--rehearsal", action="store_true", help="the fake GPU host of CI: numpy may stand in for torch/jax")
    s = sub.add_parser("summary")
    s.add_argument("--checks", required=True)
    s.add_argument("--log", required=True)
    a = ap.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = checks if a.cmd == "checks" else summary
    return run(a)


if __name__ == "__main__":
    sys.exit(main())

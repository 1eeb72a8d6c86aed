#!/usr/bin/env python3
"""Benchmark (issue 18): tfbox's Kubernetes backend against `kubectl apply` of the same manifests.

On the test kit's cluster (scripts/k8s.sh: a real etcd, API server, scheduler and controller manager), for
1 and 2 seats, sides interleaved run by run:

- **tfbox**: `pulumi up --yes --skip-preview` of a `tfbox:backend: kubernetes` stack, from nothing;
- **kubectl**: `kubectl apply --server-side -f` of exactly the manifests that stack declares, then
  `kubectl wait --for=create` and `--for=condition=Ready` on each seat's notebook pod, `kubectl rollout
  status` on each seat's TensorBoard Deployment and `--for=jsonpath={.status.phase}=Bound` on its claims.

The manifests are what the program itself declares: the real `__main__.py` run under Pulumi's mocks
(tests/docker/program.py) with the stack's own config, secrets included, the seats' objects made by
components/kubernetes/objects.py. They are written to a private directory (0700, files 0600) and never
printed. After the first run of each size the two sides' live objects are compared, so "the same
manifests" is checked, not assumed. Server-side apply, because pulumi-kubernetes applies server-side too,
and because a client-side `kubectl apply` would copy the Secret's `stringData` (the password's hash) into
the `last-applied-configuration` annotation.

Each side is timed until its commands have returned **and** every seat's pod is Ready and every claim
Bound (the API is polled every 0.1 s once they have returned, so the poller does not compete with them);
then a no-op (a second `up`, a second apply and the same waits; each checked to keep every pod and
StatefulSet and Deployment generation), and a TensorBoard change (`tfbox:tensorboardMode: off`: each seat's
TensorBoard is a Deployment of its own, which tfbox's `up` deletes with its Service and NetworkPolicy;
timed until every TensorBoard pod is gone, and checked to keep every notebook pod). `kubectl apply` does not
delete what a manifest no longer has: the kubectl side deletes those objects explicitly (`kubectl delete
deployment,service,networkpolicy -l tfbox.role=tensorboard --cascade=foreground`, waited for), the
equivalent of what the engine does from its state. Every run and side gets a namespace of its own (the
stack's `tfbox:namespace`; the kubectl side's manifests are made for that namespace too, since the
notebook's proxy names TensorBoard's Service by it) and new volumes for its claims, so every run starts
from nothing; the namespace is deleted after the run (its claims with it), and waited for unless
`--wait-teardown 0`.

`--node kwok` (default): the pods land on a kwok node, which **runs no container**: kwok marks a pod
Running and Ready as soon as it is scheduled, so "ready" is simulated and the figures are the control
plane's and the tools' cost, not a notebook's start. `--node real`: a real node (containerd and a kubelet,
scripts/k8s.sh node) with the notebook image imported, where Ready means the readiness probes on
Jupyter's /api and TensorBoard's /data/logdir passed.

    bench/k8s_apply.py [-n RUNS] [--seats 1,2] [--node kwok|real] [--change 0|1] [--cluster NAME] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, log, machine, median, sh
from components.model.labels import ROLE_LABEL
from tests.e2e.harness import Project, change_summary

SIDES = ("tfbox", "kubectl")
SCENARIOS = ("from nothing", "no-op", "TensorBoard change")
KWOK_IMAGE = "tensorflow/tensorflow:latest-jupyter"  # kwok pulls nothing
REAL_IMAGE = "tfbox-test/tensorflow:latest-jupyter"  # scripts/tf-image.sh's tag, imported into the real node
KWOK_NOTE = ("kwok node: readiness is SIMULATED (kwok marks a scheduled pod Ready; no container runs), so these "
             "are the control plane's and the tools' times, not a notebook's start")
REAL_NOT_READY = ("--node real: the seats' pods did not get Ready on the real node ({why}); the real-node kit "
                  "(scripts/k8s.sh node, scripts/k8s-node.sh) does not run pods on this machine yet. Use --node kwok.")
PV_LABEL = "tfbox-bench"


class RealNodeError(SystemExit):
    """The real node could not run the seats' pods: one message, no traceback."""


# --- the cluster -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Api:
    """The test kit's API server, read in-process (a kubectl per poll would cost more CPU than it measures)."""

    server: str
    token: str
    context: ssl.SSLContext

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Api:
        kc = yaml.safe_load(path.read_text())
        cluster, user = kc["clusters"][0]["cluster"], kc["users"][0]["user"]
        return cls(cluster["server"], user["token"], ssl.create_default_context(cafile=cluster["certificate-authority"]))

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=5, context=self.context) as r:
            return json.load(r)


@dataclass
class Cluster:
    name: str
    kubeconfig: Path
    kubectl_bin: str
    api: Api
    started: bool  # by this run: purged at the end, so its last teardown can be skipped

    def kubectl(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args[:3])} … failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done


@functools.cache
def kit_env() -> dict[str, str]:
    kubectl = os.environ.get("TFBOX_KUBECTL") or shutil.which("kubectl") or str(ROOT / ".venv" / "bin" / "kubectl")
    k8s_bin = os.environ.get("TFBOX_K8S_BIN") or sh("toolchain/k8s.sh").strip().splitlines()[-1]
    return {"TFBOX_KUBECTL": kubectl, "TFBOX_K8S_BIN": k8s_bin}


@contextlib.contextmanager
def cluster(name: str, node: str, image: str) -> Iterator[Cluster]:
    """The kit's cluster NAME, started if it is not running (and then stopped and purged at the end)."""
    env = kit_env()
    started = subprocess.run(["scripts/k8s.sh", "status", name], cwd=ROOT, env={**os.environ, **env},
                             capture_output=True, check=False).returncode != 0
    log(("starting" if started else "reusing") + f" the test kit's cluster `{name}` (scripts/k8s.sh)")
    out = sh("scripts/k8s.sh", "start", name, env=env)
    kubeconfig = Path(next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("KUBECONFIG=")))
    c = Cluster(name, kubeconfig, env["TFBOX_KUBECTL"], Api.from_kubeconfig(kubeconfig), started)
    try:
        if node == "kwok":
            sh("scripts/k8s.sh", "gpu-node", name, "bench-kwok", "0", env=env)
        else:
            real_node(c, env, image)
        yield c
    finally:
        if started:
            log(f"purging the cluster `{name}` this run started")
            with contextlib.suppress(SystemExit):
                sh("scripts/k8s.sh", "purge", name, env=env)


def real_node(c: Cluster, env: dict[str, str], image: str) -> None:
    """A real node with the notebook image in its containerd; any failure is the one --node real message."""
    p = subprocess.run(["scripts/k8s.sh", "node", c.name, f"{c.name}-node"], cwd=ROOT, env={**os.environ, **env},
                       capture_output=True, text=True, timeout=900, check=False)
    if p.returncode != 0:
        raise RealNodeError(REAL_NOT_READY.format(why="scripts/k8s.sh node failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]))
    source = image
    if image == REAL_IMAGE:
        cached = sorted((Path.home() / ".cache" / "tfbox" / "images").glob("tf-jupyter-*.tar.zst"), key=lambda f: f.stat().st_mtime)
        if not cached:
            raise SystemExit("--node real needs the notebook image: run scripts/tf-image.sh once (it caches a tarball), or pass --image")
        source = str(cached[-1])
    log(f"importing {source} into the real node's containerd (not timed)")
    p = subprocess.run(["scripts/k8s.sh", "image", c.name, source], cwd=ROOT, env={**os.environ, **env},
                       capture_output=True, text=True, timeout=1800, check=False)
    if p.returncode != 0:
        raise RealNodeError(REAL_NOT_READY.format(why="importing the image failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]))


def fresh_volumes(c: Cluster, prefix: str, count: int) -> None:
    """`count` new empty hostPath volumes for the claims (the kit has no provisioner). A deleted claim leaves its
    Retain volume Released, never to bind again: those are deleted, and every run gets volumes of its own."""
    pvs = c.api.get(f"/api/v1/persistentvolumes?labelSelector={PV_LABEL}%3D1")["items"]
    released = [p["metadata"]["name"] for p in pvs if p.get("status", {}).get("phase") in ("Released", "Failed")]
    if released:
        c.kubectl("delete", "pv", *released, "--wait=false")
    base = c.kubeconfig.parent / "bench-pv"
    docs = [{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{prefix}-{i}", "labels": {PV_LABEL: "1"}},
             "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                      "hostPath": {"path": str(base / f"{prefix}-{i}"), "type": "DirectoryOrCreate"}}} for i in range(count)]
    manifest = c.kubeconfig.parent / "bench-pvs.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    c.kubectl("apply", "-f", str(manifest))


def delete_namespace(c: Cluster, ns: str, wait: bool = True) -> None:
    """The namespace and all in it. With `wait`, until it is gone, its pods deleted first without their grace
    period (the namespace controller otherwise waits out an estimate of it); it takes 6-15 s on the kit even
    so (the controller's discovery of every resource kind, at its client's rate limit)."""
    if c.kubectl("get", "namespace", ns, check=False).returncode != 0:
        return
    t0 = time.monotonic()
    if wait:
        c.kubectl("delete", "statefulsets,pods", "--all", "-n", ns, "--grace-period=0", "--force", "--wait=true")
    c.kubectl("delete", "namespace", ns, f"--wait={str(wait).lower()}", "--ignore-not-found", "--timeout=300s")
    if wait:
        log(f"deleted namespace {ns} in {time.monotonic() - t0:.1f} s (not timed)")


# --- the manifests -----------------------------------------------------------------------------------------

def _unwrap(value: Any) -> Any:
    """A mocked Output's secret wrapper ({sig: …, value: …}) replaced by its value, at any depth."""
    from tests.docker.program import SIG_KEY
    if isinstance(value, dict):
        if SIG_KEY in value:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def engine_config(config: dict[str, Any]) -> dict[str, Any]:
    """The stack's config as the engine hands it to the program: Pulumi.yaml's defaults under the stack's values."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {f"tfbox:{k}": v["default"] for k, v in project["config"].items() if "default" in v}
    values.update(config)
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in values.items()}


def manifests(config: dict[str, Any], stack: str) -> list[dict[str, Any]]:
    """What the program declares for this config, as plain manifests (namespace first): the real __main__.py
    under Pulumi's mocks, in a child process, so the mocks' global state stays out of the benchmark."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from bench.k8s_apply import _declared; "
            "print(json.dumps(_declared(json.load(sys.stdin), sys.argv[2])))")
    env = {**os.environ, "PATH": f"{Path(kit_env()['TFBOX_KUBECTL']).parent}:{os.environ['PATH']}"}  # the preflight's kubectl
    p = subprocess.run([sys.executable, "-c", code, str(ROOT), stack], input=json.dumps(config), capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=300, check=False)
    if p.returncode != 0:
        raise SystemExit(f"the program under mocks failed ({p.returncode}):\n{p.stderr[-3000:]}")  # stderr: no secret values
    return list(json.loads(p.stdout.splitlines()[-1]))


def _declared(config: dict[str, Any], stack: str) -> list[dict[str, Any]]:
    from tests.docker.program import run_program
    secret_keys = tuple(k for k in ("tfbox:passwords", "tfbox:password") if k in config)
    rec, _ = run_program(engine_config(config), stack=stack, secret_keys=secret_keys)
    out = [_unwrap(r.inputs) for r in rec.resources if r.type.startswith("kubernetes:")]
    # in a stable order (the program registers them as its Outputs resolve), the namespace first
    return sorted(out, key=lambda m: (m["kind"] != "Namespace", m["kind"], m["metadata"]["name"]))


def write_private(directory: Path, name: str, docs: list[dict[str, Any]]) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump_all(docs, f)
    return path


# --- readiness ---------------------------------------------------------------------------------------------

def seat_state(c: Cluster, ns: str) -> tuple[dict[str, tuple[str, bool]], dict[str, str]]:
    """Each pod's uid -> (its tfbox.role, Ready and not being deleted), each claim -> phase (empty when the
    namespace is not there yet)."""
    try:
        pods = c.api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
        claims = c.api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"]
    except OSError:
        return {}, {}
    ready = {p["metadata"]["uid"]: ((p["metadata"].get("labels") or {}).get(ROLE_LABEL, ""),
                                    p.get("metadata", {}).get("deletionTimestamp") is None and any(
        cond["type"] == "Ready" and cond["status"] == "True" for cond in p.get("status", {}).get("conditions", [])))
        for p in pods}
    return ready, {cl["metadata"]["name"]: cl.get("status", {}).get("phase", "") for cl in claims}


def settled(pods: dict[str, tuple[str, bool]], claims: dict[str, str], seats: int, tensorboard: bool) -> bool:
    """Every seat's notebook pod Ready, its TensorBoard pod Ready (or, with TensorBoard off, gone), every claim Bound."""
    notebooks = [ok for role, ok in pods.values() if role == "notebook"]
    boards = [ok for role, ok in pods.values() if role == "tensorboard"]
    return (len(notebooks) == seats and all(notebooks) and (len(boards) == seats and all(boards) if tensorboard else not boards)
            and len(claims) == 2 * seats and all(p == "Bound" for p in claims.values()))


def wait_ready(c: Cluster, ns: str, seats: int, tensorboard: bool, timeout: float, node: str) -> float:
    """Poll the namespace every 0.1 s until it has `settled`; the moment it had. Called once the side's commands have
    returned, not while they run: a poller meanwhile would compete for 2 cores with the CLI, the provider and the
    API server, and ready means both (returned, then ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled(*seat_state(c, ns), seats, tensorboard):
            return time.monotonic()
        time.sleep(0.1)
    why = pod_trouble(c, ns)
    if node == "real":
        raise RealNodeError(REAL_NOT_READY.format(why=why))
    raise SystemExit(f"the seats in {ns} were not ready within {timeout:.0f} s: {why}")


def pod_trouble(c: Cluster, ns: str) -> str:
    """Why the pods are not ready, in one line (their phase and the first container's waiting reason)."""
    try:
        pods = c.api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
    except OSError as e:
        return f"the API server did not answer ({e})"
    if not pods:
        return "no pod was created"
    parts = []
    for p in pods:
        reasons = [s.get("state", {}).get("waiting", {}).get("reason", "") for s in p.get("status", {}).get("containerStatuses", [])]
        parts.append(f"{p['metadata']['name']}: {p.get('status', {}).get('phase', '?')} {' '.join(r for r in reasons if r)}".strip())
    return "; ".join(parts)


def live_marks(c: Cluster, ns: str, role: str = "") -> dict[str, Any]:
    """What a no-op must keep: each pod's uid, restart counts, and each StatefulSet's and Deployment's generation;
    with `role` only that role's pods and workloads (a TensorBoard change must keep the notebooks')."""
    def mine(o: dict[str, Any]) -> bool:
        return not role or (o["metadata"].get("labels") or {}).get(ROLE_LABEL) == role

    pods = [p for p in c.api.get(f"/api/v1/namespaces/{ns}/pods")["items"] if mine(p)]
    workloads = [w for kind in ("statefulsets", "deployments")
                 for w in c.api.get(f"/apis/apps/v1/namespaces/{ns}/{kind}")["items"] if mine(w)]
    return {"pods": sorted((p["metadata"]["uid"], sum(s.get("restartCount", 0) for s in p.get("status", {}).get("containerStatuses", [])))
                           for p in pods),
            "generations": {w["metadata"]["name"]: w["metadata"]["generation"] for w in workloads}}


# --- the live objects of the two sides, compared -----------------------------------------------------------

KINDS = ("statefulsets.apps", "deployments.apps", "services", "networkpolicies.networking.k8s.io", "configmaps", "secrets", "persistentvolumeclaims")


def live_objects(c: Cluster, ns: str) -> dict[str, Any]:
    """The namespace's objects as declared and defaulted by the API server, without what differs by who applied
    them (managed fields, uids, the provider's managed-by label, assigned addresses) and with each Secret's data
    reduced to a digest (compared, never printed)."""
    items = json.loads(c.kubectl("get", ",".join(KINDS), "-n", ns, "-o", "json").stdout)["items"]
    out: dict[str, Any] = {}
    for o in items:
        kind, meta = o["kind"], o["metadata"]
        if kind == "ConfigMap" and meta["name"] == "kube-root-ca.crt":
            continue
        if kind == "Secret" and meta.get("type", o.get("type")) == "kubernetes.io/service-account-token":
            continue
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "app.kubernetes.io/managed-by"}
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("kubectl.kubernetes.io/")}
        body = {k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")}
        if kind == "Secret":
            body["data"] = hashlib.sha256(json.dumps(body.get("data"), sort_keys=True).encode()).hexdigest()
        spec = body.get("spec")
        if isinstance(spec, dict):
            for k in ("clusterIP", "clusterIPs", "volumeName"):
                spec.pop(k, None)
        out[f"{kind}/{meta['name']}"] = {"labels": labels, "annotations": annotations, **body}
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    diffs = [f"{k}: only on the tfbox side" for k in a if k not in b] + [f"{k}: only on the kubectl side" for k in b if k not in a]
    diffs += [f"{k}: differs" for k in a if k in b and a[k] != b[k]]
    return diffs


# --- one size ----------------------------------------------------------------------------------------------

@dataclass
class Run:
    returned: float  # seconds until the command(s) returned
    ready: float  # seconds until they had returned and every seat was ready


class Size:
    """One seat count: its tfbox stack and its manifests (the same stack name, so the same namespace and names)."""

    def __init__(self, c: Cluster, project: Project, seats: int, image: str, node: str, private: Path, timeout: float,
                 change: bool) -> None:
        self.c, self.project, self.n, self.node, self.timeout = c, project, seats, node, timeout
        self.stack = f"kb{seats}"
        self.ns = f"tfbox-{self.stack}"  # each run and side gets a namespace of its own: start() names it
        self.private = private
        seat_list = [{"name": f"s{i}", "gpus": "none", "notebookPort": 8800 + i, "tensorboardPort": 6600 + i} for i in range(seats)]
        self.config: dict[str, Any] = {
            "tfbox:backend": "kubernetes", "kubernetes:kubeconfig": str(c.kubeconfig), "tfbox:image": image,
            "tfbox:passwordSalt": secrets.token_hex(16), "tfbox:seats": seat_list, "tfbox:notebooksSize": "1g", "tfbox:logsSize": "1g",
            "tfbox:keepVolumes": False,  # the benchmark's claims go with the stack (a user's are kept by default)
        }
        self.passwords = {s["name"]: "bench-" + secrets.token_urlsafe(18) for s in seat_list}
        (project.dir / f"Pulumi.{self.stack}.yaml").write_text(yaml.safe_dump({"config": self.config}))
        project.pulumi("stack", "init", self.stack, "--secrets-provider", "passphrase")
        for seat, password in self.passwords.items():
            project.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat}", "--stack", self.stack, input=password)
        self.full = {**self.config, "tfbox:passwords": self.passwords}
        self.change = change
        self.files: dict[str, Path] = {}
        self.pods = [f"tfbox-{self.stack}-{s['name']}-notebook-0" for s in seat_list]
        self.tensorboards = [f"tfbox-{self.stack}-{s['name']}-tensorboard" for s in seat_list]

    def start(self, side: str, run: int) -> None:
        """A new namespace for this side's run (not timed): the stack's `tfbox:namespace`, the manifests' namespace,
        and new volumes for its claims."""
        self.ns = f"kb{self.n}-{side}-{run}"
        if side == "tfbox":
            self.project.pulumi("config", "set", "tfbox:namespace", self.ns, "--stack", self.stack)
        else:
            log(f"{self.n} seat(s): the manifests the program declares for namespace {self.ns} (under mocks), into a private directory")
            here = {**self.full, "tfbox:namespace": self.ns}
            docs = {"from nothing": manifests(here, self.stack)}
            if self.change:
                docs["TensorBoard change"] = manifests({**here, "tfbox:tensorboardMode": "off"}, self.stack)
            self.files = {k: write_private(self.private, f"{self.stack}-{k.replace(' ', '-')}.yaml", d) for k, d in docs.items()}
        fresh_volumes(self.c, f"bench-pv-{self.ns}", 2 * self.n)

    def clear(self, side: str, wait: bool) -> None:
        """Nothing of this run left: the namespace deleted (its claims with it) and, for tfbox, the stack's state
        emptied to match (`pulumi destroy` would take as long again, and is not what is measured)."""
        delete_namespace(self.c, self.ns, wait)
        if side == "tfbox":
            self.project.pulumi("state", "delete", "--all", "--yes", "--stack", self.stack)
            self.project.pulumi("config", "rm", "tfbox:tensorboardMode", "--stack", self.stack, check=False)

    def _timed(self, commands: Callable[[], None], tensorboard: bool) -> Run:
        t0 = time.monotonic()
        try:
            commands()
        except (SystemExit, AssertionError, subprocess.TimeoutExpired) as e:
            if self.node == "real" and not isinstance(e, RealNodeError):  # any failure there: the one message
                raise RealNodeError(REAL_NOT_READY.format(why=pod_trouble(self.c, self.ns))) from None
            raise
        returned = time.monotonic()
        at = wait_ready(self.c, self.ns, self.n, tensorboard, self.timeout, self.node)
        return Run(returned - t0, at - t0)

    def marks(self, scenario: str) -> dict[str, Any] | None:
        """What the scenario must keep: everything (a no-op), the notebooks' pods and StatefulSets (a TensorBoard change)."""
        return {"no-op": live_marks(self.c, self.ns), "TensorBoard change": live_marks(self.c, self.ns, "notebook")}.get(scenario)

    def check_kept(self, scenario: str, side: str, before: dict[str, Any] | None) -> None:
        if before is not None and live_marks(self.c, self.ns, "notebook" if scenario == "TensorBoard change" else "") != before:
            raise SystemExit(f"{side}'s {scenario} replaced or restarted a pod it must keep, or changed a StatefulSet")

    def tfbox(self, scenario: str) -> Run:
        if scenario == "TensorBoard change":
            self.project.pulumi("config", "set", "tfbox:tensorboardMode", "off", "--stack", self.stack)
        marks = self.marks(scenario)

        def up() -> None:
            res = self.project.pulumi("up", "--yes", "--skip-preview", "--stack", self.stack, timeout=self.timeout, check=False)
            if res.returncode != 0:
                if self.node == "real":
                    raise RealNodeError(REAL_NOT_READY.format(why=pod_trouble(self.c, self.ns)))
                raise SystemExit(f"tfbox up ({scenario}) failed:\n{res.output[-4000:]}")
            if scenario == "no-op" and change_summary(res.output):
                raise SystemExit(f"tfbox's second up was not a no-op:\n{res.output[-3000:]}")
        run = self._timed(up, scenario != "TensorBoard change")
        self.check_kept(scenario, "tfbox", marks)
        return run

    def kubectl(self, scenario: str) -> Run:
        c, ns, t = self.c, self.ns, f"--timeout={self.timeout:.0f}s"
        marks = self.marks(scenario)
        change = scenario == "TensorBoard change"
        manifest = self.files["TensorBoard change" if change else "from nothing"]
        pods = [f"pod/{p}" for p in self.pods]

        def apply() -> None:
            c.kubectl("apply", "--server-side", "--field-manager=tfbox-bench", "-f", str(manifest))
            if change:  # apply leaves what the manifests no longer have: delete it, and wait until its pods are gone
                c.kubectl("delete", "deployments,services,networkpolicies", "-l", f"{ROLE_LABEL}=tensorboard", "-n", ns,
                          "--cascade=foreground", "--wait=true", t, timeout=self.timeout + 30)
            else:
                c.kubectl("wait", "--for=create", *pods, "-n", ns, t, timeout=self.timeout + 30)
                for tb in self.tensorboards:
                    c.kubectl("rollout", "status", f"deployment/{tb}", "-n", ns, t, timeout=self.timeout + 30)
            done = c.kubectl("wait", "--for=condition=Ready", *pods, "-n", ns, t, check=False, timeout=self.timeout + 30)
            if done.returncode != 0:
                if self.node == "real":
                    raise RealNodeError(REAL_NOT_READY.format(why=pod_trouble(c, ns)))
                raise SystemExit(f"kubectl wait failed: {done.stderr.strip()[-2000:]}")
            c.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc", "--all", "-n", ns, t, timeout=self.timeout + 30)
        run = self._timed(apply, not change)
        self.check_kept(scenario, "kubectl", marks)
        return run


def bench(c: Cluster, project: Project, sizes: list[int], runs: int, scenarios: tuple[str, ...], image: str, node: str,
          timeout: float, wait_teardown: bool) -> tuple[dict[str, Any], dict[str, list[str]]]:
    private = Path(tempfile.mkdtemp(prefix="tfbox-bench-k8s-"))  # 0700: the manifests hold the Secrets
    results: dict[str, Any] = {}
    checked: dict[str, list[str]] = {}
    try:
        log("stacks and manifests")
        built = {n: Size(c, project, n, image, node, private, timeout, "TensorBoard change" in scenarios) for n in sizes}
        times: dict[int, dict[str, dict[str, list[Run]]]] = {n: {side: {sc: [] for sc in scenarios} for side in SIDES} for n in sizes}
        for i in range(runs):
            order = sizes if i % 2 == 0 else list(reversed(sizes))
            for n in order:
                size = built[n]
                sides = SIDES if i % 2 == 0 else tuple(reversed(SIDES))
                for side in sides:
                    size.start(side, i)
                    for scenario in scenarios:
                        run = getattr(size, side)(scenario)
                        times[n][side][scenario].append(run)
                        log(f"{n} seat(s), {side}, {scenario}: returned {run.returned:.2f} s, ready {run.ready:.2f} s")
                        if scenario == "from nothing" and i == 0:
                            checked.setdefault(str(n), []).append(json.dumps(live_objects(c, size.ns), sort_keys=True))
                    if c.started and i == runs - 1 and n == order[-1] and side == sides[-1]:
                        continue  # the very last teardown: the cluster is purged anyway
                    size.clear(side, wait_teardown)
        for n in sizes:
            a, b = (json.loads(s) for s in checked[str(n)])
            diffs = differences(a, b)  # run 0 ran tfbox first
            checked[str(n)] = diffs
            if diffs:
                raise SystemExit(f"{n} seat(s): the kubectl side's objects are not tfbox's: " + "; ".join(diffs))
        for n in sizes:
            results[str(n)] = {}
            for side in SIDES:
                results[str(n)][side] = {}
                for scenario in scenarios:
                    rs = times[n][side][scenario]
                    results[str(n)][side][scenario] = {
                        key: {"median": median([getattr(r, key) for r in rs]), "min": min(getattr(r, key) for r in rs),
                              "max": max(getattr(r, key) for r in rs), "runs": [getattr(r, key) for r in rs]}
                        for key in ("ready", "returned")}
            for scenario in scenarios:
                ours, theirs = (results[str(n)][s][scenario]["ready"]["median"] for s in SIDES)
                results[str(n)]["tfbox"][scenario]["ratio_to_kubectl"] = ours / theirs
    finally:
        shutil.rmtree(private, ignore_errors=True)
        if not c.started:  # a cluster this run started is purged with all in it
            with contextlib.suppress(SystemExit, AssertionError):
                for n in sizes:
                    project.pulumi("destroy", "--yes", "--stack", f"kb{n}", check=False, timeout=900)
                c.kubectl("delete", "namespace", "-l", "tfbox.project=tfbox", "--wait=false", check=False)
                c.kubectl("delete", "pv", "-l", f"{PV_LABEL}=1", "--wait=false", check=False)
    return results, checked


def print_table(results: dict[str, Any], runs: int, node: str) -> None:
    print(f"\ntfbox `pulumi up` vs `kubectl apply --server-side` + `kubectl wait` of the same manifests "
          f"(median of {runs}, min-max; node: {node})")
    if node == "kwok":
        print(f"  NOTE: {KWOK_NOTE}")
    print(f"  {'seats':>5}  {'scenario':<20}{'tfbox ready':>22}{'kubectl ready':>22}{'tfbox/kubectl':>15}")
    for n, per in results.items():
        for scenario in per["tfbox"]:
            cells = []
            for side in SIDES:
                r = per[side][scenario]["ready"]
                cells.append(f"{r['median']:.2f} s ({r['min']:.2f}-{r['max']:.2f})")
            print(f"  {n:>5}  {scenario:<20}{cells[0]:>22}{cells[1]:>22}{per['tfbox'][scenario]['ratio_to_kubectl']:>14.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=int(os.environ.get("TFBOX_BENCH_RUNS", "3")),
                        help="timed runs per side (default 3, or TFBOX_BENCH_RUNS)")
    parser.add_argument("--seats", default="1,2", help="seat counts (default 1,2)")
    parser.add_argument("--node", choices=("kwok", "real"), default="kwok",
                        help="kwok: simulated readiness, no container runs (default); real: the kit's real node")
    parser.add_argument("--change", type=int, choices=(0, 1), default=1, help="also time a TensorBoard change (default 1)")
    parser.add_argument("--cluster", default="bench-k8s", help="the kit cluster's name (scripts/k8s.sh; reused if running)")
    parser.add_argument("--image", default="", help=f"notebook image (default {KWOK_IMAGE} on kwok, {REAL_IMAGE} on a real node)")
    parser.add_argument("--wait-teardown", type=int, choices=(0, 1), default=1,
                        help="1: wait until a run's namespace is gone before the next run (default); 0: delete it in the "
                             "background, so the next timed run may overlap the namespace controller's work (smoke runs)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one command or wait may take")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where k8s_apply.json goes")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sizes = [int(x) for x in args.seats.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        parser.error("--seats takes counts of at least 1, e.g. 1,2")
    image = args.image or (KWOK_IMAGE if args.node == "kwok" else REAL_IMAGE)
    scenarios = SCENARIOS if args.change else SCENARIOS[:2]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    log("toolchain (toolchain/ensure.sh)")
    toolchain_bin = os.environ.get("TFBOX_TOOLCHAIN_BIN") or sh("toolchain/ensure.sh").strip().splitlines()[-1]
    if args.node == "kwok":
        log(KWOK_NOTE)
    try:
        with cluster(args.cluster, args.node, image) as c, tempfile.TemporaryDirectory(prefix="tfbox-bench-") as tmp:
            # only the stack's kubernetes:kubeconfig may reach the cluster, as in tests/e2e/test_k8s_backend.py
            log("project copy and the kubernetes provider plugin")
            project = Project(Path(tmp), toolchain_bin, extra_env={"KUBECONFIG": "/nonexistent"})
            project.pulumi("plugin", "install", "resource", "kubernetes", version("pulumi_kubernetes"),
                           "--file", str(Path(kit_env()["TFBOX_K8S_BIN"]) / "pulumi-resource-kubernetes"))
            results, checked = bench(c, project, sizes, args.runs, scenarios, image, args.node, args.timeout,
                                     bool(args.wait_teardown))
    except RealNodeError as e:
        raise SystemExit(str(e.code)) from None
    print_table(results, args.runs, args.node)
    print("  ready: the command(s) returned and then every seat's notebook and TensorBoard pod Ready (after a TensorBoard "
          "change: every TensorBoard pod gone), every claim Bound (polled every 0.1 s)")
    print("  checked: both sides made the same objects (live specs compared after the first run of each size), "
          "each no-op kept every pod and StatefulSet and Deployment generation, each TensorBoard change every notebook pod")
    print(f"  machine: {machine()}; load average at the start {' '.join(f'{x:.1f}' for x in load_before)}, "
          f"at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"started": started, "machine": machine(), "load_average_start": load_before, "load_average_end": os.getloadavg(),
            "runs": args.runs, "wait_teardown": bool(args.wait_teardown), "node": args.node, "image": image, "simulated_readiness": args.node == "kwok",
            "kubectl": "apply --server-side, wait --for=create/condition=Ready (rollout status for a change), pvc Bound",
            "same_objects_checked": {n: not d for n, d in checked.items()}}
    (out / "k8s_apply.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"\nwrote {out / 'k8s_apply.json'}")


if __name__ == "__main__":
    main()

"""What `make doctor` and `make status` say about a kubernetes stack, from what the cluster says now (issue 18).

A lab on a cluster is a notebook pod per seat, and in sidecar mode a TensorBoard pod beside it on the same
node, placed by the scheduler: the Docker doctor's questions (is it
running, why not) are answered by the pod's phase, its Ready condition, its node and the namespace's
events; a lost GPU shows on the node (allocatable `nvidia.com/gpu` below capacity). This module reads
those objects, as `kubectl get -o json` gives them (KubernetesBackend.read_labs), against what the stack's
plan expects (SeatExpect: names, GPU asks), and says per seat what runs where and, for each problem, the
cause and the fix with the numbers ("seat ana asks 4 nvidia.com/gpu; nodes matching gpu=h100 have 2 free").

Pure: data in, rows and findings out; ops/doctor.py and ops/status.py run kubectl (through the backend).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.kubernetes.diagnose import explain
from components.kubernetes.gpu_check import check_state, failed_check
from components.kubernetes.objects import GPU_RESOURCE, SHARING_LABEL, gpu_node_selector
from components.kubernetes.scheduling import DONE_PHASES, Ask, Node, describe_selector, matches, nodes_from_api, used_from_api
from components.model import commands
from components.model.labels import ROLE_LABEL
from components.model.plan import LabPlan

LOST_GPU_FIX = (
    "the device plugin marked {lost} of its GPUs unhealthy (an XID error, a GPU fallen off the bus): on the node, "
    "`nvidia-smi` and `dmesg | grep -i xid` say which; reset or replace it, or `kubectl drain {node} --ignore-daemonsets` "
    "and reboot the node. The device plugin offers the GPU again when it is healthy"
)


@dataclass(frozen=True)
class SeatExpect:
    """One seat as the stack's plan names it on the cluster (components.kubernetes.lab)."""

    seat: str  # as a user names it: the seat, or the stack for a single-seat lab
    statefulset: str  # also the Service's name
    claims: tuple[str, ...] = ()
    gpus: int = 0
    key: str = "tfbox:gpus"  # the config key of its GPU ask
    tls: bool = False
    local_port: int = commands.JUPYTER_PORT  # where `kubectl port-forward` puts it here: the seat's notebookPort
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, str], ...] = ()
    ingress_host: str = ""  # the seat's Ingress host (tfbox:ingressHost), "" for none
    tensorboard: str = ""  # sidecar mode: TensorBoard's Deployment (and Service); its pod is <name>-<hash>-<suffix>

    @property
    def pod(self) -> str:
        return f"{self.statefulset}-0"  # a one-replica StatefulSet's pod

    def ask(self) -> Ask:
        # a seat that shares asks for time-sliced nodes by label; any other keeps off nodes whose GPUs are shared
        return Ask(self.seat, self.gpus, self.node_selector, self.tolerations, key=self.key,
                   exclusive=bool(self.gpus) and SHARING_LABEL not in self.node_selector)


@dataclass(frozen=True)
class ClusterRead:
    """The objects read_labs returns, by kind: the nodes and every namespace's pods (free GPUs are cluster-wide),
    and the stack namespace's events, claims, Services, StatefulSets and Deployments."""

    nodes: tuple[Mapping[str, Any], ...] = ()
    pods: tuple[Mapping[str, Any], ...] = ()
    events: tuple[Mapping[str, Any], ...] = ()
    claims: tuple[Mapping[str, Any], ...] = ()
    services: tuple[Mapping[str, Any], ...] = ()
    statefulsets: tuple[Mapping[str, Any], ...] = ()
    deployments: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(cls, items: Iterable[Mapping[str, Any]], namespace: str) -> ClusterRead:
        by: dict[str, list[Mapping[str, Any]]] = {}
        for item in items:
            kind = str(item.get("kind", ""))
            if kind != "Node" and kind != "Pod" and (item.get("metadata") or {}).get("namespace") != namespace:
                continue
            by.setdefault(kind, []).append(item)
        return cls(nodes=tuple(by.get("Node", ())), pods=tuple(by.get("Pod", ())), events=tuple(by.get("Event", ())),
                   claims=tuple(by.get("PersistentVolumeClaim", ())), services=tuple(by.get("Service", ())),
                   statefulsets=tuple(by.get("StatefulSet", ())), deployments=tuple(by.get("Deployment", ())))


@dataclass(frozen=True)
class Problem:
    """One thing doctor names: a seat's pod, a claim, or a GPU node."""

    seat: str  # "-" for a node
    what: str  # the pod, claim or node name
    role: str  # "pod", "tensorboard" (a sidecar's pod), "claim", "node"
    state: str
    cause: str
    fix: str


@dataclass(frozen=True)
class SeatState:
    """One seat's row of `make status` (and doctor's table)."""

    seat: str
    pod: str
    phase: str  # the pod's phase, or "missing"
    ready: bool
    node: str
    gpus_asked: int
    gpus_allocated: int  # what the pod holds on its node now (0 until it is placed)
    urls: dict[str, str]
    reach: str  # how to reach the notebook from outside the cluster
    problem: Problem | None = None
    tensorboard_pod: str = ""  # sidecar mode: TensorBoard's pod (its Deployment's name while it has none)
    tensorboard_state: str = ""  # as `state` says the notebook's
    tensorboard_problem: Problem | None = None

    @property
    def ok(self) -> bool:
        """The seat as a whole: its notebook's pod and, in sidecar mode, TensorBoard's."""
        return self.problem is None and self.tensorboard_problem is None

    @property
    def state(self) -> str:
        if self.phase == "missing":
            return "missing"
        text = f"{self.phase}, {'ready' if self.ready else 'not ready'}"
        return text + (f" on {self.node}" if self.node else "")


def expects_of(plan: LabPlan) -> tuple[str, list[SeatExpect]]:
    """The namespace and the seats a stack's plan puts on the cluster, by the names components.kubernetes.lab gives them."""
    c = plan.cluster
    namespace = c.namespace if c is not None else f"tfbox-{plan.stack}"
    out = []
    for s in plan.seats:
        gpus = s.notebook.gpus.count if s.notebook.gpus.kind == "count" else 0
        out.append(SeatExpect(
            seat=s.name or plan.stack, statefulset=s.notebook.container_name,
            claims=(s.storage.notebooks_volume, s.storage.logs_volume), gpus=gpus,
            key=s.claim.key if s.claim is not None and s.claim.key else "tfbox:gpus", tls=s.notebook.tls,
            local_port=s.notebook.ports[0].external if s.notebook.ports else commands.JUPYTER_PORT,
            node_selector=dict(gpu_node_selector(c.gpu_node_selector, s.share_gpus)) if c is not None and gpus else {},
            tolerations=tuple(c.tolerations) if c is not None and gpus else (),
            tensorboard=s.tensorboard.container_name if s.tensorboard is not None else "",
            ingress_host=(c.ingress.host(s.name) or "") if c is not None and c.ingress is not None else ""))
    return namespace, out


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _when(event: Mapping[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp") or "")


def last_event(events: Iterable[Mapping[str, Any]], kind: str, name: str) -> str:
    """The newest event's message about one object ('' when none)."""
    mine = [e for e in events if (e.get("involvedObject") or {}).get("kind") == kind
            and (e.get("involvedObject") or {}).get("name") == name]
    return str(max(mine, key=_when).get("message", "")).strip() if mine else ""


def own_events(pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events of this pod, not of an earlier one of the same name (a StatefulSet's pod keeps its name when it
    is made again): by uid where both have one."""
    uid = (pod.get("metadata") or {}).get("uid")
    return [e for e in events if not uid or not (e.get("involvedObject") or {}).get("uid")
            or (e.get("involvedObject") or {}).get("uid") == uid]


def pod_gpus(pod: Mapping[str, Any]) -> int:
    """The GPUs a pod holds on its node: its containers' requests (0 before it is placed, or once it ended)."""
    if (pod.get("status") or {}).get("phase") in DONE_PHASES or not (pod.get("spec") or {}).get("nodeName"):
        return 0
    return sum(used_from_api([pod]).values())


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def pod_state(pod: Mapping[str, Any] | None) -> str:
    """'Running, ready on NODE', as SeatState.state says a notebook's; 'missing' for no pod."""
    if pod is None:
        return "missing"
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    text = f"{(pod.get('status') or {}).get('phase') or '?'}, {'ready' if _ready(pod) else 'not ready'}"
    return text + (f" on {node}" if node else "")


def gpu_numbers(ask: Ask, nodes: Sequence[Node], pods: Iterable[Mapping[str, Any]]) -> str:
    """'nodes matching gpu=h100 have 2 free, at most 1 on one node' for an ask, from what is placed now."""
    where = describe_selector(ask.node_selector)
    candidates = [n for n in nodes if matches(n, ask)]
    if not candidates:
        return f"no schedulable node matches ({where}, taints and tolerations included)"
    used = used_from_api(pods)
    free = {n.name: max(n.allocatable - used.get(n.name, 0), 0) for n in candidates}
    total, most = sum(free.values()), max(free.values())
    return f"{where} have {total} free" + ("" if total == most else f", at most {most} on one node (a pod runs on one node)")


def lost_gpu_problems(nodes: Sequence[Node], asks: Sequence[Ask], placed: Mapping[str, Sequence[str]]) -> list[Problem]:
    """GPU nodes this stack's seats may land on whose allocatable GPUs dropped below their capacity; `placed` is
    node -> the stack's seats on it now."""
    out = []
    for n in nodes:
        if n.allocatable >= n.capacity or not any(matches(n, a) for a in asks if a.gpus):
            continue
        lost = n.capacity - n.allocatable
        seats = sorted(placed.get(n.name, []))
        out.append(Problem(
            seat="-", what=n.name, role="node", state=f"{n.allocatable}/{n.capacity} GPUs allocatable",
            cause=(f"node {n.name} (a GPU node this stack's seats land on) offers {n.allocatable} of its {n.capacity} "
                   f"{GPU_RESOURCE}: {lost} lost or unhealthy" + (f"; on it now: seat(s) {', '.join(seats)}" if seats else "")),
            fix=LOST_GPU_FIX.format(lost=lost, node=n.name)))
    return out


def seat_problem(expect: SeatExpect, pod: Mapping[str, Any] | None, read: ClusterRead, namespace: str,
                 nodes: Sequence[Node]) -> Problem | None:
    """What is wrong with one seat's pod, with the numbers and the fix; None when it runs and is ready."""
    if pod is None:
        have_sts = any(_name(s) == expect.statefulset for s in read.statefulsets)
        if have_sts:
            said = last_event(read.events, "StatefulSet", expect.statefulset)
            return Problem(expect.seat, expect.pod, "pod", "missing",
                           f"its StatefulSet {expect.statefulset} has no pod" + (f" ({said})" if said else ""),
                           f"`kubectl describe statefulset -n {namespace} {expect.statefulset}` says why "
                           "(a ResourceQuota or an admission webhook may refuse the pod)")
        return Problem(expect.seat, expect.pod, "pod", "missing", f"no StatefulSet {expect.statefulset} in namespace {namespace} "
                       "(the lab is not deployed, or was destroyed)", "`make up` creates it (notebooks on kept claims come back)")
    found = explain(pod, own_events(pod, read.events))
    if found is None:
        return None
    state = str((pod.get("status") or {}).get("phase") or "?")
    if failed_check(pod) is not None:
        state = check_state(pod)
    if "Insufficient nvidia.com/gpu" in found.cause:
        ask = expect.ask()
        lost = [n for n in nodes if matches(n, ask) and n.allocatable < n.capacity]
        lost_text = "".join(f"; node {n.name} lost {n.capacity - n.allocatable} of its {n.capacity}" for n in lost)
        return Problem(
            expect.seat, expect.pod, "pod", state,
            f"Pending: seat {expect.seat} asks {expect.gpus} {GPU_RESOURCE}; {gpu_numbers(ask, nodes, read.pods)}{lost_text}",
            f"lower {expect.key} (`pulumi config set --path '{expect.key}' count=N`, then `make up`), "
            "free GPUs on those nodes, or add a node" + (" (or bring the lost GPUs back: see the node below)" if lost else "")
            + "; the pod starts by itself once its GPUs are free")
    return Problem(expect.seat, expect.pod, "pod", state, found.cause, found.fix)


def tensorboard_pod(expect: SeatExpect, pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The seat's TensorBoard pod (its Deployment's, <name>-<hash>-<suffix>): a live one before one being deleted."""
    mine = [p for p in pods if _name(p).startswith(expect.tensorboard + "-")
            and ((p.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL) == "tensorboard"]
    mine.sort(key=lambda p: ((p.get("metadata") or {}).get("deletionTimestamp") is not None, _name(p)))
    return mine[0] if mine else None


def tensorboard_problem(expect: SeatExpect, pod: Mapping[str, Any] | None, read: ClusterRead, namespace: str) -> Problem | None:
    """What is wrong with a seat's TensorBoard pod (sidecar mode); None when it runs and is ready. Its usual trouble
    is its node: it must share the notebook's (the logs claim is ReadWriteOnce)."""
    name = expect.tensorboard
    if pod is None:
        if any(_name(d) == name for d in read.deployments):
            sets = {str((e.get("involvedObject") or {}).get("name", "")) for e in read.events
                    if (e.get("involvedObject") or {}).get("kind") == "ReplicaSet"}
            said = next((t for t in (last_event(read.events, "ReplicaSet", r) for r in sorted(sets) if r.startswith(name + "-")) if t),
                        "") or last_event(read.events, "Deployment", name)
            return Problem(expect.seat, name, "tensorboard", "missing", f"its Deployment {name} has no pod" + (f" ({said})" if said else ""),
                           f"`kubectl describe deployment -n {namespace} {name}` says why (a ResourceQuota or an admission "
                           "webhook may refuse the pod)")
        return Problem(expect.seat, name, "tensorboard", "missing", f"no Deployment {name} in namespace {namespace} (TensorBoard "
                       "is not deployed)", "`make up` creates it (the notebook's pod and kernels are not touched)")
    found = explain(pod, own_events(pod, read.events))
    if found is None:
        return None
    return Problem(expect.seat, _name(pod), "tensorboard", str((pod.get("status") or {}).get("phase") or "?"), found.cause, found.fix)


def claim_problems(read: ClusterRead, namespace: str, seats_by_claim: Mapping[str, str]) -> list[Problem]:
    """The stack's claims that are not bound to a volume, with what the cluster said about them."""
    out = []
    for c in read.claims:
        name, phase = _name(c), str((c.get("status") or {}).get("phase") or "Pending")
        if phase == "Bound":
            continue
        said = last_event(read.events, "PersistentVolumeClaim", name)
        wanted = (c.get("spec") or {}).get("storageClassName")
        out.append(Problem(
            seats_by_claim.get(name, "-"), name, "claim", phase,
            f"claim {name} is {phase}, not bound to a volume" + (f" ({said})" if said else "")
            + (f"; it asks for StorageClass {wanted}" if wanted else "; it asks for the cluster's default StorageClass"),
            "set tfbox:storageClass to a class `kubectl get storageclass` lists (or give the cluster a default one, "
            "or a PersistentVolume that fits), then `make up`; the notebooks on other claims are not touched"))
    return out


def seat_urls(expect: SeatExpect, namespace: str, service: Mapping[str, Any] | None,
              pod: Mapping[str, Any] | None, tensorboard_service: Mapping[str, Any] | None = None) -> tuple[dict[str, str], str]:
    """The seat's URLs from its Service as the cluster has it, and how to reach the notebook from outside."""
    scheme = "https" if expect.tls else "http"
    host = f"{expect.statefulset}.{namespace}.svc.cluster.local"
    if service is None:
        return {}, f"no Service {expect.statefulset} in namespace {namespace}"
    urls: dict[str, str] = {}
    spec = service.get("spec") or {}
    for port in spec.get("ports") or []:
        name = {commands.JUPYTER_PORT: "notebook", commands.TENSORBOARD_PORT: "tensorboard"}.get(int(port.get("port") or 0))
        if name:
            urls[name] = f"{scheme if name == 'notebook' else 'http'}://{host}:{port.get('port')}/"
    if tensorboard_service is not None:  # sidecar mode: TensorBoard's own (headless) Service
        urls["tensorboard"] = f"http://{expect.tensorboard}.{namespace}.svc.cluster.local:{commands.TENSORBOARD_PORT}/"
    jupyter: Mapping[str, Any] = next((p for p in spec.get("ports") or [] if int(p.get("port") or 0) == commands.JUPYTER_PORT), {})
    kind = spec.get("type") or "ClusterIP"
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    node_ip = str((pod or {}).get("status", {}).get("hostIP") or "<node address>")
    if expect.ingress_host:  # the plan's Ingress (the controller's address is the cluster's DNS to give)
        urls["ingress"] = f"https://{expect.ingress_host}/"
        reach = f"https://{expect.ingress_host}/ (Ingress)"
    elif kind == "LoadBalancer" and ingress:
        where = ingress[0].get("ip") or ingress[0].get("hostname")
        reach = f"{scheme}://{where}:{commands.JUPYTER_PORT}/ (LoadBalancer)"
    elif kind in ("NodePort", "LoadBalancer") and jupyter.get("nodePort"):
        reach = f"{scheme}://{node_ip}:{jupyter['nodePort']}/ (NodePort {jupyter['nodePort']} on any node)"
    else:
        reach = (f"`kubectl port-forward -n {namespace} svc/{expect.statefulset} {expect.local_port}:{commands.JUPYTER_PORT}`, "
                 f"then {scheme}://127.0.0.1:{expect.local_port}/ (a ClusterIP Service: in the cluster only)")
    return urls, reach


def seat_states(expects: Sequence[SeatExpect], read: ClusterRead, namespace: str) -> list[SeatState]:
    """Every seat the plan has, with its pod as the cluster has it now."""
    nodes = nodes_from_api(read.nodes)
    ns_pods = [p for p in read.pods if (p.get("metadata") or {}).get("namespace") == namespace]
    services = {_name(s): s for s in read.services}
    out = []
    for e in expects:
        pod = next((p for p in ns_pods if _name(p) == e.pod), None)
        problem = seat_problem(e, pod, read, namespace, nodes)
        urls, reach = seat_urls(e, namespace, services.get(e.statefulset), pod, services.get(e.tensorboard) if e.tensorboard else None)
        status = (pod or {}).get("status") or {}
        tb = tensorboard_pod(e, ns_pods) if e.tensorboard else None
        out.append(SeatState(
            seat=e.seat, pod=e.pod, phase=str(status.get("phase") or "?") if pod is not None else "missing",
            ready=pod is not None and _ready(pod), node=str((pod or {}).get("spec", {}).get("nodeName") or ""),
            gpus_asked=e.gpus, gpus_allocated=pod_gpus(pod) if pod is not None else 0, urls=urls, reach=reach, problem=problem,
            tensorboard_pod=_name(tb) if tb is not None else e.tensorboard,
            tensorboard_state=pod_state(tb) if e.tensorboard else "",
            tensorboard_problem=tensorboard_problem(e, tb, read, namespace) if e.tensorboard else None))
    return out


def stack_problems(expects: Sequence[SeatExpect], read: ClusterRead, namespace: str) -> tuple[list[SeatState], list[Problem]]:
    """doctor's reading: each seat's state, then the problems beyond one pod (claims, GPU nodes)."""
    states = seat_states(expects, read, namespace)
    seats_by_claim = {c: e.seat for e in expects for c in e.claims}
    placed: dict[str, list[str]] = {}
    for s in states:
        if s.node:
            placed.setdefault(s.node, []).append(s.seat)
    extra = claim_problems(read, namespace, seats_by_claim)
    extra += lost_gpu_problems(nodes_from_api(read.nodes), [e.ask() for e in expects], placed)
    return states, extra

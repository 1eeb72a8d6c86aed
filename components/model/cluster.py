"""The settings a stack on a cluster backend reads (`tfbox:backend: kubernetes`), validated as plain data.

A cluster places pods itself: the scheduler picks the node and the device plugin the GPUs, so a seat
asks for a number of GPUs, never for indices; there is no host path to bind and no container runtime to
choose. What a Docker stack can say that a cluster cannot do is refused here, at preview, naming the key
and the fix; the cluster-only keys on a Docker stack are refused too (a setting that silently does
nothing is a trap when the stack moves).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.model.gpus import GpuSpec
from components.model.hardening import parse_size
from components.model.ingress import INGRESS_KEYS, IngressSettings
from components.model.keys import KEYS_BY_NAME, NAMESPACE

BACKENDS = ("docker", "kubernetes")
CLUSTER_BACKEND = "kubernetes"
# the keys only a cluster backend reads
CLUSTER_KEYS = ("namespace", "gpuNodeSelector", "gpuTolerations", "storageClass", "notebooksSize", "logsSize",
                "serviceType", "nodePortSources", *INGRESS_KEYS)
SERVICE_TYPES = ("ClusterIP", "NodePort")
NODE_PORT_RANGE = (30000, 32767)  # the API server's default --service-node-port-range
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1123 label: namespaces, Services
LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
OPERATORS = ("Equal", "Exists")
EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class ClusterSettings:
    """Where on the cluster a stack's objects go and what its GPU pods ask of the nodes."""

    namespace: str
    gpu_node_selector: tuple[tuple[str, str], ...] = ()
    gpu_tolerations: tuple[tuple[tuple[str, str], ...], ...] = ()  # each a toleration's fields, sorted
    storage_class: str = ""  # empty: the cluster's default StorageClass
    notebooks_bytes: int = 10 << 30
    logs_bytes: int = 1 << 30
    service_type: str = "ClusterIP"  # NodePort: each seat's notebook on every node's address, at its notebookPort
    node_port_sources: tuple[str, ...] = ()  # CIDRs the seats' NetworkPolicy lets reach a NodePort
    ingress: IngressSettings | None = None  # an Ingress per seat with a host (components.model.ingress)

    @property
    def node_port(self) -> bool:
        return self.service_type == "NodePort"

    @property
    def tolerations(self) -> list[dict[str, str]]:
        return [dict(t) for t in self.gpu_tolerations]


def _json(value: Any) -> Any:
    """Arrays and objects come as JSON text from the engine, as YAML values from a stack file."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else None
        except ValueError:
            return value
    return value


def _problem(key: str, problem: str, fix: str) -> str:
    return f"{NAMESPACE}:{key}: {problem}. Fix: {fix}."


def object_name_problem(name: str) -> str | None:
    """Why `name` cannot name a Kubernetes namespace or Service (an RFC 1123 label), or None."""
    if DNS_LABEL_RE.match(name):
        return None
    return f"{name!r} is not a valid Kubernetes name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63)"


def _selector(value: Any, problems: list[str]) -> tuple[tuple[str, str], ...]:
    value = _json(value)
    if value in (None, {}):
        return ()
    fix = "write a map of node label to value, e.g. {\"gpu\": \"h100\"}"
    if not isinstance(value, Mapping):
        problems.append(_problem("gpuNodeSelector", "is not a map of node label to value", fix))
        return ()
    out = []
    for k, v in value.items():
        if not isinstance(v, str) or not LABEL_KEY_RE.match(str(k)) or not LABEL_VALUE_RE.match(v):
            problems.append(_problem("gpuNodeSelector", f"{k!r}: {v!r} is not a valid label and value", fix))
            continue
        out.append((str(k), v))
    return tuple(sorted(out))


def _tolerations(value: Any, problems: list[str]) -> tuple[tuple[tuple[str, str], ...], ...]:
    value = _json(value)
    if value in (None, []):
        return ()
    fix = ("write a list of {key, operator, value, effect}, e.g. [{\"key\": \"nvidia.com/gpu\", \"operator\": \"Exists\", "
           "\"effect\": \"NoSchedule\"}]")
    if not isinstance(value, Sequence) or isinstance(value, str):
        problems.append(_problem("gpuTolerations", "is not a list of tolerations", fix))
        return ()
    out = []
    for i, t in enumerate(value):
        where = f"gpuTolerations[{i}]"
        if not isinstance(t, Mapping) or not all(isinstance(v, str) for v in t.values()):
            problems.append(_problem(where, "is not an object of strings", fix))
            continue
        unknown = sorted(set(t) - {"key", "operator", "value", "effect"})
        operator = t.get("operator", "Equal")
        if unknown:
            problems.append(_problem(where, f"has unknown field(s) {', '.join(unknown)}", fix))
        elif operator not in OPERATORS:
            problems.append(_problem(where, f"operator {operator!r} is not Equal or Exists", fix))
        elif t.get("effect", "") not in EFFECTS:
            problems.append(_problem(where, f"effect {t.get('effect')!r} is not one of {', '.join(e for e in EFFECTS if e)}", fix))
        elif operator == "Exists" and t.get("value"):
            problems.append(_problem(where, "has a value with operator Exists (which matches any value)", "drop the value"))
        elif operator == "Equal" and not t.get("key"):
            problems.append(_problem(where, "has operator Equal without a key", "name the taint's key, or use operator Exists"))
        else:
            out.append(tuple(sorted((str(k), str(v)) for k, v in t.items())))
    return tuple(out)


def _size(key: str, value: Any, problems: list[str]) -> int:
    try:
        n = parse_size(str(value))
        if n <= 0:
            raise ValueError(f"{value!r} is not a positive size")
        return n
    except ValueError as e:
        problems.append(_problem(key, str(e), "write a size in whole MiB, e.g. 10g or 512m"))
        return 0


def _node_port_problems(raw_value: Callable[[str], Any], notebooks: Sequence[tuple[str, str, int, bool]],
                        stack_slug: str, problems: list[str]) -> tuple[str, tuple[str, ...]]:
    """`tfbox:serviceType` and `tfbox:nodePortSources`: a NodePort puts each notebook on every node's address, so every
    seat must serve HTTPS (as a Docker notebook beyond loopback), at a port of the NodePort range, to listed networks."""
    service_type = str(raw_value("serviceType") or "ClusterIP")
    sources_raw = _json(raw_value("nodePortSources"))
    if service_type not in SERVICE_TYPES:
        problems.append(_problem("serviceType", f"{service_type!r} is not ClusterIP or NodePort",
                                 "write ClusterIP (in the cluster only; reach it with `kubectl port-forward`) or NodePort "
                                 "(on every node's address, HTTPS required)"))
        return "ClusterIP", ()
    if service_type != "NodePort":
        if sources_raw not in (None, "", []):
            problems.append(_problem("nodePortSources", "is set but tfbox:serviceType is ClusterIP, which no address "
                                     "outside the cluster reaches", f"`pulumi config rm {NAMESPACE}:nodePortSources`, or set "
                                     f"{NAMESPACE}:serviceType NodePort"))
        return service_type, ()
    plain = [who for who, _, _, tls in notebooks if not tls]
    if plain:
        problems.append(_problem("serviceType", f"NodePort publishes {', '.join(plain)} on every node's address over plain "
                                 "HTTP, so the password and session cookie would cross the network in cleartext",
                                 f"run `make tls STACK={stack_slug}` (tfbox:tlsCert and the secret tfbox:tlsKey; on a stack with "
                                 "seats one pair per seat), or keep tfbox:serviceType ClusterIP and use `kubectl port-forward`"))
    low, high = NODE_PORT_RANGE
    for _, key, port, _ in notebooks:
        if not low <= port <= high:
            problems.append(f"{key}: {port} is outside the cluster's NodePort range {low}-{high}, where tfbox:serviceType "
                            f"NodePort publishes it. Fix: pick a free port in {low}-{high}, e.g. {low + port % 1000}.")
    fix = ("list the networks your users connect from, e.g. [\"192.168.10.0/24\"] (and the nodes' own addresses where "
           "the network plugin masquerades NodePort traffic); [\"0.0.0.0/0\"] for any address")
    if sources_raw in (None, "", []):
        problems.append(_problem("nodePortSources", "is empty, so the seats' NetworkPolicy lets no address outside the "
                                 "cluster reach the NodePort", fix))
        return service_type, ()
    if not isinstance(sources_raw, Sequence) or isinstance(sources_raw, str):
        problems.append(_problem("nodePortSources", "is not a list of CIDRs", fix))
        return service_type, ()
    sources = []
    for i, cidr in enumerate(sources_raw):
        try:
            sources.append(str(ipaddress.ip_network(str(cidr).strip(), strict=True)))
        except ValueError as e:
            problems.append(_problem(f"nodePortSources[{i}]", f"{cidr!r} is not a network address ({e})", fix))
    return service_type, tuple(sources)


def _gpu_problem(key: str, gpus: GpuSpec) -> str | None:
    if gpus.kind in ("none", "count"):
        return None
    return (f"{key}: {gpus.describe()} picks GPUs by index, UUID or all, but on Kubernetes the scheduler and the device "
            "plugin pick the devices. Fix: write count=N (the number of GPUs the seat needs).")


def parse_cluster(raw: Mapping[str, Any], raw_value: Callable[[str], Any], *, backend: str, stack_slug: str,
                  gpus: Sequence[tuple[str, GpuSpec]], host_only: Mapping[str, Any],
                  object_names: Sequence[tuple[str, str]] = (),
                  notebooks: Sequence[tuple[str, str, int, bool]] = ()) -> tuple[ClusterSettings | None, list[str]]:
    """The cluster settings of a `kubernetes` stack (None on a Docker one) and every problem at once.

    `raw` is the stack's raw values, `raw_value(name)` reads a key as its type (components.model.reader.Reader.value);
    `gpus` is each GPU ask with the key it comes from; `host_only` the values of the host-only keys a cluster cannot honour;
    `object_names` (key, name) the names the backend gives objects (each must be a DNS-1123 label);
    `notebooks` (who, port key, port, serves TLS) each seat's notebook, for tfbox:serviceType NodePort.
    """
    problems: list[str] = []
    if backend not in BACKENDS:
        return None, [_problem("backend", f"unknown backend {backend!r}", "write docker or kubernetes")]
    if backend != CLUSTER_BACKEND:
        for key in CLUSTER_KEYS:
            given = _json(raw.get(key))
            # the project's typed config hands every stack the defaults: only a value of the stack's own counts
            if given not in (None, "", {}, []) and given != KEYS_BY_NAME[key].default:
                problems.append(_problem(key, "is set but only the kubernetes backend reads it",
                                         f"`pulumi config rm {NAMESPACE}:{key}`, or set {NAMESPACE}:backend kubernetes"))
        return None, problems
    for key, name in object_names:
        if (why := object_name_problem(name)) is not None:
            problems.append(_problem(key, why, "use lowercase letters, digits and '-' (tfbox:namePrefix and seat names)"))
    for key, spec in gpus:
        if (why := _gpu_problem(key, spec)) is not None:
            problems.append(why)
    if host_only.get("notebooksHostPath"):
        problems.append(_problem("notebooksHostPath", "binds a host directory, which the kubernetes backend does not do "
                                 "(a pod may run on any node)", f"`pulumi config rm {NAMESPACE}:notebooksHostPath`: "
                                 "the notebooks live on a PersistentVolumeClaim"))
    if host_only.get("gpuMode") == "nvidia-runtime":
        problems.append(_problem("gpuMode", "nvidia-runtime is a Docker runtime; on Kubernetes the device plugin hands "
                                 "out GPUs", f"`pulumi config rm {NAMESPACE}:gpuMode`"))
    if host_only.get("gpuCheckImage"):
        problems.append(_problem("gpuCheckImage", "the kubernetes backend checks the GPUs in the notebook's own pod, "
                                 "with its image (an init container)", f"`pulumi config rm {NAMESPACE}:gpuCheckImage`"))
    namespace = str(raw_value("namespace") or f"tfbox-{stack_slug.lower()}")
    if (why := object_name_problem(namespace)) is not None:
        problems.append(_problem("namespace", why, "set tfbox:namespace to e.g. tfbox-lab"))
    service_type, node_port_sources = _node_port_problems(raw_value, notebooks, stack_slug, problems)
    settings = ClusterSettings(
        namespace=namespace, gpu_node_selector=_selector(raw_value("gpuNodeSelector"), problems),
        gpu_tolerations=_tolerations(raw_value("gpuTolerations"), problems),
        storage_class=str(raw_value("storageClass") or ""),
        notebooks_bytes=_size("notebooksSize", raw_value("notebooksSize"), problems),
        logs_bytes=_size("logsSize", raw_value("logsSize"), problems),
        service_type=service_type, node_port_sources=node_port_sources,
    )
    if settings.storage_class and object_name_problem(settings.storage_class.replace(".", "-")):
        problems.append(_problem("storageClass", f"{settings.storage_class!r} is not a valid StorageClass name",
                                 "write the name `kubectl get storageclass` lists, or leave it empty for the default"))
    return settings, problems

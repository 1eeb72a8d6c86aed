"""tfbox guard rails for Kubernetes objects, as plain functions of a resource's inputs (policy/pack.py wires them).

The Docker rules (policy/rules.py) guard containers on one host; a cluster shares its nodes with other
teams, so a tfbox pod must not reach the node (privileged, host namespaces, host paths, setuid escalation),
a secret must live in a Secret (never a ConfigMap or a plain env value, which `kubectl describe` and
anyone with read access to ConfigMaps see), and a notebook exposed beyond the cluster (a NodePort or
LoadBalancer Service, external IPs, an Ingress) must serve HTTPS: the password and the session cookie would
otherwise cross the network in cleartext, and TensorBoard, which has no login, is never exposed.

Each `check_*` takes what the analyzer hands a policy (the engine's camelCase inputs) and returns the
violation messages; values unknown during preview raise the analyzer's UnknownValueError when read,
which defers the verdict to `pulumi up` (see policy/rules.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policy.rules import JUPYTER_CONFIG_PATH, TENSORBOARD_INTERNAL_PORT

PREFIX = "kubernetes:"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"

# where each workload kind keeps its pod spec (the Patch variants of pulumi-kubernetes alike)
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:core/v1:PodTemplate": ("template", "spec"),
    "kubernetes:core/v1:ReplicationController": ("spec", "template", "spec"),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
EXPOSED_TYPES = ("NodePort", "LoadBalancer")

# what a secret looks like in a ConfigMap or an env value: a PEM private key, a Jupyter/argon2 password hash
_SECRET_TEXT = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"hashed_password"), "a Jupyter password hash"),
    (re.compile(r"\$argon2(id|i|d)\$"), "an argon2 password hash"),
    (re.compile(r"\b(argon2|sha1|sha256|sha512):[^\s'\"]*[0-9a-f]{32,}"), "a Jupyter password hash"),
)
# env names that say "this is a secret"; their value belongs in a Secret (valueFrom.secretKeyRef)
# (whole words of the name: TOKENIZERS_PARALLELISM is no token)
_SECRET_ENV_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|PRIVATE_KEY|API_KEY|ACCESS_KEY|CREDENTIALS?)($|_)",
                              re.IGNORECASE)


def base_type(resource_type: str) -> str:
    """`kubernetes:apps/v1:StatefulSetPatch` -> `kubernetes:apps/v1:StatefulSet` (a patch lands in the same object)."""
    return resource_type.removesuffix("Patch")


def _dig(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec a workload runs, or None for a resource that runs no pod."""
    path = _POD_SPEC_PATHS.get(base_type(resource_type))
    if path is None:
        return None
    spec = _dig(props, path)
    return spec if isinstance(spec, Mapping) else None


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> dict[str, str]:
    """The labels a workload's pods carry (what a Service selects)."""
    path = _POD_SPEC_PATHS.get(base_type(resource_type))
    if path is None:
        return {}
    meta = _dig(props, (*path[:-1], "metadata")) if len(path) > 1 else props.get("metadata")
    found = _dig(meta, ("labels",))
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for key in CONTAINER_LISTS for c in spec.get(key) or [] if isinstance(c, Mapping)]


def _name(props: Mapping[str, Any]) -> str:
    meta = props.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return str(name) if name else "(unnamed)"


def _where(resource_type: str, props: Mapping[str, Any]) -> str:
    return f"{base_type(resource_type).rsplit(':', 1)[-1]} {_name(props)!r}"


def check_no_host_access(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: a pod shares no node namespace and mounts no node directory (a root notebook would own the node)."""
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    where = _where(resource_type, props)
    problems = [f"{where} sets {key}: true, so its pods see the node's {key[4:].lower()} namespace: remove it "
                "(tfbox's pods need nothing of the node's)" for key in HOST_NAMESPACES if spec.get(key) is True]
    for volume in spec.get("volumes") or []:
        if isinstance(volume, Mapping) and volume.get("hostPath") is not None:
            path = _dig(volume, ("hostPath", "path"))
            problems.append(f"{where} mounts the node's directory {path!r} (hostPath volume {volume.get('name')!r}): "
                            "use a PersistentVolumeClaim (tfbox:notebooksSize, tfbox:storageClass)")
    return problems


def check_no_privilege(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: no privileged container, and every container runs with allowPrivilegeEscalation false (as
    Docker's no-new-privileges: a setuid program cannot gain what the process lacks)."""
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    where = _where(resource_type, props)
    problems: list[str] = []
    for c in containers(spec):
        ctx = _mapping(c.get("securityContext"))
        name = c.get("name")
        if ctx.get("privileged") is True:
            problems.append(f"container {name!r} of {where} is privileged (every device and capability of the node): "
                            "remove securityContext.privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name!r} of {where} may gain privileges through setuid programs: set "
                            "securityContext.allowPrivilegeEscalation: false (components/kubernetes/objects.py)")
    return problems


def secret_text_kind(text: str) -> str | None:
    """What secret `text` holds (a private key, a password hash), or None."""
    for pattern, what in _SECRET_TEXT:
        if pattern.search(text):
            return what
    return None


def check_secrets_in_secrets(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: a password hash or a private key lives in a Secret (RBAC, encryption at rest, not shown by
    `kubectl describe`), never in a ConfigMap or a container's plain `env` value."""
    kind = base_type(resource_type)
    if kind == CONFIG_MAP:
        problems = []
        for field in ("data", "binaryData"):
            for key, value in (props.get(field) or {}).items():
                text = _decoded(value) if field == "binaryData" else str(value)
                what = secret_text_kind(text)
                if what:
                    problems.append(f"ConfigMap {_name(props)!r} holds {what} in {field}.{key}: put it in a Secret "
                                    "and mount that (components/kubernetes/objects.py make_secret)")
        return problems
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    problems = []
    for c in containers(spec):
        for env in c.get("env") or []:
            if not isinstance(env, Mapping) or "value" not in env:
                continue  # valueFrom: a secretKeyRef is the right way
            name, value = str(env.get("name")), str(env.get("value") or "")
            what = secret_text_kind(value) or ("a secret by its name" if value and _SECRET_ENV_NAME.search(name) else None)
            if what:
                problems.append(f"container {c.get('name')!r} of {_where(resource_type, props)} has {what} in the plain env "
                                f"value {name}: take it from a Secret (valueFrom.secretKeyRef) or a file mounted from one")
    return problems


def _decoded(value: Any) -> str:
    try:
        return base64.b64decode(str(value)).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return str(value)


INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"


def check_ingress_tls(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: an Ingress (the way in from outside the cluster through a controller) serves every host it routes
    over TLS, and never routes to TensorBoard's port (no login)."""
    if base_type(resource_type) != INGRESS:
        return []
    spec = _mapping(props.get("spec"))
    where = f"Ingress {_name(props)!r}"
    tls = [t for t in spec.get("tls") or [] if isinstance(t, Mapping)]
    covered = {str(h) for t in tls for h in t.get("hosts") or []}
    problems: list[str] = []
    backends: list[Mapping[str, Any]] = [_mapping(spec.get("defaultBackend"))]
    for rule in spec.get("rules") or []:
        host = _mapping(rule).get("host")
        if not tls or (host and str(host) not in covered):
            problems.append(f"{where} serves {'host ' + repr(host) if host else 'every host'} over plain HTTP: add it to "
                            "spec.tls with a certificate Secret (the password and session cookie cross the network)")
        backends += [_mapping(path.get("backend")) for path in _dig(rule, ("http", "paths")) or [] if isinstance(path, Mapping)]
    if spec.get("defaultBackend") and not tls:
        problems.append(f"{where} has a default backend served over plain HTTP: add spec.tls with a certificate Secret")
    for backend in backends:
        port = _mapping(_dig(backend, ("service", "port")))
        if port.get("number") in (TENSORBOARD_INTERNAL_PORT, float(TENSORBOARD_INTERNAL_PORT)) or port.get("name") == "tensorboard":
            problems.append(f"{where} routes to TensorBoard (service {_dig(backend, ('service', 'name'))!r}), which has no "
                            "login: route to the notebook and use its /tensorboard/")
    return problems


# --- services exposed beyond the cluster: a stack policy, as the answer depends on the pods and secrets ---


def exposure(props: Mapping[str, Any]) -> str | None:
    """How a Service reaches beyond the cluster (its type, external IPs), or None for an in-cluster one."""
    spec = _mapping(props.get("spec"))
    kind = spec.get("type") or "ClusterIP"
    if kind in EXPOSED_TYPES:
        return f"type {kind}"
    if spec.get("externalIPs"):
        return f"external IPs {', '.join(map(str, spec['externalIPs']))}"
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _selects(selector: Mapping[str, Any], found: Mapping[str, str]) -> bool:
    return bool(selector) and all(found.get(str(k)) == str(v) for k, v in selector.items())


def _serves(container: Mapping[str, Any], target: Any) -> bool:
    for port in container.get("ports") or []:
        if target in (port.get("containerPort"), port.get("name")):
            return True
        if isinstance(target, float) and port.get("containerPort") == int(target):  # the engine's numbers are floats
            return True
    return False


def _secret_files(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's entries as text (stringData as given, data base64-decoded)."""
    out = {str(k): _decoded(v) for k, v in (secret.get("data") or {}).items()}
    out.update({str(k): str(v) for k, v in (secret.get("stringData") or {}).items()})
    return out


def jupyter_tls_mounted(container: Mapping[str, Any], spec: Mapping[str, Any],
                        secrets: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when the container's Jupyter config comes from a Secret of the stack and names a certfile and a
    keyfile the container mounts: Jupyter serves HTTPS (as policy/rules.py jupyter_tls_set on Docker)."""
    mounts = {m.get("mountPath"): m for m in container.get("volumeMounts") or [] if isinstance(m, Mapping)}
    mount = mounts.get(JUPYTER_CONFIG_PATH)
    if mount is None:
        return False
    volume = next((v for v in spec.get("volumes") or [] if isinstance(v, Mapping) and v.get("name") == mount.get("name")), None)
    secret_name = _dig(volume, ("secret", "secretName"))
    secret = secrets.get(str(secret_name)) if secret_name else None
    if secret is None:
        return False
    text = _secret_files(secret).get(str(mount.get("subPath") or ""))
    try:
        config = json.loads(text) if text else None
    except json.JSONDecodeError:
        return False
    server = config.get("ServerApp") if isinstance(config, Mapping) else None
    if not isinstance(server, Mapping):
        return False
    return server.get("certfile") in mounts and server.get("keyfile") in mounts


def check_exposed_services(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[int, str]]:
    """Mandatory: every pod port a Service exposes beyond the cluster is a Jupyter serving HTTPS with its key from a
    Secret; TensorBoard (no login) is never exposed. (index of the Service among `resources`, message) pairs."""
    listed = list(resources)
    secrets = {_name(p): p for t, p in listed if base_type(t) == SECRET}
    workloads = [(t, p, spec) for t, p in listed if (spec := pod_spec(t, p)) is not None]
    found: list[tuple[int, str]] = []
    for i, (resource_type, props) in enumerate(listed):
        if base_type(resource_type) != SERVICE or (how := exposure(props)) is None:
            continue
        spec = _mapping(props.get("spec"))
        selector = _mapping(spec.get("selector"))
        where = f"Service {_name(props)!r} ({how})"
        pods = [(t, p, s) for t, p, s in workloads if _selects(selector, pod_labels(t, p))]
        if not pods:
            found.append((i, f"{where} exposes pods this stack does not declare, so nothing shows they serve HTTPS: "
                             "use tfbox:serviceType ClusterIP (the default) and `kubectl port-forward`"))
            continue
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if not any(_serves(c, target) for _, _, pod in pods for c in containers(pod)):
                found.append((i, f"{where} exposes port {_port(target)}, which no container of its pods declares, so "
                                 "nothing shows what answers there: declare it (ports[].containerPort) or take it off the Service"))
                continue
            for t, p, pod in pods:
                serving = [c for c in containers(pod) if _serves(c, target)]
                for c in serving:
                    if target in (TENSORBOARD_INTERNAL_PORT, float(TENSORBOARD_INTERNAL_PORT), "tensorboard"):
                        found.append((i, f"{where} exposes TensorBoard (port {_port(target)} of {_where(t, p)}), which has "
                                         "no login: take its port off the Service and use the notebook's /tensorboard/"))
                    elif not jupyter_tls_mounted(c, pod, secrets):
                        found.append((i, f"{where} exposes port {_port(target)} of {_where(t, p)} over plain HTTP (no "
                                         "Jupyter config from a Secret naming a certificate and key the container mounts): run "
                                         "`make tls STACK=<stack>` (tfbox:tlsCert and the secret tfbox:tlsKey), or keep "
                                         "tfbox:serviceType ClusterIP and use `kubectl port-forward`"))
    return found


def _port(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

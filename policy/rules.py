"""tfbox guard rails as plain functions of resource inputs, so they are unit-testable without the engine.

Each `check_*` function takes what a CrossGuard analyzer hands a policy (the resource's input
properties in the engine's camelCase, plus the few resource options it can see) and returns the
violation messages, empty when the resource is fine. `__main__.py` wraps them in policies.

What the analyzer of pulumi 3.260.0 / pulumi-policy 1.21.0 shows a policy (read from their source):
- secret inputs arrive in plaintext (the engine marshals with KeepSecrets and pulumi-policy unwraps
  them for validation), so the Jupyter config upload can be parsed even though it is a secret;
- inputs that depend on outputs not yet known during `pulumi preview` raise `UnknownValueError` when
  read through the analyzer's proxy. The checks below read such a value only when the verdict depends
  on it; pulumi-policy then reports "can't run policy ... during preview" as an advisory note, and
  `pulumi up` (where every input is known before the step runs) enforces the policy for real;
- of the resource options only protect, ignoreChanges, deleteBeforeReplace, aliases, customTimeouts,
  additionalSecretOutputs and parent: **retainOnDelete is not sent to analyzers**. The notebooks volume
  rule therefore accepts `protect`, or the label `tfbox.retain-on-delete=true` that the program sets
  next to `retain_on_delete=True` so a policy can see it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# the label names the program writes, re-exported for the rules' tests
from components.model.labels import PLAIN_HTTP_LABEL as PLAIN_HTTP_LABEL
from components.model.labels import RETAIN_LABEL as RETAIN_LABEL
from components.model.labels import ROLE_LABEL
from components.model.labels import TENSORBOARD_PUBLIC_LABEL as TENSORBOARD_PUBLIC_LABEL

try:  # the analyzer's proxy raises this for values unknown during preview
    from pulumi_policy.proxy import UnknownValueError as _Unknown
except ImportError:  # pragma: no cover - only the unit tests run without pulumi-policy

    class _Unknown(Exception):  # type: ignore[no-redef]
        """Stand-in so the rules import without pulumi-policy."""


CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"

JUPYTER_CONFIG_PATH = "/etc/jupyter/jupyter_server_config.json"
TENSORBOARD_INTERNAL_PORT = 6006
JUPYTER_INTERNAL_PORT = 8888

# Name suffixes the design fixes (`<prefix>-notebook`, ...): the role when the labels themselves are
# unknown during preview (the notebook's labels wait for the GPU check's verdict).
_ROLE_BY_NAME_SUFFIX = {"-notebook": "notebook", "-tensorboard": "tensorboard", "-gpu-check": "gpu-check"}


def labels_of(props: Mapping[str, Any]) -> dict[str, str]:
    """Docker labels as a dict; the provider takes them as a list of {label, value}."""
    raw = props.get("labels")
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(item["label"]): str(item.get("value", "")) for item in raw}


def role_of(props: Mapping[str, Any]) -> str | None:
    """The `tfbox.role` label, or the role implied by the container's name if the labels are unknown."""
    try:
        return labels_of(props).get(ROLE_LABEL)
    except _Unknown:
        name = props.get("name")  # may raise: then nothing tells what this container is
        for suffix, role in _ROLE_BY_NAME_SUFFIX.items():
            if isinstance(name, str) and name.endswith(suffix):
                return role
        return None


def is_loopback(ip: str) -> bool:
    """An IP literal in 127.0.0.0/8 or ::1; anything else (an empty ip is Docker's 0.0.0.0) is public.

    Docker 20-28 publishes a port whose host IP it cannot parse (`localhost`, a host name, `[::1]`)
    on 0.0.0.0, so such a spelling counts as public, not as loopback.
    """
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def public_bindings(props: Mapping[str, Any], internal: int | None = None) -> list[str]:
    """Published ports not bound to loopback (only those of `internal` if given), as readable strings.

    A container on the host network is reachable on every interface whatever `ports` says.
    """
    if props.get("networkMode") == "host":
        return ["the host network (network_mode=host)"]
    found: list[str] = []
    for port in props.get("ports") or []:
        if internal is not None and port.get("internal") != internal:
            continue
        ip = port.get("ip") or "0.0.0.0"
        if not is_loopback(str(ip)):
            found.append(f"{ip}:{_port(port.get('external', port.get('internal')))}->{_port(port.get('internal'))}")
    return found


def _port(value: Any) -> str:
    """Ports arrive as floats from the engine (protobuf Struct numbers): print 8888, not 8888.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _upload_text(upload: Mapping[str, Any]) -> str | None:
    """The uploaded file's text from `content` or `contentBase64`; None when given as a host `source`."""
    content = upload.get("content")
    if isinstance(content, str) and content:
        return content
    encoded = upload.get("contentBase64")
    if isinstance(encoded, str) and encoded:
        try:
            return base64.b64decode(encoded).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return None


def _jupyter_configs(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The parsed JSON of every upload at the Jupyter server config path."""
    found = []
    for upload in props.get("uploads") or []:
        if upload.get("file") != JUPYTER_CONFIG_PATH:
            continue
        text = _upload_text(upload)
        try:
            config = json.loads(text) if text else None
        except json.JSONDecodeError:
            continue
        if isinstance(config, Mapping):
            found.append(config)
    return found


def jupyter_tls_set(props: Mapping[str, Any]) -> bool:
    """True when the Jupyter config names a certfile and keyfile that are uploaded too (Jupyter serves HTTPS)."""
    files = {u.get("file") for u in props.get("uploads") or []}
    for config in _jupyter_configs(props):
        server = config.get("ServerApp")
        if isinstance(server, Mapping) and server.get("certfile") in files and server.get("keyfile") in files:
            return True
    return False


def jupyter_password_set(props: Mapping[str, Any]) -> bool:
    """True when an upload at the Jupyter server config sets a non-empty `PasswordIdentityProvider.hashed_password`.

    The upload's content is a secret; the analyzer shows it in plaintext. If it is unknown during
    preview, reading it raises and the policy is deferred to `pulumi up`.
    """
    for upload in props.get("uploads") or []:
        if upload.get("file") != JUPYTER_CONFIG_PATH:
            continue
        text = _upload_text(upload)
        if not text:
            continue
        try:
            config = json.loads(text)
        except json.JSONDecodeError:
            continue
        provider = config.get("PasswordIdentityProvider") if isinstance(config, Mapping) else None
        hashed = provider.get("hashed_password") if isinstance(provider, Mapping) else None
        if isinstance(hashed, str) and hashed.strip():
            return True
    return False


def check_notebook_password(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: every notebook container logs in by password (Jupyter's token or no auth is not enough)."""
    if resource_type != CONTAINER or role_of(props) != "notebook":
        return []
    if jupyter_password_set(props):
        return []
    return [
        f"notebook container {props.get('name')!r} has no password login: upload {JUPYTER_CONFIG_PATH} whose "
        "content sets PasswordIdentityProvider.hashed_password (set tfbox:password with `pulumi config set --secret`)"
    ]


def check_public_notebook_password(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: a notebook reachable beyond localhost must have a password (anyone on the network gets a shell)."""
    if resource_type != CONTAINER or role_of(props) != "notebook":
        return []
    public = public_bindings(props)
    if not public or jupyter_password_set(props):
        return []
    return [
        f"notebook container {props.get('name')!r} is published on {', '.join(public)} without a password: "
        "set tfbox:password, or bind it to 127.0.0.1 (tfbox:notebookBind)"
    ]


def check_public_notebook_tls(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: a notebook reachable beyond localhost serves HTTPS (the password and session cookie
    would cross the network in cleartext), unless the stack opted in with tfbox:allowPlainHttpOnLan."""
    if resource_type != CONTAINER or role_of(props) != "notebook":
        return []
    public = public_bindings(props, internal=JUPYTER_INTERNAL_PORT)
    if not public or jupyter_tls_set(props) or labels_of(props).get(PLAIN_HTTP_LABEL) == "true":
        return []
    return [
        f"notebook container {props.get('name')!r} is published on {', '.join(public)} over plain HTTP: "
        "run `make tls STACK=<stack>` (or set tfbox:tlsCert and the secret tfbox:tlsKey), bind it to 127.0.0.1 "
        "(tfbox:notebookBind), or accept the risk with tfbox:allowPlainHttpOnLan: true"
    ]


def check_tensorboard_loopback(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: TensorBoard has no login, so it stays on loopback unless the stack opts in explicitly.

    Sidecar mode: every published port of the `tensorboard` container. Exec mode: the notebook
    container's published internal port 6006. The opt-in is the `tfbox.tensorboard-public` label.
    """
    if resource_type != CONTAINER:
        return []
    role = role_of(props)
    if role == "tensorboard":
        public = public_bindings(props)
    elif role == "notebook":
        public = public_bindings(props, internal=TENSORBOARD_INTERNAL_PORT)
    else:
        return []
    if not public or labels_of(props).get(TENSORBOARD_PUBLIC_LABEL) == "true":
        return []
    return [
        f"TensorBoard in {props.get('name')!r} is published on {', '.join(public)} but has no login: bind it to "
        "127.0.0.1 (tfbox:tensorboardBind) and use an SSH tunnel, or opt in with tfbox:tensorboardPublic: true"
    ]


def check_notebooks_volume_kept(resource_type: str, props: Mapping[str, Any], protect: bool) -> list[str]:
    """Mandatory: `pulumi destroy` (or a replacement) must not delete the notebooks volume.

    retainOnDelete is invisible to analyzers, so the program mirrors it in a label (see module doc).
    """
    if resource_type != VOLUME or protect:
        return []
    labels = labels_of(props)
    if labels.get(ROLE_LABEL) != "notebooks" or labels.get(RETAIN_LABEL) == "true":
        return []
    return [
        f"notebooks volume {props.get('name')!r} would be deleted with the stack: keep tfbox:keepVolumes true "
        f"(retain_on_delete, shown to policies by the label {RETAIN_LABEL}=true) or set tfbox:protectVolumes true"
    ]


NO_NEW_PRIVILEGES = "no-new-privileges"
_HARDENED_ROLES = ("notebook", "tensorboard", "gpu-check", "ready")


def _root_user(user: Any) -> bool:
    """No user (the image's, root in TensorFlow's images), `root` or uid 0."""
    name = str(user or "").split(":", 1)[0].strip()
    return name in ("", "root", "0")


def check_container_hardening(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Mandatory: every tfbox container runs with no-new-privileges; TensorBoard (no login, serves files)
    as a non-root user on a read-only root filesystem with every capability dropped (docs/security.md, "Hardening")."""
    if resource_type != CONTAINER:
        return []
    role = role_of(props)
    if role not in _HARDENED_ROLES:
        return []
    name = props.get("name")
    problems: list[str] = []
    opts = [str(o).replace("=", ":") for o in props.get("securityOpts") or []]
    if NO_NEW_PRIVILEGES not in opts and f"{NO_NEW_PRIVILEGES}:true" not in opts:
        problems.append(f"{role} container {name!r} may gain privileges through setuid programs: set security_opts "
                        f"[{NO_NEW_PRIVILEGES!r}] (components/model/hardening.py)")
    if role == "tensorboard":
        drops = [str(c).upper() for c in (props.get("capabilities") or {}).get("drops") or []]
        missing = [what for what, ok in (
            ("a non-root user", not _root_user(props.get("user"))),
            ("a read-only root filesystem", props.get("readOnly") is True),
            ("all capabilities dropped", "ALL" in drops),
        ) if not ok]
        if missing:
            problems.append(f"TensorBoard container {name!r} has no login and must run with {', '.join(missing)} "
                            "(components/model/hardening.py: tensorboard_hardening)")
    return problems


def _known(props: Mapping[str, Any], key: str) -> Any:
    """props[key], or None while it is unknown (a stack policy sees planned outputs, full of unknowns in preview)."""
    try:
        return props.get(key)
    except _Unknown:
        return None


def uses_gpu(props: Mapping[str, Any]) -> bool:
    """`--gpus`, the nvidia runtime, or an nvidia/gpu device request (unknown values count as no GPU)."""
    if _known(props, "gpus"):
        return True
    if _known(props, "runtime") == "nvidia":
        return True
    try:
        for request in _known(props, "deviceRequests") or []:
            if request.get("driver") == "nvidia":
                return True
            if "gpu" in (request.get("capabilities") or []):
                return True
            if any(str(d).startswith("nvidia.com/gpu") for d in request.get("deviceIds") or []):
                return True
    except _Unknown:
        pass
    return False


def is_pinned(image: str) -> bool:
    """A digest reference (`repo@sha256:...`) or a local image ID (`sha256:...`) cannot move."""
    return "@sha256:" in image or image.startswith("sha256:")


def check_gpu_image_pinned(resource_type: str, props: Mapping[str, Any], source_images: Sequence[str] = ()) -> list[str]:
    """Advisory: on a GPU machine a moving tag can bring another CUDA/TensorFlow build at the next pull.

    The container's `image` is usually the RemoteImage's image ID (pinned for that container, unknown
    during preview), so the RemoteImage names it depends on (`source_images`) are checked as well.
    """
    if resource_type != CONTAINER or not uses_gpu(props):
        return []
    refs: list[str] = list(source_images)
    image = _known(props, "image")
    if isinstance(image, str) and image and not image.startswith("sha256:"):
        refs.append(image)
    moving = sorted({ref for ref in refs if not is_pinned(ref)})
    return [
        f"GPU container {_known(props, 'name')!r} uses the moving tag {ref!r}: pin its digest "
        f"(tfbox:image: {ref.split('@')[0]}@sha256:...) so a pull cannot change the CUDA/TensorFlow build"
        for ref in moving
    ]


def image_names(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The `name` of every RemoteImage among (type, props) pairs, skipping unknown ones."""
    names: list[str] = []
    for resource_type, props in resources:
        if resource_type != REMOTE_IMAGE:
            continue
        name = _known(props, "name")
        if isinstance(name, str) and name:
            names.append(name)
    return names

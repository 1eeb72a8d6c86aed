"""The `tfbox:*` config keys: names, types, defaults and the text of the config reference.

One table that the program, the stack-file checker, the reference generator (tools/reference.py) and
the tests share, so a key is spelled and defaulted the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from components.model.hardening import DEFAULT_NOTEBOOK_PIDS_LIMIT, DEFAULT_SHM_SIZE, GPU_ULIMITS_TEXT
from components.model.paths import DEFAULT_HOST_PATH_ROOT

NAMESPACE = "tfbox"
CPU_IMAGE = "tensorflow/tensorflow:latest-jupyter"
GPU_IMAGE = "tensorflow/tensorflow:latest-gpu-jupyter"
TENSORBOARD_MODES = ("sidecar", "exec", "off")
STACK_KINDS = ("machine", "local")

ConfigType = Literal["string", "integer", "boolean", "array", "object"]
PasswordState = Literal["secret", "plaintext", "missing"]


@dataclass(frozen=True)
class ConfigKey:
    """One `tfbox:` setting; the README table and Pulumi.yaml are checked against these."""

    name: str
    type: ConfigType
    default: str | int | bool | list[Any] | dict[str, Any] | None
    doc: str
    secret: bool = False
    items: ConfigType = "object"  # an array's item type, as Pulumi.yaml's typed config declares it

    @property
    def full(self) -> str:
        return f"{NAMESPACE}:{self.name}"


KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("backend", "string", "docker", "Where the lab runs: `docker` (a Docker host: the `docker:` provider config) or "
              "`kubernetes` (a cluster: the `kubernetes:` provider config; preview, see docs/kubernetes.md)."),
    ConfigKey("image", "string", "", f"Image tag or `repo@sha256:` digest; empty picks `{CPU_IMAGE}`, or `{GPU_IMAGE}` when GPUs are set."),
    ConfigKey("imageTrackRegistry", "boolean", False, "Re-pull (and replace the containers) when the registry digest of the tag changes."),
    ConfigKey("keepImage", "boolean", True, "Leave the image on the host at `pulumi destroy`."),
    ConfigKey("gpus", "string", "", "`all`, `count=N`, a list of indices `0,1`, or UUIDs `GPU-…`; empty for none."),
    ConfigKey("gpuMode", "string", "device-requests", "`device-requests` (`docker run --gpus`) or `nvidia-runtime` (`--runtime=nvidia` + `NVIDIA_VISIBLE_DEVICES`)."),
    ConfigKey("gpuCheck", "boolean", False, "Run `nvidia-smi -L` with the same GPUs before the notebook starts and check the image's CUDA against the "
              "driver; its output becomes the `gpuCheck` output. On kubernetes: a `gpu-check` init container in each GPU seat's pod."),
    ConfigKey("gpuCheckImage", "string", "", "Image for the GPU check; empty uses the notebook image. Docker only."),
    ConfigKey("password", "string", None, "Notebook password; required (except on a stack with `seats`: see `passwords`), "
              "set with `pulumi config set --secret tfbox:password`.", secret=True),
    ConfigKey("passwordSalt", "string", "", "Random salt of the password's argon2id hash (16-64 letters or digits); `make up`, `make machine` or "
              "`python -m components.password salt` make it. Required."),
    ConfigKey("notebookPort", "integer", 8888, "Host port of the notebook."),
    ConfigKey("notebookBind", "string", "127.0.0.1", "Host IP address the notebook port is published on (`0.0.0.0` for every interface; `localhost` means `127.0.0.1`)."),
    ConfigKey("tlsCert", "string", "", "PEM certificate (chain) the notebook serves HTTPS with; `make tls STACK=…` makes a self-signed one. Empty: plain HTTP."),
    ConfigKey("tlsKey", "string", "", "PEM private key of `tlsCert`; set with `pulumi config set --secret tfbox:tlsKey < key.pem` (or `make tls`).", secret=True),
    ConfigKey("tlsCerts", "object", {}, "Seat name -> PEM certificate, on a stack with `seats`: each seat serves HTTPS with its own "
              "certificate and key; `make tls STACK=…` makes one per seat. Replaces `tlsCert` there (a shared key lets one seat "
              "impersonate another)."),
    ConfigKey("tlsKeys", "object", None, "Seat name -> PEM private key of that seat's `tlsCerts` entry, each a secret "
              "(`pulumi config set --secret --path 'tfbox:tlsKeys.<seat>' < key.pem`, or `make tls`).", secret=True),
    ConfigKey("allowPlainHttpOnLan", "boolean", False, "Must be `true` to publish the notebook beyond loopback without TLS "
              "(password and session cookie cross the network in cleartext)."),
    ConfigKey("tensorboardMode", "string", "sidecar", "`sidecar` (own container), `exec` (inside the notebook container, as the recipe) or `off`."),
    ConfigKey("tensorboardPort", "integer", 6006, "Host port of TensorBoard."),
    ConfigKey("tensorboardBind", "string", "127.0.0.1", "Host IP address TensorBoard is published on (`localhost` means `127.0.0.1`)."),
    ConfigKey("loopbackPublishFiltered", "boolean", False, "`true` once the Docker host drops packets for 127.0.0.1 that "
              "come from other hosts (Docker 28+ does; older: the raw-table rule the preflight warning names): silences "
              "that warning, and skips reading the daemon's version."),
    ConfigKey("tensorboardPublic", "boolean", False, "Must be `true` to publish TensorBoard (which has no login) beyond loopback."),
    ConfigKey("tensorboardProxy", "boolean", False,
              "Serve each notebook's TensorBoard at `<notebook URL>/tensorboard/`, behind the notebook's login and TLS. "
              "Off when absent (stacks made before it keep their notebook); `make up` and `make machine` write `true` "
              "on new stacks. Turning it on replaces the notebook container once (notebooks are kept)."),
    ConfigKey("notebooksVolume", "string", "", "Docker volume for `/tf`; empty means `<namePrefix>-notebooks`."),
    ConfigKey("notebooksHostPath", "string", "", "Absolute host directory to bind at `/tf` instead of a volume; it must lie below "
              "`tfbox:hostPathRoot` (and not be a system or hidden directory or hold the Docker socket)."),
    ConfigKey("hostPathRoot", "string", DEFAULT_HOST_PATH_ROOT, "The machine's data root: `notebooksHostPath` must be a directory "
              "strictly below it (the notebook is root in `/tf`). Set it to where your notebooks directories live, e.g. `/data/tfbox`."),
    ConfigKey("logsVolume", "string", "", "Docker volume for the TensorBoard logs; empty means `<namePrefix>-logs`."),
    ConfigKey("logsDir", "string", "/tf/logs", "Where notebooks write logs and TensorBoard reads them, inside the containers; a directory below `/tf`."),
    ConfigKey("tfLogLevel", "integer", 2, "`TF_CPP_MIN_LOG_LEVEL` in the notebook: 0 shows TensorFlow's C++ info and warnings, 2 only errors, 3 nothing."),
    ConfigKey("keepVolumes", "boolean", True, "Keep the Docker volumes when Pulumi deletes them (`retainOnDelete`)."),
    ConfigKey("protectVolumes", "boolean", False, "Refuse any delete of the volumes (`protect`)."),
    ConfigKey("namePrefix", "string", "", "Prefix of container and volume names; empty means `tfbox-<stack>`."),
    ConfigKey("shmSize", "string", DEFAULT_SHM_SIZE,
              "Size of the notebook's `/dev/shm` (`docker run --shm-size`, e.g. `2g`); TensorFlow input pipelines crash in Docker's 64m."),
    ConfigKey("notebookMemory", "string", "", "Memory limit of the notebook (`docker run --memory`, e.g. `16g`; swap not limited); empty for none."),
    ConfigKey("notebookCpus", "string", "", "CPU limit of the notebook (`docker run --cpus`, e.g. `4` or `1.5`); empty for none."),
    ConfigKey("notebookUlimits", "string", "",
              f"Notebook ulimits `name=soft[:hard],…` (`docker run --ulimit`); empty gives GPU stacks NVIDIA's `{GPU_ULIMITS_TEXT}` "
              "and others Docker's defaults; `none` for Docker's defaults everywhere."),
    ConfigKey("notebookPidsLimit", "integer", DEFAULT_NOTEBOOK_PIDS_LIMIT,
              "Most processes and threads a notebook may run (`docker update --pids-limit`), so a fork bomb stops there "
              "(TensorBoard: 1024); 0 for no pids limits."),
    ConfigKey("cullIdleKernels", "string", "",
              "Shut down kernels idle this long with no browser tab connected (`3600`, `30m`, `1h`; `off`), so a closed tab "
              "frees its GPU memory; empty: `1h` on GPU stacks, `off` otherwise."),
    ConfigKey("stackKind", "string", "machine", "`machine` (previewed on PRs, drift-checked, in `make fleet`) or `local` (your own Docker; CI never runs it)."),
    ConfigKey("seats", "array", [], "Seats sharing this machine, a list of `{name, gpus, notebookPort, tensorboardPort}` (optional per seat: "
              "`memory`, `cpus`, `image`, `notebookBind`, `tensorboardBind`, `shareGpus`, `ingressHost`); each gets its own notebook, TensorBoard, "
              "volumes, password and GPUs. Empty: one notebook, as the keys above say. See docs/gpus-and-seats.md."),
    ConfigKey("namespace", "string", "", "Kubernetes backend: the namespace of the stack's objects; empty means `tfbox-<stack>`."),
    ConfigKey("gpuNodeSelector", "object", {}, "Kubernetes backend: node label -> value a GPU seat's pod must land on, e.g. `{gpu: h100}`."),
    ConfigKey("gpuTolerations", "array", [], "Kubernetes backend: tolerations of GPU seats' pods, a list of `{key, operator, value, effect}` "
              "(e.g. `{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}`)."),
    ConfigKey("storageClass", "string", "", "Kubernetes backend: StorageClass of the notebooks and logs claims; empty: the cluster's default."),
    ConfigKey("notebooksSize", "string", "10g", "Kubernetes backend: size of each seat's notebooks claim (`/tf`), e.g. `10g`."),
    ConfigKey("logsSize", "string", "1g", "Kubernetes backend: size of each seat's TensorBoard logs claim, e.g. `1g`."),
    ConfigKey("serviceType", "string", "ClusterIP", "Kubernetes backend: `ClusterIP` (each seat reachable in the cluster only; "
              "from a laptop with `kubectl port-forward`) or `NodePort` (each seat's notebook on every node's address at its "
              "`notebookPort`, which must lie in 30000-32767; needs TLS and `nodePortSources`)."),
    ConfigKey("nodePortSources", "array", [], "Kubernetes backend, with `serviceType: NodePort`: the networks (CIDRs) the seats' "
              "NetworkPolicy lets reach the notebooks, e.g. `[192.168.10.0/24]`; `[0.0.0.0/0]` for any address.", items="string"),
    ConfigKey("ingressHost", "string", "", "Kubernetes backend: the DNS name of an Ingress to the notebook over HTTPS (a seats stack: "
              "each seat at `<seat>.<ingressHost>`, or its own `ingressHost`); the certificate must name it (`make tls` does). "
              "Empty: no Ingress. See docs/kubernetes.md."),
    ConfigKey("ingressClassName", "string", "", "Kubernetes backend, with an Ingress: its `ingressClassName`; empty: the cluster's default IngressClass."),
    ConfigKey("ingressAnnotations", "object", {}, "Kubernetes backend, with an Ingress: annotations for the controller, over tfbox's "
              "ingress-nginx defaults (`backend-protocol: HTTPS`, …); a `cert-manager.io/cluster-issuer` or `issuer` one has "
              "cert-manager issue the Ingress's certificate."),
    ConfigKey("passwords", "object", None, "Seat name -> password, each a secret of 12+ characters, required for every seat: "
              "`pulumi config set --secret --path 'tfbox:passwords.<seat>'` (replaces `tfbox:password` on a stack with seats).", secret=True),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}

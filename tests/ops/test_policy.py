"""The tfbox policy pack on resource inputs it must accept and reject, without the engine.

Two levels: the plain rules in `policy/rules.py`, and the wired pack in `policy/pack.py` driven
through pulumi-policy's own analyzer servicer with requests shaped as the engine sends them (secrets
wrapped in the secret signature, unknowns as the engine's sentinels), which checks what the policies
see of secrets, unknowns and resource options.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from policy import rules  # noqa: E402

NOTEBOOK = "tfbox-box-notebook"
TENSORBOARD = "tfbox-box-tensorboard"
HASH = "sha256:0123456789abcdef:" + "ab" * 32
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


CERT, KEY = "/etc/jupyter/tfbox-notebook.crt", "/etc/jupyter/tfbox-notebook.key"
TLS_UPLOADS = [{"file": CERT, "content": "-----BEGIN CERTIFICATE-----"}, {"file": KEY, "content": "<secret>"}]


def jupyter_config(hashed: str | None = HASH, tls: bool = True) -> str:
    config: dict[str, Any] = {"IdentityProvider": {"token": ""}}
    if tls:
        config["ServerApp"] = {"certfile": CERT, "keyfile": KEY}
    if hashed is not None:
        config["PasswordIdentityProvider"] = {"hashed_password": hashed, "password_required": True}
    return json.dumps(config)


def container(
    name: str = NOTEBOOK,
    role: str | None = "notebook",
    ports: list[dict[str, Any]] | None = None,
    uploads: list[dict[str, Any]] | None = None,
    extra_labels: dict[str, str] | None = None,
    **props: Any,
) -> dict[str, Any]:
    label_map = {"tfbox.stack": "box", "tfbox.project": "tfbox", **(extra_labels or {})}
    if role is not None:
        label_map["tfbox.role"] = role
    return {
        "name": name,
        "image": "sha256:" + "0" * 64,
        "labels": [{"label": k, "value": v} for k, v in sorted(label_map.items())],
        "ports": ports if ports is not None else [{"internal": 8888, "external": 8888, "ip": "0.0.0.0", "protocol": "tcp"}],
        # a notebook with a config upload also gets the TLS pair its config names, as the program uploads it
        "uploads": ([{"file": rules.JUPYTER_CONFIG_PATH, "content": jupyter_config()}] if uploads is None else uploads)
        + (TLS_UPLOADS if uploads != [] else []),
        "securityOpts": ["no-new-privileges"],
        **props,
    }


def volume(role: str = "notebooks", retain: str | None = "true") -> dict[str, Any]:
    label_map = {"tfbox.role": role, "tfbox.stack": "box"}
    if retain is not None:
        label_map[rules.RETAIN_LABEL] = retain
    return {"name": f"tfbox-box-{role}", "labels": [{"label": k, "value": v} for k, v in sorted(label_map.items())]}


# --- notebook-requires-password -------------------------------------------------------------------


def test_notebook_with_hashed_password_passes() -> None:
    assert rules.check_notebook_password(rules.CONTAINER, container()) == []


def test_notebook_password_may_come_base64() -> None:
    encoded = base64.b64encode(jupyter_config().encode()).decode()
    props = container(uploads=[{"file": rules.JUPYTER_CONFIG_PATH, "contentBase64": encoded}])
    assert rules.check_notebook_password(rules.CONTAINER, props) == []


@pytest.mark.parametrize(
    "uploads",
    [
        [],
        [{"file": "/etc/jupyter/other.json", "content": jupyter_config()}],
        [{"file": rules.JUPYTER_CONFIG_PATH, "content": jupyter_config(None)}],  # token off, no password: open
        [{"file": rules.JUPYTER_CONFIG_PATH, "content": jupyter_config("")}],
        [{"file": rules.JUPYTER_CONFIG_PATH, "content": "c.PasswordIdentityProvider.hashed_password = 'x'"}],
        [{"file": rules.JUPYTER_CONFIG_PATH, "source": "/home/me/jupyter_server_config.json"}],
    ],
    ids=["no-upload", "wrong-path", "no-password", "empty-hash", "not-json", "host-source"],
)
def test_notebook_without_password_is_refused(uploads: list[dict[str, Any]]) -> None:
    messages = rules.check_notebook_password(rules.CONTAINER, container(uploads=uploads))
    assert len(messages) == 1
    assert "no password login" in messages[0]


def test_password_rule_ignores_other_containers_and_types() -> None:
    assert rules.check_notebook_password(rules.CONTAINER, container(name=TENSORBOARD, role="tensorboard", uploads=[])) == []
    assert rules.check_notebook_password(rules.VOLUME, volume()) == []


# --- public-notebook-requires-password ------------------------------------------------------------


@pytest.mark.parametrize(
    "port",
    [
        {"internal": 8888, "external": 8888, "ip": "0.0.0.0"},
        {"internal": 8888, "external": 8888},  # Docker's default: every interface
        {"internal": 8888, "external": 8888, "ip": "192.0.2.10"},
        {"internal": 8888, "external": 8888, "ip": "::"},
    ],
    ids=["any-v4", "missing-ip", "lan-address", "any-v6"],
)
def test_public_notebook_without_password_is_refused(port: dict[str, Any]) -> None:
    props = container(ports=[port], uploads=[])
    messages = rules.check_public_notebook_password(rules.CONTAINER, props)
    assert len(messages) == 1
    assert "without a password" in messages[0]


def test_host_network_counts_as_public() -> None:
    props = container(ports=[], uploads=[], networkMode="host")
    assert rules.check_public_notebook_password(rules.CONTAINER, props)


@pytest.mark.parametrize("ip", ["localhost", "LOCALHOST", "gpu-box", "[::1]", " 127.0.0.1"])
def test_a_bind_docker_cannot_parse_counts_as_public(ip: str) -> None:
    """Docker 20-28 publishes on 0.0.0.0 when it cannot parse the host IP: `localhost` is not loopback."""
    props = container(ports=[{"internal": 8888, "external": 8888, "ip": ip}], uploads=[])
    assert rules.check_public_notebook_password(rules.CONTAINER, props)
    assert rules.check_tensorboard_loopback(rules.CONTAINER, tensorboard(ip))


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.0.0.2", "::1"])
def test_loopback_notebook_is_not_public(ip: str) -> None:
    props = container(ports=[{"internal": 8888, "external": 8888, "ip": ip}], uploads=[])
    assert rules.check_public_notebook_password(rules.CONTAINER, props) == []
    # ...but it still needs a password: the other rule says so.
    assert rules.check_notebook_password(rules.CONTAINER, props)


def test_public_notebook_with_password_passes() -> None:
    assert rules.check_public_notebook_password(rules.CONTAINER, container()) == []


# --- public-notebook-requires-tls -----------------------------------------------------------------


def test_public_notebook_over_plain_http_is_refused_unless_opted_in() -> None:
    plain = [{"file": rules.JUPYTER_CONFIG_PATH, "content": jupyter_config(tls=False)}]
    messages = rules.check_public_notebook_tls(rules.CONTAINER, container(uploads=plain))
    assert len(messages) == 1 and "plain HTTP" in messages[0] and "allowPlainHttpOnLan" in messages[0]
    opted_in = container(uploads=plain, extra_labels={rules.PLAIN_HTTP_LABEL: "true"})
    assert rules.check_public_notebook_tls(rules.CONTAINER, opted_in) == []
    loopback = container(uploads=plain, ports=[{"internal": 8888, "external": 8888, "ip": "127.0.0.1"}])
    assert rules.check_public_notebook_tls(rules.CONTAINER, loopback) == []


def test_tls_config_without_the_uploaded_files_does_not_count() -> None:
    props = container()
    props["uploads"] = props["uploads"][:1]  # the config names a certfile that is not uploaded
    assert rules.check_public_notebook_tls(rules.CONTAINER, props)
    assert rules.check_public_notebook_tls(rules.CONTAINER, container()) == []


# --- tensorboard-loopback-unless-public -----------------------------------------------------------


TENSORBOARD_HARDENING: dict[str, Any] = {"user": "65534:65534", "readOnly": True, "capabilities": {"drops": ["ALL"]}}


def tensorboard(ip: str | None, public: str = "false") -> dict[str, Any]:
    port: dict[str, Any] = {"internal": 6006, "external": 6006}
    if ip is not None:
        port["ip"] = ip
    return container(name=TENSORBOARD, role="tensorboard", ports=[port], uploads=[], extra_labels={rules.TENSORBOARD_PUBLIC_LABEL: public},
                     **TENSORBOARD_HARDENING)


@pytest.mark.parametrize("ip", ["0.0.0.0", None, "10.0.0.5"])
def test_public_tensorboard_without_opt_in_is_refused(ip: str | None) -> None:
    messages = rules.check_tensorboard_loopback(rules.CONTAINER, tensorboard(ip))
    assert len(messages) == 1
    assert "has no login" in messages[0]


def test_tensorboard_without_the_label_is_refused() -> None:
    props = container(name=TENSORBOARD, role="tensorboard", ports=[{"internal": 6006, "external": 6006, "ip": "0.0.0.0"}])
    assert rules.check_tensorboard_loopback(rules.CONTAINER, props)


def test_tensorboard_on_loopback_passes() -> None:
    assert rules.check_tensorboard_loopback(rules.CONTAINER, tensorboard("127.0.0.1")) == []


def test_public_tensorboard_with_opt_in_passes() -> None:
    assert rules.check_tensorboard_loopback(rules.CONTAINER, tensorboard("0.0.0.0", public="true")) == []


def test_exec_mode_tensorboard_port_on_the_notebook_is_checked() -> None:
    ports = [
        {"internal": 8888, "external": 8888, "ip": "0.0.0.0"},
        {"internal": 6006, "external": 6006, "ip": "0.0.0.0"},
    ]
    assert rules.check_tensorboard_loopback(rules.CONTAINER, container(ports=ports))
    opted_in = container(ports=ports, extra_labels={rules.TENSORBOARD_PUBLIC_LABEL: "true"})
    assert rules.check_tensorboard_loopback(rules.CONTAINER, opted_in) == []
    loopback_tb = [ports[0], {"internal": 6006, "external": 6006, "ip": "127.0.0.1"}]
    assert rules.check_tensorboard_loopback(rules.CONTAINER, container(ports=loopback_tb)) == []


def test_public_notebook_port_alone_is_not_tensorboard() -> None:
    assert rules.check_tensorboard_loopback(rules.CONTAINER, container()) == []


# --- containers-hardened --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["notebook", "tensorboard", "gpu-check"])
def test_container_without_no_new_privileges_is_refused(role: str) -> None:
    props = {**(tensorboard("127.0.0.1") if role == "tensorboard" else container(role=role)), "securityOpts": []}
    messages = rules.check_container_hardening(rules.CONTAINER, props)
    assert len(messages) == 1 and "no-new-privileges" in messages[0]
    props["securityOpts"] = ["no-new-privileges:true"]  # Docker's other spelling
    assert rules.check_container_hardening(rules.CONTAINER, props) == []


@pytest.mark.parametrize(("change", "named"), [
    ({"user": None}, "a non-root user"), ({"user": "0:0"}, "a non-root user"), ({"user": "root"}, "a non-root user"),
    ({"readOnly": False}, "a read-only root filesystem"), ({"capabilities": {"drops": ["NET_RAW"]}}, "all capabilities dropped"),
])
def test_tensorboard_must_stay_unprivileged(change: dict[str, Any], named: str) -> None:
    assert rules.check_container_hardening(rules.CONTAINER, tensorboard("127.0.0.1")) == []
    messages = rules.check_container_hardening(rules.CONTAINER, {**tensorboard("127.0.0.1"), **change})
    assert len(messages) == 1 and named in messages[0]


def test_hardening_rule_ignores_other_containers() -> None:
    assert rules.check_container_hardening(rules.CONTAINER, container(role=None, securityOpts=[])) == []
    assert rules.check_container_hardening(rules.VOLUME, volume()) == []


# --- notebooks-volume-survives-destroy ------------------------------------------------------------


def test_retained_notebooks_volume_passes() -> None:
    assert rules.check_notebooks_volume_kept(rules.VOLUME, volume(), protect=False) == []


def test_protected_notebooks_volume_passes() -> None:
    assert rules.check_notebooks_volume_kept(rules.VOLUME, volume(retain=None), protect=True) == []


@pytest.mark.parametrize("retain", [None, "false"])
def test_deletable_notebooks_volume_is_refused(retain: str | None) -> None:
    messages = rules.check_notebooks_volume_kept(rules.VOLUME, volume(retain=retain), protect=False)
    assert len(messages) == 1
    assert "would be deleted with the stack" in messages[0]


def test_logs_volume_may_go() -> None:
    assert rules.check_notebooks_volume_kept(rules.VOLUME, volume(role="logs", retain=None), protect=False) == []


# --- gpu-image-pinned-by-digest (advisory) --------------------------------------------------------

DIGEST = "tensorflow/tensorflow@sha256:" + "a" * 64
TAG = "tensorflow/tensorflow:latest-gpu-jupyter"


@pytest.mark.parametrize(
    "gpu",
    [
        {"gpus": "all"},
        {"gpus": '"device=0,1"'},
        {"runtime": "nvidia"},
        {"deviceRequests": [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]},
        {"deviceRequests": [{"driver": "cdi", "deviceIds": ["nvidia.com/gpu=all"]}]},
    ],
    ids=["gpus-all", "gpus-list", "nvidia-runtime", "device-request", "cdi"],
)
def test_gpu_container_from_a_moving_tag_gets_advice(gpu: dict[str, Any]) -> None:
    messages = rules.check_gpu_image_pinned(rules.CONTAINER, container(image=TAG, **gpu))
    assert len(messages) == 1
    assert "pin its digest" in messages[0]


def test_image_id_is_traced_back_to_the_remote_image_tag() -> None:
    props = container(gpus="all")  # image: sha256:<id>, as RemoteImage.image_id gives it
    assert rules.check_gpu_image_pinned(rules.CONTAINER, props, [TAG])
    assert rules.check_gpu_image_pinned(rules.CONTAINER, props, [DIGEST]) == []


def test_pinned_or_cpu_images_need_no_advice() -> None:
    assert rules.check_gpu_image_pinned(rules.CONTAINER, container(image=DIGEST, gpus="all")) == []
    assert rules.check_gpu_image_pinned(rules.CONTAINER, container(image=TAG)) == []
    assert rules.check_gpu_image_pinned(rules.CONTAINER, container(image=TAG, gpus="")) == []


def test_image_names_reads_remote_images_only() -> None:
    found = rules.image_names([(rules.REMOTE_IMAGE, {"name": TAG}), (rules.VOLUME, {"name": "v"})])
    assert found == [TAG]


# --- what the analyzer hands the policies: unknowns, secrets, options -----------------------------

try:  # the pack's own dependency (policy/requirements.txt); only the tests below need it
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2
    from pulumi_policy.policy import EnforcementLevel, _PolicyAnalyzerServicer
    from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

    from policy.pack import PACK_NAME, build_policies

    HAVE_PULUMI_POLICY = True
except ImportError:
    HAVE_PULUMI_POLICY = False

needs_pulumi_policy = pytest.mark.skipif(not HAVE_PULUMI_POLICY, reason="pulumi-policy not installed: pip install -r policy/requirements.txt")


@needs_pulumi_policy
def test_unknown_password_content_defers_the_verdict() -> None:
    props = unknown_checking_proxy(container(uploads=[{"file": rules.JUPYTER_CONFIG_PATH, "content": UNKNOWN}]))
    with pytest.raises(UnknownValueError):
        rules.check_notebook_password(rules.CONTAINER, props)


@needs_pulumi_policy
def test_unknown_labels_fall_back_to_the_container_name() -> None:
    # The notebook's labels wait for the GPU check's verdict, so they are unknown during preview.
    props = unknown_checking_proxy({**container(uploads=[]), "labels": UNKNOWN})
    assert rules.check_notebook_password(rules.CONTAINER, props)
    assert rules.check_public_notebook_password(rules.CONTAINER, props)


@needs_pulumi_policy
def test_public_check_does_not_need_the_password_when_on_loopback() -> None:
    uploads = [{"file": rules.JUPYTER_CONFIG_PATH, "content": UNKNOWN}]
    props = unknown_checking_proxy(container(ports=[{"internal": 8888, "external": 8888, "ip": "127.0.0.1"}], uploads=uploads))
    assert rules.check_public_notebook_password(rules.CONTAINER, props) == []


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(props)
    return message


def _servicer() -> Any:
    return _PolicyAnalyzerServicer(PACK_NAME, "0.0.1", build_policies(), EnforcementLevel.MANDATORY, None, None, None, None, None, None, None)


def _analyze(resource_type: str, name: str, props: dict[str, Any], protect: bool = False) -> dict[str, str]:
    """policy name -> enforcement level name, for every diagnostic the pack returns."""
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type,
        properties=_struct(props),
        urn=f"urn:pulumi:box::tfbox::{resource_type}::{name}",
        name=name,
        options=analyzer_pb2.AnalyzerResourceOptions(protect=protect),
    )
    response = _servicer().Analyze(request, None)
    return {d.policyName: analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel) for d in response.diagnostics}


def _secret(value: Any) -> dict[str, Any]:
    return {SIG: SECRET_SIG, "value": value}


@needs_pulumi_policy
def test_pack_sees_a_secret_config_upload_in_plaintext() -> None:
    props = container(uploads=[{"file": rules.JUPYTER_CONFIG_PATH, "content": _secret(jupyter_config())}])
    assert _analyze(rules.CONTAINER, NOTEBOOK, props) == {}


@needs_pulumi_policy
def test_pack_refuses_a_notebook_without_password() -> None:
    props = container(uploads=[{"file": rules.JUPYTER_CONFIG_PATH, "content": _secret(jupyter_config(None))}])
    assert _analyze(rules.CONTAINER, NOTEBOOK, props) == {
        "notebook-requires-password": "MANDATORY",
        "public-notebook-requires-password": "MANDATORY",
    }


@needs_pulumi_policy
def test_pack_turns_an_unknown_password_into_an_advisory_note_during_preview() -> None:
    props = container(uploads=[{"file": rules.JUPYTER_CONFIG_PATH, "content": UNKNOWN}])
    assert _analyze(rules.CONTAINER, NOTEBOOK, props) == {
        "notebook-requires-password": "ADVISORY",
        "public-notebook-requires-password": "ADVISORY",
        "public-notebook-requires-tls": "ADVISORY",
    }


@needs_pulumi_policy
def test_pack_refuses_public_tensorboard() -> None:
    assert _analyze(rules.CONTAINER, TENSORBOARD, tensorboard("0.0.0.0")) == {"tensorboard-loopback-unless-public": "MANDATORY"}


@needs_pulumi_policy
def test_pack_reads_protect_but_needs_the_label_for_retain_on_delete() -> None:
    assert _analyze(rules.VOLUME, "notebooks", volume(retain=None), protect=True) == {}
    assert _analyze(rules.VOLUME, "notebooks", volume(retain=None)) == {"notebooks-volume-survives-destroy": "MANDATORY"}
    assert _analyze(rules.VOLUME, "notebooks", volume()) == {}


@needs_pulumi_policy
def test_stack_policy_follows_the_image_dependency_to_the_tag() -> None:
    image_urn = "urn:pulumi:box::tfbox::tfbox:index:Image$docker:index/remoteImage:RemoteImage::image"
    resources = [
        analyzer_pb2.AnalyzerResource(type=rules.REMOTE_IMAGE, urn=image_urn, name="image", properties=_struct({"name": TAG, "imageId": UNKNOWN})),
        analyzer_pb2.AnalyzerResource(
            type=rules.CONTAINER,
            urn="urn:pulumi:box::tfbox::docker:index/container:Container::notebook",
            name="notebook",
            # planned outputs in preview: computed ones (runtime, ...) are unknown, as the real engine showed
            properties=_struct({**container(gpus="all"), "image": UNKNOWN, "runtime": UNKNOWN, "deviceRequests": UNKNOWN}),
            propertyDependencies={"image": analyzer_pb2.AnalyzerPropertyDependencies(urns=[image_urn])},
        ),
    ]
    # a CPU container whose computed outputs are unknown must not abort the policy (it did, on the real engine)
    cpu = {**tensorboard("127.0.0.1"), "gpus": UNKNOWN, "runtime": UNKNOWN, "deviceRequests": UNKNOWN}
    resources.insert(
        0,
        analyzer_pb2.AnalyzerResource(
            type=rules.CONTAINER,
            urn="urn:pulumi:box::tfbox::docker:index/container:Container::tensorboard",
            name="tensorboard",
            properties=_struct(cpu),
        ),
    )
    response = _servicer().AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources), None)
    found = [(d.policyName, analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel)) for d in response.diagnostics]
    assert found == [("gpu-image-pinned-by-digest", "ADVISORY")]
    assert TAG in response.diagnostics[0].message


# --- the pack against what the real program declares (under Pulumi's mocks) -----------------------


def _program_requests(stack: str, **overrides: Any) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(type, name, inputs, protect) of every Docker resource `__main__.py` declares for a committed stack."""
    from tests.docker.program import run_program, stack_config, with_machine_secrets

    config = {**with_machine_secrets(stack_config(stack)), "tfbox:password": "correct horse battery staple"}
    config.update({f"tfbox:{k}": v for k, v in overrides.items()})
    rec, _ = run_program(config, stack=stack)
    out = []
    for declared in rec.resources:
        if not declared.type.startswith("docker:"):
            continue
        protect = bool(rec.opts(declared.type, declared.name).protect)
        inputs = json.loads(json.dumps(declared.inputs))  # plain JSON, as the engine marshals it
        out.append((declared.type, declared.name, inputs, protect))
    return out


@needs_pulumi_policy
@pytest.mark.parametrize("stack", ["dev", "gpu-box"])
def test_pack_accepts_the_program_except_the_volume_rule(stack: str) -> None:
    """The password, loopback and TensorBoard rules agree with what the program declares."""
    for resource_type, name, inputs, protect in _program_requests(stack):
        found = _analyze(resource_type, name, inputs, protect)
        found.pop("notebooks-volume-survives-destroy", None)  # see the next test
        assert found == {}, (resource_type, name)


@pytest.mark.parametrize("stack", ["dev", "gpu-box"])
@needs_pulumi_policy
def test_pack_accepts_the_programs_notebooks_volume(stack: str) -> None:
    volumes = [r for r in _program_requests(stack) if r[0] == rules.VOLUME]
    assert volumes
    for resource_type, name, inputs, protect in volumes:
        assert _analyze(resource_type, name, inputs, protect) == {}, name


@needs_pulumi_policy
def test_pack_accepts_a_protected_notebooks_volume_from_the_program() -> None:
    volumes = [r for r in _program_requests("dev", protectVolumes=True) if r[0] == rules.VOLUME]
    for resource_type, name, inputs, protect in volumes:
        assert protect
        assert _analyze(resource_type, name, inputs, protect) == {}, name


# --- the real engine: `pulumi preview --policy-pack` refuses a violating stack ---------------------
# Runs where scripts/test.sh prepared the toolchain (TFBOX_TOOLCHAIN_BIN); needs no Docker daemon
# (disableDockerDaemonCheck), only the CLI, the Python language host and the docker provider.

VIOLATING_PROGRAM = """
import json
import pulumi_docker as docker

secure = {secure}
ip = "127.0.0.1" if secure else "0.0.0.0"
config = json.dumps({{"PasswordIdentityProvider": {{"hashed_password": "sha256:0123456789abcdef:" + "ab" * 32}}}})
docker.Container(
    "notebook",
    name="tfbox-bad-notebook",
    image="tensorflow/tensorflow:latest-jupyter",
    labels=[docker.ContainerLabelArgs(label="tfbox.role", value="notebook")],
    security_opts=["no-new-privileges"],
    ports=[docker.ContainerPortArgs(internal=8888, external=8888, ip=None if not secure else ip),
           docker.ContainerPortArgs(internal=6006, external=6006, ip=ip)],
    uploads=[docker.ContainerUploadArgs(file="/etc/jupyter/jupyter_server_config.json", content=config)] if secure else None,
)
"""


def _engine_preview(tmp_path: Path, secure: bool) -> subprocess.CompletedProcess[str]:
    bindir = os.environ.get("TFBOX_TOOLCHAIN_BIN", "")
    if not bindir or not (Path(bindir) / "pulumi").exists():
        pytest.skip("no Pulumi toolchain (TFBOX_TOOLCHAIN_BIN, set by scripts/test.sh)")
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs to run from a virtualenv (the program and the pack reuse it)")
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(sys.prefix)
    (project / "Pulumi.yaml").write_text("name: violating\nruntime:\n  name: python\n  options:\n    virtualenv: .venv\n")
    (project / "__main__.py").write_text(VIOLATING_PROGRAM.format(secure=secure))
    pack = tmp_path / "policy"
    shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    (pack / ".venv").symlink_to(sys.prefix)
    # the pack reads the label names from the model, beside it as in the repository (policy/rules.py)
    (tmp_path / "components").mkdir()
    shutil.copy(ROOT / "components" / "__init__.py", tmp_path / "components")
    shutil.copytree(ROOT / "components" / "model", tmp_path / "components" / "model",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "state").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")},
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "PULUMI_HOME": str(tmp_path / "home"),
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "test",
        "PULUMI_SKIP_UPDATE_CHECK": "1",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "1",
    }

    def pulumi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pulumi", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)

    for setup in (
        ("stack", "init", "bad", "--secrets-provider", "passphrase"),
        ("config", "set", "docker:host", "unix:///nonexistent/docker.sock"),
        ("config", "set", "docker:disableDockerDaemonCheck", "true"),
    ):
        assert pulumi(*setup).returncode == 0
    return pulumi("preview", "--stack", "bad", "--non-interactive", "--policy-pack", str(pack))


@pytest.mark.e2e
@needs_pulumi_policy
def test_engine_preview_refuses_a_violating_stack(tmp_path: Path) -> None:
    done = _engine_preview(tmp_path, secure=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    for policy in ("notebook-requires-password", "public-notebook-requires-password", "tensorboard-loopback-unless-public"):
        assert f"[mandatory]  {policy}" in out, out
    assert "has no password login" in out


@pytest.mark.e2e
@needs_pulumi_policy
def test_engine_preview_passes_a_compliant_stack(tmp_path: Path) -> None:
    done = _engine_preview(tmp_path, secure=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[mandatory]" not in done.stdout

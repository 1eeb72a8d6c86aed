from pathlib import Path

import pytest
import yaml

from components.config import check_stack_file, main
from components.docker.target import docker_target
from components.model.cross_stack import cross_stack_problems
from components.model.errors import ConfigError
from components.model.keys import CPU_IMAGE, GPU_IMAGE
from components.model.parse import parse_config
from components.model.plan import make_plan
from components.model.stack_file import read_stack_file, stack_files

ROOT = Path(__file__).resolve().parents[2]


SALT = "0123456789abcdef0123456789abcdef"


def parse(raw=None, password="secret", **kw):
    raw = {"passwordSalt": SALT, **(raw or {})}
    kw.setdefault("tls_key_state", "missing")  # as the program passes it
    if {"docker_host", "docker_tls", "docker_ssh_opts"} & kw.keys():  # the docker backend's reading of docker:*
        kw["target"] = docker_target(kw.pop("docker_host", None), tls=kw.pop("docker_tls", False), ssh_opts=kw.pop("docker_ssh_opts", None))
    return parse_config(raw, stack=kw.pop("stack", "dev"), password_state=password, **kw)


def problems_of(raw, password="secret"):
    with pytest.raises(ConfigError) as info:
        parse(raw, password)
    return info.value.problems


def test_defaults_are_safe():
    cfg = parse()
    assert str(cfg.image) == CPU_IMAGE
    assert cfg.notebook_bind == "127.0.0.1" and cfg.tensorboard_bind == "127.0.0.1"
    assert cfg.tensorboard_mode == "sidecar" and not cfg.tensorboard_public
    assert cfg.keep_volumes and cfg.keep_image
    assert cfg.name_prefix == "tfbox-dev" and cfg.notebooks_volume == "tfbox-dev-notebooks"


def test_gpu_stack_defaults_to_gpu_image():
    assert str(parse({"gpus": "0,1"}).image) == GPU_IMAGE


@pytest.mark.parametrize(
    ("raw", "password", "key", "words"),
    [
        ({"gpus": "0,,x"}, "secret", "tfbox:gpus", "Fix:"),
        ({"notebookPort": 70000}, "secret", "tfbox:notebookPort", "1 to 65535"),
        ({"notebookPort": "abc"}, "secret", "tfbox:notebookPort", "not a whole number"),
        ({"tensorboardPort": 8888}, "secret", "tfbox:tensorboardPort", "also the notebook's port"),
        ({"tensorboardMode": "sidecars"}, "secret", "tfbox:tensorboardMode", "sidecar, exec or off"),
        ({"gpuMode": "legacy"}, "secret", "tfbox:gpuMode", "device-requests or nvidia-runtime"),
        ({}, "missing", "tfbox:password", "pulumi config set --secret tfbox:password"),
        ({}, "plaintext", "tfbox:password", "pulumi config rm tfbox:password"),
        ({"image": "TensorFlow:Latest"}, "secret", "tfbox:image", "not an image reference"),
        ({"image": CPU_IMAGE, "gpus": "all"}, "secret", "tfbox:image", "CPU-only"),
        ({"tensorboardBind": "0.0.0.0"}, "secret", "tfbox:tensorboardBind", "tensorboardPublic"),
        ({"notebookBind": "everywhere"}, "secret", "tfbox:notebookBind", "not an IP address"),
        ({"gpuCheck": True}, "secret", "tfbox:gpuCheck", "selects no GPU"),
        ({"gpu": "all"}, "secret", "tfbox:gpu", "did you mean tfbox:gpus"),
        ({"keepVolumes": "yes"}, "secret", "tfbox:keepVolumes", "true or false"),
        ({"notebooksHostPath": "notebooks"}, "secret", "tfbox:notebooksHostPath", "absolute"),
        ({"logsDir": "/tf"}, "secret", "tfbox:logsDir", "/tf/logs"),
        ({"passwordSalt": "x"}, "secret", "tfbox:passwordSalt", "16 to 64"),
        ({"passwordSalt": ""}, "secret", "tfbox:passwordSalt", "$(python -m components.password salt) --stack dev"),
        ({"tlsCert": "garbage"}, "secret", "tfbox:tlsCert", "make tls STACK=dev"),
        ({"notebookBind": "0.0.0.0"}, "secret", "tfbox:notebookBind", "allowPlainHttpOnLan"),
        ({"gpus": "count=2", "gpuMode": "nvidia-runtime"}, "secret", "tfbox:gpuMode", "indices"),
        ({"logsVolume": "v", "notebooksVolume": "v"}, "secret", "tfbox:logsVolume", "own volume"),
        ({"shmSize": "64 megs"}, "secret", "tfbox:shmSize", "such as 1g"),
        ({"shmSize": "4g", "notebookMemory": "4g"}, "secret", "tfbox:shmSize", "counts against the memory limit"),
        ({"notebookMemory": "64m"}, "secret", "tfbox:notebookMemory", "at least 512m"),
        ({"notebookCpus": "two"}, "secret", "tfbox:notebookCpus", "such as 4 or 1.5"),
        ({"notebookCpus": "0.05"}, "secret", "tfbox:notebookCpus", "replace the notebook on every up"),
        ({"notebookUlimits": "memlock=unlimited"}, "secret", "tfbox:notebookUlimits", "memlock=-1,stack=67108864"),
    ],
)
def test_each_bad_input_names_key_and_fix(raw, password, key, words):
    problems = problems_of(raw, password)
    assert any(p.startswith(key + ":") and words in p and "Fix:" in p for p in problems), problems


def test_every_problem_is_reported_at_once():
    problems = problems_of({"gpus": "x", "notebookPort": 0, "tensorboardMode": "?"}, password="missing")
    assert len(problems) == 4
    assert "4 problems" in str(ConfigError(problems))


def test_public_tensorboard_needs_explicit_opt_in():
    cfg = parse({"tensorboardBind": "0.0.0.0", "tensorboardPublic": True})
    assert cfg.tensorboard_public
    assert parse({"tensorboardBind": "0.0.0.0", "tensorboardMode": "off"}).tensorboard_mode == "off"


def test_same_port_is_fine_on_different_addresses():
    cfg = parse({"tensorboardPort": 8888, "notebookBind": "127.0.0.1", "tensorboardBind": "127.0.0.2"})
    assert cfg.tensorboard_port == cfg.notebook_port


def test_engine_strings_and_yaml_types_parse_alike():
    as_strings = parse({"notebookPort": "9999", "keepVolumes": "false", "gpus": "0,1"})
    as_yaml = parse({"notebookPort": 9999, "keepVolumes": False, "gpus": [0, 1]})
    assert as_strings == as_yaml


def test_notebook_resources_from_yaml_numbers_and_engine_strings():
    as_yaml = parse({"notebookCpus": 1.5, "notebookMemory": 8589934592, "shmSize": "2g"}).notebook_resources
    as_strings = parse({"notebookCpus": "1.5", "notebookMemory": "8g", "shmSize": "2048m"}).notebook_resources
    assert as_yaml == as_strings
    assert (as_yaml.nano_cpus, as_yaml.memory_bytes, as_yaml.shm_bytes) == (1_500_000_000, 8 << 30, 2 << 30)
    assert parse().notebook_resources.shm_bytes == 1 << 30 and parse().notebook_resources.ulimits == ()
    assert [str(u) for u in parse({"gpus": "0"}).notebook_resources.ulimits] == ["memlock=-1", "stack=67108864"]


def test_moving_tag_on_gpus_warns():
    assert any("pin a digest" in w for w in parse({"gpus": "all"}).warnings)
    assert not parse({"gpus": "all", "image": f"tensorflow/tensorflow@sha256:{'a' * 64}"}).warnings


@pytest.mark.parametrize("path", stack_files(ROOT), ids=lambda p: p.name)
def test_committed_stack_files_pass_the_validator(path):
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc.get("config"), dict)
    check_stack_file(path)
    assert read_stack_file(path).password_state != "plaintext"


def test_committed_stacks_include_dev_and_gpu_box():
    cfgs = {p.name: check_stack_file(p) for p in stack_files(ROOT)}
    dev, gpu = cfgs["Pulumi.dev.yaml"], cfgs["Pulumi.gpu-box.yaml"]
    assert not dev.gpus.requested and dev.target_host.startswith("unix://")
    assert gpu.gpus.describe() == "0,1" and gpu.target_host.startswith("ssh://")
    assert gpu.notebook_bind == "0.0.0.0" and gpu.tensorboard_mode == "sidecar"


def write_stack(tmp_path, name, config):
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def test_two_stacks_on_one_host_must_not_share_ports(tmp_path):
    write_stack(tmp_path, "a", {"docker:host": "ssh://me@box", "tfbox:tensorboardMode": "off"})
    b = write_stack(tmp_path, "b", {"docker:host": "ssh://me@box", "tfbox:tensorboardMode": "off"})
    with pytest.raises(ConfigError) as info:
        check_stack_file(b)
    assert "host port 8888" in str(info.value) and "stack 'a'" in str(info.value)


def test_stacks_on_different_hosts_may_share_ports(tmp_path):
    write_stack(tmp_path, "a", {"docker:host": "ssh://me@box1"})
    b = write_stack(tmp_path, "b", {"docker:host": "ssh://me@box2"})
    check_stack_file(b)


def test_cross_stack_prefix_clash():
    a = parse(stack="a", docker_host="ssh://x@h")
    b = parse({"namePrefix": "tfbox-a", "notebookPort": 1, "tensorboardPort": 2}, stack="b", docker_host="ssh://x@h")
    assert any("namePrefix" in p for p in cross_stack_problems(b, [a]))


def test_plaintext_password_in_a_stack_file_fails(tmp_path, capsys):
    path = write_stack(tmp_path, "leaky", {"tfbox:password": "hunter2"})
    assert main(["--stack-file", str(path)]) == 1
    err = capsys.readouterr().err
    assert "tfbox:password" in err and "plaintext" in err and "hunter2" not in err


def test_cli_reports_ok(capsys):
    assert main(["--stack-file", str(ROOT / "Pulumi.dev.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


# --- password length, salt, TLS before LAN -------------------------------------------------

from components.model.tls import generate_self_signed, subject_names  # noqa: E402

PAIR = generate_self_signed(subject_names("ssh://u@gpu-box", "0.0.0.0"))
OTHER = generate_self_signed(subject_names("ssh://u@gpu-box", "0.0.0.0"))
LAN = {"notebookBind": "0.0.0.0"}


def lan_problems(raw, **kw):
    with pytest.raises(ConfigError) as info:
        parse({**LAN, **raw}, **kw)
    return info.value.problems


def test_a_short_password_is_refused_without_printing_it():
    with pytest.raises(ConfigError) as info:
        parse_config({"passwordSalt": SALT}, stack="dev", password_state="secret", password="elevenchars")
    problems = info.value.problems
    assert len(problems) == 1 and problems[0].startswith("tfbox:password: is shorter than 12 characters")
    assert "pulumi config set --secret tfbox:password --stack dev" in problems[0]
    assert "elevenchars" not in problems[0]
    assert parse_config({"passwordSalt": SALT}, stack="dev", password_state="secret", password="twelve chars").password_salt == SALT


def test_lan_notebook_with_a_certificate_serves_tls():
    cfg = parse({**LAN, "tlsCert": PAIR.cert_pem}, tls_key_state="secret", tls_key=PAIR.key_pem)
    assert cfg.tls and cfg.tls_cert == PAIR.cert_pem and not cfg.allow_plain_http_on_lan


def test_lan_notebook_over_plain_http_only_with_the_opt_in():
    problems = lan_problems({})
    assert len(problems) == 1 and "make tls STACK=dev" in problems[0] and "tfbox:tlsKey" in problems[0]
    cfg = parse({**LAN, "allowPlainHttpOnLan": True})
    assert not cfg.tls and cfg.allow_plain_http_on_lan
    assert not parse({}).tls, "loopback needs no TLS"


def test_wrong_or_half_tls_pairs_are_refused():
    wrong = lan_problems({"tlsCert": PAIR.cert_pem}, tls_key_state="secret", tls_key=OTHER.key_pem)
    assert [p.split(":", 2)[1] for p in wrong] == ["tlsKey"] and "does not belong" in wrong[0]
    assert OTHER.key_pem.splitlines()[1] not in " ".join(wrong)
    no_key = lan_problems({"tlsCert": PAIR.cert_pem}, tls_key_state="missing")
    assert no_key[0].startswith("tfbox:tlsKey: is not set") and "--secret tfbox:tlsKey" in no_key[0]
    no_cert = lan_problems({}, tls_key_state="secret", tls_key=PAIR.key_pem)
    assert no_cert[0].startswith("tfbox:tlsCert: is not set")
    plain = lan_problems({"tlsCert": PAIR.cert_pem}, tls_key_state="plaintext", tls_key=PAIR.key_pem)
    assert plain[0].startswith("tfbox:tlsKey: is stored in plaintext")


def test_committed_checker_defers_per_machine_secrets(tmp_path):
    path = write_stack(tmp_path, "box", {"tfbox:notebookBind": "0.0.0.0"})
    assert not check_stack_file(path).tls  # password, salt and TLS key are made per machine
    with_cert = write_stack(tmp_path, "box2", {"tfbox:notebookBind": "0.0.0.0", "tfbox:tlsCert": PAIR.cert_pem,
                                               "tfbox:notebookPort": 9000, "tfbox:tensorboardPort": 9001})
    assert check_stack_file(with_cert).tls
    assert read_stack_file(with_cert).tls_key_state == "missing"


def test_a_stack_file_with_a_proxy_command_in_ssh_opts_is_refused_with_the_key_and_the_fix(tmp_path):
    """A committed `docker:sshOpts` is run by ssh wherever pulumi runs (a laptop, the CI runner): no local commands."""
    from components.config import check_stack_file

    path = tmp_path / "Pulumi.box.yaml"
    path.write_text("config:\n  docker:host: ssh://tfbox@box\n  docker:sshOpts:\n    - -o\n    - ProxyCommand=sh -c 'id>/tmp/p'\n")
    with pytest.raises(ConfigError) as info:
        check_stack_file(path)
    (problem,) = info.value.problems
    assert problem.startswith("docker:sshOpts:") and "ProxyCommand" in problem and "Fix:" in problem and "~/.ssh/config" in problem
    path.write_text("config:\n  docker:host: ssh://tfbox@box\n  docker:sshOpts: [-i, /home/me/.ssh/lab, -o, IdentitiesOnly=yes]\n")
    assert check_stack_file(path).target_host == "ssh://tfbox@box"


def test_tensorboard_proxy_with_tensorboard_off_keeps_the_key_as_written() -> None:
    """With tensorboardMode off the proxy serves nothing (no tensorboardProxyUrl); the key as written is kept, for a
    cluster's notebook, which keeps its route so that turning TensorBoard off and on never replaces its pod."""
    docker = parse({"tensorboardMode": "off", "tensorboardProxy": True})
    assert (docker.tensorboard_proxy, docker.tensorboard_proxy_key) == (False, True)
    assert any("so the notebook serves no /tensorboard/" in w for w in docker.warnings)
    cluster = parse({"backend": "kubernetes", "tensorboardMode": "off", "tensorboardProxy": True})
    assert (cluster.tensorboard_proxy, cluster.tensorboard_proxy_key) == (False, True)
    assert any("so the notebook keeps its /tensorboard/ route, which answers 502 until TensorBoard is back" in w
               for w in cluster.warnings)
    on = parse({"tensorboardProxy": True})
    assert (on.tensorboard_proxy, on.tensorboard_proxy_key) == (True, True)
    assert make_plan(cluster).tensorboard_proxy_key and not make_plan(parse()).tensorboard_proxy_key

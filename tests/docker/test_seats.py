"""Seats (`tfbox:seats`, `tfbox:passwords`): parsing and validation, and what the program declares for them."""

import json
import re

import pulumi
import pytest
import yaml
from jupyter_server.auth.security import passwd_check

from components.config import check_stack_file
from components.model.cross_stack import cross_stack_problems
from components.model.errors import ConfigError
from components.model.keys import GPU_IMAGE
from components.model.parse import parse_config
from components.model.seats import stack_file_password_states
from tests.docker.program import Recorder, is_secret_value, run_program, stack_config, with_machine_secrets
from tests.docker.test_program import plaintext_inputs

SALT = "0123456789abcdef0123456789abcdef"
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-12"}


def two_seats(**bob):
    return [{"name": "alice", "gpus": 0, "notebookPort": 8888, "tensorboardPort": 6006},
            {"name": "bob", "gpus": "1", "notebookPort": 8889, "tensorboardPort": 6007, **bob}]


def parse(seats, passwords=None, states=None, raw=None, password="missing", **kw):
    passwords = PASSWORDS if passwords is None else passwords
    states = {k: "secret" for k in passwords} if states is None else states
    return parse_config({"passwordSalt": SALT, "seats": json.dumps(seats) if seats is not None else "", **(raw or {})},
                        stack="box", password_state=password, tls_key_state=kw.pop("tls_key_state", "missing"),
                        seat_password_states=states, seat_passwords=passwords, **kw)


def problems_of(seats, **kw):
    with pytest.raises(ConfigError) as info:
        parse(seats, **kw)
    return info.value.problems


def test_two_seats_parse_from_engine_json_and_yaml_alike():
    cfg = parse(two_seats(memory="8g", shareGpus="false"))
    assert [s.name for s in cfg.seats] == ["alice", "bob"]
    alice, bob = cfg.seats
    assert alice.gpus.devices == ("0",), "a bare number on a seat is a GPU index, not a count"
    assert (bob.notebook_port, bob.tensorboard_port, bob.notebook_bind) == (8889, 6007, "127.0.0.1")
    assert bob.resources.memory_bytes == 8 * 1024 ** 3 and alice.resources.memory_bytes is None
    assert str(cfg.image) == GPU_IMAGE, "seats with GPUs get the GPU image"
    from_yaml = parse_config({"passwordSalt": SALT, "seats": yaml.safe_load(yaml.safe_dump(two_seats(memory="8g")))},
                             stack="box", password_state="missing", tls_key_state="missing",
                             seat_password_states={k: "secret" for k in PASSWORDS}, seat_passwords=PASSWORDS)
    assert from_yaml.seats == cfg.seats


def test_no_seats_is_the_single_seat_lab():
    empties: tuple[object, ...] = ("", "[]", [])
    for empty in empties:
        cfg = parse_config({"passwordSalt": SALT, "seats": empty}, stack="box", password_state="secret", tls_key_state="missing")
        assert cfg.seats == () and cfg.published[0].key == "notebookPort"


@pytest.mark.parametrize(("seats", "key", "words"), [
    ([{"name": "Alice!", "notebookPort": 1, "tensorboardPort": 2}], "tfbox:seats[0].name", "not a seat name"),
    ([{"notebookPort": 1, "tensorboardPort": 2}], "tfbox:seats[0].name", "is empty"),
    (two_seats(name="alice"), "tfbox:seats[1].name", "also tfbox:seats[0]"),
    (two_seats(notebookPort=8888), "tfbox:seats[1].notebookPort", "host port 8888 is also tfbox:seats[0].notebookPort"),
    (two_seats(tensorboardPort=8888), "tfbox:seats[1].tensorboardPort", "also tfbox:seats[0].notebookPort"),
    (two_seats(notebookPort=None), "tfbox:seats[1].notebookPort", "is not set"),
    (two_seats(notebookPort="x"), "tfbox:seats[1].notebookPort", "not a TCP port"),
    (two_seats(gpu="1"), "tfbox:seats[1].gpu", "did you mean gpus?"),
    (two_seats(gpus="0"), "tfbox:seats[1].gpus", "seat 'alice' and seat 'bob' both ask for GPU 0"),
    (two_seats(gpus="0,,x"), "tfbox:seats[1].gpus", "Fix:"),
    (two_seats(memory="lots"), "tfbox:seats[1].memory", "not a size"),
    (two_seats(cpus="-1"), "tfbox:seats[1].cpus", "positive"),
    (two_seats(shareGpus="maybe"), "tfbox:seats[1].shareGpus", "not a boolean"),
    (two_seats(image="tensorflow/tensorflow:latest-jupyter"), "tfbox:seats[1].image", "CPU-only"),
    (two_seats(notebookBind="gpu-box"), "tfbox:seats[1].notebookBind", "not an IP address"),
    (two_seats(notebookBind="0.0.0.0"), "tfbox:seats[1].notebookBind", "plain HTTP"),
    (two_seats(tensorboardBind="0.0.0.0"), "tfbox:seats[1].tensorboardBind", "no login"),
    ({"name": "a"}, "tfbox:seats", "not a list"),
    (["alice"], "tfbox:seats[0]", "not a seat"),
])
def test_each_bad_seat_names_its_key_and_the_fix(seats, key, words):
    problems = problems_of(seats)
    assert any(p.startswith(f"{key}:") and words in p and "Fix:" in p for p in problems), problems


def test_malformed_engine_text_is_reported():
    with pytest.raises(ConfigError) as info:
        parse_config({"passwordSalt": SALT, "seats": "[{"}, stack="box", password_state="missing", tls_key_state="missing")
    assert info.value.problems[0].startswith("tfbox:seats: is not a list")


def test_every_problem_at_once():
    problems = problems_of(two_seats(name="alice", gpus="0", gpu=1, notebookPort=8888), passwords={})
    assert len(problems) >= 5, problems


@pytest.mark.parametrize(("passwords", "states", "words"), [
    ({"alice": PASSWORDS["alice"]}, None, "tfbox:passwords.bob: seat 'bob' has no password"),
    (PASSWORDS, {"alice": "secret", "bob": "plaintext"}, "tfbox:passwords.bob: is stored in plaintext"),
    ({**PASSWORDS, "bob": "tiny-pw"}, None, "tfbox:passwords.bob: is shorter than 12 characters"),
    ({**PASSWORDS, "bob": PASSWORDS["alice"]}, None, "tfbox:passwords.bob: is the same as seat 'alice''s password"),
])
def test_seat_passwords(passwords, states, words):
    problems = problems_of(two_seats(), passwords=passwords, states=states)
    assert any(p.startswith(words) for p in problems), problems
    assert "--path 'tfbox:passwords.bob'" in " ".join(problems)
    assert not any(pw in " ".join(problems) for pw in passwords.values()), "a password is never quoted"


def test_the_single_seat_password_and_keys_are_refused_beside_seats():
    problems = problems_of(two_seats(), password="secret", raw={"gpus": "0", "notebooksVolume": "mine"})
    assert any(p.startswith("tfbox:password: is set but the stack declares tfbox:seats") and "tfbox:passwords.<seat>" in p
               for p in problems)
    assert any(p.startswith("tfbox:gpus: is set but") for p in problems)
    assert any(p.startswith("tfbox:notebooksVolume: is set but") for p in problems)


def test_count_on_a_multi_seat_gpu_stack_must_be_named():
    problems = problems_of([{"name": "a", "gpus": "count=2", "notebookPort": 1, "tensorboardPort": 2},
                            {"name": "b", "gpus": "2", "notebookPort": 3, "tensorboardPort": 4}], passwords={})
    assert any(p.startswith("tfbox:seats[0].gpus:") and 'write gpus: "0,1"' in p for p in problems), problems


def test_sharing_a_gpu_needs_every_seat_on_it_to_opt_in():
    one_side = problems_of(two_seats(gpus="0", shareGpus=True))
    assert any("seat 'alice' and seat 'bob' both ask for GPU 0" in p for p in one_side), one_side
    seats = two_seats(gpus="0", shareGpus=True)
    seats[0]["shareGpus"] = True
    assert [s.share_gpus for s in parse(seats).seats] == [True, True]


def test_seats_ports_count_in_the_cross_stack_clash_check():
    mine = parse(two_seats())
    other = parse_config({"passwordSalt": SALT, "notebookPort": 8889, "tensorboardPort": 7000}, stack="other",
                         password_state="secret", tls_key_state="missing")
    [problem] = cross_stack_problems(mine, [other])
    assert problem.startswith("tfbox:seats[1].notebookPort: host port 8889") and "stack 'other'" in problem


def test_committed_stack_file_with_seats(tmp_path):
    path = tmp_path / "Pulumi.box.yaml"
    path.write_text(yaml.safe_dump({"config": {
        "tfbox:seats": two_seats(), "tfbox:passwordSalt": SALT,
        "tfbox:passwords": {"alice": {"secure": "v1:abc"}, "bob": "in the clear!"}}}))
    with pytest.raises(ConfigError) as info:
        check_stack_file(path)
    assert [p for p in info.value.problems if "passwords" in p] == [info.value.problems[0]]
    assert info.value.problems[0].startswith("tfbox:passwords.bob: is stored in plaintext")
    path.write_text(yaml.safe_dump({"config": {"tfbox:seats": two_seats(), "tfbox:passwordSalt": SALT}}))
    assert [s.name for s in check_stack_file(path).seats] == ["alice", "bob"], "passwords are set per machine"
    assert stack_file_password_states({"a": {"secure": "x"}, "b": "y"}) == {"a": "secret", "b": "plaintext"}


# --- the program under Pulumi's mocks -----------------------------------------------------------


def seat_config(seats=None, passwords=None, **overrides):
    cfg = with_machine_secrets(stack_config("dev"))
    cfg.pop("tfbox:password", None)
    cfg["tfbox:seats"] = json.dumps(two_seats() if seats is None else seats)
    cfg["tfbox:passwords"] = json.dumps(PASSWORDS if passwords is None else passwords)
    cfg.update({f"tfbox:{k}": v for k, v in overrides.items()})
    return cfg


def run_seats(seats=None, passwords=None, **overrides):
    # A fresh root stack: the mocks keep one per process, whose outputs would carry over from earlier runs.
    pulumi.runtime.settings.ROOT.set(None)
    return run_program(seat_config(seats, passwords, **overrides), secret_keys=("tfbox:passwords",))


def labels(inputs):
    return {item["label"]: item["value"] for item in inputs["labels"]}


def by_name(rec):
    """Inputs by resource; the ready check's command carries TensorBoard's address, which the mocks number by
    registration order (asynchronous), so it is left out: on Docker it is the address of an unchanged container."""
    return {(r.type, r.name): {k: v for k, v in r.inputs.items() if not (r.name.endswith("-ready") and k == "command")}
            for r in rec.resources}


def test_each_seat_gets_its_own_containers_volumes_network_and_labels():
    rec, out = run_seats()
    for seat, gpu, port in (("alice", "0", 8888), ("bob", "1", 8889)):
        nb = rec.one(CONTAINER, f"{seat}-notebook").inputs
        assert nb["name"] == f"tfbox-dev-{seat}-notebook"
        assert labels(nb) == {"tfbox.project": "tfbox", "tfbox.stack": "dev", "tfbox.role": "notebook", "tfbox.seat": seat,
                              "tfbox.share-gpus": "false"}
        assert nb["mounts"] == [{"target": "/tf", "type": "volume", "source": f"tfbox-dev-{seat}-notebooks"},
                                {"target": "/tf/logs", "type": "volume", "source": f"tfbox-dev-{seat}-logs"}]
        assert nb["deviceRequests"][0]["deviceIds"] == [gpu]
        assert nb["ports"] == [{"internal": 8888, "external": port, "ip": "127.0.0.1", "protocol": "tcp"}]
        assert nb["networkMode"] == f"tfbox-dev-{seat}-net"
        assert nb["envs"] == ["TF_CPP_MIN_LOG_LEVEL=2"]
        assert {u["name"] for u in nb["ulimits"]} == {"memlock", "stack"}, "a GPU seat gets NVIDIA's ulimits"
        assert labels(rec.one(CONTAINER, f"{seat}-tensorboard").inputs)["tfbox.seat"] == seat
        assert labels(rec.one(CONTAINER, f"{seat}-ready").inputs)["tfbox.seat"] == seat
        for vol in ("notebooks", "logs"):
            v = rec.one(VOLUME, f"{seat}-{vol}")
            assert v.inputs["name"] == f"tfbox-dev-{seat}-{vol}" and labels(v.inputs)["tfbox.seat"] == seat
            assert rec.opts(VOLUME, f"{seat}-{vol}").retain_on_delete is True, "a removed seat's volumes are kept"
        assert rec.parents[f"tfbox:index:Seat::{seat}"] == "lab"
        assert rec.parents[f"tfbox:index:Notebook::{seat}-notebook"] == seat
    assert {r.name for r in rec.by_type("tfbox:index:Notebook")} == {"alice-notebook", "bob-notebook"}
    assert out["seats"]["bob"] == {"notebookUrl": "http://127.0.0.1:8889/", "tensorboardUrl": "http://127.0.0.1:6007/",
                                   "gpus": "1", "shareGpus": False,
                                   "containerNames": ["tfbox-dev-bob-notebook", "tfbox-dev-bob-tensorboard", "tfbox-dev-bob-ready"]}
    assert out["notebookUrl"] == "alice=http://127.0.0.1:8888/ bob=http://127.0.0.1:8889/"
    assert out["gpuLedger"] == {"0": {"index": 0, "uuid": None, "model": None, "seats": ["alice"]},
                                "1": {"index": 1, "uuid": None, "model": None, "seats": ["bob"]}}
    assert "password" not in out


def test_each_seat_logs_in_with_its_own_password_only():
    rec, _ = run_seats()
    for seat, other in (("alice", "bob"), ("bob", "alice")):
        uploads = rec.one(CONTAINER, f"{seat}-notebook").inputs["uploads"]
        assert is_secret_value(uploads)
        settings = json.loads({u["file"]: u["content"] for u in uploads["value"]}["/etc/jupyter/jupyter_server_config.json"])
        hashed = settings["PasswordIdentityProvider"]["hashed_password"]
        assert passwd_check(hashed, PASSWORDS[seat]) and not passwd_check(hashed, PASSWORDS[other])
    text = plaintext_inputs(rec)
    assert not any(pw in text for pw in PASSWORDS.values()) and "hashed_password" not in text
    assert not any(rec.output_secret.values()), "no output carries a secret"


def test_a_change_to_one_seat_leaves_the_other_seats_inputs_alone():
    base, _ = run_seats()
    for change in (two_seats(memory="8g"), two_seats(notebookPort=9999), two_seats(image="other/tf:2-gpu")):
        changed, _ = run_seats(change)
        before, after = by_name(base), by_name(changed)
        alice = {k: v for k, v in before.items() if k[1].startswith("alice")}
        assert alice and all(after[k] == v for k, v in alice.items()), change
        if "image" in change[1]:  # the mocks give every image the same id: the seat's own image is what changes
            assert after[("docker:index/remoteImage:RemoteImage", "bob-image")]["name"] == "other/tf:2-gpu"
            assert after[("docker:index/remoteImage:RemoteImage", "image")] == before[("docker:index/remoteImage:RemoteImage", "image")]
        else:
            assert before[(CONTAINER, "bob-notebook")] != after[(CONTAINER, "bob-notebook")]
    # a new password for bob changes bob's notebook only
    changed, _ = run_seats(passwords={**PASSWORDS, "bob": "a-new-password-for-bob"})
    assert by_name(changed)[(CONTAINER, "alice-notebook")] == by_name(base)[(CONTAINER, "alice-notebook")]
    assert by_name(changed)[(CONTAINER, "bob-notebook")] != by_name(base)[(CONTAINER, "bob-notebook")]
    # removing bob declares alice exactly as before
    removed, _ = run_seats(two_seats()[:1], passwords={"alice": PASSWORDS["alice"]})
    assert {k: v for k, v in by_name(removed).items()} == {k: v for k, v in by_name(base).items() if not k[1].startswith("bob")}


def test_shared_seats_let_tensorflow_grow_its_gpu_memory():
    seats = two_seats(gpus="0", shareGpus=True)
    seats[0]["shareGpus"] = True
    rec, out = run_seats(seats)
    for seat in ("alice", "bob"):
        assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in rec.one(CONTAINER, f"{seat}-notebook").inputs["envs"]
        assert labels(rec.one(CONTAINER, f"{seat}-notebook").inputs)["tfbox.share-gpus"] == "true", "for the live ledger"
    assert out["gpuLedger"]["0"]["seats"] == ["alice", "bob"]


def test_gpu_check_gates_the_gpu_seats_and_names_the_ledger():
    seats = [*two_seats(), {"name": "carol", "notebookPort": 8890, "tensorboardPort": 6008}]
    rec, out = run_seats(seats, passwords={**PASSWORDS, "carol": "carol-password-1"}, gpuCheck=True)
    check = rec.one(CONTAINER, "gpu-check").inputs
    assert check["deviceRequests"][0]["count"] == -1, "the check lists the whole machine, for the ledger"
    assert labels(rec.one(CONTAINER, "alice-notebook").inputs)["tfbox.gpu-check"] == "passed"
    assert "tfbox.gpu-check" not in labels(rec.one(CONTAINER, "carol-notebook").inputs), "a CPU seat does not wait for it"
    assert out["gpuLedger"]["1"] == {"index": 1, "uuid": "GPU-c780f725-fe96-b196-3303-e4a68e6a6861", "model": "NVIDIA H200",
                                     "seats": ["bob"]}
    assert "tfbox-dev-gpu-check" in out["containerNames"]


def test_an_index_and_the_uuid_of_the_same_gpu_fail_once_the_gpu_check_lists_them():
    # the config check cannot know that GPU 0 is that UUID; the GPU check's list says so, before any notebook
    seats = two_seats(gpus="GPU-b780f725-fe96-b196-3303-e4a68e6a6860")
    with pytest.raises(Exception, match=r"seat 'alice' and seat 'bob' both ask for GPU 0 \(GPU-b780f725"):
        run_seats(seats, gpuCheck=True)


def test_bad_seats_stop_the_program_before_anything_is_declared():
    rec = Recorder()
    with pytest.raises(Exception, match=re.escape("tfbox:seats[1].gpus: seat 'alice' and seat 'bob' both ask for GPU 0")):
        run_program(seat_config(two_seats(gpus="0")), secret_keys=("tfbox:passwords",), recorder=rec)
    assert rec.resources == []


def test_a_committed_seats_stack_counts_in_its_siblings_port_check(tmp_path):
    (tmp_path / "Pulumi.box.yaml").write_text(yaml.safe_dump({"config": {"tfbox:seats": two_seats()}}))
    (tmp_path / "Pulumi.other.yaml").write_text(yaml.safe_dump({"config": {"tfbox:notebookPort": 8889,
                                                                          "tfbox:tensorboardPort": 7000}}))
    with pytest.raises(ConfigError) as info:
        check_stack_file(tmp_path / "Pulumi.other.yaml")
    assert "stack 'box' (seat 'bob' notebook)" in info.value.problems[0]


@pytest.mark.parametrize("stack", ["dev", "gpu-box"])
def test_a_stack_without_seats_declares_what_it_did_before_the_seats_key(stack):
    """Pulumi.yaml's new `seats: []` default reaches every existing stack: it must change nothing."""
    from tests.docker.test_program import config_for

    with_default = config_for(stack)
    assert with_default["tfbox:seats"] == []
    without = {k: v for k, v in with_default.items() if k != "tfbox:seats"}
    pulumi.runtime.settings.ROOT.set(None)
    a, out_a = run_program(with_default, stack=stack)
    pulumi.runtime.settings.ROOT.set(None)
    b, out_b = run_program(without, stack=stack)
    assert by_name(a) == by_name(b) and out_a == out_b
    assert not any(r.type == "tfbox:index:Seat" for r in a.resources)


def jupyter_settings_of(rec, seat):
    uploads = rec.one(CONTAINER, f"{seat}-notebook").inputs["uploads"]["value"]
    return json.loads({u["file"]: u["content"] for u in uploads}["/etc/jupyter/jupyter_server_config.json"])


def test_idle_kernels_are_culled_on_gpu_seats_by_default_and_as_set_on_every_seat():
    cpu_and_gpu = [{"name": "alice", "gpus": 0, "notebookPort": 8888, "tensorboardPort": 6006},
                   {"name": "bob", "notebookPort": 8889, "tensorboardPort": 6007}]
    rec, _ = run_seats(cpu_and_gpu)
    assert jupyter_settings_of(rec, "alice")["MappingKernelManager"]["cull_idle_timeout"] == 3600, "a GPU seat: on"
    assert "MappingKernelManager" not in jupyter_settings_of(rec, "bob"), "a CPU seat: off, as a CPU lab"
    rec, _ = run_seats(cpu_and_gpu, cullIdleKernels="30m")
    assert [jupyter_settings_of(rec, s)["MappingKernelManager"]["cull_idle_timeout"] for s in ("alice", "bob")] == [1800, 1800]
    rec, _ = run_seats(cpu_and_gpu, cullIdleKernels="off")
    assert all("MappingKernelManager" not in jupyter_settings_of(rec, s) for s in ("alice", "bob"))


def test_only_a_seat_published_beyond_loopback_allows_remote_hosts():
    rec, _ = run_seats(two_seats(notebookBind="0.0.0.0"), allowPlainHttpOnLan="true")
    for seat, remote in (("alice", False), ("bob", True)):
        uploads = rec.one(CONTAINER, f"{seat}-notebook").inputs["uploads"]["value"]
        settings = json.loads({u["file"]: u["content"] for u in uploads}["/etc/jupyter/jupyter_server_config.json"])
        assert settings["ServerApp"]["allow_remote_access"] is remote, seat


def test_a_seat_without_gpus_gets_void_and_a_gpu_seat_does_not():
    rec, _ = run_seats([{"name": "alice", "gpus": "0", "notebookPort": 8888, "tensorboardPort": 6006},
                        {"name": "cpu", "notebookPort": 8889, "tensorboardPort": 6007}],
                       {"alice": PASSWORDS["alice"], "cpu": PASSWORDS["bob"]})
    assert "NVIDIA_VISIBLE_DEVICES=void" not in rec.one(CONTAINER, "alice-notebook").inputs["envs"]
    assert "NVIDIA_VISIBLE_DEVICES=void" in rec.one(CONTAINER, "cpu-notebook").inputs["envs"]
    assert "NVIDIA_VISIBLE_DEVICES=void" in rec.one(CONTAINER, "cpu-tensorboard").inputs["envs"]

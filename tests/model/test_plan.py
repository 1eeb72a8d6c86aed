"""The LabPlan as data: what a stack asks for, compared and printed without Pulumi or a backend."""

import json
import pprint

from components.model.gpus import GpuSpec
from components.model.labels import SEAT_LABEL, SHARE_LABEL
from components.model.parse import parse_config
from components.model.plan import DEFAULT_SEAT, SHARED_GPU_ENV, PortBinding, make_plan

SALT = "0123456789abcdef0123456789abcdef"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-12"}


def single(**raw):
    return parse_config({"passwordSalt": SALT, **raw}, stack="dev", password_state="secret", tls_key_state="missing")


def seats(**raw):
    two = [{"name": "alice", "gpus": "0", "notebookPort": 8888, "tensorboardPort": 6006},
           {"name": "bob", "gpus": "0", "shareGpus": False, "notebookPort": 8889, "tensorboardPort": 6007}]
    two[1]["gpus"] = "1"
    return parse_config({"passwordSalt": SALT, "seats": json.dumps(two), **raw}, stack="box", password_state="missing",
                        tls_key_state="missing", seat_password_states={k: "secret" for k in PASSWORDS}, seat_passwords=PASSWORDS)


def test_a_single_seat_stack_is_one_default_seat_with_the_labs_own_names():
    plan = make_plan(single())
    (seat,) = plan.seats
    assert seat.name == DEFAULT_SEAT and not seat.named and not plan.named_seats and seat.resource_prefix == ""
    assert seat.notebook.container_name == "tfbox-dev-notebook" and seat.network.name == "tfbox-dev-net"
    assert (seat.storage.notebooks_volume, seat.storage.logs_volume) == ("tfbox-dev-notebooks", "tfbox-dev-logs")
    assert seat.notebook.labels == {"tfbox.project": "tfbox", "tfbox.stack": "dev", "tfbox.role": "notebook"}, \
        "no seat or share label on a single-seat notebook"
    assert seat.notebook.envs == ("TF_CPP_MIN_LOG_LEVEL=2",)
    assert seat.notebook.ports == (PortBinding(8888, 8888, "127.0.0.1"),)
    assert seat.tensorboard is not None and seat.tensorboard.port == PortBinding(6006, 6006, "127.0.0.1")
    assert plan.container_names == ("tfbox-dev-notebook", "tfbox-dev-tensorboard", "tfbox-dev-ready")
    assert seat.notebook_url == "http://127.0.0.1:8888/" and seat.tensorboard_url == "http://127.0.0.1:6006/"
    assert [i.resource for i in plan.images] == ["image"] and plan.gpu_check is None and plan.claims == ()
    assert "tfbox-dev-notebook" in pprint.pformat(plan), "a plan prints as plain data"


def test_a_gpu_stack_checks_its_own_gpus_before_ready_and_gates_its_notebook():
    plan = make_plan(single(gpus="0,1", gpuCheck="true", image="tensorflow/tensorflow:2.16.1-gpu-jupyter"))
    assert plan.gpu_check is not None and plan.gpu_check.spec == GpuSpec("devices", devices=("0", "1"))
    assert not plan.gpu_check.ledger and plan.seats[0].notebook.gated
    assert plan.container_names[-2:] == ("tfbox-dev-gpu-check", "tfbox-dev-ready")
    assert plan.seats[0].notebook.cull_idle == 3600, "idle GPU kernels are culled by default"


def test_named_seats_get_their_own_names_labels_and_a_check_of_the_whole_machine():
    plan = make_plan(seats(gpuCheck="true", image="tensorflow/tensorflow:2.16.1-gpu-jupyter"))
    alice, bob = plan.seats
    assert plan.named_seats and (alice.name, bob.name) == ("alice", "bob") and alice.resource_prefix == "alice-"
    assert alice.notebook.container_name == "tfbox-box-alice-notebook" and alice.network.name == "tfbox-box-alice-net"
    assert alice.notebook.labels[SEAT_LABEL] == "alice" and alice.notebook.labels[SHARE_LABEL] == "false"
    assert alice.storage.labels[SEAT_LABEL] == "alice" and alice.storage.notebooks_host_path == ""
    assert SHARED_GPU_ENV not in alice.notebook.envs
    assert plan.gpu_check is not None and plan.gpu_check.spec == GpuSpec("all") and plan.gpu_check.ledger
    assert plan.container_names[-1] == "tfbox-box-gpu-check"
    assert plan.gpus_text == "alice=0 bob=1"
    assert set(plan.seats_output()) == {"alice", "bob"}
    assert plan.seats_output()["bob"]["notebookUrl"] == "http://127.0.0.1:8889/"


def test_the_plan_is_the_same_for_the_same_config():
    assert make_plan(single()) == make_plan(single())
    assert make_plan(single()) != make_plan(single(notebookPort=8890))

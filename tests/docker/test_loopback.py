"""Loopback-published ports on Docker < 28 (components/docker/loopback.py): which ports, which versions, the preflight warning."""

from __future__ import annotations

import json

import pytest

from components.docker.loopback import exposed, loopback_leak_warnings, parse_version, raw_table_rule
from components.model.parse import parse_config
from tests.docker.program import Recorder, run_program
from tests.docker.test_program import config_for

SALT = "0123456789abcdef0123456789abcdef"


def cfg(**raw):
    return parse_config({"passwordSalt": SALT, **raw}, stack="dev", password_state="secret")


@pytest.mark.parametrize(("text", "version"), [
    ("20.10.24+dfsg1", (20, 10)), ("26.1.5+dfsg1", (26, 1)), ("27.5.1", (27, 5)), ("28.0.0", (28, 0)),
    ("v29.1.2", (29, 1)), ("", None), ("garbage", None),
])
def test_versions_as_daemons_print_them(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize("version", ["20.10.24+dfsg1", "26.1.5+dfsg1", "27.5.1"])
def test_tensorboard_on_loopback_of_an_older_docker_warns_with_every_fix(version):
    (w,) = loopback_leak_warnings(cfg(tensorboardPort=6006), version, "unix:///var/run/docker.sock")
    assert w.startswith("tfbox:tensorboardPort: tensorboard (no login) is published on 127.0.0.1:6006")
    assert "moby/moby#45610" in w and "Docker 28 or later" in w
    assert raw_table_rule(6006) in w and "tensorboardMode to off" in w and "loopbackPublishFiltered" in w


def test_docker_28_an_unknown_version_and_the_notebook_alone_do_not_warn():
    assert loopback_leak_warnings(cfg(), "28.0.1", "h") == []
    assert loopback_leak_warnings(cfg(), "", "h") == [], "a host that could not be read: no guess"
    assert loopback_leak_warnings(cfg(tensorboardMode="off"), "20.10.24", "h") == [], "the notebook has its login"


def test_only_loopback_tensorboard_ports_count_each_seat_by_its_key():
    assert exposed(cfg(tensorboardBind="0.0.0.0", tensorboardPublic=True).published) == [], "public is another, stated, choice"
    seats = [{"name": "a", "notebookPort": 8888, "tensorboardPort": 6006},
             {"name": "b", "notebookPort": 8889, "tensorboardPort": 6007}]
    c = parse_config({"passwordSalt": SALT, "seats": json.dumps(seats)}, stack="box", password_state="missing",
                     seat_password_states={"a": "secret", "b": "secret"}, seat_passwords={"a": "a" * 12, "b": "b" * 12})
    keys = [w.split(":")[1] for w in loopback_leak_warnings(c, "20.10.24", "h")]
    assert keys == ["seats[0].tensorboardPort", "seats[1].tensorboardPort"]


def test_the_program_warns_from_the_daemon_version_before_declaring(caplog):
    rec = Recorder()
    rec.host_result = (0, "20.10.24+dfsg1\n", "")
    run_program(config_for("dev"), stack="dev", recorder=rec)
    assert any("moby/moby#45610" in r.getMessage() for r in caplog.records)
    caplog.clear()
    newer = Recorder()
    newer.host_result = (0, "28.1.1\n", "")
    run_program(config_for("dev"), stack="dev", recorder=newer)
    assert not any("45610" in r.getMessage() for r in caplog.records)

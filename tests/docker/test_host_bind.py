"""Setuid programs through the host bind (components/docker/host_bind.py): the mount check and its warning."""

from __future__ import annotations

import subprocess

from components.docker.host_bind import mount_options_script, nosuid, readable_host, setuid_warning
from tests.docker.program import Recorder, run_program
from tests.docker.test_program import config_for


def test_nosuid_is_one_option_among_the_others():
    assert nosuid("rw,nosuid,nodev,relatime") and nosuid("nosuid")
    assert not nosuid("rw,relatime,discard") and not nosuid("rw,nosuidx")


def test_the_warning_names_the_key_the_host_and_every_fix():
    w = setuid_warning("/srv/notebooks", "rw,relatime", "ssh://tfbox@gpu-box")
    assert w is not None and w.startswith("tfbox:notebooksHostPath: /srv/notebooks on ssh://tfbox@gpu-box is on a mount without nosuid")
    assert "remount,bind,nosuid,nodev /srv/notebooks" in w and "leave tfbox:notebooksHostPath empty" in w
    assert setuid_warning("/srv/notebooks", "rw,nosuid,nodev", "h") is None
    assert setuid_warning("/srv/notebooks", "", "h") is None, "options that could not be read: no guess"


def test_only_hosts_whose_filesystem_tfbox_reaches_are_read():
    assert readable_host("unix:///var/run/docker.sock") and readable_host("ssh://u@box")
    assert not readable_host("tcp://box:2376")


def test_the_script_reads_the_nearest_existing_directory_and_quotes_the_path(tmp_path):
    missing = tmp_path / "not yet" / "made; echo pwned"
    out = subprocess.run(["sh", "-c", mount_options_script(str(missing))], capture_output=True, text=True, check=True).stdout
    expected = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", "--target", str(tmp_path)], capture_output=True, text=True,
                              check=True).stdout
    assert out == expected and "pwned" not in out


def test_the_program_reads_the_bind_s_mount_and_warns(caplog):
    rec = Recorder()
    rec.host_result = (0, "rw,relatime\n", "")
    run_program(config_for("dev", notebooksHostPath="/srv/tfbox/notebooks", loopbackPublishFiltered="true"), recorder=rec)
    assert mount_options_script("/srv/tfbox/notebooks") in [a[-1] for a in rec.host_commands]
    assert any("mount without nosuid" in r.getMessage() for r in caplog.records)
    caplog.clear()
    safe = Recorder()
    safe.host_result = (0, "rw,nosuid,nodev\n", "")
    run_program(config_for("dev", notebooksHostPath="/srv/tfbox/notebooks", loopbackPublishFiltered="true"), recorder=safe)
    assert not any("nosuid" in r.getMessage() for r in caplog.records)


def test_a_new_host_path_replaces_the_notebook():
    """The provider would "update" the mount in place and Docker keep the old bind: a new path must replace."""
    rec, _ = run_program(config_for("dev", notebooksHostPath="/srv/tfbox/notebooks", loopbackPublishFiltered="true"))
    assert "mounts" in (rec.opts("docker:index/container:Container", "notebook").replace_on_changes or [])

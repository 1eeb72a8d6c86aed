"""Inputs tfbox refuses or normalises (issue 7 §5): binds, host paths, logsDir, docker:host, port clashes."""

from __future__ import annotations

import pytest

from components.docker.docker_host import docker_host_problems, normalise_docker_host
from components.docker.target import docker_target
from components.model.binds import binds_overlap, normalise_bind
from components.model.cross_stack import cross_stack_problems
from components.model.errors import ConfigError
from components.model.parse import parse_config
from components.model.paths import DEFAULT_HOST_PATH_ROOT, logs_dir_problems, notebooks_host_path_problems

SALT = "0123456789abcdef0123456789abcdef"


def parse(raw, **kw):
    """parse_config with the salt every stack has (make up / make machine make it)."""
    if {"docker_host", "docker_tls", "docker_ssh_opts"} & kw.keys():  # the docker backend's reading of docker:*
        kw["target"] = docker_target(kw.pop("docker_host", None), tls=kw.pop("docker_tls", False), ssh_opts=kw.pop("docker_ssh_opts", None))
    return parse_config({"passwordSalt": SALT, **raw}, **kw)


def problems_of(raw, **kw):
    with pytest.raises(ConfigError) as info:
        parse(raw, stack="dev", password_state="secret", **kw)
    return info.value.problems


# --- binds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bind"),
    [("localhost", "127.0.0.1"), (" LocalHost ", "127.0.0.1"), ("localhost.", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"),
     ("0.0.0.0", "0.0.0.0"), ("::1", "::1"), ("[::1]", "::1"), ("0:0:0:0:0:0:0:1", "::1"), ("10.1.2.3", "10.1.2.3")],
)
def test_binds_are_normalised_to_the_ip_docker_gets(text, bind):
    assert normalise_bind(text) == bind


@pytest.mark.parametrize("text", ["gpu-box", "my.host.example", "", "127.1", "fe80::1%eth0", "127.0.0.01", "*"])
def test_non_ip_binds_are_refused(text):
    with pytest.raises(ValueError):
        normalise_bind(text)


def test_localhost_bind_is_loopback_in_the_config_and_needs_no_opt_in():
    cfg = parse({"tensorboardBind": "localhost", "notebookBind": "localhost"}, stack="dev", password_state="secret")
    assert (cfg.notebook_bind, cfg.tensorboard_bind) == ("127.0.0.1", "127.0.0.1")
    assert {p.bind for p in cfg.published} == {"127.0.0.1"}


def test_a_host_name_bind_is_refused_saying_docker_would_publish_everywhere():
    (problem,) = problems_of({"tensorboardBind": "gpu-box"})
    assert problem.startswith("tfbox:tensorboardBind:") and "0.0.0.0" in problem and "Fix: write 127.0.0.1" in problem


def test_binds_overlap():
    assert binds_overlap("127.0.0.1", "127.0.0.1") and binds_overlap("0.0.0.0", "127.0.0.2")
    assert not binds_overlap("127.0.0.1", "127.0.0.2")


# --- the notebook/TensorBoard port clash ----------------------------------------------------


def test_port_clash_names_both_keys():
    (problem,) = problems_of({"tensorboardPort": 8888})
    assert "tfbox:tensorboardPort" in problem and "tfbox:notebookPort" in problem and "Fix:" in problem


def test_port_clash_seen_through_localhost_spelling():
    (problem,) = problems_of({"tensorboardPort": 8888, "notebookBind": "localhost"})
    assert "tfbox:notebookPort" in problem


# --- notebooksHostPath ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "//", "/etc", "/etc/jupyter", "/usr", "/usr/local/share", "/bin", "/boot", "/dev", "/dev/shm", "/proc",
     "/sys", "/sys/fs/cgroup", "/run", "/run/user/1000", "/var/run", "/var/run/docker.sock", "/var/lib/docker",
     "/var/lib/docker/volumes/x", "/var/lib/containerd", "/var", "/var/lib", "/home", "/root", "/tmp", "/lib64",
     "/etc/", "/usr//local", "relative/dir", "notebooks", "./nb", "/srv/../etc", "/srv/nb/..", "/srv/./nb",
     "/srv/my notebooks", "/srv/nb;rm"],
)
def test_dangerous_or_unclear_host_paths_are_refused(path):
    assert notebooks_host_path_problems(path), path


@pytest.mark.parametrize("path", ["/srv/notebooks", "/home/me/notebooks", "/root/notebooks", "/data/lab-1", "/tmp/tfbox-e2e/nb",
                                  "/mnt/disk/nb", "/var/lib/tfbox/notebooks", "/srv/notebooks/"])
def test_ordinary_host_paths_are_fine(path):
    assert notebooks_host_path_problems(path) == []


# issue 22: a denylist misses these; each is host root (or a user's login) for the root notebook
HOST_TAKEOVERS = ["/root/.ssh", "/home/alice", "/home/alice/.ssh", "/var/spool/cron/crontabs", "/var/spool/cron",
                  "/home/alice/.config/autostart", "/var/mail", "/opt/app", "/data"]


@pytest.mark.parametrize("path", HOST_TAKEOVERS)
def test_a_host_path_outside_the_data_root_is_refused_by_default(path):
    (problem,) = problems_of({"notebooksHostPath": path})
    assert problem.startswith("tfbox:notebooksHostPath:") and "Fix:" in problem, problem


@pytest.mark.parametrize("path", ["/root/.ssh", "/home/alice/.ssh", "/home/alice/.config/autostart", "/var/spool/cron/crontabs"])
def test_a_data_root_that_holds_them_does_not_let_hidden_or_system_directories_in(path):
    root = path.rsplit("/", 1)[0]
    problems = problems_of({"notebooksHostPath": path, "hostPathRoot": root if root not in ("/root", "/var/spool/cron") else "/srv/x"})
    assert any(p.startswith("tfbox:notebooksHostPath:") for p in problems), problems


def test_the_default_data_root_is_srv_tfbox_and_paths_strictly_below_it_are_fine():
    assert DEFAULT_HOST_PATH_ROOT == "/srv/tfbox"
    assert parse({"notebooksHostPath": "/srv/tfbox/alice"}, stack="dev", password_state="secret").notebooks_host_path == "/srv/tfbox/alice"
    (problem,) = problems_of({"notebooksHostPath": "/srv/tfbox"})
    assert "below the data root '/srv/tfbox'" in problem and "/srv/tfbox/notebooks" in problem
    (problem,) = problems_of({"notebooksHostPath": "/srv/tfbox-other/nb"})  # a prefix of the name is not below it
    assert "tfbox:hostPathRoot" in problem


def test_a_stack_outside_the_default_root_is_told_to_set_the_root_key():
    (problem,) = problems_of({"notebooksHostPath": "/home/me/notebooks"})
    assert "tfbox:hostPathRoot" in problem and "`pulumi config set tfbox:hostPathRoot /home/me`" in problem
    cfg = parse({"notebooksHostPath": "/home/me/notebooks", "hostPathRoot": "/home/me"}, stack="dev", password_state="secret")
    assert cfg.notebooks_host_path == "/home/me/notebooks"
    (problem,) = problems_of({"notebooksHostPath": "/srv/notebooks"})  # /srv itself cannot be a root: move it
    assert "mv /srv/notebooks /srv/tfbox/notebooks" in problem


@pytest.mark.parametrize("root", ["/", "/home", "/root", "/srv", "/etc/tfbox", "/var/spool", "relative", "/home/me/.ssh", "/var/run"])
def test_a_data_root_that_would_let_the_host_in_is_refused(root):
    problems = problems_of({"hostPathRoot": root})
    assert [p.split(":")[1] for p in problems] == ["hostPathRoot"] and "Fix:" in problems[0], problems
    assert parse({"hostPathRoot": "/data/tfbox"}, stack="dev", password_state="secret")  # a root of its own is fine


def test_a_directory_holding_a_custom_docker_socket_is_refused():
    sockets = ("/srv/docker/docker.sock",)
    assert "Docker socket" in notebooks_host_path_problems("/srv/docker", sockets)[0]
    assert notebooks_host_path_problems("/srv/docker/docker.sock", sockets)
    assert notebooks_host_path_problems("/srv/notebooks", sockets) == []


def test_host_path_of_the_stacks_own_unix_socket_is_refused_through_the_config():
    (problem,) = problems_of({"notebooksHostPath": "/srv/tfbox/dockerd"}, docker_host="unix:///srv/tfbox/dockerd/docker.sock")[-1:]
    assert problem.startswith("tfbox:notebooksHostPath:") and "Docker socket" in problem and "Fix:" in problem


# --- logsDir --------------------------------------------------------------------------------


@pytest.mark.parametrize("logs_dir", ["/", "/tf", "/tf/", "/logs", "/tmp/logs", "/etc/jupyter", "/root/.ipython",
                                      "/root/.ipython/profile_default/startup", "tf/logs", "/tf/../etc", "/tf/a b"])
def test_bad_logs_dirs_are_refused(logs_dir):
    assert logs_dir_problems(logs_dir), logs_dir


@pytest.mark.parametrize("logs_dir", ["/tf/logs", "/tf/logs/", "/tf/runs/tb", "/tf/.logs"])
def test_logs_dirs_below_tf_are_fine(logs_dir):
    assert logs_dir_problems(logs_dir) == []


def test_logs_dir_trailing_slash_is_dropped():
    assert parse({"logsDir": "/tf/runs/"}, stack="dev", password_state="secret").logs_dir == "/tf/runs"


# --- docker:host ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [("ssh://me@box", "SSH://me@BOX:22/"), ("ssh://me@box", "me@box"), ("ssh://me@box", "me@box:22"),
     ("unix:///var/run/docker.sock", "unix:///run/docker.sock"), ("unix:///var/run/docker.sock", ""),
     ("unix:///var/run/docker.sock", "unix:///var/run//docker.sock/"), ("tcp://box:2375", "TCP://box"),
     ("tcp://box:2375", "box:2375"), ("ssh://me@10.0.0.5:2222", "ssh://me@10.0.0.5:2222/")],
)
def test_spellings_of_one_host_normalise_alike(a, b):
    assert normalise_docker_host(a) == normalise_docker_host(b)


@pytest.mark.parametrize(("a", "b"), [("ssh://me@box", "ssh://you@box"), ("ssh://me@box", "ssh://me@box:2222"),
                                      ("unix:///var/run/docker.sock", "unix:///tmp/d.sock"), ("tcp://box", "tcp://box:2376")])
def test_different_hosts_stay_different(a, b):
    assert normalise_docker_host(a) != normalise_docker_host(b)


def test_tcp_default_port_follows_tls():
    assert normalise_docker_host("tcp://box", tls=True) == "tcp://box:2376"


@pytest.mark.parametrize("host", ["tcp://box:2375", "tcp://box:2376", "TCP://127.0.0.1:2375", "box:2375", "tcp://[::1]"])
def test_tcp_without_tls_is_refused_with_both_fixes(host):
    (problem,) = docker_host_problems(host)
    assert "without TLS" in problem and "ssh://" in problem and "docker:certPath" in problem and "docker:caMaterial" in problem


@pytest.mark.parametrize("host", ["ssh://me@box", "unix:///var/run/docker.sock", "", "npipe:////./pipe/docker_engine"])
def test_ssh_unix_and_npipe_hosts_are_fine(host):
    assert docker_host_problems(host) == []


def test_tcp_with_tls_is_fine():
    assert docker_host_problems("tcp://box:2376", tls=True) == []


@pytest.mark.parametrize("host", ["http://box:2375", "ssh://", "unix://relative.sock", "tcp://box:99999", "ssh://me@box/path"])
def test_malformed_hosts_are_refused(host):
    assert docker_host_problems(host)


def test_tcp_host_is_refused_through_the_config_with_every_other_problem():
    problems = problems_of({"tensorboardBind": "gpu-box", "notebooksHostPath": "/etc", "logsDir": "/etc/jupyter",
                            "image": "UPPER/case", "tensorboardPort": 8888}, docker_host="tcp://box:2375")
    keys = sorted(p.split(":", 2)[0] + ":" + p.split(":", 2)[1] for p in problems)
    assert keys == ["docker:host", "tfbox:image", "tfbox:logsDir", "tfbox:notebooksHostPath", "tfbox:tensorboardBind",
                    "tfbox:tensorboardPort"], problems
    assert all("Fix:" in p for p in problems)


def test_cross_stack_clash_sees_through_host_spellings():
    a = parse({}, stack="a", password_state="secret", docker_host="ssh://me@box")
    b = parse({"namePrefix": "b"}, stack="b", password_state="secret", docker_host="SSH://me@Box:22/")
    assert any("host port 8888" in p for p in cross_stack_problems(b, [a]))
    local = parse({"namePrefix": "c"}, stack="c", password_state="secret", docker_host="unix:///run/docker.sock")
    dev = parse({}, stack="dev", password_state="secret")
    assert any("host port 8888" in p for p in cross_stack_problems(local, [dev]))


# --- another stack's volumes and directories (issue 22) ---------------------------------------


def test_a_stack_naming_another_stacks_volume_is_refused_at_preview(tmp_path):
    from components.config import check_stack_file

    (tmp_path / "Pulumi.gpu-box.yaml").write_text(
        "config:\n  docker:host: ssh://tfbox@gpu-box\n  tfbox:seats:\n"
        "    - {name: alice, notebookPort: 8890, tensorboardPort: 6010}\n")
    (tmp_path / "Pulumi.thief.yaml").write_text(
        "config:\n  docker:host: ssh://tfbox@gpu-box\n  tfbox:notebookPort: 8900\n  tfbox:tensorboardPort: 6100\n"
        "  tfbox:notebooksVolume: tfbox-gpu-box-alice-notebooks\n  tfbox:logsVolume: tfbox-gpu-box-alice-logs\n")
    with pytest.raises(ConfigError) as info:
        check_stack_file(tmp_path / "Pulumi.thief.yaml")
    keys = sorted(p.split(":", 2)[1] for p in info.value.problems)
    assert keys == ["logsVolume", "notebooksVolume"], info.value.problems
    assert all("stack 'gpu-box''s" in p and "Fix:" in p for p in info.value.problems)
    # the other way round too: the seats stack is told its volumes are taken
    with pytest.raises(ConfigError, match=r"tfbox:seats\[0\]: the volume tfbox-gpu-box-alice-notebooks .* stack 'thief'"):
        check_stack_file(tmp_path / "Pulumi.gpu-box.yaml")


def test_the_same_volume_on_another_docker_host_is_fine():
    a = parse({}, stack="a", password_state="secret", docker_host="ssh://me@box-a")
    b = parse({"notebooksVolume": "tfbox-a-notebooks", "logsVolume": "b-logs"}, stack="b", password_state="secret",
              docker_host="ssh://me@box-b")
    assert cross_stack_problems(b, [a]) == []


def test_overlapping_host_paths_of_two_stacks_are_refused():
    a = parse({"notebooksHostPath": "/srv/tfbox/team"}, stack="a", password_state="secret")
    b = parse({"namePrefix": "b", "notebookPort": 8900, "tensorboardPort": 6100, "notebooksHostPath": "/srv/tfbox/team/alice"},
              stack="b", password_state="secret")
    (problem,) = cross_stack_problems(b, [a])
    assert problem.startswith("tfbox:notebooksHostPath:") and "stack 'a'" in problem and "Fix:" in problem
    c = parse({"namePrefix": "c", "notebookPort": 8901, "tensorboardPort": 6101, "notebooksHostPath": "/srv/tfbox/team-c"},
              stack="c", password_state="secret")
    assert cross_stack_problems(c, [a]) == [], "a sibling directory whose name starts the same is not inside"

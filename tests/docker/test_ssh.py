"""components.docker.ssh: parsing ssh:// Docker hosts, the probe's command line, and one line with the fix
for each failure a user meets. The stderr texts are what OpenSSH 9.2 and the Docker CLI printed for
these cases against the tests' SSH boxes (scripts/box.sh)."""

import pytest

from components.docker import ssh
from components.docker.ssh import SshTarget, classify, parse_ssh_host, probe_command, ssh_opts_from

BOX = SshTarget(host="10.215.1.2", user="tfbox", port=22)

UNKNOWN_HOST_KEY = ("No ED25519 host key is known for 10.215.1.2 and you have requested strict checking.\r\n"
                    "Host key verification failed.\r\n")
CHANGED_HOST_KEY = """@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:bYe5Yu0q2xJ9ubHw4IkvgqKWZLbLqkblMijzIipzNXU.
Please contact your system administrator.
Add correct host key in /tmp/ssh-kh-wrong to get rid of this message.
Offending ED25519 key in /tmp/ssh-kh-wrong:1
  remove with:
  ssh-keygen -f "/tmp/ssh-kh-wrong" -R "10.215.1.2"
Host key for 10.215.1.2 has changed and you have requested strict checking.
Host key verification failed.
"""
WRONG_KEY = "tfbox@10.215.1.2: Permission denied (publickey).\r\n"
NO_DOCKER_RIGHTS = ('permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: '
                    'Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.50/version": dial unix /var/run/docker.sock: connect: permission denied\n')
NO_DOCKER_RIGHTS_NEW = ("permission denied while trying to connect to the docker API at unix:///var/run/docker.sock\n")
DOCKER_DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"
DOCKER_DOWN_NEW = ("failed to connect to the docker API at unix:///var/run/docker.sock; check if the path is correct and if "
                   "the daemon is running: dial unix /var/run/docker.sock: connect: no such file or directory\n")
REFUSED = "ssh: connect to host 10.215.1.2 port 2200: Connection refused\r\n"
TIMED_OUT = "ssh: connect to host 10.215.9.9 port 22: Connection timed out\r\n"
NO_ROUTE = "ssh: connect to host 10.215.9.9 port 22: No route to host\r\n"
NO_NAME = "ssh: Could not resolve hostname gpu-box-2: Name or service not known\r\n"
NO_DOCKER_CLI = "sh: 1: docker: not found\n"


@pytest.mark.parametrize("host, expected", [
    ("ssh://tfbox@gpu-box", SshTarget("gpu-box", "tfbox", None, None)),
    ("ssh://tfbox@10.215.1.2:22", SshTarget("10.215.1.2", "tfbox", 22, None)),
    ("ssh://gpu-box:2222", SshTarget("gpu-box", None, 2222, None)),
    ("ssh://me@[fd00::5]:22", SshTarget("fd00::5", "me", 22, None)),
    ("ssh://me@box/run/user/1000/docker.sock", SshTarget("box", "me", None, "/run/user/1000/docker.sock")),
])
def test_parses_what_docker_accepts(host, expected):
    assert parse_ssh_host(host) == expected


@pytest.mark.parametrize("host", ["unix:///var/run/docker.sock", "tcp://box:2376", ""])
def test_other_schemes_are_not_ssh(host):
    assert parse_ssh_host(host) is None


@pytest.mark.parametrize("host, word", [("ssh://", "names no host"), ("ssh://me:secret@box", "password"),
                                        ("ssh://me@box:99999", "invalid port"), ("ssh://me@box?x=1", "query")])
def test_refuses_what_docker_refuses(host, word):
    with pytest.raises(ValueError, match=word):
        parse_ssh_host(host)


def test_probe_never_prompts_nor_accepts_a_host_key_whatever_the_user_options_say():
    cmd = probe_command(BOX, ["-o", "StrictHostKeyChecking=no", "-i", "/k"])
    # ssh keeps the first value of each option: ours come before the user's
    assert cmd.index("StrictHostKeyChecking=yes") < cmd.index("StrictHostKeyChecking=no")
    assert cmd[:2] == ["ssh", "-o"] and "BatchMode=yes" in cmd
    assert cmd[cmd.index("--") + 1:] == ["10.215.1.2", "docker", "version", "--format", "{{.Server.Version}}"]
    assert cmd[cmd.index("-p") + 1] == "22" and cmd[cmd.index("-l") + 1] == "tfbox"


def test_probe_uses_the_socket_path_of_the_url_as_docker_does():
    cmd = probe_command(SshTarget("box", "me", None, "/run/d.sock"), [])
    assert cmd[cmd.index("--") + 1:] == ["box", "docker", "--host=unix:///run/d.sock", "version", "--format", "{{.Server.Version}}"]
    assert "-p" not in cmd


def test_ssh_opts_as_the_provider_reads_them(monkeypatch):
    monkeypatch.delenv("DOCKER_SSH_OPTS", raising=False)
    assert ssh_opts_from(["-F", "/x/config"]) == ["-F", "/x/config"]
    assert ssh_opts_from(None) == []
    monkeypatch.setenv("DOCKER_SSH_OPTS", "-i /k -o Port=22")
    assert ssh_opts_from(None) == ["-i", "/k", "-o", "Port=22"]


@pytest.mark.parametrize("code, stderr, words", [
    (255, UNKNOWN_HOST_KEY, ["host key is not in known_hosts", "ssh-keyscan -p 22 10.215.1.2"]),
    (255, CHANGED_HOST_KEY, ["host key has CHANGED", "ssh-keygen -R 10.215.1.2"]),
    (255, WRONG_KEY, ["login as 'tfbox' was refused", "authorized_keys"]),
    (1, NO_DOCKER_RIGHTS, ["may log in but not use Docker", "usermod -aG docker tfbox"]),
    (1, NO_DOCKER_RIGHTS_NEW, ["may log in but not use Docker"]),
    (1, DOCKER_DOWN, ["Docker is not running on the box", "systemctl start docker"]),
    (1, DOCKER_DOWN_NEW, ["Docker is not running on the box"]),
    (255, REFUSED, ["unreachable over SSH", "Connection refused", "sshd listens on port 22"]),
    (255, TIMED_OUT, ["unreachable over SSH", "Connection timed out"]),
    (255, NO_ROUTE, ["unreachable over SSH", "No route to host"]),
    (255, NO_NAME, ["does not resolve"]),
    (127, NO_DOCKER_CLI, ["no `docker` command"]),
    (-1, "", ["within 30s"]),
])
def test_each_failure_is_one_line_naming_the_host_and_the_fix(code, stderr, words):
    line = classify(BOX, code, stderr)
    assert line is not None and "\n" not in line
    assert line.startswith("docker:host ssh://tfbox@10.215.1.2:22: ")
    for w in words:
        assert w in line


def test_a_remote_connection_refused_is_dockers_not_sshs():
    """ssh exits 255 for its own failures only; Docker's 'connection refused' on a stale socket is Docker down."""
    stale = ("failed to connect to the docker API at unix:///var/run/docker.sock; check if the path is correct and if the "
             "daemon is running: dial unix /var/run/docker.sock: connect: connection refused\n")
    assert "Docker is not running" in (classify(BOX, 1, stale) or "")


def test_success_is_no_problem():
    assert classify(BOX, 0, "") is None


def test_changed_key_on_another_port_names_the_bracketed_known_hosts_entry():
    line = classify(SshTarget("box", "me", 2222), 255, CHANGED_HOST_KEY.replace("10.215.1.2", "[box]:2222")) or ""
    assert "ssh-keygen -R [box]:2222" in line and "ssh-keyscan -p 2222 box" in line


def test_preflight_runs_the_probe_only_for_ssh(monkeypatch):
    seen: list[list[str]] = []

    def probe(cmd: list[str]) -> tuple[int, str]:
        seen.append(cmd)
        return 255, REFUSED

    monkeypatch.setattr(ssh, "run_probe", probe)
    assert ssh.preflight("unix:///var/run/docker.sock", []) is None
    assert seen == []
    assert "unreachable" in (ssh.preflight("ssh://tfbox@10.215.1.2:2200", []) or "")
    assert len(seen) == 1
    assert "password" in (ssh.preflight("ssh://a:b@box", []) or "")


# --- docker:sshOpts from a committed stack file (issue 22) ---------------------------------------

RUNS_A_COMMAND_HERE = [
    ["-o", "ProxyCommand=sh -c 'id > /tmp/pwned'"], ["-oProxyCommand=nc %h %p"], ["-o", "ProxyCommand nc %h %p"],
    ["-o", "proxycommand=x"], ["-o", "LocalCommand=id", "-o", "PermitLocalCommand=yes"], ["-o", "KnownHostsCommand=/bin/id"],
    ["-o", "Match exec true"], ["-F", "ops/evil_ssh_config"], ["-Fops/evil"], ["-o", "PKCS11Provider=/tmp/evil.so"],
    ["-J", "jump"], ["-o", "ProxyJump=jump"], ["-o", "IdentityFile=/k ProxyCommand=x"], ["-o", "Include=/tmp/x"],
    ["-o", "StrictHostKeyChecking=no"], ["-o"], "-o ProxyCommand=x", {"ProxyCommand": "x"},
]


@pytest.mark.parametrize("opts", RUNS_A_COMMAND_HERE)
def test_ssh_options_that_run_commands_or_read_a_config_are_refused(opts):
    assert ssh.ssh_opts_problems(opts), opts


@pytest.mark.parametrize("opts", [
    None, [], ["-i", "/home/me/.ssh/id_ed25519"], ["-i~/.ssh/gpu", "-p", "2222", "-l", "tfbox", "-4", "-C"],
    ["-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=/home/me/.ssh/known_hosts_lab", "-o", "ConnectTimeout=10"],
    ["-o", "ServerAliveInterval 30", "-oHostKeyAlias=gpu-box", "-o", "StrictHostKeyChecking=accept-new", "-o", "Port=22"],
    "-i /k -p 22",
])
def test_the_usual_ssh_options_are_fine(opts):
    assert ssh.ssh_opts_problems(opts) == []

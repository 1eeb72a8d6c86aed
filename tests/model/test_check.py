"""`python -m components.model.check`: the one entry scripts and ops ask about a stack's config.

Each test writes a project (Pulumi.yaml from this repository, stack files) into a temporary directory
and reads what the entry prints, the way `make up`, `make doctor` and a user's script do: the JSON of
the resolved lab, the problems of a bad file, the `--shell` facts, and never a secret's value.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import check_stack_file
from components.model.check import lab_shape, main, resolve
from components.model.errors import ConfigError
from components.model.tls import generate_self_signed, subject_names

ROOT = Path(__file__).resolve().parents[2]
SALT = "0123456789abcdef0123456789abcdef"
# what a stack file holds for a secret: ciphertext. The entry must never print it.
CIPHER = "v1:SECRETCIPHERTEXTc2VjcmV0"
PLAIN = "plaintext-password-in-file"
PAIR = generate_self_signed(subject_names("ssh://me@box", "0.0.0.0"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    return tmp_path


def write(project: Path, stack: str, config: dict[str, Any]) -> Path:
    path = project / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The entry as a script runs it: its own process, so stdout and stderr are all it says."""
    return subprocess.run([sys.executable, "-m", "components.model.check", "--dir", str(project), *args],
                          capture_output=True, text=True, cwd=ROOT, check=False)


SINGLE = {
    "docker:host": "ssh://me@box:22", "tfbox:gpus": "0,1", "tfbox:gpuCheck": True,
    "tfbox:image": "tensorflow/tensorflow:2.16.1-gpu-jupyter", "tfbox:notebookBind": "0.0.0.0",
    "tfbox:notebookPort": 8890, "tfbox:tensorboardPort": 6010, "tfbox:tensorboardProxy": True,
    "tfbox:passwordSalt": SALT, "tfbox:password": {"secure": CIPHER}, "tfbox:tlsCert": PAIR.cert_pem,
    "tfbox:tlsKey": {"secure": CIPHER},
}


def test_a_single_seat_stack_is_its_default_seat(project: Path) -> None:
    write(project, "box", SINGLE)
    done = run(project, "--stack", "box", "--json")
    assert done.returncode == 0, done.stderr
    lab = json.loads(done.stdout)
    assert (lab["stack"], lab["kind"], lab["host"], lab["hostSet"]) == ("box", "machine", "ssh://me@box", True)
    assert (lab["tensorboardMode"], lab["tensorboardProxy"], lab["namePrefix"]) == ("sidecar", True, "tfbox-box")
    [seat] = lab["seats"]
    assert seat["name"] == "" and seat["scheme"] == "https"
    assert seat["notebook"] == {"port": 8890, "bind": "0.0.0.0", "url": "https://box:8890/", "container": "tfbox-box-notebook"}
    assert seat["tensorboard"] == {"port": 6010, "bind": "127.0.0.1", "url": "http://127.0.0.1:6010/",
                                   "container": "tfbox-box-tensorboard"}
    assert seat["tensorboardProxyUrl"] == "https://box:8890/tensorboard/"
    # in start order as the stack's `containerNames` output lists them (the plan's order)
    assert seat["containers"] == ["tfbox-box-notebook", "tfbox-box-tensorboard", "tfbox-box-gpu-check", "tfbox-box-ready"]
    assert seat["volumes"] == {"notebooks": "tfbox-box-notebooks", "logs": "tfbox-box-logs"}
    assert (seat["gpus"], seat["image"], seat["password"]) == ("0,1", "tensorflow/tensorflow:2.16.1-gpu-jupyter", "secret")
    assert lab["secrets"] == {"password": "secret", "passwordSalt": "set", "tlsKey": "secret", "passwords": {}, "tlsKeys": {}}
    assert lab["ports"] == [8890, 6010] and lab["roles"] == ["notebook", "tensorboard"]
    assert CIPHER not in done.stdout + done.stderr


def test_a_seats_stack_lists_every_seat(project: Path) -> None:
    write(project, "box", {
        "docker:host": "ssh://me@box", "tfbox:tensorboardMode": "exec", "tfbox:passwordSalt": SALT,
        "tfbox:seats": [{"name": "alice", "gpus": "0", "notebookPort": 8890, "tensorboardPort": 6010},
                        {"name": "bob", "gpus": "1", "notebookPort": 8891, "tensorboardPort": 6011, "notebookBind": "127.0.0.1"}],
        "tfbox:passwords": {"alice": {"secure": CIPHER}},
    })
    done = run(project, "--stack", "box", "--json")
    assert done.returncode == 0, done.stderr
    lab = json.loads(done.stdout)
    alice, bob = lab["seats"]
    assert (alice["name"], alice["gpus"], alice["password"]) == ("alice", "0", "secret")
    assert (bob["name"], bob["gpus"], bob["password"]) == ("bob", "1", "missing")
    assert alice["notebook"]["url"] == "http://127.0.0.1:8890/" and alice["notebook"]["container"] == "tfbox-box-alice-notebook"
    assert alice["tensorboard"] == {"port": 6010, "bind": "127.0.0.1", "url": "http://127.0.0.1:6010/", "container": None}, \
        "exec mode: TensorBoard runs inside the notebook, published at the seat's port"
    assert alice["containers"] == ["tfbox-box-alice-notebook", "tfbox-box-alice-ready"]
    assert bob["volumes"] == {"notebooks": "tfbox-box-bob-notebooks", "logs": "tfbox-box-bob-logs"}
    assert lab["secrets"]["passwords"] == {"alice": "secret"} and lab["secrets"]["password"] == "missing"
    assert lab["ports"] == [8890, 6010, 8891, 6011] and lab["roles"] == ["notebook"]
    assert CIPHER not in done.stdout + done.stderr


def test_a_bad_file_prints_every_problem_as_the_validator_words_it(project: Path) -> None:
    path = write(project, "box", {"tfbox:gpus": "many", "tfbox:notebookPort": 70000, "tfbox:notebookPorts": 1,
                                  "tfbox:password": {"secure": CIPHER}})
    done = run(project, "--stack", "box", "--json")
    assert done.returncode == 1 and done.stdout == ""
    with pytest.raises(ConfigError) as info:
        check_stack_file(path)
    assert done.stderr == f"{path}: {info.value}\n"
    assert "3 problems" in done.stderr and "tfbox:gpus:" in done.stderr and "did you mean tfbox:notebookPort?" in done.stderr
    assert CIPHER not in done.stderr


def test_a_plaintext_password_is_a_problem_and_never_printed(project: Path) -> None:
    write(project, "box", {"tfbox:password": PLAIN, "tfbox:passwordSalt": SALT})
    done = run(project, "--stack", "box", "--json")
    assert done.returncode == 1 and "tfbox:password: is stored in plaintext" in done.stderr
    shell = run(project, "--stack", "box", "--shell")
    assert shell.returncode == 0 and "password=plaintext" in shell.stdout.splitlines()
    assert PLAIN not in done.stdout + done.stderr + shell.stdout + shell.stderr


def test_clashes_with_sibling_stacks_are_problems_unless_asked_about_one_lab(project: Path) -> None:
    write(project, "one", {"docker:host": "ssh://me@box", "tfbox:notebookPort": 8890})
    write(project, "two", {"docker:host": "ssh://me@box:22", "tfbox:notebookPort": 8890, "tfbox:tensorboardPort": 6010})
    done = run(project, "--stack", "two")
    assert done.returncode == 1 and "host port 8890 on ssh://me@box is also used by stack 'one'" in done.stderr
    assert resolve(project, "two", siblings=False).ports == (8890, 6010)


def test_the_projects_own_defaults_apply_under_the_stack_file(project: Path) -> None:
    doc = yaml.safe_load((project / "Pulumi.yaml").read_text())
    doc["config"]["notebookPort"]["default"] = 9999
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(doc))
    write(project, "box", {})
    assert resolve(project, "box").ports == (9999, 6006)
    write(project, "box", {"tfbox:notebookPort": 8890})
    assert resolve(project, "box").ports == (8890, 6006)


def test_the_summary_names_each_seats_urls(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "dev", {"tfbox:stackKind": "local", "tfbox:tensorboardMode": "off"})
    assert main(["--dir", str(project), "--stack", "dev"]) == 0
    assert capsys.readouterr().out == (
        "dev: notebook http://127.0.0.1:8888/ (GPUs none, image tensorflow/tensorflow:latest-jupyter), TensorBoard off\n")
    assert main(["--dir", str(project), "--stack", "absent"]) == 1
    assert "cannot read" in capsys.readouterr().err


def shell_vars(project: Path, stack: str) -> dict[str, str]:
    """`eval` the --shell lines in bash, as scripts/up.sh does, and read the variables back."""
    names = ("seats", "seats_without_password", "password", "password_salt", "tensorboard_proxy_in_file")
    script = (f'eval "$("{sys.executable}" -m components.model.check --dir "$1" --stack "$2" --shell)" && '
              + " && ".join(f'printf "%s\\0" "${n}"' for n in names))
    done = subprocess.run(["bash", "-c", script, "-", str(project), stack], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    return dict(zip(names, done.stdout.split("\0")[:-1], strict=True))


def test_shell_facts_are_what_make_up_decides_on(project: Path) -> None:
    assert shell_vars(project, "fresh") == {"seats": "", "seats_without_password": "", "password": "missing",
                                           "password_salt": "missing", "tensorboard_proxy_in_file": "no"}, "no file yet"
    write(project, "box", {"tfbox:passwordSalt": SALT, "tfbox:tensorboardProxy": False, "tfbox:password": {"secure": CIPHER},
                           "tfbox:seats": [{"name": "alice"}, {"name": "bob"}, {"name": "x'; touch PWNED; echo '"}],
                           "tfbox:passwords": {"bob": {"secure": CIPHER}}, "tfbox:gpus": "bad"})
    facts = shell_vars(project, "box")
    assert facts == {"seats": "alice bob", "seats_without_password": "alice", "password": "secret",
                     "password_salt": "set", "tensorboard_proxy_in_file": "yes"}, "read even though the config has problems"
    assert not (ROOT / "PWNED").exists() and not (project / "PWNED").exists()


def test_lab_shape_reads_a_file_with_problems_key_by_key(project: Path) -> None:
    """`make doctor` still looks at a lab whose file was broken after it was deployed."""
    write(project, "ok", {"tfbox:tensorboardMode": "off", "tfbox:notebookPort": 8890})
    assert lab_shape(project, "ok") == (("notebook",), (8890,))
    write(project, "bad", {"tfbox:gpus": "many", "tfbox:notebookPort": 8891})
    assert lab_shape(project, "bad") == (("notebook", "tensorboard"), (8891, 6006))
    write(project, "seats", {"tfbox:seats": [{"name": "a", "notebookPort": 8892, "tensorboardPort": "x"}]})
    assert lab_shape(project, "seats") == (("notebook", "tensorboard"), (8892,))

"""`make machine`'s stack file: templates/Pulumi.machine.yaml with the machine's name, host, salt and free ports.

scripts/new-machine.sh checks NAME and HOST and drives the CLI; this writes the file. The ports other
stacks on the same Docker host publish come from the model (components.model.check), so a seats
stack's seats, a stack's non-default ports and a host spelled another way (`ssh://me@box:22`) count,
as the validator that runs next counts them. Never overwrites a file.

    python -m ops.new_machine --root ROOT NAME HOST
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from components.docker.docker_host import LOCAL_DOCKER_HOST, normalise_docker_host
from components.docker.target import DOCKER_TLS_KEYS
from components.model.check import lab_shape
from components.model.keys import KEYS_BY_NAME
from components.model.stack_file import read_stack_file, stack_files

TEMPLATE = Path("templates") / "Pulumi.machine.yaml"
NOTEBOOK_PORT = int(str(KEYS_BY_NAME["notebookPort"].default))
TENSORBOARD_PORT = int(str(KEYS_BY_NAME["tensorboardPort"].default))


def used_ports(root: Path, host: str) -> set[int]:
    """Host ports the other stack files of `root` publish on `host` (a file without docker:host is the local daemon)."""
    mine = normalise_docker_host(host)
    used: set[int] = set()
    for path in stack_files(root):
        sf = read_stack_file(path)
        given = sf.provider_config.get("docker:host")
        tls = any(sf.provider_config.get(f"docker:{k}") for k in DOCKER_TLS_KEYS)
        if normalise_docker_host(str(given) if given else LOCAL_DOCKER_HOST, tls=tls) == mine:
            used.update(lab_shape(root, sf.stack)[1])
    return used


def free_port(start: int, used: Iterable[int], also: int | None = None) -> int:
    taken = set(used)
    port = start
    while port in taken or port == also:
        port += 1
    return port


def render(template: str, name: str, host: str, salt: str, notebook_port: int, tensorboard_port: int) -> str:
    """The template with its placeholders filled and the two port lines set, every comment kept."""
    text = template.replace("@MACHINE@", name).replace("@DOCKER_HOST@", host).replace("@SALT@", salt)
    text = re.sub(rf"^(  tfbox:notebookPort:) {NOTEBOOK_PORT}$", rf"\g<1> {notebook_port}", text, flags=re.M)
    return re.sub(rf"^(  tfbox:tensorboardPort:) {TENSORBOARD_PORT}$", rf"\g<1> {tensorboard_port}", text, flags=re.M)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write Pulumi.NAME.yaml for a new machine (make machine).")
    parser.add_argument("--root", required=True, help="the project directory (the template is read and the file written there)")
    parser.add_argument("name")
    parser.add_argument("host")
    args = parser.parse_args(argv)
    root = Path(args.root)
    out = f"{args.root}/Pulumi.{args.name}.yaml"  # as the script names it in its messages
    used = used_ports(root, args.host)
    notebook_port = free_port(NOTEBOOK_PORT, used)
    tensorboard_port = free_port(TENSORBOARD_PORT, used, also=notebook_port)
    salt = secrets.token_hex(16)  # the password hash's salt: random, made once per stack, not secret (components/password.py)
    text = render((root / TEMPLATE).read_text(encoding="utf-8"), args.name, args.host, salt, notebook_port, tensorboard_port)
    # written beside it, then linked into place: the file appears whole, and never over one that appeared meanwhile
    fd, tmp = tempfile.mkstemp(prefix=f".Pulumi.{args.name}.yaml.", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.link(tmp, out)
    except FileExistsError:
        print(f"new-machine: {out} appeared meanwhile; not overwritten", file=sys.stderr)
        return 1
    finally:
        os.unlink(tmp)
    print(f"new-machine: wrote {out} (docker:host {args.host}, notebook port {notebook_port}, TensorBoard port {tensorboard_port})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 22 (part B, finding 4): setuid programs through the notebook's host bind (`tfbox:notebooksHostPath`).

The notebook is root in its container, so through a bind of an ordinary host directory it makes a
root-owned copy of `id` with mode 4755, and an unprivileged user of the host who runs it is root
(`id -u` prints 0): the `up` warns, naming the fix. With the directory on a nosuid mount (the fix) the
notebook can still set the bit, but the host ignores it (`id -u` prints 65534), and the `up` is quiet.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.harness import Docker, Jupyter, Project, free_port

STACK = "suid"
WARNING = "is on a mount without nosuid"
PLANT = ("import os, shutil\n"
         "shutil.copy('/usr/bin/id', '/tf/suid-id')\n"
         "os.chmod('/tf/suid-id', 0o4755)\n"
         "print(oct(os.stat('/tf/suid-id').st_mode & 0o7777), os.stat('/tf/suid-id').st_uid)")


@pytest.fixture(scope="module")
def dirs() -> Iterator[SimpleNamespace]:
    """Two host directories a host user can reach: `plain` on the root filesystem, `safe` a nosuid bind mount."""
    base = Path(tempfile.mkdtemp(prefix="tfbox-suid-", dir="/var/tmp"))
    base.chmod(0o755)
    plain, safe = base / "plain", base / "safe"
    for d in (plain, safe):
        d.mkdir()
        d.chmod(0o755)
    mounted = False
    try:
        subprocess.run(["mount", "--bind", str(safe), str(safe)], check=True)
        mounted = True
        subprocess.run(["mount", "-o", "remount,bind,nosuid,nodev", str(safe)], check=True)
        yield SimpleNamespace(plain=plain, safe=safe)
    finally:
        if mounted:
            subprocess.run(["umount", str(safe)], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, cpu_image: str, password: str, dirs: SimpleNamespace) -> Iterator[SimpleNamespace]:
    port = free_port()
    stack = project.stack(STACK, {
        "docker:host": docker_a.host, "tfbox:image": cpu_image, "tfbox:tensorboardMode": "off",
        "tfbox:notebookPort": port, "tfbox:notebooksHostPath": str(dirs.plain),
        "tfbox:hostPathRoot": str(dirs.plain.parent),  # the test's own data root (issue 22: an allowlist)
    }, password)
    yield SimpleNamespace(stack=stack, docker=docker_a, url=f"http://127.0.0.1:{port}", password=password)
    stack.destroy(check=False)


def plant_and_run(lab: SimpleNamespace, host_dir: Path) -> tuple[int, str]:
    """The notebook plants a setuid `id` in /tf; a host user (nobody) runs it: (mode on the host, `id -u` it printed)."""
    session = Jupyter(lab.url)
    assert session.login(lab.password)
    cell = session.execute(PLANT)
    assert not cell["error"], cell["error"]
    assert cell["stdout"].split() == ["0o4755", "0"], "root in the notebook sets the bit on a root-owned file"
    planted = host_dir / "suid-id"
    st = planted.stat()
    ran = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(planted), "-u"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert st.st_uid == 0
    return stat.S_IMODE(st.st_mode), ran.stdout.strip()


def test_1_a_plain_host_directory_gives_host_users_root_and_up_warns(lab: SimpleNamespace, dirs: SimpleNamespace) -> None:
    up = lab.stack.up()
    assert WARNING in up.output and f"mount -o remount,bind,nosuid,nodev {dirs.plain}" in up.output, up.output[-3000:]
    info = lab.docker.inspect(f"tfbox-{STACK}-notebook")
    assert info is not None and {m["Destination"]: m["Source"] for m in info["Mounts"]}["/tf"] == str(dirs.plain)
    mode, euid = plant_and_run(lab, dirs.plain)
    assert (mode, euid) == (0o4755, "0"), "the setuid bit took effect on the host: nobody ran it as root"


def test_2_on_a_nosuid_mount_the_bit_is_ignored_and_up_is_quiet(lab: SimpleNamespace, dirs: SimpleNamespace) -> None:
    lab.stack.set("notebooksHostPath", str(dirs.safe))
    up = lab.stack.up()
    assert WARNING not in up.output, up.output[-3000:]
    info = lab.docker.inspect(f"tfbox-{STACK}-notebook")
    assert info is not None
    assert {m["Destination"]: m["Source"] for m in info["Mounts"]}["/tf"] == str(dirs.safe), up.output[-3000:]
    mode, euid = plant_and_run(lab, dirs.safe)
    assert mode == 0o4755 and euid == "65534", "nosuid: the same file runs as the user who runs it"
    assert os.stat(dirs.safe).st_dev == os.stat(dirs.safe / "suid-id").st_dev

"""Issue 10, process hygiene: a Pulumi CLI killed in the middle of a run (Ctrl-C twice, an OOM kill, a CI
timeout) leaves no language host and no program running behind it.

The CLI is SIGKILLed while the program runs; its language host (toolchain/language-python, ours) notices
that the engine is gone within its health interval (2 s) and exits, killing the program it ran. Before, the
host waited for an engine that would never call again, and the orphans piled up on CI machines.
No Docker here: the program is a stand-in that only waits, so only the CLI and the host are under test.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.e2e.conftest import PLUGIN_PROCESSES
from tests.e2e.harness import Project, reap_session

WAITING_PROGRAM = """
import time
import pulumi
pulumi.log.info("tfbox-hygiene: program running")
time.sleep(120)
"""


def processes_in(directory: Path) -> list[str]:
    """Processes whose working directory is `directory` (the language host and the program run there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) != directory:
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmd:
            found.append(f"{proc.name}: {cmd}")
    return found


def test_killed_cli_leaves_no_language_host_or_program(project: Project) -> None:
    (project.dir / "__main__.py").write_text(WAITING_PROGRAM)
    project.pulumi("stack", "init", "hygiene", "--secrets-provider", "passphrase")
    cli = project.start("pulumi", "--non-interactive", "preview", "--stack", "hygiene")
    try:
        deadline = time.monotonic() + 120
        while not any("pulumi-language-python-exec" in p for p in processes_in(project.dir)):
            assert cli.poll() is None, f"preview ended before its program ran:\n{cli.stdout.read() if cli.stdout else ''}"
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.2)
        running = processes_in(project.dir)
        assert any(Path(p.split()[1]).name in PLUGIN_PROCESSES for p in running), running

        os.kill(cli.pid, signal.SIGKILL)  # the CLI alone: its host and program are left to fend for themselves
        cli.wait(timeout=10)
        deadline = time.monotonic() + 20  # the health interval (2 s), a missed beat, the 10 s grace at most
        while (left := processes_in(project.dir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, "still running 20 s after the CLI was killed:\n" + "\n".join(p[:240] for p in left)
    finally:
        reap_session(cli)

"""bench/noop_profile.py's hook, on PYTHONPATH for its runs only (never part of tfbox): in the Pulumi
program's interpreter, send `-X importtime`'s lines to a file instead of the engine, and write the
program's CPU seconds and its wall time since exec when it exits."""

import atexit
import json
import os
import sys
import time

OUT = os.environ.get("TFBOX_PROFILE_OUT", "")


def _since_exec() -> float:
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def _done() -> None:
    with open(OUT + ".json", "w") as f:
        json.dump({"cpu": time.process_time(), "wall_since_exec": _since_exec()}, f)


if OUT and "pulumi-language-python-exec" in " ".join(sys.argv):
    os.dup2(os.open(OUT + ".importtime", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
    atexit.register(_done)

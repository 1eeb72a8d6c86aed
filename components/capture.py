"""capture(): bring output written straight to file descriptors 1 and 2 into the notebook.

TensorFlow's C++ runtime logs with write(2) on fds 1 and 2, bypassing `sys.stdout`, so
its messages end up in the container's log instead of the cell. tfbox installs this file
as an IPython startup file in the notebook container, so every notebook can write

    with capture():
        model.fit(...)

and see those messages under the cell. The same file is imported by the tests.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import ctypes.util
import os
import select
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["capture"]

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None)


def _flush_all() -> None:
    """Flush Python's and C stdio's buffers so nothing written before a switch lands after it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        _libc.fflush(None)


def _pump(sources: dict[int, TextIO]) -> None:
    """Copy from the pipes to their streams in arrival order until every writer has closed."""
    decoders = {fd: codecs.getincrementaldecoder("utf-8")(errors="replace") for fd in sources}
    open_fds = set(sources)
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [])
        for fd in ready:
            chunk = os.read(fd, 65536)
            text = decoders[fd].decode(chunk, final=not chunk)
            if text:
                sources[fd].write(text)
                sources[fd].flush()
            if not chunk:
                open_fds.discard(fd)


@contextlib.contextmanager
def capture(stdout: TextIO | None = None, stderr: TextIO | None = None) -> Iterator[None]:
    """Redirect fds 1 and 2 while the block runs; forward to stdout/stderr (default: sys's).

    Always restores both descriptors, also when the block raises; nests.
    """
    targets = {1: stdout or sys.stdout, 2: stderr or sys.stderr}
    _flush_all()
    saved: dict[int, int] = {}
    readers: dict[int, TextIO] = {}
    try:
        for fd, target in targets.items():
            read_end, write_end = os.pipe()
            saved[fd] = os.dup(fd)
            os.dup2(write_end, fd)
            os.close(write_end)
            readers[read_end] = target
    except BaseException:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for read_end in readers:
            os.close(read_end)
        raise
    pump = threading.Thread(target=_pump, args=(readers,), name="tfbox-capture", daemon=True)
    pump.start()
    try:
        yield
    finally:
        _flush_all()
        for fd, copy in saved.items():
            os.dup2(copy, fd)  # drops the last reference to the pipe's write end: the pump sees EOF
            os.close(copy)
        # A child process that inherited the pipe keeps it open; do not hang the cell for it.
        pump.join(timeout=10)
        if not pump.is_alive():
            for read_end in readers:
                os.close(read_end)

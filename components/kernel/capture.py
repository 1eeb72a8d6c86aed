# capture(): bring output written straight to file descriptors 1 and 2 into the notebook, in order.
#
# TensorFlow's C++ runtime logs with write(2) on fds 1 and 2, bypassing `sys.stdout`. ipykernel 6+
# forwards those fds to the cell by itself, but out of order with Python's own output and also copied
# into the container log; older kernels drop them into the container log only. tfbox installs this file
# as an IPython startup file in the notebook container, so every notebook can write
#
#     with capture():
#         model.fit(...)
#
# and see those messages under the cell, in order, and not in `docker logs`. The same file is imported
# by the tests (`from components.capture import capture`).
#
# Written to be safe wherever a startup file loads:
# - startup files run in the user's namespace: everything lives inside one function and only `capture`
#   is left behind (no docstring either: it would set the namespace's __doc__);
# - where sys.stdout is fd 1 itself (terminal IPython, plain python), forwarding to it would feed the
#   pipe back into itself: such a target gets the bytes on the original fd instead;
# - the pump uses selectors (fds above 1023 are fine), never stops reading while the block runs (a
#   target that raises sends the rest to the original fd, reported as a warning at the end);
# - fds 1 and 2 are process-wide: one thread captures at a time (a second one waits), nesting in one
#   thread works;
# - a child process that keeps the pipe open (started in the block, still running) does not hold up the
#   block's end: its later output goes to the original fds, and the pipe closes when it exits.
#
# As a startup file (run as `__main__`, not imported) it also makes `import tensorflow` keep the promise
# of TF_CPP_MIN_LOG_LEVEL: TensorFlow 2.17+ writes some lines through absl before its own log filter is
# set up (oneDNN's notice on CPUs with AVX-512 VNNI/AMX, once per loaded library), whatever the level.
# While `tensorflow` itself is imported, absl-format lines below the level are dropped from fd 2 (with
# absl's "before absl::InitializeLog()" notice); every other byte passes as without the filter.

import typing


def install_tensorflow_import_filter(capture: "typing.Callable[..., typing.ContextManager[None]]") -> None:
    import importlib.abc
    import os
    import re
    import sys

    # absl's prefix: severity, MMDD, time (before absl is set up, the seconds count from 1970), thread
    # id, file:line]. TensorFlow's own filter already handles its `2025-01-02 03:04:05.678901: I` lines.
    absl_line = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\n]*\] ")
    preinit = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    rank = {"I": 0, "W": 1, "E": 2, "F": 3}

    class LevelFilter:
        """A text stream in front of stderr that drops whole absl lines below TF_CPP_MIN_LOG_LEVEL."""

        def __init__(self, target: "typing.TextIO", level: int) -> None:
            self.target = target
            self.level = level
            self.partial = ""

        def keep(self, line: str) -> bool:
            if line.rstrip("\n") == preinit:
                return self.level < 1
            m = absl_line.match(line)
            return m is None or rank[m.group(1)] >= self.level

        def write(self, text: str) -> int:
            lines = (self.partial + text).split("\n")
            self.partial = lines.pop()
            kept = "".join(line + "\n" for line in lines if self.keep(line + "\n"))
            if kept:
                self.target.write(kept)
            return len(text)

        def flush(self) -> None:
            self.target.flush()

        def fileno(self) -> int:
            return self.target.fileno()  # lets capture() see a target that is fd 2 itself (no filter then)

        def finish(self) -> None:
            if self.partial and self.keep(self.partial):
                self.target.write(self.partial)
            self.partial = ""
            self.target.flush()

    def log_level() -> int:
        try:
            return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
        except ValueError:
            return 0

    class Finder(importlib.abc.MetaPathFinder):
        """Finds `tensorflow` through the other finders once, and imports it behind the filter."""

        def find_spec(self, name: str, path: "typing.Any" = None, target: "typing.Any" = None) -> "typing.Any":
            if name != "tensorflow":
                return None
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            for finder in sys.meta_path:
                spec = getattr(finder, "find_spec", lambda *a: None)(name, path, target)
                if spec is not None:
                    break
            else:
                return None
            real = spec.loader
            if real is None or not hasattr(real, "exec_module"):
                return spec

            class Loader(importlib.abc.Loader):
                def create_module(self, spec: "typing.Any") -> "typing.Any":
                    return real.create_module(spec)

                def exec_module(self, module: "typing.Any") -> None:
                    level = log_level()
                    quiet = LevelFilter(sys.stderr, level)
                    try:
                        if level <= 0:
                            real.exec_module(module)
                        else:
                            with capture(stderr=quiet):
                                real.exec_module(module)
                    finally:
                        quiet.finish()
                        module.__loader__ = real
                        if getattr(module, "__spec__", None) is not None:
                            module.__spec__.loader = real

            spec.loader = Loader()
            return spec

    sys.meta_path.insert(0, Finder())


def _tfbox_capture_factory(filter_tensorflow_import: bool) -> "typing.Callable[..., typing.ContextManager[None]]":
    import codecs
    import contextlib
    import ctypes
    import ctypes.util
    import os
    import selectors
    import sys
    import threading
    import warnings

    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    lock = threading.RLock()  # fds 1 and 2 belong to the process: one capturing thread at a time
    drain_timeout = 10.0  # seconds the block's end waits for the pump to pass on what is already written

    def flush_all() -> None:
        """Flush Python's and C stdio's buffers so nothing written before a switch lands after it."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(Exception):
            libc.fflush(None)

    def write_all(fd: int, data: bytes) -> None:
        while data:
            try:
                data = data[os.write(fd, data):]
            except InterruptedError:
                continue
            except OSError:
                return  # the original fd is gone (closed terminal): nothing left to tell

    class Source:
        """One redirected fd: its pipe's read end, where text goes, and the original fd as a fallback."""

        def __init__(self, read_end: int, target: "typing.TextIO", fallback: int, raw: bool) -> None:
            self.read_end = read_end
            self.target = target
            self.fallback = fallback  # the pump's own dup of the original fd
            self.raw = raw  # the target writes to a redirected fd: forwarding to it would loop
            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    class Pump(threading.Thread):
        """Copies from the pipes to their targets in arrival order until every writer has closed."""

        def __init__(self, sources: "list[Source]", wake: int) -> None:
            super().__init__(name="tfbox-capture", daemon=True)
            self.sources = sources
            self.wake = wake
            self.detached = False  # after the block: a child still writes; pass it to the original fds
            self.drained = threading.Event()
            self.errors: list[str] = []

        def deliver(self, src: Source, chunk: bytes) -> None:
            if self.detached or src.raw:
                write_all(src.fallback, chunk)
                return
            text = src.decoder.decode(chunk)
            try:
                if text:
                    src.target.write(text)
                    src.target.flush()
            except Exception as e:  # any failure of the target must not stop the pump
                self.errors.append(f"writing to {src.target!r} failed ({e!r}); the rest went to the original fd")
                src.raw = True
                write_all(src.fallback, text.encode())

        def run(self) -> None:
            sel = selectors.DefaultSelector()
            try:
                by_fd = {s.read_end: s for s in self.sources}
                for fd in by_fd:
                    sel.register(fd, selectors.EVENT_READ)
                sel.register(self.wake, selectors.EVENT_READ)
                stopping = False
                while by_fd:
                    events = sel.select(0 if stopping and not self.detached else None)
                    if stopping and not events and not self.detached:
                        self.detached = True  # all that was written before the block ended is passed on
                        self.drained.set()
                        continue
                    for key, _ in events:
                        if key.fd == self.wake:
                            sel.unregister(self.wake)
                            stopping = True
                            continue
                        src = by_fd[key.fd]
                        try:
                            chunk = os.read(key.fd, 65536)
                        except InterruptedError:
                            continue
                        if chunk:
                            self.deliver(src, chunk)
                            continue
                        sel.unregister(key.fd)
                        del by_fd[key.fd]
                        tail = src.decoder.decode(b"", final=True)
                        if tail and not self.detached and not src.raw:
                            self.deliver(src, tail.encode())
            except BaseException as e:  # reported by capture(), never silent
                self.errors.append(f"the capture pump failed: {e!r}")
                self.detached = True
                self.drain_raw(sel)
            finally:
                sel.close()
                for s in self.sources:
                    with contextlib.suppress(OSError):
                        os.close(s.read_end)
                    with contextlib.suppress(OSError):
                        os.close(s.fallback)
                with contextlib.suppress(OSError):
                    os.close(self.wake)
                self.drained.set()

        def drain_raw(self, sel: "selectors.BaseSelector") -> None:
            """After an internal failure: keep the pipes empty (writers never block), bytes to the original fds."""
            open_fds = {s.read_end: s for s in self.sources}
            while open_fds:
                try:
                    ready = [k.fd for k, _ in sel.select(None) if k.fd in open_fds]
                except Exception:
                    return
                for fd in ready:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        chunk = b""
                    if chunk:
                        write_all(open_fds[fd].fallback, chunk)
                    else:
                        with contextlib.suppress(Exception):
                            sel.unregister(fd)
                        del open_fds[fd]

    def target_fd(target: "typing.TextIO") -> "int | None":
        try:
            return target.fileno()
        except Exception:  # StringIO, ipykernel's OutStream without a real fd, ...
            return None

    @contextlib.contextmanager
    def capture(stdout: "typing.TextIO | None" = None, stderr: "typing.TextIO | None" = None) -> "typing.Iterator[None]":
        """Redirect fds 1 and 2 while the block runs; forward to stdout/stderr (default: sys's).

        Always restores both descriptors, also when the block raises; nests; one thread at a time.
        """
        targets = {1: stdout or sys.stdout, 2: stderr or sys.stderr}
        lock.acquire()
        flush_all()
        saved: dict[int, int] = {}
        sources: list[Source] = []
        opened: list[int] = []
        try:
            for fd in targets:
                saved[fd] = os.dup(fd)
            for fd, target in targets.items():
                # A target that is fd 1 or 2 itself gets the bytes on that fd's original instead.
                tfd = target_fd(target)
                raw = tfd in saved
                fallback = os.dup(saved[tfd] if raw and tfd is not None else saved[fd])
                opened.append(fallback)
                read_end, write_end = os.pipe()
                opened.append(read_end)
                os.dup2(write_end, fd)
                os.close(write_end)
                sources.append(Source(read_end, target, fallback, raw))
            wake_r, wake_w = os.pipe()
        except BaseException:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            for extra in opened:
                os.close(extra)
            lock.release()
            raise
        pump = Pump(sources, wake_r)
        pump.start()
        try:
            yield
        finally:
            flush_all()
            for fd, copy in saved.items():
                os.dup2(copy, fd)  # drops the block's reference to the pipe's write end: the pump sees EOF
                os.close(copy)
            os.close(wake_w)  # tells the pump the block is over
            pump.drained.wait(drain_timeout)
            lock.release()
            for problem in pump.errors:
                warnings.warn(f"capture(): {problem}", RuntimeWarning, stacklevel=3)

    if filter_tensorflow_import and "tensorflow" not in sys.modules:
        install_tensorflow_import_filter(capture)
    return capture


capture = _tfbox_capture_factory(__name__ == "__main__")
del _tfbox_capture_factory
globals().pop("install_tensorflow_import_filter")  # used once, above; not left in the namespace
globals().pop("typing")  # only for the annotations; not left in the user's namespace

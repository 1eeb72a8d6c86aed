"""capture() with real writes to fds 1 and 2, the way TensorFlow's C++ runtime writes."""

import ctypes
import ctypes.util
import io
import os
import subprocess
import sys
from typing import Any

import pytest

from components.kernel.capture import capture

libc = ctypes.CDLL(ctypes.util.find_library("c"))


def fd_identity(fd):
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


@pytest.fixture
def streams():
    return io.StringIO(), io.StringIO()


def test_os_write_reaches_the_right_streams(streams):
    out, err = streams
    with capture(out, err):
        os.write(1, b"to stdout\n")
        os.write(2, b"to stderr\n")
    assert out.getvalue() == "to stdout\n"
    assert err.getvalue() == "to stderr\n"


def test_c_level_write_is_captured(streams):
    out, err = streams
    with capture(out, err):
        msg = b"I tensorflow/core: from C\n"
        libc.write(2, msg, len(msg))
        libc.printf(b"printf %d\n", 42)  # buffered C stdio: capture must flush it before restoring
    assert err.getvalue() == "I tensorflow/core: from C\n"
    assert out.getvalue() == "printf 42\n"


def test_large_output_does_not_deadlock_and_keeps_order(streams):
    out, err = streams
    lines = [f"line {i:06d} " + "x" * 100 + "\n" for i in range(20000)]  # ~2.2 MB, far beyond a pipe buffer
    with capture(out, err):
        for line in lines:
            os.write(1, line.encode())
    assert out.getvalue() == "".join(lines)


def test_subprocess_output_is_captured(streams):
    out, err = streams
    with capture(out, err):
        subprocess.run(["sh", "-c", "echo from child; echo child err >&2"], check=True)
    assert out.getvalue() == "from child\n"
    assert err.getvalue() == "child err\n"


def test_fds_are_restored_after_an_exception(streams):
    before = fd_identity(1), fd_identity(2)
    with pytest.raises(ZeroDivisionError), capture(*streams):
        os.write(1, b"partial\n")
        1 / 0  # noqa: B018
    assert (fd_identity(1), fd_identity(2)) == before
    assert streams[0].getvalue() == "partial\n"


def test_nested_use(streams):
    outer_out, outer_err = streams
    inner_out = io.StringIO()
    before = fd_identity(1)
    with capture(outer_out, outer_err):
        os.write(1, b"outer 1\n")
        with capture(inner_out, io.StringIO()):
            os.write(1, b"inner\n")
        os.write(1, b"outer 2\n")
    assert inner_out.getvalue() == "inner\n"
    assert outer_out.getvalue() == "outer 1\nouter 2\n"
    assert fd_identity(1) == before


def test_utf8_split_across_reads(streams):
    out, _ = streams
    data = ("é" * 50000).encode()
    with capture(*streams):
        for i in range(0, len(data), 7):  # odd chunk size splits the two-byte characters
            os.write(1, data[i:i + 7])
    assert out.getvalue() == "é" * 50000


def test_defaults_to_sys_streams():
    code = (
        "import os, sys, io\n"
        "sys.path.insert(0, '.')\n"
        "from components.kernel.capture import capture\n"
        "buf = io.StringIO(); sys.stdout = buf\n"
        "with capture():\n    os.write(1, b'via fd\\n')\n"
        "sys.stdout = sys.__stdout__\n"
        "print(repr(buf.getvalue()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == repr("via fd\n")


# --- safe wherever the startup file loads (issue 7 §6) --------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPTURE_FILE = os.path.join(ROOT, "components", "kernel", "capture.py")


def run_python(code, timeout=60, **kw):
    """A fresh interpreter whose fd 1 is a real pipe and sys.stdout is fd 1, as in terminal IPython."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=timeout, **kw)


def open_fds():
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))


def test_startup_file_leaves_only_capture_in_the_users_namespace():
    # IPython runs startup files with the user namespace as globals; so does this.
    namespace: dict[str, Any] = {"__name__": "__main__"}
    with open(CAPTURE_FILE) as f:
        exec(compile(f.read(), CAPTURE_FILE, "exec"), namespace)
    assert set(namespace) - {"__builtins__", "__name__"} == {"capture"}
    out = io.StringIO()
    with namespace["capture"](out, io.StringIO()):
        os.write(1, b"works from the namespace\n")
    assert out.getvalue() == "works from the namespace\n"


def test_one_mib_to_the_real_stdout_neither_hangs_nor_loops():
    """sys.stdout is fd 1 itself: forwarding to it must not feed the pipe back into itself."""
    code = (
        "import os, sys, time\n"
        "from components.kernel.capture import capture\n"
        "with capture():\n"
        "    os.write(1, b'x' * (1 << 20))\n"
        "    print('py', flush=True)\n"
        "    os.write(2, b'err\\n')\n"
        "    t0 = time.process_time(); time.sleep(0.5); busy = time.process_time() - t0\n"
        "print('busy', busy, file=sys.stderr)\n"
    )
    done = run_python(code, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"x" * (1 << 20) + b"py\n", "everything once, in order"
    err = done.stderr.decode()
    assert err.startswith("err\n")
    busy = float(err.split("busy ")[1])
    assert busy < 0.05, f"the pump spun a core for {busy:.2f}s CPU during a 0.5s sleep"


def test_a_small_write_to_the_real_stdout_does_not_spin():
    code = (
        "import os, sys, time\n"
        "from components.kernel.capture import capture\n"
        "with capture():\n"
        "    os.write(1, b'small\\n')\n"
        "    t0 = time.process_time(); time.sleep(1.0); busy = time.process_time() - t0\n"
        "print('busy', busy, file=sys.stderr)\n"
    )
    done = run_python(code, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"small\n"
    busy = float(done.stderr.decode().split("busy ")[1])
    assert busy < 0.03, f"the pump used {busy:.2f}s CPU while the block slept 1s"


def test_fds_above_1023_work():
    code = (
        "import os, io, resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))\n"
        "filler = [os.open('/dev/null', os.O_RDONLY) for _ in range(1100)]\n"
        "assert max(filler) > 1023\n"
        "from components.kernel.capture import capture\n"
        "out = io.StringIO()\n"
        "with capture(out, io.StringIO()):\n"
        "    r, w = os.pipe(); assert r > 1023; os.close(r); os.close(w)\n"
        "    os.write(1, b'high fds\\n')\n"
        "print(repr(out.getvalue()))\n"
    )
    done = run_python(code, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == repr("high fds\n")


def test_a_target_that_raises_does_not_stop_the_pump_and_is_reported():
    code = (
        "import os, io, warnings\n"
        "from components.kernel.capture import capture\n"
        "class Exploding(io.StringIO):\n"
        "    def write(self, s): raise OSError('target broke')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    with capture(Exploding(), io.StringIO()):\n"
        "        os.write(1, b'y' * (1 << 20))  # would block forever if the pump had died\n"
        "os.write(2, ('\\n'.join(str(w.message) for w in caught) + '\\n').encode())\n"
    )
    done = run_python(code, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"y" * (1 << 20), "nothing lost: it went to the original fd"
    assert "target broke" in done.stderr.decode() and "capture()" in done.stderr.decode()


def test_two_threads_do_not_corrupt_each_others_fds():
    import threading

    before = fd_identity(1), fd_identity(2)
    fds_before = open_fds()
    results = {}
    start = threading.Barrier(2)

    def worker(name):
        out = io.StringIO()
        start.wait()
        for _ in range(20):
            with capture(out, io.StringIO()):
                os.write(1, f"{name}\n".encode())
        results[name] = out.getvalue()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {"a": "a\n" * 20, "b": "b\n" * 20}
    assert (fd_identity(1), fd_identity(2)) == before
    assert open_fds() == fds_before


def test_a_child_that_keeps_the_pipe_open_does_not_stall_the_block_or_leak_fds():
    code = (
        "import os, io, subprocess, sys, time\n"
        "from components.kernel.capture import capture\n"
        "def fds(): return sorted(os.listdir('/proc/self/fd'))\n"
        "before = fds(); out = io.StringIO()\n"
        "t0 = time.monotonic()\n"
        "with capture(out, io.StringIO()):\n"
        "    os.write(1, b'in block\\n')\n"
        "    child = subprocess.Popen(['sh', '-c', 'sleep 1.5; echo late from child'])\n"
        "took = time.monotonic() - t0\n"
        "child.wait()\n"
        "deadline = time.monotonic() + 5\n"
        "while fds() != before and time.monotonic() < deadline: time.sleep(0.05)\n"
        "print(repr(out.getvalue()), took < 1.0, fds() == before, file=sys.stderr)\n"
    )
    done = run_python(code, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().strip() == f"{'in block' + chr(10)!r} True True"
    assert done.stdout == b"late from child\n", "the child's later output goes where it would have gone without capture()"


# --- TF_CPP_MIN_LOG_LEVEL for what TensorFlow logs through absl at import -------------------------

# What TensorFlow 2.21 writes to fd 2 at import on a CPU with AVX-512 VNNI, whatever the level
# (seen on this project's CI machine), then a warning, an error and a line of the package's own.
FAKE_TF_INIT = r'''
import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"I0000 00:00:1796425117.500571     402 port.cc:153] oneDNN custom operations are on.\n")
os.write(2, b"W0000 00:00:1796425117.600000     402 cuda.cc:12] a warning\n")
os.write(2, b"E0000 00:00:1796425117.700000     402 cuda.cc:13] an error\n")
os.write(2, b"plain text from the package\n")
__version__ = "fake"
'''

KERNEL_LIKE = r'''
import io, os, sys
# like ipykernel's stream: not fd 2 itself
sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)
sys.path.insert(0, sys.argv[1])
namespace = {"__name__": "__main__"}
exec(compile(open(sys.argv[2]).read(), sys.argv[2], "exec"), namespace)
assert set(namespace) - {"__builtins__", "__name__"} == {"capture"}, sorted(namespace)
import tensorflow
os.write(2, b"I0000 00:00:1796425118.000000     402 later.cc:1] after the import\n")
print("loader", type(tensorflow.__loader__).__name__, file=sys.stderr)
'''


def import_fake_tensorflow(tmp_path, level: str | None) -> str:
    pkg = tmp_path / "tensorflow"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(FAKE_TF_INIT)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    result = subprocess.run([sys.executable, "-c", KERNEL_LIKE, str(tmp_path), CAPTURE_FILE], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stderr


def test_level_2_drops_absl_info_and_warnings_at_tensorflow_import(tmp_path):
    err = import_fake_tensorflow(tmp_path, "2")
    assert "oneDNN" not in err and "a warning" not in err and "absl::InitializeLog" not in err
    assert "an error" in err and "plain text from the package" in err
    assert "after the import" in err, "only the import is filtered, later output is the user's"
    assert "loader SourceFileLoader" in err, "the module keeps its own loader"


def test_level_0_or_unset_shows_everything(tmp_path):
    for level in ("0", None):
        err = import_fake_tensorflow(tmp_path, level)
        assert "absl::InitializeLog" in err and "oneDNN" in err and "a warning" in err and "an error" in err


def test_importing_the_module_installs_no_import_hook():
    code = "import sys; sys.path.insert(0, '.'); n = len(sys.meta_path); import components.kernel.capture; print(len(sys.meta_path) - n)"
    assert run_python(code, text=True, check=True).stdout.strip() == "0"

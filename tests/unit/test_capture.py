"""capture() with real writes to fds 1 and 2, the way TensorFlow's C++ runtime writes."""

import ctypes
import ctypes.util
import io
import os
import subprocess
import sys

import pytest

from components.capture import capture

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
        "from components.capture import capture\n"
        "buf = io.StringIO(); sys.stdout = buf\n"
        "with capture():\n    os.write(1, b'via fd\\n')\n"
        "sys.stdout = sys.__stdout__\n"
        "print(repr(buf.getvalue()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == repr("via fd\n")

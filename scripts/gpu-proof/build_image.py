"""The GPU proof's notebook image, made on the GPU host from its own Python, without a registry.

Why: a GPU host without network cannot pull tensorflow's jupyter image, but its Python has torch/jax/numpy/
tensorboard with their CUDA libraries. This streams exactly what that Python needs into `docker import`: the
interpreter and its standard library, the installed distributions reachable from torch, jax (and its CUDA
plugins), numpy and tensorboard (Requires-Dist followed, markers evaluated; the pip-installed NVIDIA CUDA
libraries with them), the shared libraries all of that links to (ldd), a shell and a few tools for the
containers' commands, plus the carried Jupyter wheels installed into /opt/tfbox/jupyter (`pip --target`, so
nothing on the host changes). Host files go into the tar stream straight from where they are: no copy on
disk. The image behaves like tensorflow's jupyter image as tfbox needs it (scripts/tf-image.sh): working dir
/tf, /etc/bash.bashrc, the `bash -c "source /etc/bash.bashrc && jupyter notebook …"` command, tensorboard on
PATH, and NVIDIA's container conventions (/usr/local/nvidia/bin on PATH and its lib64 on the library path,
where the CDI spec mounts the driver's files). The driver's own libraries are never copied in.

Runs with the host's Python and its standard library only (pip's vendored `packaging` from the carried pip
wheel evaluates the markers). Usage: see --help; run.sh calls it.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path
from typing import Any

BASE_ROOTS = ("numpy", "tensorboard")
# the GPU library the cell multiplies with: torch, else jax (both only on request: each brings GBs of CUDA libraries)
GPU_LIBRARIES = {"torch": ("torch",), "jax": ("jax", "jaxlib"), "both": ("torch", "jax", "jaxlib")}
# jax's CUDA plugins and the NVIDIA libraries they use come in through extras: taken whenever installed, with jax
PLUGIN_PREFIXES = ("jax-cuda", "jax_cuda", "nvidia-")
TOOLS = ("bash", "sh", "env", "mkdir", "sleep", "cat", "ls", "rm", "cp", "mv", "ln", "chmod", "id", "uname",
         "head", "tail", "grep", "sed", "awk", "tr", "cut", "date", "touch", "true", "false", "ps", "ldconfig")
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "dist-packages",
               "__phello__", "pydoc_data"}
# the NVIDIA driver's libraries come from the host at run time (CDI spec / the runtime); never baked in
DRIVER_LIB = re.compile(r"^lib(cuda|nvidia-|nvcuvid|nvoptix|nvidia_)")
JUPYTER = "/opt/tfbox/jupyter"
CMD = ["bash", "-c", "source /etc/bash.bashrc && jupyter notebook --notebook-dir=/tf --ip 0.0.0.0 --no-browser --allow-root"]


def log(msg: str) -> None:
    print(f"build_image: {msg}", flush=True)


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def needed(requires: dict[str, list[str]], library: str = "auto") -> list[str]:
    """Which of the installed distributions (normalised name -> its Requires-Dist) the notebook needs: numpy,
    tensorboard and the GPU library (`library`: torch, jax, both, or auto: torch if installed, else jax), with jax
    its CUDA plugins and the pip-installed NVIDIA libraries, and everything they require on this platform (markers
    evaluated, extras not taken); requirements that are not installed are left out. Pure."""
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement

    if library == "auto":
        library = "torch" if "torch" in requires else "jax"
    roots = [*BASE_ROOTS, *GPU_LIBRARIES[library]]
    todo = [n for n in roots if n in requires]
    if "jax" in todo:
        todo += [n for n in requires if n.startswith(PLUGIN_PREFIXES)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in requires[name]:
            try:
                req = Requirement(spec)
            except InvalidRequirement:  # a malformed requirement of some distribution: skip it
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if norm(req.name) in requires:
                todo.append(norm(req.name))
    return sorted(seen)


def closure(pip_wheel: str, library: str = "auto") -> list[md.Distribution]:
    """The installed distributions the notebook needs (see `needed`)."""
    sys.path.insert(0, pip_wheel)  # pip's vendored packaging evaluates the markers: no import needed from the host
    installed: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name and norm(name) not in installed:  # the first on sys.path wins, as for imports
            installed[norm(name)] = dist
    return [installed[n] for n in needed({n: d.requires or [] for n, d in installed.items()}, library)]


def dist_files(dist: md.Distribution) -> list[Path]:
    files = dist.files
    if files is not None:
        return [Path(str(dist.locate_file(f))) for f in files]
    # no RECORD (installed by a system package manager): the top-level packages beside its metadata
    base = Path(str(dist.locate_file("")))
    names = (dist.read_text("top_level.txt") or "").split() or [dist.metadata["Name"].replace("-", "_")]
    out: list[Path] = []
    for n in names:
        for cand in (base / n, base / f"{n}.py"):
            if cand.exists():
                out.append(cand)
    meta = getattr(dist, "_path", None)
    if meta is not None:
        out.append(Path(meta))
    return out


def canonical(path: Path) -> Path:
    """The path with its directories resolved (so /lib/x.so is /usr/lib/x.so on a merged-/usr host), the last
    component kept as it is (a symlink stays one)."""
    path = Path(os.path.abspath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def ldd(path: Path) -> list[Path]:
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


class Tree:
    """The set of host paths that go into the image, each with the symlinks it needs."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()

    def add(self, path: Path, depth: int = 0) -> None:
        path = canonical(path)
        if path in self.paths or depth > 20 or not os.path.lexists(path):
            return
        self.paths.add(path)
        if path.is_symlink():
            target = os.readlink(path)
            self.add(path.parent / target, depth + 1)

    def add_tree(self, root: Path, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        root = canonical(root)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith("config-")]
            for name in filenames:
                self.add(Path(dirpath) / name)
            for name in dirnames:
                p = Path(dirpath) / name
                if p.is_symlink():
                    self.add(p)

    def add_libs(self) -> int:
        """Every shared library the ELF files need, found the way the host's loader finds them."""
        checked: set[Path] = set()
        added = 0
        while True:
            elves = [p for p in self.paths if p not in checked and not p.is_symlink() and p.is_file() and
                     (p.suffix == ".so" or ".so." in p.name or os.access(p, os.X_OK)) and is_elf(p)]
            if not elves:
                return added
            for p in elves:
                checked.add(p)
                for lib in ldd(p):
                    if DRIVER_LIB.match(lib.name) or str(lib).startswith("/usr/local/nvidia"):
                        continue
                    if canonical(lib) not in self.paths:
                        self.add(lib)
                        added += 1


def python_tree(tree: Tree) -> list[str]:
    """The interpreter, its standard library and its venv if it is one; returns the PATH entries it needs."""
    exe = Path(sys.executable)
    tree.add(exe)
    tree.add(Path(os.path.realpath(exe)))
    for key in ("stdlib", "platstdlib"):
        tree.add_tree(Path(sysconfig.get_paths()[key]), STDLIB_SKIP)
    if sys.prefix != sys.base_prefix:  # a venv: its pyvenv.cfg and bin/python* links
        tree.add(Path(sys.prefix) / "pyvenv.cfg")
        for p in (Path(sys.prefix) / "bin").glob("python*"):
            tree.add(p)
    # Debian/Ubuntu keep sitecustomize in /etc/python3.X
    etc = Path(f"/etc/python{sys.version_info.major}.{sys.version_info.minor}")
    if etc.is_dir():
        tree.add_tree(etc)
    return [str(canonical(exe).parent), os.path.realpath(sysconfig.get_paths()["scripts"])]


def under_tmp(path_dirs: list[str]) -> str | None:
    """The first of these PATH entries that lies under /tmp, where TensorBoard's container has a tmpfs of its own."""
    tmp = Path("/tmp")
    return next((d for d in path_dirs if Path(d) == tmp or tmp in Path(d).parents), None)


def tool_tree(tree: Tree) -> None:
    for tool in TOOLS:
        found = shutil.which(tool, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        if found:
            tree.add(Path(found))
    for top in ("bin", "sbin", "lib", "lib64"):
        if Path("/", top).is_symlink():
            tree.add(Path("/", top))
    loader = Path("/lib64/ld-linux-x86-64.so.2")
    if loader.exists():
        tree.add(loader)
    for conf in ("/etc/ld.so.conf",):
        if Path(conf).exists():
            tree.add(Path(conf))
    if Path("/etc/ld.so.conf.d").is_dir():
        tree.add_tree(Path("/etc/ld.so.conf.d"))


def install_jupyter(pip_wheel: str, wheels: str, work: Path) -> Path:
    """The carried Jupyter wheels, installed for the host's Python into a directory of their own."""
    target = work / "jupyter"
    shutil.rmtree(target, ignore_errors=True)
    reqs = sorted(str(p) for p in Path(wheels).glob("*.whl"))
    subprocess.run([str(canonical(Path(sys.executable))), f"{pip_wheel}/pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--disable-pip-version-check", "--no-warn-script-location", "--root-user-action=ignore",
                    "--target", str(target), *reqs], check=True)
    return target


def skeleton(bashrc: str) -> dict[str, tuple[bytes, int]]:
    """Small files of the image's own (path -> content, mode)."""
    return {
        "etc/passwd": (b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0o644),
        "etc/group": (b"root:x:0:\nnogroup:x:65534:\n", 0o644),
        "etc/hostname": (b"tf\n", 0o644),
        "etc/bash.bashrc": (Path(bashrc).read_bytes(), 0o644),
        "etc/tfbox-gpu-proof": (b"notebook image of the tfbox GPU proof, made from the GPU host's own Python\n", 0o644),
    }


def stream(tree: Tree, jupyter: Path, files: dict[str, tuple[bytes, int]], out: io.BufferedWriter) -> int:
    """Write the image's tar to `out`; returns the bytes of file content in it."""
    total = 0
    written: set[str] = set()

    def put(info: tarfile.TarInfo, data: Any = None) -> None:
        nonlocal total
        if info.name in written:  # Docker refuses a tar with a path twice
            return
        written.add(info.name)
        tar.addfile(info, data)
        if info.isreg():
            total += info.size

    def put_host(path: Path, arcname: str, traversable: bool = False) -> None:
        if arcname in written:
            return
        info = tar.gettarinfo(str(path), arcname=arcname)
        if traversable:  # a directory above what the image needs (a Python under /root): TensorBoard's user passes
            info.mode |= 0o555
        if info.isreg():
            with open(path, "rb") as f:
                put(info, f)
        else:
            put(info)

    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        dirs = {"tf": 0o777, "tmp": 0o1777, "etc": 0o755, "usr": 0o755, "usr/local": 0o755,
                "usr/local/nvidia": 0o755, "usr/local/nvidia/bin": 0o755, "usr/local/nvidia/lib64": 0o755,
                "proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755, "var": 0o755, "var/tmp": 0o1777}
        for d, mode in dirs.items():
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, now
            put(info)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, now
            put(info, io.BytesIO(data))
        parents: set[Path] = set()
        for p in tree.paths:
            parents.update(q for q in p.parents if q != Path("/"))
        for parent in sorted(parents - tree.paths):
            if not parent.is_symlink():
                put_host(parent, str(parent).lstrip("/"), traversable=True)
        info = tarfile.TarInfo("root")  # root's home, unless a host Python below it made it traversable above
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, now
        put(info)
        for p in sorted(tree.paths):
            put_host(p, str(p).lstrip("/"))
        jroot = JUPYTER.lstrip("/")
        for name in ("opt", "opt/tfbox", jroot):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            put(info)
        for p in sorted(jupyter.rglob("*")):
            if "__pycache__" not in p.parts:
                put_host(p, f"{jroot}/{p.relative_to(jupyter)}")
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docker-host", required=True)
    ap.add_argument("--wheels", required=True, help="directory of the Jupyter wheels")
    ap.add_argument("--pip", required=True, help="the carried pip wheel")
    ap.add_argument("--bashrc", required=True, help="the image's /etc/bash.bashrc (scripts/tf-image/bash.bashrc)")
    ap.add_argument("--work", required=True, help="scratch directory (the installed Jupyter wheels)")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--library", choices=("auto", *GPU_LIBRARIES), default=os.environ.get("TFBOX_GPU_PROOF_LIBRARY", "auto"),
                    help="the GPU library in the image (default auto: torch if installed, else jax)")
    a = ap.parse_args()
    t0 = time.monotonic()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)

    dists = closure(a.pip, a.library)
    names = [f"{d.metadata['Name']}=={d.version}" for d in dists]
    log(f"Python {sys.version.split()[0]} at {sys.executable}; {len(dists)} distributions: {' '.join(names)}")
    have = {norm(d.metadata["Name"]) for d in dists}
    if "tensorboard" not in have:
        log("error: this Python has no tensorboard (pip install tensorboard), which the lab's TensorBoard runs")
        return 1
    tree = Tree()
    path_dirs = python_tree(tree)
    # the lab's TensorBoard container mounts a tmpfs on /tmp (components.model.hardening.TENSORBOARD_TMPFS): a Python
    # that lives there is hidden from it, and its start fails with "tensorboard: executable file not found"
    if (hidden := under_tmp(path_dirs)) is not None:
        log(f"error: this Python's programs are under /tmp ({hidden}), which the lab's TensorBoard container covers "
            "with a tmpfs of its own: use a Python (or venv) outside /tmp, e.g. TFBOX_GPU_PROOF_PYTHON=/opt/venv/bin/python3")
        return 1
    for d in dists:
        for f in dist_files(d):
            tree.add(f)
    tool_tree(tree)
    jupyter = install_jupyter(a.pip, a.wheels, work)
    tree.paths.add(canonical(Path(sys.executable)))
    # the Jupyter wheels' compiled extensions need their libraries too
    for p in jupyter.rglob("*.so*"):
        for lib in ldd(p):
            if not DRIVER_LIB.match(lib.name):
                tree.add(lib)
    added = tree.add_libs()
    log(f"{len(tree.paths)} host paths ({added} shared libraries found by ldd), Jupyter in {JUPYTER}")

    env_path = ":".join(dict.fromkeys(["/usr/local/nvidia/bin", f"{JUPYTER}/bin", *path_dirs,
                                        "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]))
    changes = [
        "WORKDIR /tf", "EXPOSE 8888",
        f"ENV PATH={env_path}",
        "ENV LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
        f"ENV PYTHONPATH={JUPYTER}",  # the tested Jupyter set first; torch/jax/numpy from the host's site-packages
        f"ENV JUPYTER_PATH={JUPYTER}/share/jupyter", f"ENV JUPYTER_CONFIG_PATH={JUPYTER}/etc/jupyter",
        "ENV LANG=C.UTF-8", "ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility",
        "LABEL tfbox.gpu-proof=1", f"CMD {json.dumps(CMD)}",
    ]
    cmd = ["docker", "-H", a.docker_host, "import", *(x for c in changes for x in ("--change", c)), "-", a.tag]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        size = stream(tree, jupyter, skeleton(a.bashrc), proc.stdin)  # type: ignore[arg-type]
        proc.stdin.close()
        if proc.wait() != 0:
            log("error: docker import failed")
            return 1
    log(f"imported {a.tag}: {size / 2**20:.0f} MiB of files in {time.monotonic() - t0:.0f} s")

    check = ("set -e; cd /tf; jupyter notebook --version; jupyter server --version; tensorboard --version 2>/dev/null | tail -n 1; "
             "python3 -c 'import sys, ipykernel, numpy; print(sys.version.split()[0], \"ipykernel\", ipykernel.__version__, "
             "\"numpy\", numpy.__version__)'")
    done = subprocess.run(["docker", "-H", a.docker_host, "run", "--rm", "--network", "none", a.tag, "bash", "-c", check],
                          capture_output=True, text=True, check=False)
    print(done.stdout + done.stderr, end="")
    if done.returncode != 0:
        log("error: the image does not run Jupyter, TensorBoard and its Python")
        return 1
    size_out = subprocess.run(["docker", "-H", a.docker_host, "image", "inspect", "--format", "{{.Size}}", a.tag],
                              capture_output=True, text=True, check=True).stdout.strip()
    log(f"image {a.tag}: {int(size_out) / 2**20:.0f} MiB, ready in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

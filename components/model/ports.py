"""The published ports and their bind addresses (`tfbox:notebookPort`, `…Bind`) and TensorBoard's mode, read and checked."""

from __future__ import annotations

from dataclasses import dataclass

from components.model.binds import bind_problem, binds_overlap, is_loopback, normalise_bind
from components.model.keys import NAMESPACE, TENSORBOARD_MODES
from components.model.reader import Reader


@dataclass(frozen=True)
class PortsAndBinds:
    ports: dict[str, int]  # notebookPort, tensorboardPort
    binds: dict[str, str]  # notebookBind, tensorboardBind (normalised where valid)
    valid_binds: bool


def read_ports_and_binds(r: Reader) -> PortsAndBinds:
    ports: dict[str, int] = {}
    for name in ("notebookPort", "tensorboardPort"):
        port = r.value(name)
        if not 1 <= port <= 65535:
            r.add(name, f"{port} is not a TCP port", "pick a port from 1 to 65535")
        ports[name] = port
    binds: dict[str, str] = {}
    valid_binds = True
    for name in ("notebookBind", "tensorboardBind"):
        bind = r.value(name)
        problem = bind_problem(bind)
        if problem:
            valid_binds = False
            r.add(name, problem, "write 127.0.0.1 for this machine only, or 0.0.0.0 for every interface")
        else:
            bind = normalise_bind(bind)
        binds[name] = bind
    return PortsAndBinds(ports, binds, valid_binds)


@dataclass(frozen=True)
class TensorBoardSettings:
    mode: str
    public: bool
    proxy: bool  # off when there is no TensorBoard to serve
    proxy_key: bool = False  # tfbox:tensorboardProxy as written: a cluster's notebook keeps its route while mode is off


def read_tensorboard(r: Reader, pb: PortsAndBinds, warnings: list[str]) -> TensorBoardSettings:
    ports, binds, valid_binds = pb.ports, pb.binds, pb.valid_binds
    tb_mode = r.value("tensorboardMode")
    if tb_mode not in TENSORBOARD_MODES:
        r.add("tensorboardMode", f"unknown mode {tb_mode!r}", "write sidecar, exec or off")
    tb_public = r.value("tensorboardPublic")
    if tb_mode != "off" and valid_binds and not is_loopback(binds["tensorboardBind"]) and not tb_public:
        r.add("tensorboardBind", f"TensorBoard has no login and {binds['tensorboardBind']} publishes it beyond this machine",
              "bind it to 127.0.0.1 (and use an SSH tunnel), or set tfbox:tensorboardPublic to true to accept that")
    tb_proxy = proxy_key = bool(r.value("tensorboardProxy"))
    if tb_proxy and tb_mode == "off":
        # new stacks get the key written true: turning TensorBoard off then must not need a second edit. On a
        # cluster the notebook keeps its /tensorboard/ route (answering 502 while TensorBoard is off), so turning
        # TensorBoard off and on again never replaces the notebook's pod (components.kubernetes.tensorboard)
        serves = ("keeps its /tensorboard/ route, which answers 502 until TensorBoard is back" if r.value("backend") == "kubernetes"
                  else "serves no /tensorboard/")
        warnings.append(f"{NAMESPACE}:tensorboardProxy is true but {NAMESPACE}:tensorboardMode is off: there is no "
                        f"TensorBoard to serve, so the notebook {serves} (set tensorboardMode to sidecar "
                        "or exec for it, or tensorboardProxy to false to silence this)")
        tb_proxy = False
    if (tb_mode in TENSORBOARD_MODES and tb_mode != "off" and ports["notebookPort"] == ports["tensorboardPort"]
            and binds_overlap(*(b if bind_problem(b) is None else "0.0.0.0"  # as Docker would read it
                                for b in (binds["notebookBind"], binds["tensorboardBind"])))):
        r.add("tensorboardPort", f"host port {ports['notebookPort']} is also the notebook's port, {NAMESPACE}:notebookPort",
              f"give {NAMESPACE}:tensorboardPort and {NAMESPACE}:notebookPort different ports (6006 and 8888 are usual)")
    return TensorBoardSettings(tb_mode, tb_public, tb_proxy, proxy_key)

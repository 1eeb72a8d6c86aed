"""The notebook's TLS keys (`tfbox:tlsCert`, `tfbox:tlsKey`) checked against each other and the bind address."""

from __future__ import annotations

from components.model.binds import bind_problem, is_loopback
from components.model.keys import PasswordState
from components.model.reader import Reader
from components.model.tls import TlsError, check_pair, load_cert


def check_tls(r: Reader, stack: str, bind: str, key_state: PasswordState | None, key: str | None, seat_tls: bool = False) -> str:
    """The notebook's certificate (\"\" for plain HTTP), checking it against its key and the bind address;
    `seat_tls`: the seats have certificates of their own, so no shared one is needed."""
    cert = str(r.value("tlsCert")).strip()
    cert = cert + "\n" if cert else ""  # the engine drops a value's final newline; a PEM file ends with one
    make_tls = f"run `make tls STACK={stack}` (a self-signed certificate kept in the stack config)"
    own = (f"or give your own: `pulumi config set --plaintext tfbox:tlsCert --stack {stack} < cert.pem` and "
           f"`pulumi config set --secret tfbox:tlsKey --stack {stack} < key.pem`")
    if key_state == "plaintext":
        r.add("tlsKey", "is stored in plaintext in the stack file",
              f"run `pulumi config rm tfbox:tlsKey --stack {stack}` then `pulumi config set --secret tfbox:tlsKey --stack {stack} < key.pem`")
    if cert:
        try:
            load_cert(cert)
        except TlsError as e:
            r.add("tlsCert", str(e), f"{make_tls}, {own}")
            return ""
        if key_state == "missing":
            r.add("tlsKey", "is not set but tfbox:tlsCert is", f"`pulumi config set --secret tfbox:tlsKey --stack {stack} < key.pem`, or {make_tls}")
        elif key is not None:
            for problem in check_pair(cert, key):
                name, _, text = problem.partition(" ")
                r.add(name, text, f"{make_tls}, {own}")
        return cert
    if key_state in ("secret", "plaintext"):
        r.add("tlsCert", "is not set but tfbox:tlsKey is", f"`pulumi config set --plaintext tfbox:tlsCert --stack {stack} < cert.pem`, or {make_tls}")
    elif key_state == "missing" and not seat_tls and not bind_problem(bind) and not is_loopback(bind) and not r.value("allowPlainHttpOnLan"):
        r.add("notebookBind", f"{bind} publishes the notebook beyond this machine over plain HTTP, so the password and "
              "session cookie cross the network in cleartext",
              f"{make_tls}, {own}; or bind it to 127.0.0.1 and use an SSH tunnel; or set tfbox:allowPlainHttpOnLan "
              "to true to accept the risk")
    return ""


# --- stack files -------------------------------------------------------------------------


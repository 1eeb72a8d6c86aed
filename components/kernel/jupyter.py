"""The Jupyter config files the notebook container gets, as text: the JSON settings (login, TLS, culling)
and the Python config (the login guard, the TensorBoard proxy's loader), plus the kernel-side files
uploaded as they are. Plain text builders: the backend only uploads what they return.

Any change to a text here changes every notebook container's upload, which replaces running notebooks
on the next `up`: say so in CHANGELOG.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.model.commands import TENSORBOARD_PROXY_DIR, TLS_CERT_PATH, TLS_KEY_PATH
from components.model.kernels import culling_settings

HERE = Path(__file__).parent
CAPTURE_SOURCE = (HERE / "capture.py").read_text()
TENSORBOARD_PROXY_SOURCE = (HERE / "tensorboard_proxy.py").read_text()
LOGIN_GUARD_SOURCE = (HERE / "login_guard.py").read_text()


def jupyter_config(hashed_password: str, tls: bool = False, cull_idle_seconds: int = 0, remote_access: bool = False) -> str:
    """Jupyter Server 2 settings: password login only, no token; HTTPS with the uploaded pair if `tls`;
    idle kernels culled after `cull_idle_seconds` (components.model.kernels; 0: never, and no setting written).

    `remote_access` only when the notebook is published beyond loopback (which needs TLS or an explicit
    opt-in). Otherwise Jupyter's DNS-rebinding guard stays on: it answers only requests whose Host header
    is a loopback address or `localhost` (jupyter_server's check_host reads the header, not the peer, so
    `127.0.0.1:<port>` through docker-proxy and an SSH tunnel to `localhost:<port>` still log in).

    Uploaded as a file rather than passed as flags or env so the hash shows up in neither
    `docker inspect` nor `ps`; TensorFlow's old PASSWORD env var is ignored by current images.
    """
    config: dict[str, dict[str, object]] = {
        "IdentityProvider": {"token": ""},
        "PasswordIdentityProvider": {
            "hashed_password": hashed_password,
            "password_required": True,
            "allow_password_change": False,
        },
        "ServerApp": {"allow_remote_access": remote_access},
    }
    if tls:
        config["ServerApp"].update(certfile=TLS_CERT_PATH, keyfile=TLS_KEY_PATH)
    config.update(culling_settings(cull_idle_seconds))
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def tensorboard_proxy_config(target: str) -> str:
    """`jupyter_server_config.py`, loaded beside the JSON file: Jupyter reads both, and only a Python
    config can put the extension's directory on sys.path (the image's site-packages path varies).
    Extensions are enabled the way `jupyter server extension enable` does it, added to the image's."""
    from components.kernel.tensorboard_proxy import MODULE, TARGET_SETTING

    return "\n".join([
        "# Written by tfbox: TensorBoard behind the notebook's login (components/tensorboard_proxy.py).",  # uploaded: its text is the input
        "import sys",
        f"sys.path.insert(0, {TENSORBOARD_PROXY_DIR!r})",
        "c = get_config()  # noqa: F821 (given by Jupyter's config loader)",
        f"c.ServerApp.jpserver_extensions.update({{{MODULE!r}: True}})",
        f"c.ServerApp.tornado_settings.update({{{TARGET_SETTING!r}: {target!r}}})",
        "",
    ])


def jupyter_py_config(proxy_target: str | None) -> str:
    """The one Python config Jupyter reads beside the JSON (a config directory has one such file): the login
    guard (components/kernel/login_guard.py) always, and the loader of the TensorBoard proxy when it is on."""
    return LOGIN_GUARD_SOURCE if proxy_target is None else LOGIN_GUARD_SOURCE + "\n" + tensorboard_proxy_config(proxy_target)

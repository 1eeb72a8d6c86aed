"""The login flood guard (components/kernel/login_guard.py) Jupyter reads as its .py config file."""

import json
import runpy
from pathlib import Path

from jupyter_server.auth.login import LoginFormHandler
from traitlets.config import Config

from components.model import commands
from tests.docker.test_program import run

GUARD = str(Path(commands.__file__).parents[1] / "kernel" / "login_guard.py")


def test_as_jupyter_executes_it_the_login_handler_is_the_guarded_one():
    config = Config()
    ns = runpy.run_path(GUARD, init_globals={"c": config, "get_config": lambda: config})
    handler = config.IdentityProvider.login_handler_class
    assert handler is ns["TfboxLoginHandler"] and issubclass(handler, LoginFormHandler)
    assert ns["CHECKS_AT_ONCE"] >= 1 and ns["MAX_WAITING"] >= ns["CHECKS_AT_ONCE"]


def test_imported_it_changes_no_config():
    from components.kernel import login_guard

    assert issubclass(login_guard.TfboxLoginHandler, LoginFormHandler)


def test_every_notebook_gets_the_guard_next_to_its_json_config():
    rec, _ = run()
    uploads = rec.one("docker:index/container:Container", "notebook").inputs["uploads"]
    if isinstance(uploads, dict):  # a list holding a secret is a secret as a whole
        uploads = uploads["value"]
    files = {u["file"]: u.get("content") for u in uploads}
    assert files[commands.JUPYTER_PY_CONFIG_PATH] == Path(GUARD).read_text()
    assert "login_handler_class" not in json.dumps(files.get(commands.JUPYTER_CONFIG_PATH) or "")

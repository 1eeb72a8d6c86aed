"""TensorBoard behind the notebook's login (components.kernel.tensorboard_proxy): the pure parts, the key, what
the program uploads, and the extension loaded by a real Jupyter Server 2 (the dev venv's, the same
version as the test image's) from the generated config, in front of a stand-in TensorBoard."""

from __future__ import annotations

import http.client
import http.cookiejar
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pulumi
import pytest
from jupyter_server.auth.security import passwd

from components.kernel import jupyter
from components.kernel.jupyter import jupyter_py_config
from components.kernel.tensorboard_proxy import request_headers, response_headers, upstream_url
from components.model import commands
from components.model.errors import ConfigError
from components.model.parse import parse_config
from tests.docker.program import run_program, stack_config, with_machine_secrets
from tests.docker.test_seats import run_seats

CONTAINER = "docker:index/container:Container"
TARGET = "http://tfbox-dev-tensorboard:6006"


# --- the pure parts ------------------------------------------------------------------------------


def test_the_prefix_is_stripped_and_the_query_kept():
    assert upstream_url(TARGET, "/", "/tensorboard/", "") == TARGET + "/"
    assert upstream_url(TARGET, "/", "/tensorboard/data/plugin/scalars/scalars", "run=a%2Fb&tag=loss") == \
        TARGET + "/data/plugin/scalars/scalars?run=a%2Fb&tag=loss"
    assert upstream_url(TARGET, "/user/x/", "/user/x/tensorboard/index.js", "") == TARGET + "/index.js"
    # the fonts TensorBoard's page names from the server root come from TensorBoard too, path kept
    assert upstream_url(TARGET, "/", "/font-roboto/a.woff2", "") == TARGET + "/font-roboto/a.woff2"
    assert upstream_url(TARGET, "/user/x/", "/user/x/font-roboto/a.woff2", "") == TARGET + "/font-roboto/a.woff2"
    for outside in ("/tensorboard", "/tensorboardx/", "/api/contents", "/user/x/api", "/font-roboto", "/static/x"):
        assert upstream_url(TARGET, "/", outside, "") is None


@pytest.mark.parametrize("path", ["/tensorboard/@evil.example/x", "/tensorboard//evil.example/x",
                                  "/tensorboard/http://evil.example/", "/tensorboard/..%2f..%2fetc", "/tensorboard/:80@x/"])
def test_the_upstream_is_tfbox_s_whatever_the_request_says(path):
    parts = urlsplit(upstream_url(TARGET, "/", path, "a=http://evil.example/") or "")
    assert (parts.scheme, parts.netloc) == ("http", "tfbox-dev-tensorboard:6006"), "no open proxy"


def test_the_notebook_s_credentials_do_not_reach_tensorboard():
    sent = request_headers([
        ("Cookie", "username-127-0-0-1-8888=secret; _xsrf=x"), ("Authorization", "token abc"), ("X-XSRFToken", "x"),
        ("Host", "box:8888"), ("Connection", "keep-alive"), ("Transfer-Encoding", "chunked"), ("Content-Length", "9"),
        ("Accept", "application/json"), ("Content-Type", "multipart/form-data; boundary=b"),
        ("X-XSRF-Protected", "1"),  # TensorBoard's own guard for its POSTs: it must pass
        ("Accept-Encoding", "gzip"), ("If-None-Match", '"e"'),
    ])
    assert sent == [("Accept", "application/json"), ("Content-Type", "multipart/form-data; boundary=b"),
                    ("X-XSRF-Protected", "1"), ("Accept-Encoding", "gzip"), ("If-None-Match", '"e"')]


def test_tensorboard_s_answer_sets_no_cookie_and_redirects_stay_under_the_proxy():
    got = response_headers([("Content-Type", "text/html"), ("Set-Cookie", "a=1"), ("Content-Length", "5"),
                            ("Connection", "close"), ("Location", "/data/x"), ("Content-Encoding", "gzip")], "/")
    assert got == [("Content-Type", "text/html"), ("Location", "/tensorboard/data/x"), ("Content-Encoding", "gzip")]
    assert response_headers([("Location", "runs/")], "/") == [("Location", "runs/")], "relative: already under it"
    assert response_headers([("Location", "//evil.example/")], "/") == [("Location", "//evil.example/")]
    assert ("Content-Length", "5") in response_headers([("Content-Length", "5")], "/", head=True)


# --- the key -------------------------------------------------------------------------------------


def parsed(**raw: object):
    return parse_config({"passwordSalt": "a" * 32, **raw}, stack="dev", password_state="secret")


def test_the_key_is_off_when_absent_so_existing_stacks_keep_their_notebook():
    assert parsed().tensorboard_proxy is False
    assert parsed(tensorboardProxy="true").tensorboard_proxy is True
    assert parsed(tensorboardProxy=True, tensorboardMode="exec").tensorboard_proxy is True


def test_with_tensorboard_off_the_key_is_ignored_with_a_warning():
    cfg = parsed(tensorboardProxy=True, tensorboardMode="off")
    assert cfg.tensorboard_proxy is False
    assert any("tfbox:tensorboardProxy" in w and "tensorboardMode is off" in w for w in cfg.warnings)
    assert not any("tensorboardProxy" in w for w in parsed(tensorboardMode="off").warnings)


def test_a_bad_value_names_the_key():
    with pytest.raises(ConfigError, match="tfbox:tensorboardProxy: 'yes' is not a boolean"):
        parsed(tensorboardProxy="yes")


def test_new_stacks_get_it_on():
    template = (Path(__file__).parents[2] / "templates" / "Pulumi.machine.yaml").read_text()
    assert "\n  tfbox:tensorboardProxy: true\n" in template
    up = (Path(__file__).parents[2] / "scripts" / "up.sh").read_text()
    assert "new_stack=true" in up and "pulumi config set --plaintext tfbox:tensorboardProxy true" in up
    dev = (Path(__file__).parents[2] / "Pulumi.dev.yaml").read_text()
    assert "tensorboardProxy" not in dev, "the committed dev stack file would turn it on for existing dev labs"


# --- what the program declares -------------------------------------------------------------------


def run(**overrides: object):
    pulumi.runtime.settings.ROOT.set(None)  # a fresh root stack: the mocks' one would carry other runs' outputs
    cfg = with_machine_secrets(stack_config("dev"))
    cfg["tfbox:password"] = "correct horse battery staple"
    cfg.update({f"tfbox:{k}": v for k, v in overrides.items()})
    return run_program(cfg)


def uploads(rec, name="notebook"):
    return {u["file"]: u["content"] for u in rec.one(CONTAINER, name).inputs["uploads"]["value"]}


def test_off_the_notebook_is_exactly_as_before():
    base, out = run()
    files = uploads(base)
    assert set(files) == {commands.JUPYTER_CONFIG_PATH, commands.CAPTURE_STARTUP_PATH, commands.JUPYTER_PY_CONFIG_PATH}
    assert files[commands.JUPYTER_PY_CONFIG_PATH] == jupyter_py_config(None), "the login guard alone, no proxy loader"
    assert "tfbox_tensorboard" not in files[commands.JUPYTER_PY_CONFIG_PATH]
    assert "tensorboardProxyUrl" not in out
    assert "/tensorboard/" not in base.one(CONTAINER, "ready").inputs["command"][2]
    off, _ = run(tensorboardProxy=False)
    assert off.one(CONTAINER, "notebook").inputs == base.one(CONTAINER, "notebook").inputs


def test_on_the_notebook_gets_the_extension_and_a_config_naming_the_sidecar():
    rec, out = run(tensorboardProxy=True)
    files = uploads(rec)
    assert files[commands.TENSORBOARD_PROXY_MODULE_PATH] == (Path(__file__).parents[2] / "components" / "kernel" / "tensorboard_proxy.py").read_text()
    config = files[commands.JUPYTER_PY_CONFIG_PATH]
    assert "'tfbox_tensorboard_target': 'http://tfbox-dev-tensorboard:6006'" in config
    assert config.startswith((Path(__file__).parents[2] / "components" / "kernel" / "login_guard.py").read_text()), \
        "one Python config per directory: the login guard stays in it"
    assert out["tensorboardProxyUrl"] == "http://127.0.0.1:8888/tensorboard/"
    labels = {i["label"]: i["value"] for i in rec.one(CONTAINER, "notebook").inputs["labels"]}
    assert labels["tfbox.tensorboard-proxy"] == "true", "what `make status` lists the proxied URL by"
    assert out["tensorboardUrl"] == "http://127.0.0.1:6006/", "TensorBoard's own port is unchanged"
    assert "GET\", \"/tensorboard/\"" in rec.one(CONTAINER, "ready").inputs["command"][2]
    # TensorBoard itself does not change: turning the proxy on replaces the notebook (and its ready check) only
    base, _ = run()
    assert rec.one(CONTAINER, "tensorboard").inputs == base.one(CONTAINER, "tensorboard").inputs


def test_exec_mode_proxies_to_tensorboard_inside_the_notebook():
    rec, _ = run(tensorboardProxy=True, tensorboardMode="exec")
    assert "'tfbox_tensorboard_target': 'http://127.0.0.1:6006'" in uploads(rec)[commands.JUPYTER_PY_CONFIG_PATH]


def test_each_seat_proxies_to_its_own_tensorboard():
    rec, out = run_seats(tensorboardProxy=True)
    for seat, port in (("alice", 8888), ("bob", 8889)):
        config = uploads(rec, f"{seat}-notebook")[commands.JUPYTER_PY_CONFIG_PATH]
        assert f"'http://tfbox-dev-{seat}-tensorboard:6006'" in config
        assert out["seats"][seat]["tensorboardProxyUrl"] == f"http://127.0.0.1:{port}/tensorboard/"
    assert out["tensorboardProxyUrl"] == "alice=http://127.0.0.1:8888/tensorboard/ bob=http://127.0.0.1:8889/tensorboard/"
    _, off = run_seats()
    assert "tensorboardProxyUrl" not in off and "tensorboardProxyUrl" not in off["seats"]["alice"]


# --- the extension in a real Jupyter Server --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandIn(http.server.BaseHTTPRequestHandler):
    """A TensorBoard stand-in that answers with what it was asked."""

    def _answer(self, body: bytes = b"") -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        seen = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body.decode()}
        out = json.dumps(seen).encode() + b" " * 300_000  # more than one chunk: streamed through
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "tb=1")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def log_message(self, *args: object) -> None:
        pass


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def __call__(self, method: str, path: str, data: bytes | None = None, **headers: str) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={k.replace("_", "-"): v for k, v in headers.items()})
        try:
            resp = self.opener.open(req, timeout=30)
        except urllib.error.HTTPError as e:
            resp = e
        return resp.status, dict(resp.headers), resp.read()

    def login(self, password: str) -> None:
        self("GET", "/login")
        xsrf = next(c.value for c in self.jar if c.name == "_xsrf")
        status, headers, _ = self("POST", "/login", urllib.parse.urlencode({"password": password, "_xsrf": xsrf}).encode())
        assert status == 302 and "/login" not in headers["Location"], "logged in"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Jupyter Server 2 with tfbox's JSON config and the generated Python config, the module importable as
    the notebook container has it, in front of the stand-in; the stand-in is stopped for the last test."""
    tmp = tmp_path_factory.mktemp("tbproxy")
    config_dir, module_dir = tmp / "config", tmp / "modules"
    config_dir.mkdir()
    module_dir.mkdir()
    tb_port, nb_port = free_port(), free_port()
    standin = http.server.ThreadingHTTPServer(("127.0.0.1", tb_port), StandIn)
    threading.Thread(target=standin.serve_forever, daemon=True).start()
    password = "a password of the test"
    (config_dir / "jupyter_server_config.json").write_text(jupyter.jupyter_config(passwd(password)))
    # the file the notebook gets: the login guard, then the proxy's loader (components.docker.notebook.jupyter_py_config)
    (config_dir / "jupyter_server_config.py").write_text(jupyter_py_config(f"http://127.0.0.1:{tb_port}"))
    shutil.copy(Path(commands.__file__).parents[1] / "kernel" / "tensorboard_proxy.py", module_dir / "tfbox_tensorboard_proxy.py")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_CONFIG_PATH": str(config_dir),
           "JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "PYTHONPATH": str(module_dir)}  # where the generated config's sys.path entry is in the container
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--port={nb_port}", "--ip=127.0.0.1",
                             "--no-browser", "--allow-root", f"--ServerApp.root_dir={tmp}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection("127.0.0.1", nb_port, timeout=2).request("GET", "/api")
                break
            except OSError:
                time.sleep(0.2)
        yield SimpleNamespace(url=f"http://127.0.0.1:{nb_port}", port=nb_port, password=password, standin=standin,
                              log=tmp / "server.log")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        standin.shutdown()


def test_without_a_login_the_browser_goes_to_the_login_page_and_api_calls_get_403(server):
    anonymous = Browser(server.url)
    for path in ("/tensorboard/", "/tensorboard/data/logdir?x=1", "/tensorboard"):
        status, headers, _ = anonymous("GET", path)
        assert status == 302 and headers["Location"].startswith("/login?next="), (path, status, headers)
    assert anonymous("POST", "/tensorboard/data/x", b"a=1", Referer=server.url + "/tensorboard/")[0] == 403
    assert "tfbox TensorBoard proxy: /tensorboard/ ->" in server.log.read_text()


def test_logged_in_the_request_reaches_tensorboard_without_the_notebook_s_credentials(server):
    me = Browser(server.url)
    me.login(server.password)
    status, headers, body = me("GET", "/tensorboard/data/plugin/scalars/scalars?run=a%2Fb&tag=loss",
                               Authorization="token x", X_XSRFToken="y", X_XSRF_Protected="1")
    assert status == 200 and headers["Content-Type"] == "application/json"
    seen = json.loads(body)
    assert seen["path"] == "/data/plugin/scalars/scalars?run=a%2Fb&tag=loss"
    sent = {k.lower() for k in seen["headers"]}
    assert not sent & {"cookie", "authorization", "x-xsrftoken"} and "x-xsrf-protected" in sent
    assert seen["headers"]["Host"] == f"127.0.0.1:{server.standin.server_port}"
    assert "Set-Cookie" not in headers
    assert len(body) > 300_000, "the whole streamed body"
    assert me("GET", "/tensorboard?a=1")[1]["Location"] == "/tensorboard/?a=1"
    assert me("GET", "/tensorboard/redirect")[1]["Location"] == "/tensorboard/elsewhere"
    assert json.loads(me("GET", "/font-roboto/x.woff2")[2])["path"] == "/font-roboto/x.woff2"
    assert Browser(server.url)("GET", "/font-roboto/x.woff2")[0] == 302, "behind the login too"
    status, headers, body = me("HEAD", "/tensorboard/x")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 300_000


def test_tensorboard_s_posts_pass_from_the_same_origin_only(server):
    me = Browser(server.url)
    me.login(server.password)
    status, _, body = me("POST", "/tensorboard/experiment/defaultExperimentId/data/plugin/timeseries/timeSeries",
                         b"requests=%5B%5D", Referer=server.url + "/tensorboard/", Content_Type="application/x-www-form-urlencoded",
                         X_XSRF_Protected="1")
    assert status == 200 and json.loads(body)["body"] == "requests=%5B%5D"
    assert me("POST", "/tensorboard/x", b"a=1", Referer="https://evil.example/")[0] == 403, "cross-site: no"
    assert me("POST", "/tensorboard/x", b"a=1")[0] == 403, "no Referer, no XSRF token: no"


def test_the_ready_check_accepts_the_proxy_and_names_the_fix_where_it_is_missing(server):
    check = commands.tensorboard_proxy_check(tls=False).replace(" 8888", f" {server.port}")
    assert subprocess.run(["bash", "-c", check], capture_output=True, text=True, timeout=30).returncode == 0
    bare = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)  # a server without the extension: no login redirect
    threading.Thread(target=bare.serve_forever, daemon=True).start()
    try:
        done = subprocess.run(["bash", "-c", check.replace(f" {server.port}", f" {bare.server_port}")],
                              capture_output=True, text=True, timeout=30)
    finally:
        bare.shutdown()
    assert done.returncode == 1
    assert "does not serve /tensorboard/" in done.stdout and "tfbox:tensorboardProxy to false" in done.stdout


def test_with_tensorboard_down_the_answer_says_so(server):
    server.standin.shutdown()
    server.standin.server_close()
    me = Browser(server.url)
    me.login(server.password)
    status, _, body = me("GET", "/tensorboard/")
    assert status == 502 and b"TensorBoard does not answer" in body

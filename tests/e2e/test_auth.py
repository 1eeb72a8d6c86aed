"""A notebook published beyond loopback (0.0.0.0): HTTPS with the stack's self-signed certificate
made by `make tls` (scripts/up.sh --tls), login with the argon2id hash on the real server, the
served certificate is the one whose fingerprint the stack outputs, plain HTTP logs nobody in, the
password and its hash are in no state, inspect, log or transcript, a real browser logs in with
the pinned certificate and sees a run's scalars in TensorBoard behind the notebook's login
(`tensorboardProxy`, issue 19; logged out, the same URL is the login page; its own port still answers),
a flood of wrong-password logins does not stall a logged-in user (components/login_guard.py),
and a new password replaces only the notebook."""

from __future__ import annotations

import hashlib
import http.client
import json
import multiprocessing
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from components.model.password import hash_password
from components.model.tls import check_pair
from tests.e2e.browser import chromium, log_in, on_login_page, tensorboard_shows_scalars
from tests.e2e.harness import Docker, Jupyter, Project, change_summary, free_port, http_get, write_scalars

NB, TB = "tfbox-auth-notebook", "tfbox-auth-tensorboard"
RUN = "proxy-run"  # a run's scalars, seen through the proxy in test 6
NOTEBOOK, SOURCE = "tfbox-e2e-auth.ipynb", "print('kept across a password change')"


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, cpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    nb_port, tb_port = free_port(), free_port()
    stack = project.stack("auth", {
        "docker:host": docker_a.host, "tfbox:image": cpu_image, "tfbox:notebookBind": "0.0.0.0",
        "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port, "tfbox:tensorboardProxy": True,
    }, password)
    made = project.run("scripts/up.sh", "auth", "--tls")  # = make tls STACK=auth, with the test's backend
    config = yaml.safe_load((project.dir / "Pulumi.auth.yaml").read_text())["config"]
    cert = config["tfbox:tlsCert"]
    stack.up()
    write_scalars(docker_a, NB, f"/tf/logs/{RUN}")  # TensorBoard reads them while the first tests run (test 6)
    yield SimpleNamespace(stack=stack, project=project, docker=docker_a, password=password, cert=cert, made=made,
                          salt=config["tfbox:passwordSalt"], url=f"https://127.0.0.1:{nb_port}", port=nb_port,
                          tb=f"http://127.0.0.1:{tb_port}")
    stack.destroy(check=False)
    for vol in ("tfbox-auth-notebooks", "tfbox-auth-logs"):
        docker_a("volume", "rm", vol, check=False)


def test_1_make_tls_kept_the_key_secret_and_the_notebook_is_on_every_interface(lab: SimpleNamespace) -> None:
    config = yaml.safe_load((lab.project.dir / "Pulumi.auth.yaml").read_text())["config"]
    assert set(config["tfbox:tlsKey"]) == {"secure"}, "the key is stored encrypted"
    key = lab.stack.project.pulumi("config", "get", "tfbox:tlsKey", "--stack", "auth").stdout
    assert check_pair(lab.cert, key) == []
    binding = lab.docker.inspect(NB)["HostConfig"]["PortBindings"]["8888/tcp"][0]
    assert binding["HostIp"] in ("0.0.0.0", "") and binding["HostPort"] == str(lab.port)
    outputs = lab.stack.outputs()
    assert outputs["notebookUrl"].startswith("https://")
    assert outputs["tensorboardProxyUrl"] == outputs["notebookUrl"] + "tensorboard/"
    tb_binding = lab.docker.inspect(TB)["HostConfig"]["PortBindings"]["6006/tcp"][0]
    assert tb_binding["HostIp"] == "127.0.0.1", "TensorBoard's own port stays on loopback"


def test_2_https_login_with_the_argon2_hash(lab: SimpleNamespace) -> None:
    assert not Jupyter(lab.url, lab.cert).login(lab.password + "x")
    session = Jupyter(lab.url, lab.cert)
    assert session.login(lab.password)
    status, _ = session.request("GET", "/api/contents")
    assert status == 200
    session.save_notebook(NOTEBOOK, SOURCE)
    result = session.execute("print('over wss', 6 * 7)")  # the kernel WebSocket over TLS too
    assert "over wss 42" in result["stdout"], result


def test_3_served_certificate_is_the_output_fingerprint(lab: SimpleNamespace) -> None:
    ctx = ssl.create_default_context(cadata=lab.cert)
    with socket.create_connection(("127.0.0.1", lab.port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    served = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert served == lab.stack.outputs()["notebookCertSha256"]


def test_3b_make_status_lists_the_https_urls_the_stack_outputs(lab: SimpleNamespace) -> None:
    """`make status` read the scheme from an `https:` the bash health check no longer has: it said http://."""
    r = lab.project.run(".venv/bin/python", "scripts/status.py", "--stack", "auth", "--json", check=False, timeout=300)
    [machine] = json.loads(r.stdout)["machines"]
    [seat] = machine["seats"]
    outputs = lab.stack.outputs()
    assert seat["urls"]["notebook"] == outputs["notebookUrl"] and outputs["notebookUrl"].startswith("https://"), seat["urls"]
    assert seat["urls"]["tensorboard-proxy"] == outputs["tensorboardProxyUrl"] == outputs["notebookUrl"] + "tensorboard/"


def test_4_plain_http_to_the_port_logs_nobody_in(lab: SimpleNamespace) -> None:
    plain = Jupyter(f"http://127.0.0.1:{lab.port}")
    try:
        logged_in = plain.login(lab.password)
    except (OSError, http.client.HTTPException, urllib.error.URLError):
        logged_in = False
    assert not logged_in
    assert not any(c.name.startswith("username-") for c in plain.jar), "no session cookie over plain HTTP"


def test_5_password_and_hash_are_nowhere(lab: SimpleNamespace) -> None:
    hashed = hash_password(lab.password, lab.salt)
    digest = hashed.rsplit("$", 1)[1]
    key = lab.stack.project.pulumi("config", "get", "tfbox:tlsKey", "--stack", "auth").stdout
    key_body = key.splitlines()[1]
    places = {
        "pulumi stack export": lab.stack.export(),
        "docker inspect": lab.docker("inspect", NB, TB).stdout,
        "docker logs": lab.docker("logs", NB).output,
        "CLI transcript": "\n".join(t for t in lab.project.transcript if "config get tfbox:tlsKey" not in t),
    }
    for where, text in places.items():
        for secret, what in ((lab.password, "password"), (digest, "hash"), (key_body, "TLS key")):
            assert secret not in text, f"the {what} is in the {where}"
    # ...while the server does use exactly this hash: Jupyter accepted the password above with it
    config = lab.docker("exec", NB, "cat", "/etc/jupyter/jupyter_server_config.json").stdout
    assert hashed in config


SCREENSHOT = Path(os.environ.get("TFBOX_RUN", "/tmp/tfbox-run")) / "tensorboard-proxy.png"


def test_6_browser_logs_in_with_the_pinned_certificate_and_sees_scalars_behind_the_login(lab: SimpleNamespace) -> None:
    deadline = time.monotonic() + 60
    while RUN not in http_get(lab.tb + "/data/runs")[1].decode() and time.monotonic() < deadline:
        time.sleep(1)  # TensorBoard reads its logdir every 5 s
    with chromium(lab.cert) as driver:
        driver.get(lab.url + "/tensorboard/")
        assert on_login_page(driver), f"logged out, /tensorboard/ must be the login page: {driver.current_url}"
        log_in(driver, lab.url, lab.password)
        assert driver.current_url.startswith(lab.url + "/api/contents")
        assert NOTEBOOK in driver.page_source, "the logged-in browser lists the saved notebook"
        requests = tensorboard_shows_scalars(driver, lab.url + "/tensorboard/", RUN, "loss", "0.12")
        assert driver.current_url.startswith(lab.url + "/tensorboard/"), "served over the notebook's HTTPS"
        time.sleep(2)  # the chart's line is drawn by a web worker after the table: for the picture only
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        # every request of the page went through the proxy and was answered, the time series POST included
        statuses = {url.split("?")[0]: status for url, status, _ in requests}
        assert statuses, "the page made requests"
        assert all(url.startswith(lab.url + "/") for url in statuses), statuses
        assert {u: s for u, s in statuses.items() if s != 200} == {}, "everything TensorBoard's page asked for answered"
        assert statuses.get(lab.url + "/tensorboard/experiment/defaultExperimentId/data/plugin/timeseries/timeSeries") == 200
        # TensorBoard's own port, on loopback, still answers as before (the same TensorBoard drew the page above)
        assert http_get(lab.tb + "/")[0] == 200
        # logged out (the session cookie gone), the same URL is the login page again
        driver.delete_all_cookies()
        driver.get(lab.url + "/tensorboard/")
        assert on_login_page(driver), driver.current_url


FLOOD_CLIENTS, FLOOD_SECONDS, STATUS_BOUND_S = 24, 8.0, 1.0


def _flood(port: int, cert: str, stop: threading.Event, codes: list[int]) -> None:
    """One attacker: wrong-password login POSTs back to back on one kept-alive connection, as fast as answered."""
    ctx = ssl.create_default_context(cadata=cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    try:
        conn.request("GET", "/login")
        resp = conn.getresponse()
        resp.read()
        xsrf = next((c.split("=", 1)[1].split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie") or []
                     if c.startswith("_xsrf=")), "")
        body = urllib.parse.urlencode({"password": "not-the-password", "_xsrf": xsrf})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"_xsrf={xsrf}"}
        while not stop.is_set():
            conn.request("POST", "/login", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            codes.append(r.status)
    except (OSError, http.client.HTTPException):
        codes.append(-1)
    finally:
        conn.close()


def _attackers(port: int, cert: str, seconds: float, out: Connection) -> None:
    """The whole flood, in a process of its own: 24 TLS clients in the measuring process would hold its GIL
    and time the test's own threads instead of the notebook's answers."""
    stop, codes = threading.Event(), list[int]()
    threads = [threading.Thread(target=_flood, args=(port, cert, stop, codes), daemon=True)
               for _ in range(FLOOD_CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    out.send(codes)
    out.close()


def test_6b_a_login_flood_does_not_stall_the_notebook(lab: SimpleNamespace) -> None:
    """Issue 22 (part B, finding 3): while clients flood the login form with wrong passwords, a logged-in
    user's API calls still answer: the median within STATUS_BOUND_S (or 3x the slowest call without the
    flood, on a busy machine) and four calls in five within twice that. Before the login guard, Jupyter
    checked each argon2id hash (~0.15 s of CPU) on its event loop and every call waited seconds; a single
    slow call is the shared CI machine, not a stall. The right password still logs in after."""
    session = Jupyter(lab.url, lab.cert)
    assert session.login(lab.password)

    def timed_status() -> float:
        start = time.monotonic()
        status, _ = session.request("GET", "/api/status")
        assert status == 200
        return time.monotonic() - start

    quiet = sorted(timed_status() for _ in range(5))
    receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    flood = multiprocessing.get_context("fork").Process(
        target=_attackers, args=(lab.port, lab.cert, FLOOD_SECONDS + 1.0, send), daemon=True)
    flood.start()
    send.close()
    loaded: list[float] = []
    try:
        time.sleep(1.0)  # the flood is under way
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            loaded.append(timed_status())
            time.sleep(0.2)
        codes: list[int] = receive.recv() if receive.poll(150) else []
    finally:
        flood.join(timeout=30)
        if flood.is_alive():
            flood.kill()
    loaded.sort()
    median, p80 = loaded[len(loaded) // 2], loaded[(len(loaded) * 4) // 5]
    report = (f"/api/status quiet median {quiet[2]:.3f}s; under a flood of {FLOOD_CLIENTS} clients ({len(codes)} login POSTs, "
              f"{codes.count(401)} answered 401, {codes.count(429)} answered 429, {codes.count(-1)} errors): "
              f"median {median:.3f}s, 80th percentile {p80:.3f}s, max {loaded[-1]:.3f}s over {len(loaded)} calls")
    print(report)
    assert codes.count(401) + codes.count(429) >= FLOOD_CLIENTS, f"the flood did not run: {report}"
    assert all(c in (401, 429) for c in codes), f"a wrong password got something else: {report}"
    # the bound allows for a busy test machine (3x the slowest quiet call), never the seconds a stall costs
    bound = max(STATUS_BOUND_S, 3 * quiet[-1])
    assert median < bound, f"the notebook stalled under the login flood (median bound {bound:.2f}s): {report}"
    assert p80 < 2 * bound, f"the notebook stalled under the login flood (80th percentile bound {2 * bound:.2f}s): {report}"
    assert Jupyter(lab.url, lab.cert).login(lab.password), "the right password logs in after the flood"


def test_7_new_password_replaces_only_the_notebook_and_keeps_notebooks(lab: SimpleNamespace) -> None:
    before_tb = lab.docker.inspect(TB)["Id"]
    new_password = lab.password + "-changed"
    lab.project.pulumi("config", "set", "--secret", "tfbox:password", "--stack", "auth", input=new_password)
    res = lab.stack.up()
    # the notebook, and the one-shot ready check that waits for every new notebook; TensorBoard stays
    assert change_summary(res.output) == {"replaced": 2}, res.output[-3000:]
    assert lab.docker.inspect(TB)["Id"] == before_tb
    assert not Jupyter(lab.url, lab.cert).login(lab.password)
    session = Jupyter(lab.url, lab.cert)
    assert session.login(new_password)
    assert session.read_notebook_source(NOTEBOOK) == SOURCE
    again = lab.stack.up()
    assert change_summary(again.output) == {}, "same password and salt: the same hash, nothing to change"
    lab.password = new_password


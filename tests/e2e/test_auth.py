"""A notebook published beyond loopback (0.0.0.0): HTTPS with the stack's self-signed certificate
made by `make tls` (scripts/up.sh --tls), login with the argon2id hash on the real server, the
served certificate is the one whose fingerprint the stack outputs, plain HTTP logs nobody in, the
password and its hash are in no state, inspect, log or transcript, a real browser logs in with
the pinned certificate and opens TensorBoard, a flood of wrong-password logins does not stall a
logged-in user (components/login_guard.py), and a new password replaces only the notebook."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from components.password import hash_password
from components.tls import check_pair, spki_sha256_base64
from tests.e2e.harness import Docker, Jupyter, Project, change_summary, free_port

NB, TB = "tfbox-auth-notebook", "tfbox-auth-tensorboard"
NOTEBOOK, SOURCE = "tfbox-e2e-auth.ipynb", "print('kept across a password change')"


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, cpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    nb_port, tb_port = free_port(), free_port()
    stack = project.stack("auth", {
        "docker:host": docker_a.host, "tfbox:image": cpu_image, "tfbox:notebookBind": "0.0.0.0",
        "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port,
    }, password)
    made = project.run("scripts/up.sh", "auth", "--tls")  # = make tls STACK=auth, with the test's backend
    config = yaml.safe_load((project.dir / "Pulumi.auth.yaml").read_text())["config"]
    cert = config["tfbox:tlsCert"]
    stack.up()
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
    assert lab.stack.outputs()["notebookUrl"].startswith("https://")


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


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def test_6_browser_logs_in_with_the_pinned_certificate_and_opens_tensorboard(lab: SimpleNamespace) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "scripts/install-host-deps.sh installs chromium"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a browser
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    f"--ignore-certificate-errors-spki-list={spki_sha256_base64(lab.cert)}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(60)
            driver.get(lab.url + "/login?next=%2Fapi%2Fcontents")
            assert "/login" in driver.current_url, driver.page_source[:500]
            driver.find_element(By.ID, "password_input").send_keys(lab.password)
            driver.find_element(By.ID, "login_submit").click()
            WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)
            assert driver.current_url.startswith(lab.url + "/api/contents")
            assert NOTEBOOK in driver.page_source, "the logged-in browser lists the saved notebook"
            driver.get(lab.tb + "/")
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(
                "return document.title === 'TensorBoard' && !!document.querySelector('tf-tensorboard, tb-webapp')"))
        finally:
            driver.quit()


FLOOD_CLIENTS, FLOOD_SECONDS, STATUS_BOUND_S = 24, 8.0, 1.0


def _flood(lab: SimpleNamespace, stop: threading.Event, codes: list[int]) -> None:
    """One attacker: wrong-password login POSTs back to back on one kept-alive connection, as fast as answered."""
    ctx = ssl.create_default_context(cadata=lab.cert)
    conn = http.client.HTTPSConnection("127.0.0.1", lab.port, context=ctx, timeout=60)
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


def test_6b_a_login_flood_does_not_stall_the_notebook(lab: SimpleNamespace) -> None:
    """Issue 22 (part B, finding 3): while clients flood the login form with wrong passwords, a logged-in
    user's API calls still answer within STATUS_BOUND_S, or 3x the slowest of them without the flood on a busy
    machine (Jupyter alone checks each argon2id hash, ~0.15 s
    of CPU, on its event loop: the calls waited seconds), and the right password still logs in after."""
    session = Jupyter(lab.url, lab.cert)
    assert session.login(lab.password)

    def timed_status() -> float:
        start = time.monotonic()
        status, _ = session.request("GET", "/api/status")
        assert status == 200
        return time.monotonic() - start

    quiet = sorted(timed_status() for _ in range(5))
    stop, codes = threading.Event(), list[int]()
    attackers = [threading.Thread(target=_flood, args=(lab, stop, codes), daemon=True) for _ in range(FLOOD_CLIENTS)]
    for t in attackers:
        t.start()
    loaded: list[float] = []
    try:
        time.sleep(1.0)  # the flood is under way
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            loaded.append(timed_status())
            time.sleep(0.2)
    finally:
        stop.set()
        for t in attackers:
            t.join(timeout=120)
    loaded.sort()
    report = (f"/api/status quiet median {quiet[2]:.3f}s; under a flood of {FLOOD_CLIENTS} clients ({len(codes)} login POSTs, "
              f"{codes.count(401)} answered 401, {codes.count(429)} answered 429, {codes.count(-1)} errors): "
              f"median {loaded[len(loaded) // 2]:.3f}s, max {loaded[-1]:.3f}s over {len(loaded)} calls")
    print(report)
    assert codes.count(401) + codes.count(429) >= FLOOD_CLIENTS, f"the flood did not run: {report}"
    assert all(c in (401, 429) for c in codes), f"a wrong password got something else: {report}"
    # the bound allows for a busy test machine (3x the slowest quiet call), never the seconds a stall costs
    bound = max(STATUS_BOUND_S, 3 * quiet[-1])
    assert loaded[-1] < bound, f"the notebook stalled under the login flood (bound {bound:.2f}s): {report}"
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


"""A real browser for the e2e tests: Debian's headless Chromium driven by its chromedriver (Selenium),
offline (Selenium Manager must not try to download a browser), with a throwaway profile; optionally
trusting exactly one self-signed certificate, pinned by its public key as a user would accept it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.model.tls import spki_sha256_base64

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def chromium(cert_pem: str | None = None) -> Iterator[Any]:
    """A WebDriver of a fresh headless Chromium; quit (and its profile removed) on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "scripts/install-host-deps.sh installs chromium"
    os.environ["SE_OFFLINE"] = "true"
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    "--window-size=1280,900"):
            options.add_argument(arg)
        if cert_pem is not None:
            options.add_argument(f"--ignore-certificate-errors-spki-list={spki_sha256_base64(cert_pem)}")
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(60)
            yield driver
        finally:
            driver.quit()


def log_in(driver: Any, base_url: str, password: str, next_path: str = "/api/contents") -> None:
    """Jupyter's login page, as a person fills it in; returns once the browser has left it."""
    from urllib.parse import quote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/login?next={quote(next_path, safe='')}")
    assert "/login" in driver.current_url, driver.page_source[:500]
    driver.find_element(By.ID, "password_input").send_keys(password)
    driver.find_element(By.ID, "login_submit").click()
    WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)


def on_login_page(driver: Any) -> bool:
    """The browser shows Jupyter's login form (where an anonymous visit must land)."""
    from selenium.webdriver.common.by import By

    return "/login" in driver.current_url and bool(driver.find_elements(By.ID, "password_input"))


def tensorboard_shows_scalars(driver: Any, url: str, run: str, tag: str, last_value: str, timeout: float = 90) -> list[Any]:
    """Open TensorBoard at `url` and wait until its time series dashboard draws `run`'s `tag` card with the
    run's last value in the card's table; returns the page's requests (URL, HTTP status, what made it)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)

    def drawn(d: Any) -> bool:
        text = str(d.execute_script("return document.body ? document.body.innerText : ''"))
        return (d.title == "TensorBoard" and run in text and tag in text and last_value in text
                and bool(d.execute_script("return !!document.querySelector('tb-webapp')")))

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(drawn)
    except Exception as e:
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
        raise AssertionError(f"TensorBoard at {driver.current_url} did not show {run}/{tag}: {str(text)[:1500]}") from e
    requests: list[Any] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus, e.initiatorType])")
    return requests

"""A real browser for the end-to-end tests of the panel and Roundcube: Debian's chromium driven
by Selenium through chromium-driver, resolving the lab's names to the HTTP balancer
(--host-resolver-rules). It is not told about the lab's ACME root; the tests check which root
issued the certificates with Python's ssl. Screenshots go to tests/e2e/screenshots/
(git-ignored)."""

import contextlib
import ssl
import time
from pathlib import Path

from mailstack.testing.chromium import chromium, press

SCREENSHOTS = Path(__file__).parent / "screenshots"


@contextlib.contextmanager
def new_chromium(platform):
    """A chromium of its own, so no connection of an earlier test is reused: chromium may
    coalesce HTTP/2 connections to one address, and nginx answers a request for another site on
    a connection made for one with 421 (a reseller's page once showed no brand in a shared
    browser, never in a fresh one)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    with chromium(
        platform.balancer("http"), ignore_certificate_errors=True, implicit_wait=10
    ) as driver:
        yield driver


def body_text(driver) -> str:
    """The page's visible text; a page that is being replaced (a form's submit navigating
    away) is read again once the new one stands."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _attempt in range(10):
        try:
            return driver.find_element(By.TAG_NAME, "body").text
        except (StaleElementReferenceException, NoSuchElementException):
            time.sleep(0.5)
    return ""


def fill(driver, **fields: str) -> None:
    """Type each value into the form field of that name (replacing what it held)."""
    from selenium.webdriver.common.by import By

    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)


def panel_login(driver, host: str, username: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"https://{host}/login/")
    fill(driver, username=username, password=password)
    press(driver, "Log in")


def webmail_login(driver, host: str, address: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()
    driver.get(f"https://{host}/")
    driver.find_element(By.NAME, "_user").send_keys(address)
    driver.find_element(By.NAME, "_pass").send_keys(password)
    driver.find_element(By.ID, "rcmloginsubmit").click()
    WebDriverWait(driver, 60).until(expected_conditions.presence_of_element_located(
        (By.ID, "messagelist")))  # fmt: skip


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (OSError, ssl.SSLError, ValueError, IndexError) as error:
            result, last = None, error
        if result:
            return result
        time.sleep(3)
    raise AssertionError(f"{what} within {timeout} s (last error: {last!r})")

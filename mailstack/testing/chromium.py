"""The suite's one way to start a real browser: Debian's chromium, headless, driven by Selenium
through chromium-driver (both from Debian; `make host-packages` installs them)."""

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium(
    resolve_test_names_to: str, *, ignore_certificate_errors: bool, implicit_wait: float
) -> Iterator:
    """A chromium with a profile of its own (removed afterwards) that resolves every *.test
    name to one address (the lab's HTTP balancer, or loopback), at a desktop window size; a
    Selenium WebDriver. Fails the test when chromium or its driver is missing."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are missing (make host-packages installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mailstack-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             f"--host-resolver-rules=MAP *.test {resolve_test_names_to}", "--window-size=1280,900"]  # fmt: skip
    if ignore_certificate_errors:
        flags.append("--ignore-certificate-errors")
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(implicit_wait)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def press(driver, label: str) -> None:
    """Press the form's button with this label and wait until the answer has replaced the page
    and finished loading (or the next navigation may cut it off half-way and chromium hand out
    elements of the document it abandoned)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()
    WebDriverWait(driver, 30).until(lambda _: replaced(page))
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def replaced(element) -> bool:
    """Whether `element`'s document is gone. Selenium's staleness_of misses one way chromium
    (156) says so: an 'unknown error' that the node 'does not belong to the document'."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False

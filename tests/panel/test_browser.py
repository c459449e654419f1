"""The panel in a real browser: Debian's chromium driven by Selenium through chromium-driver,
against the panel served by Django's live server on loopback with the test PostgreSQL.

Each role logs in and does its main task; a reseller's host name shows its brand (chromium
maps *.test to loopback); pages fit a phone's width. Screenshots of the main pages go to
tests/panel/screenshots/ (git-ignored) for reviewers.
"""

from pathlib import Path

import pytest
from panel_tenants import MAILBOX_PASSWORD, PASSWORD

from mailstack.testing.chromium import chromium as start_chromium
from mailstack.testing.chromium import press

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture(scope="module")
def live_server(panel_django):
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield thread.port
    thread.terminate()


@pytest.fixture(scope="module")
def chromium():
    SCREENSHOTS.mkdir(exist_ok=True)
    with start_chromium("127.0.0.1", ignore_certificate_errors=False, implicit_wait=5) as driver:
        yield driver


class Browser:
    def __init__(self, driver, port: int):
        self.driver, self.port = driver, port

    def open(self, host: str, path: str) -> None:
        self.driver.delete_all_cookies()
        self.driver.get(f"http://{host}:{self.port}{path}")

    def go(self, path: str) -> None:
        current = self.driver.current_url.split("/")[2]
        self.driver.get(f"http://{current}{path}")

    def fill(self, **fields: str) -> None:
        from selenium.webdriver.common.by import By

        for name, value in fields.items():
            element = self.driver.find_element(By.NAME, name)
            if element.get_attribute("type") == "checkbox":
                if element.is_selected() != bool(value):
                    element.click()
            elif element.get_attribute("type") == "color":
                self.driver.execute_script("arguments[0].value = arguments[1]", element, value)
            else:
                element.clear()
                element.send_keys(value)

    def submit(self, text: str) -> None:
        """Press the button and wait until the answer page has replaced this one."""
        press(self.driver, text)

    def login(self, host: str, username: str, password: str) -> None:
        self.open(host, "/login/")
        self.fill(username=username, password=password)
        self.submit("Log in")

    @property
    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


@pytest.fixture
def browser(chromium, live_server, tenants):
    chromium.set_window_size(1280, 900)
    return Browser(chromium, live_server)


def test_the_operator_adds_a_reseller_and_sees_the_status(browser):
    browser.login("panel.mailstack.test", "op", PASSWORD)
    browser.go("/resellers/new/")
    browser.fill(name="globex", brand_name="Globex Mail", primary_colour="#663399",
                 panel_hostname="panel.globex.test")  # fmt: skip
    browser.submit("Save")
    assert "Saved Globex Mail." in browser.text
    browser.go("/resellers/")
    assert "globex" in browser.text and "panel.globex.test" in browser.text
    browser.shot("operator-resellers")
    browser.go("/status/")
    assert "primary (writable)" in browser.text
    browser.shot("operator-status")
    browser.go("/audit/")
    assert "create reseller" in browser.text
    browser.shot("operator-audit")


def test_a_reseller_host_shows_its_brand_and_its_admin_adds_a_domain(browser):
    from selenium.webdriver.common.by import By

    browser.open("panel.acme.test", "/login/")
    assert browser.driver.title.endswith("Acme Mail")
    bar = browser.driver.find_element(By.CSS_SELECTOR, "header.bar")
    assert bar.value_of_css_property("background-color") == "rgba(170, 0, 0, 1)"
    browser.shot("reseller-login-acme")
    browser.open("panel.umbrella.test", "/login/")
    assert "Umbrella Post" in browser.text and "Acme" not in browser.text
    browser.shot("reseller-login-umbrella")

    browser.login("panel.acme.test", "acme-admin", PASSWORD)
    browser.go("/domains/new/")
    browser.fill(name="shop.example")
    browser.submit("Save")
    assert "Added shop.example" in browser.text
    assert "_mailstack-challenge.shop.example" in browser.text
    assert "mailstack._domainkey.shop.example" in browser.text
    browser.shot("reseller-domain-records")


def test_a_domain_admin_adds_and_finds_a_mailbox(browser, tenants):
    browser.login("panel.acme.test", "acme-dom", PASSWORD)
    domain = tenants.acme.domain.pk
    browser.go(f"/domains/{domain}/mailboxes/new/")
    browser.fill(local_part="Bad..Name", password="a-fine-passphrase-3",
                 password_again="a-fine-passphrase-3")  # fmt: skip
    browser.submit("Save")
    assert "is not a valid local part" in browser.text
    browser.fill(local_part="carol")
    browser.fill(password="a-fine-passphrase-3", password_again="a-fine-passphrase-3")
    browser.submit("Save")
    assert "Saved carol@example.org." in browser.text
    browser.go(f"/domains/{domain}/mailboxes/?q=car")
    assert "carol@example.org" in browser.text and "user@example.org" not in browser.text
    browser.shot("domain-admin-mailboxes")


def test_a_mailbox_user_sets_an_auto_reply_on_a_phone(browser, chromium):
    chromium.set_window_size(390, 844)
    browser.login("panel.acme.test", "user@example.org", MAILBOX_PASSWORD)
    assert "Settings of user@example.org" in browser.text
    browser.fill(vacation_enabled=True, vacation_subject="Away",
                 vacation_body="Back on Monday.")  # fmt: skip
    browser.submit("Save")
    assert "Saved; the mail store applies it" in browser.text
    width = chromium.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert width[0] <= width[1], f"the page is wider than the phone: {width}"
    browser.shot("mailbox-user-phone")
    browser.go("/me/forwarding/")
    browser.fill(enabled=True, targets="me@elsewhere.example", keep_copy=True)
    browser.submit("Save")
    assert "Forwarding saved." in browser.text
    from accounts.models import Forwarding

    forwarding = Forwarding.objects.get(address="user@example.org")
    assert forwarding.keep_copy
    assert list(forwarding.targets.values_list("address", flat=True)) == ["me@elsewhere.example"]

"""Each admin role's main task in a real browser, on the lab through the HTTP balancer (the
panel as nginx and gunicorn serve it on the web nodes): the operator adds a reseller and reads
the platform's status and the audit log; a reseller's admin adds a domain and is shown the
records to publish; a domain admin adds a mailbox (refused first with a clear error), which
then logs in over IMAP, and finds it by search. The mailbox user's own tasks are in
test_web_tasks.py and test_web.py."""

import imaplib
import uuid

import pytest
from browser import SCREENSHOTS, body_text, fill, panel_login

from mailstack.testing.chromium import press

pytestmark = pytest.mark.browser


def new_admin(platform, role: str, *options: str) -> tuple[str, str]:
    """(username, password) of a new panel admin, made with the account commands."""
    username, password = f"{role}-{uuid.uuid4().hex[:8]}", f"{uuid.uuid4().hex}-Aa1"
    platform.panel("admin", "add", username, "--role", role, *options, stdin=password + "\n")
    return username, password


def panel_host(platform) -> str:
    return platform.settings.environment.hostname("panel")


def test_the_operator_adds_a_reseller_and_reads_status_and_audit(platform, chromium):
    username, password = new_admin(platform, "operator")
    reseller = f"r{uuid.uuid4().hex[:8]}"
    panel_login(chromium, panel_host(platform), username, password)
    chromium.get(f"https://{panel_host(platform)}/resellers/new/")
    fill(chromium, name=reseller, brand_name="Roles Test Mail")
    press(chromium, "Save")
    assert "Saved Roles Test Mail." in body_text(chromium)
    chromium.get(f"https://{panel_host(platform)}/resellers/")
    assert reseller in body_text(chromium)
    chromium.get(f"https://{panel_host(platform)}/status/")
    assert "primary (writable)" in body_text(chromium)
    chromium.save_screenshot(str(SCREENSHOTS / "lab-operator-status.png"))
    chromium.get(f"https://{panel_host(platform)}/audit/")
    assert "create reseller" in body_text(chromium)


def test_a_resellers_admin_adds_a_domain_and_sees_what_to_publish(platform, chromium):
    reseller = f"r{uuid.uuid4().hex[:8]}"
    platform.panel("reseller", "add", reseller, "--brand-name", "Roles Test Mail")
    username, password = new_admin(platform, "reseller", "--reseller", reseller)
    domain = f"{reseller}.example"
    panel_login(chromium, panel_host(platform), username, password)
    chromium.get(f"https://{panel_host(platform)}/domains/new/")
    fill(chromium, name=domain)
    press(chromium, "Save")
    text = body_text(chromium)
    assert f"Added {domain}" in text
    # Live only once its owner proves control; signed from the start.
    assert f"_mailstack-challenge.{domain}" in text
    assert f"mailstack._domainkey.{domain}" in text
    chromium.save_screenshot(str(SCREENSHOTS / "lab-reseller-domain.png"))


def test_a_domain_admin_adds_a_mailbox_that_logs_in_and_finds_it(platform, chromium):
    from selenium.webdriver.common.by import By

    username, password = new_admin(
        platform, "domain", "--reseller", "e2e", "--domain", platform.domain
    )
    panel_login(chromium, panel_host(platform), username, password)
    chromium.get(f"https://{panel_host(platform)}/domains/")
    chromium.find_element(By.LINK_TEXT, platform.domain).click()
    domain_page = chromium.current_url.rstrip("/")
    chromium.get(f"{domain_page}/mailboxes/new/")
    local_part, secret = f"roles{uuid.uuid4().hex[:8]}", f"{uuid.uuid4().hex}-Bb2"
    fill(chromium, local_part="Bad..Name", password=secret, password_again=secret)
    press(chromium, "Save")
    assert "is not a valid local part" in body_text(chromium)
    fill(chromium, local_part=local_part, password=secret, password_again=secret)
    press(chromium, "Save")
    address = f"{local_part}@{platform.domain}"
    assert f"Saved {address}." in body_text(chromium)

    with imaplib.IMAP4_SSL(platform.access_address, 993, ssl_context=platform.client_tls()) as imap:
        assert imap.login(address, secret)[0] == "OK"

    chromium.get(f"{domain_page}/mailboxes/?q={local_part[:9]}")
    assert address in body_text(chromium)
    chromium.save_screenshot(str(SCREENSHOTS / "lab-domain-admin-mailboxes.png"))

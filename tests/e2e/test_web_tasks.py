"""What a mailbox user does in the browser, on the lab through the HTTP balancer, and what the
mail system makes of it: a message written in Roundcube reaches the peer DKIM-signed for the
user's domain (and Roundcube keeps it in Sent); an auto-reply set in the panel answers the peer's
message (the mail store applies it through Sieve, without a deploy)."""

import imaplib
import subprocess
import uuid

import pytest
from browser import SCREENSHOTS, body_text, panel_login, wait_for, webmail_login

from mailstack.testing.chromium import press
from mailstack.testing.platform import message

pytestmark = pytest.mark.browser


def sent_folder_holds(platform, mailbox, marker: str) -> bool:
    with imaplib.IMAP4_SSL(platform.access_address, 993, ssl_context=platform.client_tls()) as imap:
        imap.login(mailbox.address, mailbox.password)
        if imap.select("Sent")[0] != "OK":
            return False
        return bool(imap.search(None, "SUBJECT", marker)[1][0])


def test_a_message_written_in_webmail_reaches_the_peer_dkim_signed(platform, chromium):
    from selenium.webdriver.common.by import By

    env = platform.settings.environment
    mailbox = platform.new_mailbox()
    tag = f"composed-{uuid.uuid4().hex[:8]}"
    webmail_login(chromium, env.hostname("webmail"), mailbox.address, mailbox.password)
    chromium.get(f"https://{env.hostname('webmail')}/?_task=mail&_action=compose")
    # Roundcube's recipient field turns what is typed into an address at the comma.
    recipients = chromium.find_element(By.CSS_SELECTOR, "#compose_to .recipient-input input")
    recipients.send_keys(f"dave@{platform.peer_domain},")
    chromium.find_element(By.ID, "compose-subject").send_keys(tag)
    chromium.find_element(By.ID, "composebody").send_keys(f"Written in the browser: {tag}.")
    chromium.save_screenshot(str(SCREENSHOTS / "webmail-compose.png"))
    chromium.find_element(By.CSS_SELECTOR, ".btn.send").click()

    delivered = platform.wait_for_peer_message(tag, timeout=120)
    assert f"From: {mailbox.address}".encode() in delivered
    assert f"d={platform.domain}".encode() in delivered
    verified = subprocess.run(
        platform.lab.ssh_command(platform.lab.host(platform.internet), "dkimverify"),
        input=delivered,
        capture_output=True,
    )
    assert verified.returncode == 0 and b"signature ok" in verified.stdout, verified
    wait_for(lambda: sent_folder_holds(platform, mailbox, tag), 30, "the copy in Sent")


def test_an_auto_reply_set_in_the_panel_answers_the_peer(platform, chromium):
    from selenium.webdriver.common.by import By

    env = platform.settings.environment
    mailbox = platform.new_mailbox()
    away = f"away-{uuid.uuid4().hex[:8]}"
    panel_login(chromium, env.hostname("panel"), mailbox.address, mailbox.password)
    assert f"Settings of {mailbox.address}" in body_text(chromium)
    chromium.find_element(By.NAME, "vacation_enabled").click()
    chromium.find_element(By.NAME, "vacation_subject").send_keys(away)
    chromium.find_element(By.NAME, "vacation_body").send_keys("Back on Monday.")
    press(chromium, "Save")
    assert "Saved; the mail store applies it" in body_text(chromium)
    chromium.save_screenshot(str(SCREENSHOTS / "panel-auto-reply.png"))

    sender = f"heidi-{uuid.uuid4().hex[:8]}@{platform.peer_domain}"
    tag = f"ask-{uuid.uuid4().hex[:8]}"
    platform.peer_send(
        message("are you there", tag, sender, mailbox.address), sender, mailbox.address
    )
    platform.peer_deliver()
    assert tag.encode() in platform.wait_for_imap(mailbox, tag)
    reply = platform.wait_for_peer_message(away, timeout=120)
    assert b"Back on Monday." in reply
    assert b"Auto-Submitted: auto-replied" in reply
    assert f"d={platform.domain}".encode() in reply

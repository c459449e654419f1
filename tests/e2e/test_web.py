"""The panel and Roundcube on the web nodes, through the HTTP load balancer: TLS with the
platform's ACME certificate, each web node serving, logins in a real browser (Debian's chromium
driven by Selenium through chromium-driver), a changed password ending the mailbox's open IMAP
and webmail sessions, and a reseller's own host names showing its brand in panel and webmail.

chromium resolves the lab's names to the HTTP balancer (--host-resolver-rules) and is not told
about the lab's ACME root: which root issued the certificates is checked here with Python's ssl
against the root the web nodes trust. Screenshots go to tests/e2e/screenshots/ (git-ignored).
"""

import imaplib
import shlex
import socket
import ssl
import time
import uuid
from email.message import EmailMessage

import pytest
from browser import SCREENSHOTS, body_text, wait_for, webmail_login

from mailstack.services import webmail

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def acme_root(platform) -> str:
    """The root the web nodes trust for the platform's certificates (the lab's Pebble)."""
    return platform.sh(platform.host_name("web"), f"cat {webmail.TRUSTED_ROOT}")


def https_get(platform, root: str, name: str, path: str = "/") -> tuple[int, str]:
    """GET https://<name><path> through the HTTP balancer, the certificate checked for the name
    against `root`: the status and the body."""
    context = ssl.create_default_context(cadata=root)
    raw = socket.create_connection((platform.balancer("http"), 443), timeout=20)
    with context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def test_panel_and_webmail_answer_through_the_balancer_with_the_acme_certificate(
    platform, acme_root
):
    env = platform.settings.environment
    status, page = https_get(platform, acme_root, env.hostname("panel"), "/login/")
    assert status == 200 and platform.settings.web.brand_name in page
    status, page = https_get(platform, acme_root, env.hostname("webmail"))
    assert status == 200 and 'name="_user"' in page
    # What the balancer's health check asks when it terminates TLS itself.
    status, _ = https_get(platform, acme_root, env.hostname("panel"), "/healthz")
    assert status == 200


def node_get(platform, host: str, address: str, name: str, path: str = "/") -> str:
    """GET https://<name><path> on web node `host` itself, with the PROXY header the balancer
    sends, the certificate checked against the root the node trusts: the body."""
    return platform.sh(
        host,
        f"curl -fsS --max-time 20 --haproxy-protocol --cacert {webmail.TRUSTED_ROOT}"
        f" --resolve {name}:443:{address} {shlex.quote(f'https://{name}{path}')}",
    )


def test_each_web_node_serves_both_sites(platform):
    env = platform.settings.environment
    for host, address in zip(platform.hosts("web"), platform.addresses("web"), strict=True):
        for name, path, expected in (
            (env.hostname("panel"), "/login/", platform.settings.web.brand_name),
            (env.hostname("webmail"), "/", 'name="_user"'),
        ):
            assert expected in node_get(platform, host, address, name, path), (host, name)


def test_a_mailbox_user_reads_mail_in_webmail_and_a_new_password_ends_every_session(
    platform, chromium
):
    env = platform.settings.environment
    mailbox = platform.new_mailbox()
    marker = f"webmail-{uuid.uuid4().hex[:8]}"
    mail = EmailMessage()
    mail["From"] = f"alice@{platform.peer_domain}"
    mail["To"] = mailbox.address
    mail["Subject"] = marker
    mail.set_content(f"Read me in the browser: {marker}.")
    platform.peer_send(mail, f"alice@{platform.peer_domain}", mailbox.address)

    def arrived() -> bool:
        # The peer retries a deferral (greylisting) only on its queue's schedule: push it on.
        platform.sh(platform.internet, "postqueue -f")
        return platform.mailbox_holds(mailbox, marker)

    wait_for(arrived, 240, "the peer's message in the mailbox")

    # The panel: the mailbox user's own settings.
    from selenium.webdriver.common.by import By

    chromium.delete_all_cookies()
    chromium.get(f"https://{env.hostname('panel')}/login/")
    chromium.find_element(By.NAME, "username").send_keys(mailbox.address)
    chromium.find_element(By.NAME, "password").send_keys(mailbox.password)
    chromium.find_element(By.XPATH, "//button[normalize-space()='Log in']").click()
    wait_for(lambda: f"Settings of {mailbox.address}" in body_text(chromium), 30, "panel login")
    chromium.save_screenshot(str(SCREENSHOTS / "panel-mailbox-user.png"))

    # Roundcube: the message from the peer is in the list.
    webmail_login(chromium, env.hostname("webmail"), mailbox.address, mailbox.password)
    wait_for(lambda: marker in body_text(chromium), 60, "the message in Roundcube's list")
    chromium.save_screenshot(str(SCREENSHOTS / "webmail-inbox.png"))

    imap = imaplib.IMAP4_SSL(platform.access_address, 993, ssl_context=platform.client_tls())
    imap.login(mailbox.address, mailbox.password)
    imap.select("INBOX")
    started = time.monotonic()
    platform.panel(
        "mailbox", "change", mailbox.address, "--password-stdin", stdin=uuid.uuid4().hex + "\n"
    )

    def imap_ended() -> bool:
        try:
            imap.noop()
        except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError):
            return True
        return False

    wait_for(imap_ended, 10, "the open IMAP session ended")
    kicked_after = time.monotonic() - started
    # Roundcube's next request finds the stored password refused and ends its session.
    chromium.get(f"https://{env.hostname('webmail')}/?_task=mail&_mbox=INBOX")
    wait_for(lambda: chromium.find_elements(By.NAME, "_user"), 30, "webmail back at its login page")
    print(f"IMAP session ended {kicked_after:.1f} s after the password change")


def test_a_resellers_own_host_names_show_its_brand(platform, acme_root, chromium):
    from selenium.webdriver.common.by import By

    zone = platform.state.lab.reseller_zone
    tag = uuid.uuid4().hex[:6]
    brand = f"Brand {tag}"
    panel_name, webmail_name = f"panel-{tag}.{zone}", f"mail-{tag}.{zone}"
    platform.panel(
        "reseller", "add", f"wl{tag}", "--brand-name", brand, "--primary-colour", "#aa0000",
        "--panel-hostname", panel_name, "--webmail-hostname", webmail_name,
    )  # fmt: skip
    # The reseller-hosts job (every minute on each web node) orders the certificate and writes
    # the sites; the balancer may ask either node, so both must be done.
    started = time.monotonic()
    for host, address in zip(platform.hosts("web"), platform.addresses("web"), strict=True):
        for name, path in ((webmail_name, "/"), (panel_name, "/login/")):

            def branded(host=host, address=address, name=name, path=path) -> bool:
                try:
                    return brand in node_get(platform, host, address, name, path)
                except AssertionError:  # curl failed: no site or no valid certificate yet
                    return False

            wait_for(branded, 300, f"{host}: {name} with its brand and a valid certificate")
    assert brand in https_get(platform, acme_root, webmail_name)[1]
    print(f"reseller host names served {time.monotonic() - started:.0f} s after they were set")

    chromium.delete_all_cookies()
    chromium.get(f"https://{panel_name}/login/")
    assert chromium.title.endswith(brand), (chromium.title, body_text(chromium)[:500])
    chromium.save_screenshot(str(SCREENSHOTS / "reseller-panel-login.png"))
    chromium.get(f"https://{webmail_name}/")
    assert brand in chromium.title
    assert chromium.find_elements(By.ID, "mailstack-brand")
    chromium.save_screenshot(str(SCREENSHOTS / "reseller-webmail-login.png"))
    # The platform's own names keep the platform's brand.
    chromium.get(f"https://{platform.settings.environment.hostname('webmail')}/")
    assert brand not in chromium.title


def test_the_other_web_node_serves_a_logged_in_session_when_one_dies(platform, chromium, faults):
    from selenium.webdriver.common.by import By

    env = platform.settings.environment
    mailbox = platform.new_mailbox()
    webmail_login(chromium, env.hostname("webmail"), mailbox.address, mailbox.password)
    victim = platform.hosts("web")[0]
    faults.kill(victim)
    started = time.monotonic()

    def still_logged_in() -> bool:
        chromium.get(f"https://{env.hostname('webmail')}/?_task=mail&_mbox=INBOX")
        return bool(chromium.find_elements(By.ID, "messagelist")) and not chromium.find_elements(
            By.NAME, "_user"
        )

    chromium.implicitly_wait(0)
    try:
        wait_for(still_logged_in, 60, f"the session served without {victim}")
    finally:
        chromium.implicitly_wait(10)
    print(f"webmail session served by the other node {time.monotonic() - started:.1f} s after")
    chromium.save_screenshot(str(SCREENSHOTS / "webmail-after-node-loss.png"))

"""A changed password or a disabled mailbox ends its open sessions on Dovecot 2.4 at once.

Debian 13's Dovecot runs chrooted in a copy-on-write view of the suite's trixie tree
(mailstack.testing.trixie) on loopback, with an IMAP listener, the doveadm HTTP API and, as on
the mailstores, no auth cache. The panel's operations, pointed at that API
(MAILPANEL_DOVEADM_URL), must kick the open IMAP session, and the old password fails at the next
login.
"""

import imaplib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from django.test import override_settings

from mailstack.deploy.configfile import ConfigFile
from mailstack.testing import trixie
from mailstack.testing.processes import free_port, wait_for_port

pytestmark = pytest.mark.postgres

API_KEY = "test-only-doveadm-key"
BASE_DIR = "/run/dovecot-sessions-test"


def dovecot_conf(imap_port: int, http_port: int) -> str:
    return f"""\
dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
protocols = imap
base_dir = {BASE_DIR}
log_path = /dev/stderr
listen = 127.0.0.1
mail_driver = maildir
mail_path = ~/Maildir
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
ssl = no
auth_allow_cleartext = yes
auth_cache_size = 0
doveadm_api_key = {API_KEY}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
}}
service doveadm {{
  inet_listener http {{
    port = {http_port}
  }}
}}
!include /etc/dovecot/auth-sql.conf.ext
"""


@pytest.fixture(scope="module")
def dovecot(postgres) -> Iterator[tuple[int, int]]:
    imap_port, http_port = free_port(), free_port()
    with trixie.overlay("mailstack-dovecot-sessions-") as root:
        auth_sql = ConfigFile.template(
            "dovecot",
            "/etc/dovecot/conf.d/auth-sql.conf.ext",
            mail_root="/srv/mail",
            **postgres.lookup_settings(),
        )
        (root / "etc/dovecot/auth-sql.conf.ext").write_text(auth_sql.render())
        (root / "etc/dovecot/test.conf").write_text(dovecot_conf(imap_port, http_port))
        (root / "srv/mail").mkdir(parents=True)
        subprocess.run(["chroot", root, "chown", "dovecot:dovecot", "/srv/mail"], check=True)
        server = subprocess.Popen(
            ["chroot", root, "dovecot", "-F", "-c", "/etc/dovecot/test.conf"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(imap_port, server, timeout=60)
            wait_for_port(http_port, server, timeout=60)
            yield imap_port, http_port
        finally:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


@pytest.fixture
def mail_store(dovecot):
    """The panel's settings pointing at the test Dovecot's doveadm HTTP API."""
    imap_port, http_port = dovecot
    with override_settings(
        MAILPANEL_DOVEADM_URL=f"http://127.0.0.1:{http_port}/doveadm/v1",
        MAILPANEL_DOVEADM_API_KEY=API_KEY,
    ):
        yield imap_port


def logged_in(port: int, address: str, password: str) -> imaplib.IMAP4:
    session = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    session.login(address, password)
    return session


def refused(port: int, address: str, password: str) -> bool:
    try:
        logged_in(port, address, password).logout()
    except imaplib.IMAP4.error:
        return True
    return False


def ended(session: imaplib.IMAP4) -> bool:
    """Whether Dovecot closed the session (kick), waiting a moment for it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            session.noop()
        except (imaplib.IMAP4.abort, OSError):
            return True
        time.sleep(0.2)
    return False


def mailbox(address: str):
    from accounts.models import Mailbox

    return Mailbox.objects.select_related("domain__reseller").get(address=address)


def test_a_changed_password_ends_the_open_session_and_the_old_one_fails_at_once(
    example_org, mail_store
):
    from accounts import operations
    from accounts.audit import COMMAND_LINE

    session = logged_in(mail_store, "alice@example.org", "alice-password-1")
    other = logged_in(mail_store, "bob@example.org", "bob-password-22")
    alice = mailbox("alice@example.org")
    operations.set_password(alice, "alice-new-password-9")
    operations.save(COMMAND_LINE, alice)

    assert ended(session)
    assert refused(mail_store, "alice@example.org", "alice-password-1")
    logged_in(mail_store, "alice@example.org", "alice-new-password-9").logout()
    assert other.noop()[0] == "OK"  # another user's session goes on
    other.logout()


def test_disabling_a_mailbox_or_its_domain_ends_its_sessions(example_org, mail_store):
    from accounts import operations
    from accounts.audit import COMMAND_LINE

    alice = logged_in(mail_store, "alice@example.org", "alice-password-1")
    bob = logged_in(mail_store, "bob@example.org", "bob-password-22")
    disabled = mailbox("alice@example.org")
    disabled.enabled = False
    operations.save(COMMAND_LINE, disabled)
    assert ended(alice)
    assert refused(mail_store, "alice@example.org", "alice-password-1")
    assert bob.noop()[0] == "OK"

    domain = disabled.domain
    domain.enabled = False
    operations.save(COMMAND_LINE, domain)
    assert ended(bob)
    assert refused(mail_store, "bob@example.org", "bob-password-22")


def test_an_unreachable_mail_store_leaves_the_change_in_place_and_says_so(example_org, caplog):
    from accounts import operations
    from accounts.audit import COMMAND_LINE
    from accounts.passwords import verify_password

    alice = mailbox("alice@example.org")
    with override_settings(
        MAILPANEL_DOVEADM_URL=f"http://127.0.0.1:{free_port()}/doveadm/v1",
        MAILPANEL_DOVEADM_API_KEY=API_KEY,
    ):
        operations.set_password(alice, "alice-new-password-9")
        operations.save(COMMAND_LINE, alice)
    assert verify_password(mailbox("alice@example.org").password_hash, "alice-new-password-9")
    assert "the sessions of alice@example.org go on until they log in again" in caplog.text

"""Message tracing on the deployed lab (docs/tracing.md): a message from the internet is traced
hop by hop across the mx and mailstore nodes (postscreen, smtpd, cleanup, rspamd's score, qmgr,
LMTP's 250, Dovecot's delivery), a recipient refused before the 250 shows the refusal; a user's
outbound message shows the remote server's answer; the panel shows a domain admin their
domain's messages and another reseller's admin nothing of them."""

import time
import uuid

import pytest
from browser import body_text, panel_login
from test_web_roles import new_admin, panel_host

from mailstack.testing.platform import message

pytestmark = pytest.mark.lab

INGEST_TIMEOUT = 60
"""Seconds a node's line may take to be searchable (rsyslog hands it over at once)."""


def wait_for_trace(platform, wanted: list[str], *search: str) -> str:
    """`mailstack-panel trace search` output once it holds every string of `wanted`."""
    deadline = time.monotonic() + INGEST_TIMEOUT
    while True:
        found = platform.panel("trace", "search", *search)
        if all(w in found for w in wanted) or time.monotonic() > deadline:
            missing = [w for w in wanted if w not in found]
            assert not missing, f"{missing} not in the trace:\n{found}"
            return found
        time.sleep(2)


def test_an_inbound_message_is_traced_from_connection_to_mailbox(platform):
    mailbox = platform.new_mailbox()
    marker = f"trace-{uuid.uuid4().hex}"
    sender = f"t{uuid.uuid4().hex[:8]}@{platform.peer_domain}"
    mail = message("traced", marker, sender, mailbox.address)
    message_id = mail["Message-ID"].strip("<>")
    code, _ = platform.send_inbound(mail, mailbox.address)
    assert code == 250
    platform.wait_for_imap(mailbox, marker)

    found = wait_for_trace(
        platform,
        ["postfix/smtpd", ": client=", f"message-id=<{message_id}>", "rspamd",
         "rspamd_task_write_log", f"from: <{sender}>", "postfix/qmgr", "postfix/lmtp",
         "status=sent (250 2.0.0", "dovecot", "stored mail into mailbox 'INBOX'",
         "postfix/postscreen", "PASS"],
        "--message-id", message_id,
    )  # fmt: skip
    (summary,) = [line for line in found.splitlines() if line.startswith("# ")]
    # Postfix's own from= is the SRS form of the sender (postsrsd); rspamd names the original.
    assert sender in summary and f"to {mailbox.address}: " in summary, summary
    # The last verdict: LMTP's 250 or Dovecot's delivery, whichever was logged last.
    assert summary.endswith((": sent 2.0.0", ": delivered")), summary
    hosts = {line.split("\t")[1] for line in found.splitlines()[2:] if "\t" in line}
    assert set(platform.hosts("mailstore")) & hosts and set(platform.hosts("mx")) & hosts
    # A recipient refused before any queue id is a trace of its own, with the reply's code.
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@{platform.domain}"
    with platform.smtp_inbound() as session:
        assert session.mail(sender)[0] == 250
        assert session.rcpt(unknown)[0] == 550
    refused = wait_for_trace(
        platform, ["NOQUEUE: reject: RCPT", "User unknown"], "--recipient", unknown
    )
    assert f"from {sender} to {unknown}: reject 5.1.1" in refused


def test_an_outbound_message_shows_the_remote_servers_answer(platform):
    user = platform.new_mailbox()
    recipient = f"dave@{platform.peer_domain}"
    mail = message("out", f"trace-out-{uuid.uuid4().hex}", user.address, recipient)
    with platform.submission(user) as session:
        session.send_message(mail)
    found = wait_for_trace(
        platform,
        [f"sasl_username={user.address}", "postfix/smtp\t", f"to=<{recipient}>", "status=sent (250"],
        "--sender", user.address,
    )  # fmt: skip
    assert f"to {recipient}: sent 2.0.0" in found


@pytest.mark.browser
def test_the_panel_shows_a_domain_admin_their_messages_and_others_nothing(platform, chromium):
    mailbox = platform.new_mailbox()
    marker = f"trace-web-{uuid.uuid4().hex}"
    mail = message("traced", marker, "carol@peer.test", mailbox.address)
    assert platform.send_inbound(mail, mailbox.address)[0] == 250
    platform.wait_for_imap(mailbox, marker)
    wait_for_trace(platform, ["stored mail into mailbox"], "--recipient", mailbox.address)

    reseller = platform.panel("domain", "list").splitlines()
    reseller = next(r.split("\t")[1] for r in reseller[1:] if r.split("\t")[0] == platform.domain)
    admin, password = new_admin(
        platform, "domain", "--reseller", reseller, "--domain", platform.domain
    )
    panel_login(chromium, panel_host(platform), admin, password)
    chromium.get(f"https://{panel_host(platform)}/trace/?recipient={mailbox.address}")
    text = body_text(chromium)
    assert mailbox.address in text and "status=sent (250 2.0.0" in text, text
    assert "stored mail into mailbox" in text, text

    other = f"r{uuid.uuid4().hex[:8]}"
    platform.panel("reseller", "add", other, "--brand-name", "Other Mail")
    outsider, password = new_admin(platform, "reseller", "--reseller", other)
    panel_login(chromium, panel_host(platform), outsider, password)
    chromium.get(f"https://{panel_host(platform)}/trace/?recipient={mailbox.address}")
    text = body_text(chromium)
    assert "No message matches" in text and "stored mail" not in text, text


def test_lines_wait_while_the_database_takes_none_and_arrive_after(platform):
    """The trace role may not log in (as while no primary takes writes): mail flows on, the
    lines wait in rsyslog's queue on each node, and once the role may log in again they are
    stored, every hop."""
    from mailstack.services import postgresql

    role = postgresql.TRACE_USER
    mailbox = platform.new_mailbox()
    marker = f"trace-wait-{uuid.uuid4().hex}"
    mail = message("traced later", marker, "carol@peer.test", mailbox.address)
    message_id = mail["Message-ID"].strip("<>")
    platform.account_sql(
        f"ALTER ROLE {role} NOLOGIN; SELECT count(pg_terminate_backend(pid)) FROM "
        f"pg_stat_activity WHERE usename = '{role}';"
    )
    try:
        assert platform.send_inbound(mail, mailbox.address)[0] == 250
        platform.wait_for_imap(mailbox, marker)
        time.sleep(5)
        assert message_id not in platform.panel("trace", "search", "--message-id", message_id)
    finally:
        platform.account_sql(f"ALTER ROLE {role} LOGIN;")
    wait_for_trace(
        platform,
        [f"message-id=<{message_id}>", "status=sent (250 2.0.0", "stored mail into mailbox"],
        "--message-id", message_id,
    )  # fmt: skip

"""Every message the platform answers 250 to arrives (issue: accepted with 250, then not
delivered): internationalised mail, mail Sieve redirects or answers, forwarded mail and the
bounces that come back to it. docs/architecture.md lists every way an accepted message could
fail to arrive and what the platform does about each; these are the ones reproduced here.
"""

import base64
import re
import socket
import ssl
import time
import uuid

import pytest

from mailstack.testing.platform import message

pytestmark = pytest.mark.lab


def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


# --- SMTPUTF8 ----------------------------------------------------------------------------------


def test_smtputf8_mail_from_the_peer_is_delivered(platform):
    """The peer's Postfix sends with SMTPUTF8 (an address and headers in UTF-8), as a foreign
    provider does; the mx accepts it and Dovecot's LMTP takes it (no late bounce)."""
    mailbox = platform.new_mailbox()
    tag = marker()
    sender = "grüße@peer.test"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 2))
    raw = (
        f"From: Jürgen Groß <{sender}>\nTo: <{mailbox.address}>\n"
        f"Subject: Grüße aus Köln {tag}\nMessage-ID: <{tag}@peer.test>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\n"
        f"Schöne Grüße, {tag}\n"
    ).encode()
    platform.sh(platform.internet, f"sendmail -f {sender} {mailbox.address}", stdin=raw)
    platform.peer_deliver()
    received = platform.wait_for_imap(mailbox, tag)
    assert "Grüße aus Köln".encode() in received
    # The with-protocol of the mx's Received header says the session used SMTPUTF8 (RFC 6531),
    # and the mailbox sees the sender as it was sent.
    assert b"with UTF8SMTP" in received
    assert f"Return-Path: <{sender}>".encode() in received
    assert "status=bounced" not in platform.mx_log(since)


# --- Sieve -------------------------------------------------------------------------------------


class ManageSieve:
    """A ManageSieve client (RFC 5804) as users' mail programs speak it: STARTTLS, then
    AUTHENTICATE PLAIN, then the script commands."""

    def __init__(self, address: str, user: str, password: str):
        raw = socket.create_connection((address, 4190), timeout=30)
        self.file = raw.makefile("rwb")
        self._response()
        self._command(b"STARTTLS")
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.sock = context.wrap_socket(raw)
        self.file = self.sock.makefile("rwb")
        self._response()  # capabilities again, now over TLS
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self._command(f'AUTHENTICATE "PLAIN" "{token}"'.encode())

    def _response(self) -> bytes:
        lines = b""
        while True:
            line = self.file.readline()
            assert line, "connection closed"
            lines += line
            if re.match(rb"^(OK|NO|BYE)", line):
                assert line.startswith(b"OK"), lines
                return lines

    def _command(self, command: bytes) -> bytes:
        self.file.write(command + b"\r\n")
        self.file.flush()
        return self._response()

    def put_active(self, name: str, script: str) -> None:
        body = script.encode()
        self._command(f'PUTSCRIPT "{name}" {{{len(body)}+}}\r\n'.encode() + body)
        self._command(f'SETACTIVE "{name}"'.encode())

    def close(self) -> None:
        self._command(b"LOGOUT")
        self.sock.close()


def upload_sieve(platform, mailbox, script: str) -> None:
    client = ManageSieve(platform.access_address, mailbox.address, mailbox.password)
    try:
        client.put_active("mailstack-test", script)
    finally:
        client.close()


def test_a_sieve_redirect_keeps_a_copy_and_reaches_the_outside(platform):
    mailbox = platform.new_mailbox()
    outside = f"redirected-{uuid.uuid4().hex[:8]}@{platform.peer_domain}"
    upload_sieve(platform, mailbox, f'require ["copy"];\nredirect :copy "{outside}";\n')
    tag = marker()
    platform.peer_send(
        message("redirect me", tag, "frank@peer.test", mailbox.address),
        "frank@peer.test",
        mailbox.address,
    )
    platform.peer_deliver()
    assert tag.encode() in platform.wait_for_imap(mailbox, tag)
    redirected = platform.wait_for_peer_message(tag)
    # It left with the user's address as sender (SPF passes for our domain), from an mx.
    assert f"Return-Path: <{mailbox.address}>".encode() in redirected
    assert f"for <{outside}>".encode() in redirected or outside.encode() in redirected
    assert "451 4.2.0" not in platform.mx_queue()


def test_a_vacation_reply_reaches_the_sender_signed(platform):
    mailbox = platform.new_mailbox()
    away = f"away-{uuid.uuid4().hex[:8]}"
    upload_sieve(
        platform,
        mailbox,
        f'require ["vacation"];\nvacation :days 1 :subject "{away}" "I am away until Monday.";\n',
    )
    sender = f"grace-{uuid.uuid4().hex[:8]}@{platform.peer_domain}"
    tag = marker()
    platform.peer_send(
        message("are you there", tag, sender, mailbox.address), sender, mailbox.address
    )
    platform.peer_deliver()
    assert tag.encode() in platform.wait_for_imap(mailbox, tag)
    reply = platform.wait_for_peer_message(away)
    assert b"I am away until Monday." in reply
    assert f"d={platform.domain}".encode() in reply
    assert re.search(rb"Auto-Submitted: auto-replied", reply)


def test_what_sieve_sends_counts_against_the_users_recipient_limit(platform):
    """The Sieve listener asks the policy service with policy_context=sieve, which charges the
    redirect to the user whose address is its sender, as their own submissions are."""
    from mailstack.policyd.config import PolicydConfig
    from mailstack.secrets import SecretStore
    from mailstack.services import valkey

    mailbox = platform.new_mailbox()
    outside = f"counted-{uuid.uuid4().hex[:8]}@{platform.peer_domain}"
    upload_sieve(platform, mailbox, f'redirect "{outside}";\n')
    tag = marker()
    platform.peer_send(
        message("count me", tag, "heidi@peer.test", mailbox.address),
        "heidi@peer.test",
        mailbox.address,
    )
    platform.peer_deliver()
    platform.wait_for_peer_message(tag)
    password = SecretStore(platform.lab.state_dir / "secrets.json").get(valkey.PASSWORD_SECRET)
    window = f"{PolicydConfig().key_prefix}out:{mailbox.address}"
    charged = platform.sh(
        platform.host_name("db"),
        f"REDISCLI_AUTH={password} valkey-cli ZCARD {window}",
    )
    assert charged.strip() == "1", charged


# --- forwarding: SRS and ARC -------------------------------------------------------------------


def test_forwarded_mail_leaves_with_an_srs_sender_and_an_arc_seal(platform):
    mailbox = platform.new_mailbox()
    outside = f"fwd-{uuid.uuid4().hex[:8]}@{platform.peer_domain}"
    platform.panel("forwarding", "add", mailbox.address, outside, "--keep-copy")
    original_sender = f"bank-{uuid.uuid4().hex[:6]}@{platform.peer_domain}"
    tag = marker()
    platform.peer_send(
        message("statement", tag, original_sender, mailbox.address),
        original_sender,
        mailbox.address,
    )
    platform.peer_deliver()
    forwarded = platform.wait_for_peer_message(tag)
    return_path = re.search(rb"Return-Path: <([^>]*)>", forwarded).group(1).decode()
    assert return_path.lower().startswith("srs0=") and return_path.endswith(f"@{platform.domain}")
    assert original_sender.split("@")[0] in return_path
    assert b"ARC-Seal: i=1;" in forwarded and f"d={platform.domain}".encode() in forwarded
    # The copy kept here shows the sender as it was sent.
    kept = platform.wait_for_imap(mailbox, tag)
    assert f"Return-Path: <{original_sender}>".encode() in kept

    # A bounce of the forwarded copy comes back to the SRS address and reaches the sender.
    bounce_tag = marker()
    bounce = message(
        "Undelivered Mail Returned to Sender",
        bounce_tag,
        f"MAILER-DAEMON@{platform.peer_domain}",
        return_path,
    )
    with platform.smtp_inbound() as session:
        for _attempt in range(3):
            assert session.mail("")[0] == 250
            code, reply = session.rcpt(return_path)
            if code == 450 and b"reylist" in reply:
                session.rset()
                time.sleep(platform.settings.mail.greylisting.delay_seconds + 1)
                continue
            break
        assert code == 250, reply
        assert session.data(bounce.as_bytes())[0] == 250
    delivered = platform.wait_for_peer_message(bounce_tag)
    assert f"for <{original_sender}>".encode() in delivered or original_sender.encode() in delivered


def test_a_forged_srs_address_is_refused_at_rcpt(platform):
    forged = f"SRS0=AAAA=ZZ=peer.test=victim@{platform.domain}"
    with platform.smtp_inbound() as session:
        session.mail("")
        code, reply = session.rcpt(forged)
    assert code == 550, reply


# --- forwarding loops --------------------------------------------------------------------------


def test_a_forwarding_loop_written_around_the_panel_costs_only_its_own_recipient(platform):
    """The panel refuses loops; one that slips through (written into the tables by hand) is
    refused at RCPT for its address, and the message reaches its other recipients."""
    mailbox = platform.new_mailbox()
    first = f"loop-a-{uuid.uuid4().hex[:6]}@{platform.domain}"
    second = f"loop-b-{uuid.uuid4().hex[:6]}@{platform.domain}"
    platform.panel("forwarding", "add", first, mailbox.address)
    platform.panel("forwarding", "add", second, first)
    platform.account_sql(
        f"UPDATE accounts_forwarding_target SET address = '{second}' WHERE forwarding_id ="
        f" (SELECT id FROM accounts_forwarding WHERE address = '{first}');"
    )
    tag = marker()
    with platform.smtp_inbound() as session:
        for _attempt in range(3):
            assert session.mail("carol@peer.test")[0] == 250
            code, reply = session.rcpt(mailbox.address)
            if code == 450 and b"reylist" in reply:
                session.rset()
                time.sleep(platform.settings.mail.greylisting.delay_seconds + 1)
                continue
            break
        assert code == 250, reply
        code, reply = session.rcpt(first)
        assert code == 550 and b"Forwarding loop" in reply, (code, reply)
        assert (
            session.data(
                message("two recipients", tag, "carol@peer.test", mailbox.address).as_bytes()
            )[0]
            == 250
        )
    assert tag.encode() in platform.wait_for_imap(mailbox, tag)
    assert "Alias expansion error" not in platform.mx_log("-5min")

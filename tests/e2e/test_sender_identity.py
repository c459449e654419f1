"""A logged-in user sends only as an address the login owns, in the envelope and in the header
From, and the platform signs only that (issue: sending as someone else).

Each refused variant is refused before the message is accepted (at MAIL FROM, or at the end of
DATA by rspamd's MAILSTACK_FROM_NOT_SENDER), so nothing of it is queued or reaches the peer.
"""

import smtplib
import uuid
from email.message import EmailMessage

import pytest

pytestmark = pytest.mark.lab


def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


def written(headers: list[tuple[str, str]], tag: str, to: str) -> bytes:
    """A message as a client writes it, headers given literally (several From headers too)."""
    lines = [f"{name}: {value}" for name, value in headers]
    lines += [f"To: <{to}>", f"Subject: {tag}", f"Message-ID: <{tag}@client.test>", "", tag, ""]
    return "\r\n".join(lines).encode()


@pytest.fixture(scope="module")
def sender(platform):
    return platform.new_mailbox()


@pytest.fixture(scope="module")
def other_tenant(platform):
    """A mailbox of the other mail domain the lab hosts (tenant.test)."""
    return platform.new_mailbox(domain=platform.settings.environment.mail_domains[1])


@pytest.mark.parametrize("port", [587, 465])
def test_the_null_sender_is_refused_on_submission(platform, sender, port):
    with platform.submission(sender, port) as session:
        session.mail("")
        # Postfix answers sender restrictions at RCPT (smtpd_delay_reject).
        code, reply = session.rcpt(f"dave@{platform.peer_domain}")
    assert code == 553 and b"null sender" in reply, (code, reply)


def forged_from_headers(platform, sender, other_tenant) -> dict[str, list[tuple[str, str]]]:
    operator = f"security@{platform.domain}"
    return {
        "another tenant's mailbox": [("From", other_tenant.address)],
        "the operator's address": [("From", f"Security <{operator}>")],
        "the operator's address in other case": [("From", operator.upper())],
        "an address in the display name": [("From", f'"{operator}" <{sender.address}>')],
        "two From headers": [("From", sender.address), ("From", operator)],
        "two addresses in one From": [("From", f"{sender.address}, {operator}")],
        "a group with the sender in it": [("From", f"Staff: {sender.address}, {operator};")],
    }


@pytest.mark.parametrize(
    "variant",
    [
        "another tenant's mailbox",
        "the operator's address",
        "the operator's address in other case",
        "an address in the display name",
        "two From headers",
        "two addresses in one From",
        "a group with the sender in it",
    ],
)
def test_a_header_from_the_login_does_not_own_is_refused(platform, sender, other_tenant, variant):
    tag = marker()
    outside = f"dave@{platform.peer_domain}"
    headers = forged_from_headers(platform, sender, other_tenant)[variant]
    with platform.submission(sender) as session:
        assert session.mail(sender.address)[0] == 250
        assert session.rcpt(outside)[0] == 250
        code, reply = session.data(written(headers, tag, outside))
    assert code == 554 and b"From header must be the sender address" in reply, (code, reply)
    assert tag not in platform.mx_queue()


def test_mail_in_the_users_own_name_is_accepted_and_signed_for_its_domain(platform, other_tenant):
    """Control: the same path, From the login's own address (written in other case)."""
    tag = marker()
    outside = f"dave@{platform.peer_domain}"
    own = other_tenant.address
    with platform.submission(other_tenant) as session:
        session.sendmail(own, [outside], written([("From", f"Me <{own.upper()}>")], tag, outside))
    delivered = platform.wait_for_peer_message(tag)
    domain = own.split("@")[1]
    assert f"d={domain}".encode() in delivered
    assert f"d={platform.domain};".encode() not in delivered


def test_an_envelope_sender_in_other_case_is_the_same_address(platform, sender):
    with platform.submission(sender) as session:
        code, reply = session.mail(sender.address.upper())
    assert code == 250, reply


def test_an_alias_the_login_receives_may_be_its_sender(platform, sender):
    """A forwarding to the user's mailbox is an address the login owns (mail.sender_logins)."""
    alias = f"alias-{uuid.uuid4().hex[:8]}@{platform.domain}"
    platform.panel("forwarding", "add", alias, sender.address)
    tag = marker()
    outside = f"dave@{platform.peer_domain}"
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = alias, outside, tag
    mail.set_content(tag)
    with platform.submission(sender) as session:
        session.sendmail(alias, [outside], mail.as_bytes())
    assert f"d={platform.domain}".encode() in platform.wait_for_peer_message(tag)


def test_another_tenants_envelope_sender_is_refused(platform, sender, other_tenant):
    with platform.submission(sender) as session, pytest.raises(smtplib.SMTPRecipientsRefused):
        session.sendmail(
            other_tenant.address, [f"dave@{platform.peer_domain}"], b"Subject: x\r\n\r\nx\r\n"
        )

"""The policy service with real Postfix: greylisting shared by every mx, the outbound limit."""

import smtplib
import time
import uuid

import pytest

from mailstack.testing.platform import message

pytestmark = pytest.mark.lab


def test_greylisting_defers_the_first_attempt_and_the_retry_passes_on_the_other_mx(platform):
    mailbox = platform.new_mailbox()
    client = platform.proxied_client_address()
    first_mx, other_mx = platform.mx_hosts()[:2]
    sender = f"news-{uuid.uuid4().hex[:6]}@{platform.peer_domain}"

    session = platform.mx_session(first_mx, client)
    session.mail(sender)
    code, reply = session.rcpt(mailbox.address)
    session.quit()
    assert code == 450 and b"reylist" in reply, (code, reply)

    # Too early, on the other mx: still deferred.
    session = platform.mx_session(other_mx, client)
    session.mail(sender)
    code, _ = session.rcpt(mailbox.address)
    session.quit()
    assert code == 450

    time.sleep(platform.settings.mail.greylisting.delay_seconds + 1)
    session = platform.mx_session(other_mx, client)
    session.mail(sender)
    code, reply = session.rcpt(mailbox.address)
    assert code == 250, (code, reply)
    session.data(message("greylisted", "passed", sender, mailbox.address).as_bytes())
    session.quit()


def test_authenticated_clients_are_not_greylisted(platform):
    mailbox, recipient = platform.new_mailbox(), platform.new_mailbox()
    session = smtplib.SMTP(platform.smtp_address, 587, timeout=30)
    session.starttls(context=platform.client_tls())
    session.login(mailbox.address, mailbox.password)
    # A From header the login owns: submission refuses mail without one (RFC 5322 requires it).
    mail = f"From: {mailbox.address}\r\nSubject: x\r\n\r\nhi\r\n".encode()
    assert session.sendmail(mailbox.address, [recipient.address], mail) == {}
    session.quit()


def test_the_61st_recipient_in_the_window_is_deferred_and_earlier_mail_delivered(platform):
    limit = platform.settings.mail.outbound_limit.default
    mailbox = platform.new_mailbox()
    tag = f"limit-{uuid.uuid4().hex}"
    recipients = [f"r{i}-{tag}@{platform.peer_domain}" for i in range(limit.recipients + 1)]
    context = platform.client_tls()
    accepted: list[str] = []
    refused: dict[str, tuple[int, bytes]] = {}
    # Three messages, alternating between submission ports (and so, likely, mx hosts).
    batches = [recipients[i : i + 25] for i in range(0, len(recipients), 25)]
    for number, batch in enumerate(batches):
        if number % 2:
            session = smtplib.SMTP_SSL(platform.smtp_address, 465, context=context, timeout=60)
        else:
            session = smtplib.SMTP(platform.smtp_address, 587, timeout=60)
            session.starttls(context=context)
        session.login(mailbox.address, mailbox.password)
        body = message("batch", tag, mailbox.address, batch[0]).as_bytes()
        try:
            refused.update(session.sendmail(mailbox.address, batch, body))
        except smtplib.SMTPRecipientsRefused as error:
            refused.update(error.recipients)
        accepted += [r for r in batch if r not in refused]
        session.quit()
    assert len(accepted) == limit.recipients
    assert list(refused) == [recipients[-1]]
    code, reply = refused[recipients[-1]]
    assert code == 451 and b"4.7.1" in reply, (code, reply)
    # Everything before the limit reaches the peer (one copy per recipient).
    deadline = time.monotonic() + 120
    while True:
        copies = platform.sh(platform.internet, f"grep -rl {tag} /var/mail/peer/inbox | wc -l")
        if int(copies) >= limit.recipients:
            break
        assert time.monotonic() < deadline, f"only {copies.strip()} copies arrived"
        platform.flush_mx()
        time.sleep(3)
    assert int(copies) == limit.recipients

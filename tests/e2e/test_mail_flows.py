"""Mail through the deployed platform, with real clients and a real foreign MTA (issue: steps 1,
2, 3 and 6 of the inbound procedure, submission, access, relay protection, quota)."""

import imaplib
import poplib
import re
import smtplib
import time
import uuid

import pytest

from mailstack.testing.platform import message

pytestmark = pytest.mark.lab


def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


def test_peer_mail_reads_back_intact_over_every_access_protocol(platform):
    mailbox = platform.new_mailbox()
    tag = marker()
    sent = message("Grüße from the peer", f"{tag}\nline two\n", "bob@peer.test", mailbox.address)
    platform.peer_send(sent, "bob@peer.test", mailbox.address)
    platform.peer_deliver()
    received = platform.wait_for_imap(mailbox, tag)
    assert sent["Message-ID"].encode() in received
    assert b"line two" in received
    context = platform.client_tls()

    with imaplib.IMAP4(platform.access_address, 143) as imap:
        assert "LOGINDISABLED" in imap.capabilities  # no password before TLS
        imap.starttls(ssl_context=context)
        imap.login(mailbox.address, mailbox.password)
        imap.select("INBOX")
        _, found = imap.search(None, "BODY", tag)
        assert found[0]

    for pop in (
        poplib.POP3_SSL(platform.access_address, 995, context=context),
        poplib.POP3(platform.access_address, 110),
    ):
        if not isinstance(pop, poplib.POP3_SSL):
            with pytest.raises(poplib.error_proto):
                pop.user(mailbox.address)  # refused before STARTTLS
            pop.stls(context=context)
        pop.user(mailbox.address)
        pop.pass_(mailbox.password)
        count, _ = pop.stat()
        assert count == 1
        lines = pop.retr(1)[1]
        assert tag.encode() in b"\n".join(lines)
        pop.quit()


def test_unknown_recipient_is_refused_at_rcpt_and_nothing_is_queued(platform):
    before = platform.mx_queue()
    with platform.smtp_inbound() as session:
        session.mail("bob@peer.test")
        code, reply = session.rcpt(f"nobody-{uuid.uuid4().hex[:8]}@{platform.domain}")
    assert code == 550, reply
    assert platform.mx_queue().count("@") <= before.count("@")


def test_forwarding_reaches_the_peer_and_keeps_a_copy(platform):
    mailbox = platform.new_mailbox()
    outside = f"fwd-{uuid.uuid4().hex[:8]}@{platform.peer_domain}"
    platform.panel("forwarding", "add", mailbox.address, outside, "--keep-copy")
    tag = marker()
    platform.peer_send(
        message("forward me", tag, "carol@peer.test", mailbox.address),
        "carol@peer.test",
        mailbox.address,
    )
    platform.peer_deliver()
    forwarded = platform.wait_for_peer_message(tag)
    assert f"for <{outside}>".encode() in forwarded or outside.encode() in forwarded
    assert tag.encode() in platform.wait_for_imap(mailbox, tag)


def test_client_talking_before_the_banner_is_refused(platform):
    mailbox = platform.new_mailbox()
    with platform.fresh_client_address() as source:
        transcript = platform.smtp_script(
            source,
            [
                "EHLO impatient.peer.test",
                "MAIL FROM:<bob@peer.test>",
                f"RCPT TO:<{mailbox.address}>",
            ],
            pregreet=True,
        )
    assert transcript.startswith("220"), transcript
    assert "250 2.1.5" not in transcript, transcript
    assert "550 5.5.1 Protocol error" in transcript, transcript


def test_client_that_passes_the_tests_is_accepted(platform):
    mailbox = platform.new_mailbox()
    with platform.fresh_client_address() as source:
        steps = [
            "EHLO polite.peer.test",
            "MAIL FROM:<bob@peer.test>",
            f"RCPT TO:<{mailbox.address}>",
        ]
        transcripts = [platform.smtp_script(source, steps)]
        # Each mx tests a new client once and tells it to come back; then smtpd takes it.
        while "250 2.1.5" not in transcripts[-1] and len(transcripts) < 2 * len(
            platform.mx_hosts()
        ):
            transcripts.append(platform.smtp_script(source, steps))
    assert "450 4.3.2" in transcripts[0], transcripts[0]
    assert "250 2.1.5" in transcripts[-1], transcripts


@pytest.mark.parametrize("helo", ["localhost", "bad_name!", "[300.1.1.1]"])
def test_bogus_helo_is_refused(platform, helo):
    mailbox = platform.new_mailbox()
    with platform.smtp_inbound(helo=helo) as session:
        session.mail("bob@peer.test")
        code, reply = session.rcpt(mailbox.address)
    assert 500 <= code < 600, (helo, code, reply)


def test_dnsbl_listed_client_is_refused(platform):
    listed = platform.state.listed_address
    script = (
        "import smtplib,sys\n"
        f"s=smtplib.SMTP(timeout=30,source_address=('{listed}',0))\n"
        f"print(s.connect('{platform.smtp_address}',25))\n"
        "s.ehlo('spam.peer.test')\n"
        "print(s.mail('spam@peer.test'))\n"
        f"print(s.rcpt('postmaster@{platform.domain}'))\n"
    )
    output = platform.sh(platform.internet, "python3 -", stdin=script, check=False)
    assert "550" in output or "521" in output, output
    assert "250, b'2.1.5" not in output


def submit(platform, port: int, mailbox, sender: str, recipient: str, body: str):
    with platform.submission(mailbox, port) as session:
        return session.sendmail(
            sender, [recipient], message("out", body, sender, recipient).as_bytes()
        )


@pytest.mark.parametrize("port", [587, 465])
def test_authenticated_submission_reaches_the_peer(platform, port):
    mailbox = platform.new_mailbox()
    tag = marker()
    assert (
        submit(platform, port, mailbox, mailbox.address, f"dave@{platform.peer_domain}", tag) == {}
    )
    delivered = platform.wait_for_peer_message(tag)
    assert f"Return-Path: <{mailbox.address}>".encode() in delivered


def test_wrong_password_is_refused(platform):
    mailbox = platform.new_mailbox()
    mailbox.password = "not-" + mailbox.password
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submit(platform, 587, mailbox, mailbox.address, f"dave@{platform.peer_domain}", marker())


def test_sending_as_another_users_address_is_refused(platform):
    mailbox, other = platform.new_mailbox(), platform.new_mailbox()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        submit(platform, 587, mailbox, other.address, f"dave@{platform.peer_domain}", marker())
    assert "not owned by user" in str(refused.value)


RELAY_TRICKS = [
    # (envelope sender, recipient) that must not be relayed for an unauthenticated client
    ("bob@peer.test", "victim@elsewhere.test"),
    ("bob@peer.test", "victim%elsewhere.test@{domain}"),
    ("bob@peer.test", '"victim@elsewhere.test"@{domain}'),
    ("bob@peer.test", "elsewhere.test!victim@{domain}"),
    ("bob@peer.test", "@{domain}:victim@elsewhere.test"),
    ("bob@peer.test", "victim@elsewhere.test@{domain}"),
    ("postmaster@{domain}", "victim@elsewhere.test"),
    ("bob@peer.test", "victim@[10.99.99.99]"),
]


@pytest.mark.parametrize(("sender", "recipient"), RELAY_TRICKS)
def test_no_open_relay(platform, sender, recipient):
    sender = sender.format(domain=platform.domain)
    recipient = recipient.format(domain=platform.domain)
    with platform.smtp_inbound() as session:
        code, reply = session.mail(sender)
        if code == 250:
            code, reply = session.rcpt(recipient)
    assert code >= 500, (sender, recipient, code, reply)


def test_postfix_sees_the_real_client_address(platform):
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 2))
    with platform.smtp_inbound() as session:
        session.mail("bob@peer.test")
        session.rcpt(f"nobody-{uuid.uuid4().hex[:6]}@{platform.domain}")
    log = platform.mx_log(since)
    client = str(platform.state.gateway)  # the test machine on the lab's bridge
    assert f"[{client}]" in log
    balancers = [str(b.private_ip) for b in platform.inventory.load_balancers]
    rejects = [line for line in log.splitlines() if "NOQUEUE: reject: RCPT" in line]
    assert rejects and all(f"[{client}]" in line for line in rejects)
    assert not any(f"from unknown[{b}]" in line for line in rejects for b in balancers)


def test_mail_for_a_full_mailbox_waits_at_the_sender_and_is_delivered_later(platform):
    """Over quota is known at RCPT (Dovecot's quota-status): the mx never accepts mail it could
    only bounce later, and with quota_exceeded 'defer' the sender keeps it and retries."""
    mailbox = platform.new_mailbox(quota_mib=1)
    # A message larger than the whole quota is refused at once (quota-status knows its SIZE=);
    # smaller ones fill the box, and Dovecot's grace lets the one crossing the limit in.
    for _filler in range(2):
        filler = marker()
        platform.peer_send(
            message(
                "filler", filler + "\n" + "x" * (900 * 1024), "erin@peer.test", mailbox.address
            ),
            "erin@peer.test",
            mailbox.address,
        )
        platform.peer_deliver()
        platform.wait_for_imap(mailbox, filler)
    tag = marker()
    platform.peer_send(
        message("one more", tag, "erin@peer.test", mailbox.address),
        "erin@peer.test",
        mailbox.address,
    )
    deadline = time.monotonic() + 90
    while not re.search(r"452 4\.2\.2 .*Mailbox is full", queue := platform.peer_queue()):
        assert time.monotonic() < deadline, f"not refused at RCPT:\n{queue}"
        platform.sh(platform.internet, "postqueue -f")
        time.sleep(3)
    assert mailbox.address not in platform.mx_queue()
    platform.panel("mailbox", "change", mailbox.address, "--quota-mib", "10")
    # Dovecot caches the old quota for auth_cache_ttl (1 minute); the peer retries until then.
    platform.peer_deliver(timeout=180)
    assert tag.encode() in platform.wait_for_imap(mailbox, tag)


def test_a_burst_to_one_mailbox_is_delivered_without_deferrals(platform):
    """Dovecot takes a limited number of deliveries for one mailbox at once and answers 451 to
    more; the mx hosts keep below it, so a burst waits in the queue for seconds, not minutes."""
    mailbox = platform.new_mailbox()
    mx = platform.mx_hosts()[0]
    # The peer's own address, which its SPF record names: from anywhere else the burst scores
    # near the reject threshold (SPF fail, no reverse name), and once the shared Bayes has
    # learned enough, a Bayes spam verdict on the filler refuses part of it (554) before it
    # can test deliveries.
    client = str(platform.state.internet_address)
    sender = f"burst-{uuid.uuid4().hex[:6]}@{platform.peer_domain}"
    tag = marker()
    # The burst is queued while deliveries wait, then released at once, as after a backlog.
    platform.sh(mx, "cp -p /etc/postfix/main.cf /etc/postfix/main.cf.test")
    platform.sh(mx, "postconf -e defer_transports=lmtp && postfix reload")
    try:
        session = platform.mx_session(mx, client)
        session.mail(sender)
        session.rcpt(mailbox.address)  # greylisted once
        session.quit()
        time.sleep(platform.settings.mail.greylisting.delay_seconds + 1)
        session = platform.mx_session(mx, client)
        # Large enough that deliveries overlap.
        filler = "a line of a long report\n" * 20000
        for index in range(40):
            mail = message("burst", f"{tag} {index}\n{filler}", sender, mailbox.address)
            session.sendmail(sender, [mailbox.address], mail.as_bytes())
        session.quit()
    finally:
        platform.sh(mx, "mv /etc/postfix/main.cf.test /etc/postfix/main.cf && postfix reload")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 1))
    platform.sh(mx, "postqueue -f")
    deadline = time.monotonic() + 60
    while True:
        with imaplib.IMAP4_SSL(
            platform.access_address, 993, ssl_context=platform.client_tls()
        ) as imap:
            imap.login(mailbox.address, mailbox.password)
            # The client has no SPF pass nor reverse name: rspamd marks the burst as spam, and
            # the mailbox's default settings file marked mail into Junk.
            data = [imap.status(folder, "(MESSAGES)")[1][0] for folder in ("INBOX", "Junk")]
        counts = [re.search(rb"MESSAGES (\d+)", answer) for answer in data]
        delivered = sum(int(count.group(1)) for count in counts if count)
        if delivered == 40:
            break
        assert time.monotonic() < deadline, (data, platform.mx_queue())
        time.sleep(1)
    assert "Too many concurrent deliveries" not in platform.mx_log(since)

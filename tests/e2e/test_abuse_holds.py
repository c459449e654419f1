"""Sending holds on the deployed lab (docs/policyd.md, "Sending holds"): a logged-in user whose
mail the outbound scan keeps refusing (a virus) is put on hold by the policy service from rspamd's
reports, and so is one whose burst keeps hitting the recipient limit; submission is refused
before DATA while the mailbox still receives and other users send on; the domain's admin is told
by mail; releasing the hold lets the user send again."""

import smtplib
import time
import uuid

import pytest

from mailstack.testing.platform import message

pytestmark = pytest.mark.lab

# A virus, not GTUBE: rspamd skips every rule for GTUBE, its metadata exporter included.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
HOLD_REPLY = b"is on hold because the outbound scan refused its mail"


def rcpt_reply(platform, mailbox, recipient: str) -> tuple[int, bytes]:
    """The reply to RCPT of a logged-in session of `mailbox` (reset before DATA)."""
    with platform.submission(mailbox) as session:
        code, reply = session.mail(mailbox.address)
        assert code == 250, (code, reply)
        code, reply = session.rcpt(recipient)
        session.rset()
        return code, reply


def wait_for_rcpt(platform, mailbox, recipient: str, wanted, timeout: float) -> tuple[int, bytes]:
    """Poll RCPT until `wanted(code, reply)`: another mx may answer from its account cache
    (`mail.policy_service.account_cache_seconds`) until it expires."""
    deadline = time.monotonic() + timeout
    while True:
        code, reply = rcpt_reply(platform, mailbox, recipient)
        if wanted(code, reply) or time.monotonic() > deadline:
            return code, reply
        time.sleep(2)


def domain_reseller(platform) -> str:
    for row in platform.panel("domain", "list").splitlines()[1:]:
        columns = row.split("\t")
        if columns[0] == platform.domain:
            return columns[1]
    raise AssertionError(f"{platform.domain} is not in the panel")


def test_a_user_whose_mail_the_scan_keeps_refusing_is_held_told_and_released(platform):
    settings = platform.settings.mail
    threshold = settings.outbound_limit.sending_hold.after_scan_refusals
    cache_seconds = settings.policy_service.account_cache_seconds
    # The domain's admin, told of holds at a mailbox of the platform.
    admin_box = platform.new_mailbox()
    password = f"{uuid.uuid4().hex}-Aa1"
    platform.panel(
        "admin", "add", f"domain-{uuid.uuid4().hex[:8]}", "--role", "domain",
        "--reseller", domain_reseller(platform), "--domain", platform.domain,
        "--email", admin_box.address, stdin=password + "\n",
    )  # fmt: skip
    hijacked = platform.new_mailbox()
    recipient = f"dave@{platform.peer_domain}"
    tag = f"hold-{uuid.uuid4().hex}"

    for attempt in range(threshold):
        spam = message("out", f"{tag}-{attempt}", hijacked.address, recipient)
        spam.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="a.com")
        with pytest.raises(smtplib.SMTPDataError) as refused, platform.submission(hijacked) as s:
            s.send_message(spam)
        assert refused.value.smtp_code == 554

    code, reply = wait_for_rcpt(
        platform, hijacked, recipient, lambda c, _: c == 550, timeout=cache_seconds + 30
    )
    assert code == 550 and b"5.7.1" in reply and HOLD_REPLY in reply, (code, reply)
    held = [row.split("\t") for row in platform.panel("hold", "list").splitlines()[1:]]
    assert [hijacked.address, "scan", str(threshold)] in [row[:2] + row[3:4] for row in held]

    # Only its sending stops: it still receives, and other users still send.
    inbound = f"{tag}-inbound"
    code, _ = platform.send_inbound(
        message("still here", inbound, "carol@peer.test", hijacked.address), hijacked.address
    )
    assert code == 250
    platform.wait_for_imap(hijacked, inbound)
    assert rcpt_reply(platform, admin_box, recipient)[0] == 250

    # The admin is told (a timer on the web hosts sends due notices every 30 s).
    notice = platform.wait_for_imap(admin_box, hijacked.address, timeout=120)
    assert f"Sending from {hijacked.address} is on hold".encode() in notice
    assert b"Auto-Submitted: auto-generated" in notice

    assert f"released {hijacked.address}" in platform.panel("hold", "release", hijacked.address)
    code, reply = wait_for_rcpt(
        platform, hijacked, recipient, lambda c, _: c == 250, timeout=cache_seconds + 30
    )
    assert code == 250, (code, reply)
    assert hijacked.address not in platform.panel("hold", "list")


def test_a_users_burst_past_the_recipient_limit_ends_on_hold_told_and_released(platform):
    """A hijacked account's burst: its recipients fill the limit, then each new transaction is
    refused (a hit); at `sending_hold.after_limit_hits` hits it is held, its admin told, others
    send on; released, the hold no longer refuses it (the limit alone does, until its window
    passes). The first transaction never ends, so nothing of it is delivered: its recipients are
    reserved for `outbound_limit.hold_seconds`, which is what fills the limit."""
    settings = platform.settings.mail
    limit = settings.outbound_limit.default
    hits = settings.outbound_limit.sending_hold.after_limit_hits
    cache_seconds = settings.policy_service.account_cache_seconds
    admin_box = platform.new_mailbox()
    platform.panel(
        "admin", "add", f"domain-{uuid.uuid4().hex[:8]}", "--role", "domain",
        "--reseller", domain_reseller(platform), "--domain", platform.domain,
        "--email", admin_box.address, stdin=f"{uuid.uuid4().hex}-Aa1\n",
    )  # fmt: skip
    burst, bystander = platform.new_mailbox(), platform.new_mailbox()
    tag = uuid.uuid4().hex[:8]

    with platform.submission(burst) as session:
        assert session.mail(burst.address)[0] == 250
        for n in range(limit.recipients):
            code, reply = session.rcpt(f"r{n}-{tag}@{platform.peer_domain}")
            assert code == 250, (n, code, reply)
        session.rset()
    for n in range(hits):
        code, reply = rcpt_reply(platform, burst, f"more{n}-{tag}@{platform.peer_domain}")
        assert code in (451, 550), (n, code, reply)

    code, reply = wait_for_rcpt(
        platform, burst, f"after-{tag}@{platform.peer_domain}", lambda c, _: c == 550,
        timeout=cache_seconds + 30,
    )  # fmt: skip
    assert b"is on hold" in reply, (code, reply)
    held = [row.split("\t") for row in platform.panel("hold", "list").splitlines()[1:]]
    assert [burst.address, "limit", str(hits)] in [row[:2] + row[3:4] for row in held]
    assert rcpt_reply(platform, bystander, f"dave@{platform.peer_domain}")[0] == 250

    notice = platform.wait_for_imap(admin_box, burst.address, timeout=120)
    assert f"Sending from {burst.address} is on hold".encode() in notice

    assert f"released {burst.address}" in platform.panel("hold", "release", burst.address)
    code, reply = wait_for_rcpt(
        platform, burst, f"released-{tag}@{platform.peer_domain}",
        lambda c, r: b"is on hold" not in r, timeout=cache_seconds + 30,
    )  # fmt: skip
    assert code in (250, 451) and b"is on hold" not in reply, (code, reply)

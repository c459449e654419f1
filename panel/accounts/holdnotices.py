"""Notices of sending holds, by mail, to the people who can act on them.

Who is told of a held mailbox: the admins of its domain and of its reseller who have a mail
address, and the operators with one when none of those has; in the reseller's brand. The mail
goes through the mx hosts' listener for the platform's own mail (settings MAILPANEL_NOTICE_RELAY,
MAILPANEL_NOTICE_FROM). `mailstack-panel hold notify` sends what is due, from a timer on every
web host: a hold is taken under a row lock that other senders skip, and marked sent in the same
transaction, so each notice goes out once, and again at the next run when the relay refused it.
"""

import smtplib
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.holds import HoldReason, SendingHold
from tenancy.models import Profile, Role

SMTP_TIMEOUT_SECONDS = 30


def recipients(hold: SendingHold) -> list[str]:
    """The addresses told of `hold`, sorted, each once."""
    domain = hold.mailbox.domain
    admins = Profile.objects.filter(role=Role.DOMAIN, domains=domain) | Profile.objects.filter(
        role=Role.RESELLER, reseller_id=domain.reseller_id
    )
    found = {p.user.email.lower() for p in admins.select_related("user") if p.user.email}
    if not found:
        operators = Profile.objects.filter(role=Role.OPERATOR).select_related("user")
        found = {p.user.email.lower() for p in operators if p.user.email}
    return sorted(found)


def message(hold: SendingHold, to: list[str]) -> EmailMessage:
    mailbox = hold.mailbox
    brand = mailbox.domain.reseller.brand_name
    evidence = hold.evidence or {}
    notice = EmailMessage()
    notice["From"] = f"{brand} <{settings.MAILPANEL_NOTICE_FROM}>"
    notice["To"] = ", ".join(to)
    notice["Subject"] = f"[{brand}] Sending from {mailbox.address} is on hold"
    notice["Date"] = format_datetime(timezone.now())
    notice["Message-ID"] = make_msgid(domain=settings.MAILPANEL_NOTICE_FROM.rpartition("@")[2])
    notice["Auto-Submitted"] = "auto-generated"
    lines = [
        f"Sending from {mailbox.address} was put on hold at {hold.held_at:%Y-%m-%d %H:%M:%S %Z}",
        f"because it {HoldReason(hold.reason).label}: {evidence.get('count', '?')} times within "
        f"{evidence.get('window_seconds', '?')} seconds (the threshold is "
        f"{evidence.get('threshold', '?')}).",
        "",
        "This is what a hijacked account looks like. The mailbox still receives mail and its",
        "user can still read it; what it sends is refused until an admin releases the hold.",
        "Before releasing it, make sure its password has been changed.",
        "",
        "The held accounts and what was seen are in the panel, under Held accounts.",
    ]
    notice.set_content("\n".join(lines) + "\n")
    return notice


def send_due(relay: str | None = None) -> int:
    """Send the notices of holds not yet told; the number sent. Raises OSError or
    smtplib.SMTPException when the relay fails (those holds stay due)."""
    relay = relay if relay is not None else settings.MAILPANEL_NOTICE_RELAY
    if not relay or not settings.MAILPANEL_NOTICE_FROM:
        return 0
    host, _, port = relay.rpartition(":")
    sent = 0
    with transaction.atomic():
        due = (
            SendingHold.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(notified_at=None)
            .select_related("mailbox__domain__reseller")
        )
        for hold in due:
            to = recipients(hold)
            if to:
                with smtplib.SMTP(host, int(port), timeout=SMTP_TIMEOUT_SECONDS) as smtp:
                    smtp.send_message(message(hold, to), from_addr=settings.MAILPANEL_NOTICE_FROM)
                sent += 1
            hold.notified_at = timezone.now()
            hold.save(update_fields=["notified_at"])
    return sent

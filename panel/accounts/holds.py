"""Sending holds: a mailbox whose sending the policy service stopped, as a hijacked account's
would be (docs/policyd.md, "Sending holds").

The policy service on the mx hosts puts a mailbox on hold through `mail.hold_sending` (migration
0008), which writes the hold and its audit entry in one transaction; it reads `mail.sending_holds`
and refuses the held mailbox's submission at RCPT while receiving and reading go on. The panel
tells the domain's admins and the reseller's admins (accounts.holdnotices) and lifts a hold
(accounts.operations.release_hold, audited).
"""

from django.db import models


class HoldReason(models.TextChoices):
    LIMIT = "limit", "kept hitting the recipient limit"
    SCAN = "scan", "sent mail the outbound scan refused"


class SendingHold(models.Model):
    """One held mailbox: why, when, what the policy service saw, and when its admins were told."""

    mailbox = models.OneToOneField(
        "accounts.Mailbox", on_delete=models.CASCADE, related_name="sending_hold"
    )
    reason = models.CharField(max_length=16, choices=HoldReason.choices)
    evidence = models.JSONField(
        default=dict,
        help_text="What the policy service counted: the threshold, the count, the window, and "
        "the last refusals it saw (time, client, recipients or rspamd's verdict).",
    )
    held_at = models.DateTimeField(db_index=True)
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the notices went out; empty until they have."
    )

    class Meta:
        db_table = "accounts_sending_hold"
        ordering = ["-held_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reason__in=["limit", "scan"]), name="sending_hold_reason"
            )
        ]

    def __str__(self) -> str:
        return str(self.mailbox)

"""The trace lines (mailstack.tracing.lines.TraceLine), written by the nodes' ingesters as the
trace role, read by the panel, deleted after `tracing.retention_days` (purge_traces)."""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper


class TraceEvent(models.Model):
    """One log line of a mail service about a message or a connection."""

    logged_at = models.DateTimeField()
    host = models.CharField(max_length=253)
    program = models.CharField(max_length=64, help_text="'postfix/smtpd', 'rspamd', 'dovecot'...")
    pid = models.IntegerField(null=True)
    queue_id = models.CharField(max_length=320, blank=True)
    next_queue_id = models.CharField(
        max_length=320, blank=True, help_text="The queue id the message went on under."
    )
    message_id = models.CharField(max_length=320, blank=True)
    client_address = models.CharField(max_length=320, blank=True)
    sender = models.CharField(max_length=320, blank=True)
    sender_domain = models.CharField(max_length=253, blank=True)
    recipient = models.CharField(max_length=320, blank=True)
    recipient_domain = models.CharField(max_length=253, blank=True)
    status = models.CharField(max_length=320, blank=True)
    dsn = models.CharField(max_length=320, blank=True)
    score = models.FloatField(null=True, help_text="rspamd's score.")
    text = models.TextField()
    fingerprint = models.UUIDField(unique=True, help_text="Of the line: kept once if sent twice.")

    class Meta:
        db_table = "tracing_event"
        ordering = ["logged_at", "id"]
        # Most lines lack most fields: each index holds only the lines that have its field
        # (the searches say so, so the planner may use them: tracing.search).
        indexes = [
            models.Index(fields=["logged_at"], name="tracing_event_at"),
            models.Index(
                fields=["queue_id"], name="tracing_event_queue_id", condition=~Q(queue_id="")
            ),
            models.Index(
                fields=["next_queue_id"],
                name="tracing_event_next_queue_id",
                condition=~Q(next_queue_id=""),
            ),
            models.Index(
                fields=["message_id"], name="tracing_event_message_id", condition=~Q(message_id="")
            ),
            models.Index(
                fields=["client_address", "logged_at"],
                name="tracing_event_connection",
                condition=Q(queue_id="") & ~Q(client_address=""),
            ),
            models.Index(Upper("sender"), name="tracing_event_sender", condition=~Q(sender="")),
            models.Index(
                Upper("recipient"), name="tracing_event_recipient", condition=~Q(recipient="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.logged_at:%Y-%m-%d %H:%M:%S} {self.host} {self.program}: {self.text}"

"""The trace lines (mailstack.tracing.lines.TraceLine), written by the nodes' ingesters as the
trace role, read by the panel, deleted after `tracing.retention_days` (purge_traces)."""

from django.db import models
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
    fingerprint = models.CharField(max_length=64, unique=True)

    class Meta:
        db_table = "tracing_event"
        ordering = ["logged_at", "id"]
        indexes = [
            models.Index(fields=["logged_at"], name="tracing_event_at"),
            models.Index(fields=["queue_id"], name="tracing_event_queue_id"),
            models.Index(fields=["next_queue_id"], name="tracing_event_next_queue_id"),
            models.Index(fields=["message_id"], name="tracing_event_message_id"),
            models.Index(fields=["client_address", "logged_at"], name="tracing_event_client"),
            models.Index(Upper("sender"), name="tracing_event_sender"),
            models.Index(Upper("recipient"), name="tracing_event_recipient"),
        ]

    def __str__(self) -> str:
        return f"{self.logged_at:%Y-%m-%d %H:%M:%S} {self.host} {self.program}: {self.text}"

"""Trace lines are personal data (addresses, Message-IDs, client addresses): none is kept longer
than `tracing.retention_days` (settings.MAILPANEL_TRACE_RETENTION_DAYS)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from tracing.models import TraceEvent

BATCH = 10_000
"""Lines deleted per statement, so a long backlog does not hold one huge transaction."""


def purge(now: datetime | None = None) -> int:
    """Delete the lines older than the retention; returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.MAILPANEL_TRACE_RETENTION_DAYS)
    deleted = 0
    while True:
        batch = list(
            TraceEvent.objects.filter(logged_at__lt=cutoff).values_list("pk", flat=True)[:BATCH]
        )
        if not batch:
            return deleted
        deleted += TraceEvent.objects.filter(pk__in=batch).delete()[0]

"""Message tracing (tracing.search): every hop of the messages that match, within the scope."""

from datetime import UTC, timedelta

from django import forms
from django.conf import settings
from django.shortcuts import render
from django.utils import timezone

from tracing.search import TRACE_LIMIT, Criteria, search
from web.views.common import scoped

DEFAULT_HOURS = 24


class TraceForm(forms.Form):
    sender = forms.CharField(required=False, max_length=320, label="From (envelope sender)")
    recipient = forms.CharField(required=False, max_length=320, label="To (envelope recipient)")
    message_id = forms.CharField(required=False, max_length=320, label="Message-ID")
    queue_id = forms.CharField(required=False, max_length=64, label="Queue id")
    since = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        required=False,
        label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def criteria(self) -> Criteria:
        data = self.cleaned_data
        since = data["since"] or timezone.now() - timedelta(hours=DEFAULT_HOURS)
        return Criteria(
            sender=data["sender"],
            recipient=data["recipient"],
            message_id=data["message_id"],
            queue_id=data["queue_id"],
            since=since.astimezone(UTC),
            until=data["until"].astimezone(UTC) if data["until"] else None,
        )


@scoped("may_trace")
def trace_search(request):
    form = TraceForm(request.GET or None)
    traces = None
    if form.is_bound and form.is_valid():
        traces = search(form.criteria(), request.scope.trace_domains())
    context = {
        "form": form,
        "traces": traces,
        "limit": TRACE_LIMIT,
        "retention_days": settings.MAILPANEL_TRACE_RETENTION_DAYS,
    }
    return render(request, "web/traces.html", context)

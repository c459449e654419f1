"""Searching the trace: the lines that match, then every hop of the messages they belong to.

A message's hops share queue ids and its Message-ID: Postfix logs the queue id on every line of
a queued message and the Message-ID once (cleanup); rspamd logs both; Dovecot's LMTP logs the
Message-ID; a relay's `queued as` and a bounce's `notification:` name the next queue id. The
lines before a queue id exists (postscreen's verdict, smtpd's connect, the policy service's
greylisting) are joined by the client address on the same host, in the minutes before the
message was queued. Lines refused before a queue id (NOQUEUE) are traces of their own.

Scope: an operator sees everything; a reseller's or a domain admin's search finds only lines
whose sender or recipient is in their domains, and their traces show the lines of other
domains' recipients only as far as they name no address of those domains.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q

from tracing.models import TraceEvent

SEED_LIMIT = 500
"""Matching lines a search starts from (the newest)."""
TRACE_LIMIT = 50
"""Traces a search shows (the newest)."""
EXPANSION_ROUNDS = 4
"""Rounds of following queue ids and Message-IDs (a relay, a bounce, a forward)."""
_CLIENT_PORT = re.compile(r"\[[0-9A-Fa-f:.]+\]:\d+")
CONNECTION_WINDOW = timedelta(minutes=5)
"""How long before a message was queued its connection's lines are looked for."""


@dataclass
class Criteria:
    sender: str = ""
    recipient: str = ""
    message_id: str = ""
    queue_id: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class Trace:
    """One message's lines, oldest first."""

    events: list[TraceEvent] = field(default_factory=list)

    @property
    def first_at(self) -> datetime:
        return self.events[0].logged_at

    def _values(self, name: str) -> list[str]:
        return sorted({getattr(e, name) for e in self.events if getattr(e, name)})

    @property
    def queue_ids(self) -> list[str]:
        return self._values("queue_id")

    @property
    def message_ids(self) -> list[str]:
        return self._values("message_id")

    @property
    def senders(self) -> list[str]:
        """Every envelope sender the lines name: the client's, and where Postfix rewrote it
        (SRS), the rewritten one."""
        return self._values("sender")

    @property
    def recipients(self) -> list[str]:
        return self._values("recipient")

    @property
    def outcome(self) -> str:
        """The last delivery or refusal verdict ('sent', 'reject 4.7.1', 'delivered', ...)."""
        final = ("sent", "deferred", "bounced", "expired", "reject", "hold", "discard",
                 "delivered", "failed", "greylisted", "limited")  # fmt: skip
        for event in reversed(self.events):
            if event.status in final:
                return f"{event.status} {event.dsn}".strip()
        return "in progress"


def _scope_filter(domains: list[str] | None) -> Q:
    if domains is None:
        return Q()
    return Q(sender_domain__in=domains) | Q(recipient_domain__in=domains)


def _seeds(criteria: Criteria, domains: list[str] | None) -> list[TraceEvent]:
    """The newest lines that match: among the scope's own lines, and (a message's sender and
    recipient are on different lines) among all, whose traces the scope then filters."""
    query = _matching(criteria)
    found = list(query.filter(_scope_filter(domains)).order_by("-logged_at", "-id")[:SEED_LIMIT])
    if domains is not None:
        found += list(query.order_by("-logged_at", "-id")[:SEED_LIMIT])
    return found


def _matching(criteria: Criteria):
    query = TraceEvent.objects.all()
    if criteria.since:
        query = query.filter(logged_at__gte=criteria.since)
    if criteria.until:
        query = query.filter(logged_at__lte=criteria.until)
    # Each field's index holds only the lines that have the field (TraceEvent.Meta): the
    # queries say `<> ''` too, so the planner sees it may use it.
    if criteria.sender:
        query = query.filter(sender__iexact=criteria.sender.strip()).exclude(sender="")
    if criteria.recipient:
        query = query.filter(recipient__iexact=criteria.recipient.strip()).exclude(recipient="")
    if criteria.message_id:
        wanted = criteria.message_id.strip().removeprefix("<").removesuffix(">")
        query = query.filter(message_id=wanted).exclude(message_id="")
    if criteria.queue_id:
        wanted = criteria.queue_id.strip()
        query = query.filter(_having("queue_id", [wanted]) | _having("next_queue_id", [wanted]))
    return query


def _having(field: str, values) -> Q:
    """`field` is one of `values`, none of them empty (a partial index's condition)."""
    return Q(**{f"{field}__in": values}) & ~Q(**{field: ""})


def _expand(events: dict[int, TraceEvent]) -> None:
    """Add every line sharing a queue id or Message-ID with those found, until none is new."""
    queue_ids: set[str] = set()
    message_ids: set[str] = set()
    for _ in range(EXPANSION_ROUNDS):
        new_queue_ids = {v for e in events.values() for v in (e.queue_id, e.next_queue_id) if v}
        new_message_ids = {e.message_id for e in events.values() if e.message_id}
        new_queue_ids -= queue_ids
        new_message_ids -= message_ids
        if not new_queue_ids and not new_message_ids:
            return
        queue_ids |= new_queue_ids
        message_ids |= new_message_ids
        for name, values in (
            ("queue_id", new_queue_ids),
            ("next_queue_id", new_queue_ids),
            ("message_id", new_message_ids),
        ):
            if values:
                for event in TraceEvent.objects.filter(_having(name, sorted(values))):
                    events.setdefault(event.pk, event)


class _Groups:
    """Union-find over the keys that join lines (queue ids, Message-IDs)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, *keys: str) -> None:
        present = [k for k in keys if k]
        for other in present[1:]:
            self.parent[self.find(other)] = self.find(present[0])


def _group(events: dict[int, TraceEvent]) -> list[Trace]:
    groups = _Groups()
    for event in events.values():
        groups.join(
            f"q:{event.queue_id}" if event.queue_id else "",
            f"q:{event.next_queue_id}" if event.next_queue_id else "",
            f"m:{event.message_id}" if event.message_id else "",
        )
    traces: dict[str, Trace] = {}
    for event in sorted(events.values(), key=lambda e: (e.logged_at, e.pk)):
        if event.queue_id or event.next_queue_id:
            key = groups.find(f"q:{event.queue_id or event.next_queue_id}")
        elif event.message_id:
            key = groups.find(f"m:{event.message_id}")
        else:
            key = f"e:{event.pk}"
        traces.setdefault(key, Trace()).events.append(event)
    return list(traces.values())


def _add_connections(traces: list[Trace]) -> None:
    """Each queued message's connection: the client's lines on the same host that carry no
    queue id, in the minutes before it was queued: postscreen's verdicts, smtpd's connect (the
    same smtpd process), the policy service's verdicts about this message's sender or
    recipients."""
    for trace in traces:
        entry = next(
            (e for e in trace.events if e.queue_id and e.text.startswith(f"{e.queue_id}: client=")),
            None,
        )
        if entry is None:
            continue
        around = list(
            TraceEvent.objects.filter(
                host=entry.host,
                client_address=entry.client_address,
                queue_id="",
                message_id="",
                logged_at__gte=entry.logged_at - CONNECTION_WINDOW,
                logged_at__lte=entry.logged_at,
            )
            .exclude(client_address="")
            .exclude(text__startswith="NOQUEUE:")
        )
        connects = [e for e in around if e.status == "connect" and e.pid == entry.pid]
        connected_at = max((e.logged_at for e in connects), default=entry.logged_at)
        senders, recipients = set(trace.senders), set(trace.recipients)
        joined = [e for e in connects if e.logged_at == connected_at]
        joined += _postscreen_session(around, connected_at)
        joined += [
            e
            for e in around
            if e.program == "mailstack-policyd"
            and (e.sender in senders or e.recipient in recipients)
        ]
        known = {e.pk for e in trace.events}
        trace.events = sorted(
            trace.events + [e for e in joined if e.pk not in known],
            key=lambda e: (e.logged_at, e.pk),
        )


def _postscreen_session(around: list[TraceEvent], connected_at: datetime) -> list[TraceEvent]:
    """postscreen's lines of the connection smtpd took over at `connected_at`: from the last
    CONNECT before it, those naming the same client port."""
    screened = [
        e for e in around if e.program == "postfix/postscreen" and e.logged_at <= connected_at
    ]
    connect = max(
        (e for e in screened if e.status == "CONNECT"), key=lambda e: e.logged_at, default=None
    )
    if connect is None:
        return []
    port = _CLIENT_PORT.search(connect.text)
    return [
        e for e in screened if e.logged_at >= connect.logged_at and port and port.group(0) in e.text
    ]


def _redact(trace: Trace, domains: list[str]) -> Trace:
    """The trace as an admin of `domains` may see it: lines about other domains' recipients
    are left out, and rspamd's line (which lists every recipient) shows its verdict only."""
    kept = []
    for event in trace.events:
        if event.recipient_domain and event.recipient_domain not in domains:
            if event.program == "rspamd":
                event.text = f"verdict: {event.status}, score {event.score}"
                event.recipient = ""
            else:
                continue
        kept.append(event)
    return Trace(events=kept)


def search(criteria: Criteria, domains: list[str] | None) -> list[Trace]:
    """The newest traces (at most TRACE_LIMIT) with a line that matches `criteria`; `domains`:
    the domain names (IDNA form) the searching admin may see, None for everything."""
    events = {e.pk: e for e in _seeds(criteria, domains)}
    _expand(events)
    traces = _group(events)
    if domains is not None:
        visible = set(domains)
        traces = [
            t
            for t in traces
            if any(e.sender_domain in visible or e.recipient_domain in visible for e in t.events)
        ]
    traces.sort(key=lambda t: t.first_at, reverse=True)
    traces = traces[:TRACE_LIMIT]
    _add_connections(traces)
    # A line found alone (a greylisting verdict) that is part of a message's connection shows
    # there only.
    joined = {e.pk for t in traces if len(t.events) > 1 for e in t.events}
    traces = [t for t in traces if len(t.events) > 1 or t.events[0].pk not in joined]
    if domains is not None:
        traces = [_redact(t, domains) for t in traces]
    return traces

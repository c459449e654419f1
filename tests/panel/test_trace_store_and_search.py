"""Message tracing against a real PostgreSQL: the ingester's omprog protocol as the trace role
(insert only), the search that joins a message's hops, its scope per role, the retention."""

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from panel_postgres import REPO, TRACE_ROLE
from panel_traces import inbound_chain, record, trace_dsn

from mailstack.tracing import ingest

QID = "4fM2Qx1Hkbz5vBc"
OUT_QID = "4fM2Qz7Pqrz8xDf"


def ingest_lines(postgres, lines: list[str]) -> list[str]:
    """Run the ingester's loop over `lines`; its answers, the ready 'OK' first."""
    out = io.StringIO()
    ingest.serve(
        ingest.Store(trace_dsn(postgres)), io.StringIO("".join(f"{x}\n" for x in lines)), out
    )
    return out.getvalue().splitlines()


@pytest.fixture
def trace(accounts):
    from tracing.models import TraceEvent

    yield
    TraceEvent.objects.all().delete()


def test_the_ingester_stores_each_hop_once_and_answers_omprog(postgres, trace):
    from tracing.models import TraceEvent

    now = datetime.now(UTC)
    lines = inbound_chain(now, "bob@example.net", "user@example.org", QID, "m1@example.net")
    noise = [
        record(now, "lab-mx1", "postfix/anvil[9]:", "statistics: max connection count 1"),
        "this is not json",
        json.dumps({"time": "yesterday", "host": "x", "tag": "postfix/qmgr[1]:", "message": "x"}),
        json.dumps(["a list"]),
    ]
    answers = ingest_lines(postgres, lines + noise + lines[:3])
    # Ready, then one OK per line: stored, of no interest, malformed (never retried forever),
    # and a line handed over again (rsyslog's retry) is kept once.
    assert answers == ["OK"] * (1 + len(lines) + len(noise) + 3)
    assert TraceEvent.objects.count() == len(lines)
    delivered = TraceEvent.objects.get(program="dovecot")
    assert (delivered.host, delivered.status, delivered.message_id) == (
        "lab-mailstore1", "delivered", "m1@example.net",
    )  # fmt: skip


def test_the_trace_role_may_insert_and_nothing_else(postgres, trace):
    with psycopg.connect(trace_dsn(postgres), autocommit=True) as conn:
        for statement in ("SELECT count(*) FROM tracing_event", "DELETE FROM tracing_event",
                          "SELECT count(*) FROM accounts_mailbox", "SELECT * FROM mail.dovecot_users"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_line_the_database_cannot_take_waits_for_a_retry(postgres, trace):
    """No primary (here: the role may not log in, its session ended): the answer is not OK, so
    rsyslog keeps the line; once the database takes writes again the same line is stored."""
    from tracing.models import TraceEvent

    store = ingest.Store(trace_dsn(postgres))
    store.open()
    line = inbound_chain(datetime.now(UTC), "bob@example.net", "user@example.org", QID, "m@x")[4]
    with postgres.connect() as admin:
        admin.execute(f"ALTER ROLE {TRACE_ROLE} NOLOGIN")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            [TRACE_ROLE],
        )
        try:
            assert ingest.answer(store, line).startswith("ERROR")
        finally:
            admin.execute(f"ALTER ROLE {TRACE_ROLE} LOGIN")
    assert ingest.answer(store, line) == "OK"
    assert TraceEvent.objects.filter(queue_id=QID).count() == 1
    store.close()


def test_the_configuration_check_names_what_is_wrong(tmp_path):
    config = tmp_path / "tracing.json"
    config.write_text(json.dumps({"dsm": "host=x"}))
    result = subprocess.run(
        [sys.executable, "-m", "mailstack.tracing", "--config", str(config), "--check-config"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1 and "dsn" in result.stderr
    config.write_text(json.dumps({"dsn": "host=x"}))
    result = subprocess.run(
        [sys.executable, "-m", "mailstack.tracing", "--config", str(config), "--check-config"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_search_finds_every_hop_of_the_message_in_order(postgres, trace):
    from tracing.search import Criteria, search

    now = datetime.now(UTC)
    ingest_lines(postgres, inbound_chain(now, "bob@example.net", "user@example.org", QID, "m1@x"))
    ingest_lines(
        postgres,
        inbound_chain(now, "eve@example.net", "user@other.example", OUT_QID, "m2@x", "192.0.2.8"),
    )
    # A third connection from the same client, to another recipient, just before: its
    # postscreen verdicts (another client port) and greylisting verdict are not this message's.
    ingest_lines(
        postgres,
        inbound_chain(now - timedelta(seconds=1), "eve@example.net", "user@other.example",
                      "4fM2Qw0Bbbz1bBb", "m3@x", port=40999)[:4],
    )  # fmt: skip
    for criteria in (
        Criteria(recipient="USER@example.org"),
        Criteria(sender="bob@example.net"),
        Criteria(message_id="<m1@x>"),
        Criteria(queue_id=QID),
    ):
        (found,) = search(criteria, domains=None)
        programs = [e.program for e in found.events]
        # The connection's lines (postscreen, smtpd's connect, the greylisting verdict) are
        # joined by the client address; the rest by queue id and Message-ID.
        assert programs == [
            "postfix/postscreen", "postfix/postscreen", "postfix/smtpd", "mailstack-policyd",
            "postfix/smtpd", "postfix/cleanup", "rspamd", "postfix/qmgr", "dovecot",
            "postfix/lmtp", "postfix/qmgr",
        ], criteria  # fmt: skip
        assert found.outcome == "sent 2.0.0"
        assert found.senders == ["bob@example.net"]
        assert next(e.score for e in found.events if e.program == "rspamd") == 0.4
    assert search(Criteria(recipient="nobody@example.org"), domains=None) == []
    old = Criteria(recipient="user@example.org", until=now - timedelta(hours=1))
    assert search(old, domains=None) == []


def test_a_relayed_message_and_its_bounce_are_one_trace(postgres, trace):
    from tracing.search import Criteria, search

    now = datetime.now(UTC)
    bounce = "4fM2R01Bbcz9yFg"
    steps = [
        ("postfix/submission/smtpd[1]:", f"{QID}: client=unknown[10.0.0.40], sasl_method=PLAIN, "
         "sasl_username=user@example.org"),
        ("postfix/qmgr[2]:", f"{QID}: from=<user@example.org>, size=10, nrcpt=1 (queue active)"),
        ("postfix/smtp[3]:", f"{QID}: to=<x@example.com>, relay=mx.example.com[198.51.100.2]:25, "
         "dsn=5.1.1, status=bounced (host said: 550 5.1.1 no such user)"),
        ("postfix/bounce[4]:", f"{QID}: sender non-delivery notification: {bounce}"),
        ("postfix/qmgr[2]:", f"{bounce}: from=<>, size=2000, nrcpt=1 (queue active)"),
        ("postfix/lmtp[5]:", f"{bounce}: to=<user@example.org>, relay=mailstore[10.0.0.21]:24, "
         "dsn=2.0.0, status=sent (250 2.0.0 Saved)"),
    ]  # fmt: skip
    ingest_lines(
        postgres,
        [
            record(now + timedelta(milliseconds=i), "lab-mx2", t, m)
            for i, (t, m) in enumerate(steps)
        ],
    )
    (found,) = search(Criteria(recipient="x@example.com"), domains=None)
    assert [e.status for e in found.events][2:] == ["bounced", "", "", "sent"]
    assert found.queue_ids == sorted([QID, bounce])


def test_each_admin_traces_their_own_domains_only(postgres, tenants, trace):
    from django.test import Client
    from django.urls import reverse
    from panel_tenants import login

    now = datetime.now(UTC)
    ingest_lines(postgres, inbound_chain(now, "bob@example.net", "user@example.org", QID, "m1@x"))
    ingest_lines(
        postgres, inbound_chain(now, "eve@example.net", "user@other.example", OUT_QID, "m2@x")
    )

    def page(user, **query) -> tuple[int, str]:
        client = Client()
        login(client, user)
        response = client.get(reverse("web:trace"), {"since": "", **query})
        return response.status_code, response.content.decode()

    for user in (tenants.operator, tenants.acme.reseller_admin, tenants.acme.domain_admin):
        status, body = page(user, sender="bob@example.net")
        assert status == 200 and QID in body and "saved mail to INBOX" in body, user
    for user in (tenants.umbrella.reseller_admin, tenants.umbrella.domain_admin):
        status, body = page(user, sender="bob@example.net")
        assert status == 200 and QID not in body and "No message matches" in body, user
        status, body = page(user, recipient="user@other.example")
        assert OUT_QID in body and QID not in body
    status, _ = page(tenants.acme.mailbox_user, sender="bob@example.net")
    assert status == 403


def test_a_message_to_two_tenants_shows_each_only_their_recipients_lines(postgres, tenants, trace):
    from tracing.search import Criteria, search

    now = datetime.now(UTC)
    lines = inbound_chain(now, "bob@example.net", "user@example.org", QID, "m1@x")
    lines.append(
        record(now + timedelta(seconds=1), "lab-mx1", "postfix/lmtp[17]:",
               f"{QID}: to=<user@other.example>, relay=mailstore[10.0.0.21]:24, dsn=2.0.0, "
               "status=sent (250 2.0.0 <user@other.example> x Saved)")
    )  # fmt: skip
    ingest_lines(postgres, lines)
    (acme,) = search(Criteria(sender="bob@example.net"), domains=["example.org"])
    assert "user@other.example" not in " ".join(e.text for e in acme.events)
    (umbrella,) = search(Criteria(sender="bob@example.net"), domains=["other.example"])
    text = " ".join(e.text for e in umbrella.events)
    assert "user@other.example" in text and "user@example.org" not in text


def test_lines_past_the_retention_are_deleted(postgres, trace, manage):
    from django.conf import settings

    from tracing.models import TraceEvent

    now = datetime.now(UTC)
    ingest_lines(
        postgres,
        inbound_chain(now - timedelta(days=8), "a@example.net", "user@example.org", QID, "old@x"),
    )
    ingest_lines(
        postgres, inbound_chain(now, "a@example.net", "user@example.org", OUT_QID, "new@x")
    )
    assert settings.MAILPANEL_TRACE_RETENTION_DAYS == 7  # tracing.retention_days' default
    assert manage("trace", "purge").stdout == "deleted 11 trace line(s) past their retention\n"
    assert set(TraceEvent.objects.values_list("message_id", flat=True)) == {"", "new@x"}
    assert manage("trace", "purge").stdout == ""
    found = manage("trace", "search", "--recipient", "user@example.org").stdout
    assert "new@x" in found and "old@x" not in found and "dovecot" in found

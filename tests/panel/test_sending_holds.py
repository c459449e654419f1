"""Sending holds: the policy service holds a user who keeps hitting the recipient limit or whose
mail the outbound scan keeps refusing, refuses their submission until an admin releases the hold,
and the admins are told by mail. Real PostgreSQL (the panel's schema, the lookup role), real
Valkey, rspamd's report format over HTTP, and Postfix's smtp-sink as the relay."""

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import psycopg
import pytest
from test_policyd_limit_classes import accepted, service_with_accounts

from mailstack.testing.processes import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.valkey]

HOLD_SETTINGS = {"after_limit_hits": 3, "after_scan_refusals": 2, "scan_window_seconds": 600}


def hold_rows(lookup) -> list[tuple[str, str]]:
    return lookup.execute("SELECT sasl_username, reason FROM mail.sending_holds").fetchall()


def test_the_lookup_role_holds_a_live_mailbox_once_and_it_is_audited(example_org, lookup):
    def hold(login: str) -> bool:
        return lookup.execute(
            "SELECT mail.hold_sending(%s, 'scan', '{\"count\": 2}'::jsonb)", (login,)
        ).fetchone()[0]

    assert hold("Alice@Example.org") is True
    assert hold("alice@example.org") is False
    assert hold("nobody@example.org") is False
    assert hold_rows(lookup) == [("alice@example.org", "scan")]
    from accounts.audit import AuditEntry

    entry = AuditEntry.objects.get(object_type="sendinghold")
    assert (entry.actor, entry.action, entry.object_name) == (
        "policy service", "hold", "alice@example.org"
    )  # fmt: skip
    assert entry.reseller.name == "acme" and entry.after["evidence"] == {"count": 2}
    # The lookup role writes no table of its own accord.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        lookup.execute("DELETE FROM accounts_sending_hold")


def test_a_user_who_keeps_hitting_the_limit_is_held_and_released(
    postgres, example_org, manage, valkey, key_prefix
):
    async def scenario():
        async with service_with_accounts(
            postgres, valkey, key_prefix, 0, sending_hold=HOLD_SETTINGS
        ) as (server, mx):
            # Limit 2 per window; each transaction refused by it is one hit, the third holds.
            assert (
                "Recipient limit reached" in (await accepted(mx, "alice@example.org", "t1", 3))[2]
            )
            assert (
                "Recipient limit reached" in (await accepted(mx, "alice@example.org", "t2", 1))[0]
            )
            third = await accepted(mx, "alice@example.org", "t3", 2)
            assert "Recipient limit reached" in third[0] and "on hold" in third[1]
            answer = await mx.ask(
                sasl_username="alice@example.org", instance="t4", recipient="x@example.net"
            )
            assert answer.startswith("550 5.7.1 Sending from alice@example.org is on hold")
            assert "recipient limit" in answer
            # Others send on; what Sieve sends for alice (mail she receives) goes on too.
            assert (await accepted(mx, "bob@example.org", "b1", 1)) == ["DUNNO"]
            sieve = await mx.ask(policy_context="sieve", sender="alice@example.org", instance="s1")
            assert not sieve.startswith("550")
            assert server.metrics.holds.get("alice@example.org", "limit") == 1
            assert server.metrics.refused.get("alice@example.org", "hold") == 2

            listed = (await asyncio.to_thread(manage, "hold", "list")).stdout
            assert "alice@example.org\tlimit" in listed
            await asyncio.to_thread(manage, "hold", "release", "alice@example.org")
            # The window is still full: the limit answers again, not the hold.
            answer = await mx.ask(
                sasl_username="alice@example.org", instance="t5", recipient="y@example.net"
            )
            assert "Recipient limit reached" in answer

    asyncio.run(scenario())
    from accounts.audit import AuditEntry

    released = AuditEntry.objects.get(object_type="sendinghold", action="delete")
    assert released.actor == "command line" and released.before["reason"] == "limit"


def post(port: int, body: bytes, method: str = "POST") -> int:
    """Send one HTTP request as rspamd's metadata exporter does; the status code."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, "/scan-refused", body, {"Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


def rspamd_report(user: str, qid: str) -> bytes:
    """The shape of rspamd 3.4's metadata exporter JSON (formatter json)."""
    return json.dumps({
        "ip": "198.51.100.7", "user": user, "qid": qid, "subject": "cheap pills",
        "action": "reject", "rspamd_server": "mx1", "score": 1004.5, "fuzzy": [],
        "rcpt": ["a@example.net", "b@example.net"], "from": user,
        "symbols": [{"name": "GTUBE", "score": 1000.0}, {"name": "MIME_GOOD", "score": -0.1}],
    }).encode()  # fmt: skip


def test_a_user_whose_mail_the_scan_keeps_refusing_is_held(
    postgres, example_org, manage, valkey, key_prefix, lookup
):
    async def scenario():
        async with service_with_accounts(
            postgres, valkey, key_prefix, 0, sending_hold=HOLD_SETTINGS
        ) as (server, mx):
            port = server.scan_reports.sockets[0].getsockname()[1]
            send = lambda *a, **k: asyncio.to_thread(post, port, *a, **k)  # noqa: E731
            assert await send(rspamd_report("alice@example.org", "AAA1")) == 200
            assert hold_rows(lookup) == []
            # Reports without a user, or not JSON objects, or not POSTs hold no one.
            assert await send(rspamd_report("unknown", "X1")) == 200
            assert await send(b"[1, 2]") == 400
            assert await send(b"{not json") == 400
            assert await send(b"", method="GET") == 400
            assert await send(rspamd_report("alice@example.org", "AAA2")) == 200
            assert hold_rows(lookup) == [("alice@example.org", "scan")]
            answer = await mx.ask(sasl_username="alice@example.org", instance="t1")
            assert "the outbound scan refused its mail" in answer
            assert server.metrics.scan_reports.get("counted") == 2
            assert server.metrics.scan_reports.get("bad-request") == 3

    asyncio.run(scenario())
    from accounts.holds import SendingHold

    evidence = SendingHold.objects.get().evidence
    assert (evidence["count"], evidence["threshold"]) == (2, 2)
    newest = evidence["last_refusals"][0]
    assert newest["queue_id"] == "AAA2" and newest["symbols"][0] == "GTUBE"
    assert newest["client"] == "198.51.100.7" and "subject" not in newest


@pytest.fixture
def smtp_sink():
    """Postfix's smtp-sink on a free loopback port, writing each message to a file (as nobody,
    so in a directory of its own outside pytest's root-only one)."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    top = Path(tempfile.mkdtemp(prefix="mailstack-sink-"))
    top.chmod(0o755)
    spool = top / "spool"
    spool.mkdir()
    shutil.chown(spool, "nobody")
    port = free_port()
    sink = subprocess.Popen(
        [binary, "-u", "nobody", "-d", f"{spool}/%H%M%S.", f"127.0.0.1:{port}", "10"]
    )
    try:
        yield f"127.0.0.1:{port}", spool
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        shutil.rmtree(top)


def test_the_admins_are_told_once_in_the_resellers_brand(example_org, manage, lookup, smtp_sink):
    from django.test import override_settings

    relay, spool = smtp_sink
    manage("admin", "add", "dora", "--role", "domain", "--reseller", "acme",
           "--domain", "example.org", "--email", "Dora@Admins.example", stdin="dora-pass-word-1\n")  # fmt: skip
    manage("admin", "add", "rex", "--role", "reseller", "--reseller", "acme",
           "--email", "rex@admins.example", stdin="rex-pass-word-12\n")  # fmt: skip
    manage("admin", "add", "opal", "--role", "operator", "--email", "opal@ops.example",
           stdin="opal-pass-word-1\n")  # fmt: skip
    lookup.execute(
        "SELECT mail.hold_sending('bob@example.org', 'limit', "
        '\'{"count": 10, "threshold": 10, "window_seconds": 300}\'::jsonb)'
    )
    # A relay that does not answer: nothing is marked sent, the next run sends.
    with (
        override_settings(
            MAILPANEL_NOTICE_RELAY="127.0.0.1:1", MAILPANEL_NOTICE_FROM="notices@platform.example"
        ),
        pytest.raises(OSError),
    ):
        manage("hold", "notify")
    with override_settings(
        MAILPANEL_NOTICE_RELAY=relay, MAILPANEL_NOTICE_FROM="notices@platform.example"
    ):
        assert manage("hold", "notify").stdout.strip() == "sent 1 notice(s)"
        assert manage("hold", "notify").stdout.strip() == ""
    deadline = time.monotonic() + 10
    while not list(spool.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    (dump,) = list(spool.iterdir())
    notice = message_from_bytes(dump.read_bytes(), policy=default_policy)
    envelope = sorted(str(v) for v in notice.get_all("X-Rcpt-Args"))
    assert envelope == ["<dora@admins.example>", "<rex@admins.example>"]
    assert notice["X-Mail-Args"] == "<notices@platform.example>"
    assert notice["Subject"] == "[Acme Mail] Sending from bob@example.org is on hold"
    assert notice["From"] == "Acme Mail <notices@platform.example>"
    assert "10 times within 300 seconds" in notice.get_content()


def test_admins_see_their_tenants_held_accounts_and_release_them(tenants, lookup):
    from django.test import Client
    from django.urls import reverse
    from panel_tenants import login

    from accounts.audit import AuditEntry
    from accounts.holds import SendingHold

    held = tenants.acme.mailbox.address
    evidence = {"count": 3, "threshold": 3, "window_seconds": 3600, "last_refusals": [
        {"at": "2026-12-01T10:00:00+00:00", "queue_id": "4XyZ1", "client": "203.0.113.9",
         "recipients": 40, "action": "reject", "symbols": ["GTUBE"]}]}  # fmt: skip
    lookup.execute("SELECT mail.hold_sending(%s, 'scan', %s::jsonb)", (held, json.dumps(evidence)))

    def client_of(user) -> Client:
        client = Client()
        login(client, user)
        return client

    page = client_of(tenants.acme.domain_admin).get(reverse("web:hold-list")).content.decode()
    assert held in page and "4XyZ1" in page and "203.0.113.9" in page and "GTUBE" in page
    other = client_of(tenants.umbrella.reseller_admin)
    assert held not in other.get(reverse("web:hold-list")).content.decode()
    hold = SendingHold.objects.get()
    release = reverse("web:hold-release", args=[hold.pk])
    assert other.post(release).status_code == 404
    assert client_of(tenants.acme.mailbox_user).get(reverse("web:hold-list")).status_code == 403
    response = client_of(tenants.acme.domain_admin).post(release)
    assert response.status_code == 302 and not SendingHold.objects.exists()
    entry = AuditEntry.objects.get(object_type="sendinghold", action="delete")
    assert entry.object_name == held and entry.reseller_id == tenants.acme.reseller.pk
    assert entry.actor == tenants.acme.domain_admin.username


def test_an_admins_address_for_notices_is_set_in_the_panel_and_checked(tenants):
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse
    from panel_tenants import login

    client = Client()
    login(client, tenants.acme.reseller_admin)
    form = {"username": "helper", "role": "domain", "password": "a-fine-passphrase-4",
            "domains": [tenants.acme.domain.pk]}  # fmt: skip
    page = client.post(reverse("web:admin-new"), {**form, "email": "not an address"})
    assert "is not a valid" in page.content.decode()
    response = client.post(reverse("web:admin-new"), {**form, "email": "Helper@Example.NET"})
    assert response.status_code == 302
    assert get_user_model().objects.get(username="helper").email == "Helper@example.net"


def test_notices_wait_without_a_traceback_while_no_database_node_answers(manage_py):
    """A failover leaves no writable node for a while: the timer's run says so in one line and
    exits EX_TEMPFAIL (the unit's SuccessExitStatus), the next run sends the notices."""
    closed = str(free_port())
    result = manage_py("hold", "notify", env={"MAILPANEL_DB_HOST": "127.0.0.1",
                                              "MAILPANEL_DB_PORT": closed})  # fmt: skip
    assert result.returncode == 75, result.stderr
    assert result.stderr.startswith("the account data is unavailable ("), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr

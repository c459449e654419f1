"""The policy service reads users' outbound limit classes from the account data: the panel's
view `mail.outbound_limit_classes`, as the read-only lookup role, from a real PostgreSQL."""

import asyncio

import pytest
from psycopg.conninfo import make_conninfo

from mailstack.testing.policyd import one_service

pytestmark = [pytest.mark.postgres, pytest.mark.valkey]

OUTBOUND = {
    "default": {"recipients": 2, "window_seconds": 300},
    "classes": {"newsletter": {"recipients": 4, "window_seconds": 3600}},
}


def service_with_accounts(
    postgres, valkey, key_prefix, cache_seconds: int, sending_hold: dict | None = None
):
    """A policy service reading the test cluster's account data as the lookup role, holding
    users (as the lookup role too) at `sending_hold`'s thresholds and taking rspamd's reports."""
    values = postgres.lookup_settings()
    dsn = make_conninfo(
        host=values["db_hosts"][0],
        port=values["db_port"],
        dbname=values["db_name"],
        user=values["db_user"],
        password=values["db_password"],
    )
    return one_service(
        valkey.url,
        key_prefix,
        accounts_dsn=dsn,
        holds_dsn=dsn,
        scan_reports_listen="127.0.0.1:0",
        outbound_limit={**OUTBOUND, "sending_hold": sending_hold or {}},
        service={"account_cache_seconds": cache_seconds},
    )


async def accepted(mx, user: str, transaction: str, recipients: int = 6) -> list[str]:
    return [
        await mx.ask(sasl_username=user, instance=transaction, recipient=f"r{i}@example.net")
        for i in range(recipients)
    ]


def test_a_mailbox_gets_the_limit_of_its_class(postgres, example_org, manage, valkey, key_prefix):
    manage("mailbox", "change", "alice@example.org", "--limit-class", "newsletter")

    async def scenario():
        async with service_with_accounts(postgres, valkey, key_prefix, 0) as (server, mx):
            alice = await accepted(mx, "alice@example.org", "a1")
            assert alice.count("DUNNO") == 4
            assert "4 recipients in 3600 seconds" in alice[4]
            bob = await accepted(mx, "bob@example.org", "b1")
            assert bob.count("DUNNO") == 2
            assert "2 recipients in 300 seconds" in bob[2]
            # Not a mailbox here: the default limit.
            assert (await accepted(mx, "stranger@example.net", "s1")).count("DUNNO") == 2
            # A class changed in the panel applies once the cached one is stale (here: at once).
            # (Django refuses to run in the event loop's thread.)
            await asyncio.to_thread(
                manage, "mailbox", "change", "alice@example.org", "--default-limit-class"
            )
            assert (
                "2 recipients in 300 seconds"
                in (await accepted(mx, "alice@example.org", "a2", 1))[0]
            )
            assert server.metrics.account_errors.get() == 0

    asyncio.run(scenario())


def test_classes_are_cached(postgres, example_org, manage, valkey, key_prefix):
    manage("mailbox", "change", "alice@example.org", "--limit-class", "newsletter")

    async def scenario():
        async with service_with_accounts(postgres, valkey, key_prefix, 600) as (_server, mx):
            assert (await accepted(mx, "alice@example.org", "a1", 1)) == ["DUNNO"]
            # (Django refuses to run in the event loop's thread.)
            await asyncio.to_thread(
                manage, "mailbox", "change", "alice@example.org", "--default-limit-class"
            )
            # Still the newsletter class: read at the first request, reused for 600 s.
            assert (await accepted(mx, "alice@example.org", "a2", 5)).count("DUNNO") == 3

    asyncio.run(scenario())

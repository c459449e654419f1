"""The outbound recipient limit against a real Valkey: the sliding window, where recipients are
charged, limit classes, repeat offenders, and two mx nodes at once."""

import asyncio
import logging
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailstack.testing.policy_client import PolicyClient
from mailstack.testing.policyd import FakeClock, client, one_service, policy_services

pytestmark = pytest.mark.valkey

USER = "alice@example.net"


def limit(recipients: int, window: int, **more) -> dict:
    return {"default": {"recipients": recipients, "window_seconds": window}, **more}


async def reserve(mx: PolicyClient, instance: str, recipients: int) -> list[str]:
    """The RCPT requests of one SMTP transaction."""
    return [
        await mx.ask(sasl_username=USER, instance=instance, recipient=f"r{i}@example.org")
        for i in range(recipients)
    ]


async def end_message(mx: PolicyClient, instance: str, recipient_count: int) -> None:
    """The END-OF-MESSAGE request, with the number of recipients Postfix accepted."""
    action = await mx.ask(
        sasl_username=USER,
        instance=instance,
        protocol_state="END-OF-MESSAGE",
        recipient="",
        recipient_count=str(recipient_count),
    )
    assert action == "DUNNO"


async def send(mx: PolicyClient, instance: str, recipients: int, end: bool = True) -> list[str]:
    """One SMTP transaction: RCPT per recipient, then (if it ends) END-OF-MESSAGE."""
    actions = await reserve(mx, instance, recipients)
    if end:
        await end_message(mx, instance, actions.count("DUNNO"))
    return actions


def test_the_61st_recipient_in_five_minutes_is_deferred(valkey, key_prefix):
    clock = FakeClock()

    async def scenario():
        async with one_service(valkey.url, key_prefix, clock=clock) as (_server, mx):
            actions = await send(mx, "t1", 40)
            clock.advance(100)
            actions += await send(mx, "t2", 21)
            assert actions[:60] == ["DUNNO"] * 60
            refused = actions[60]
            assert refused.startswith("451 4.7.1 Recipient limit reached")
            assert "60 recipients in 300 seconds" in refused
            # The first 40 leave the window 300 s after they were sent: 200 s from now.
            assert "retry in 200 seconds" in refused
            clock.advance(199)
            assert (await send(mx, "t3", 1))[0].startswith("451")
            clock.advance(1)
            # A true sliding window: exactly the first 40 have left it.
            assert (await send(mx, "t4", 41)).count("DUNNO") == 40

    asyncio.run(scenario())


def test_concurrent_submissions_through_two_mx_nodes_never_let_the_61st_through(valkey, key_prefix):
    async def scenario():
        async with policy_services(valkey.url, key_prefix, count=2) as (mx1, mx2):
            clients = [client(mx1 if i % 2 else mx2) for i in range(24)]
            for c in clients:
                await c.__aenter__()
            try:
                results = await asyncio.gather(
                    *(send(c, f"tx{i}", 5) for i, c in enumerate(clients))
                )
                accepted = sum(r.count("DUNNO") for r in results)
                assert accepted == 60
                # Nothing else fits afterwards, on either node.
                for c in clients[:2]:
                    assert (await send(c, "after", 1))[0].startswith("451")
            finally:
                for c in clients:
                    await c.__aexit__()
            accepted_by_node = [s.metrics.decisions.get("outbound", "accepted") for s in (mx1, mx2)]
            assert sum(accepted_by_node) == 60
            assert all(n > 0 for n in accepted_by_node)

    asyncio.run(scenario())


def test_recipients_of_a_transaction_that_never_ends_are_not_charged(valkey, key_prefix):
    clock = FakeClock()

    async def scenario():
        async with one_service(
            valkey.url, key_prefix, clock=clock, outbound_limit=limit(5, 300, hold_seconds=60)
        ) as (_server, mx):
            # Reserved at RCPT, but the client gives up before the end of the message.
            assert await send(mx, "abandoned", 5, end=False) == ["DUNNO"] * 5
            assert (await send(mx, "blocked", 1))[0].startswith("451")
            clock.advance(61)
            assert await send(mx, "next", 5) == ["DUNNO"] * 5

    asyncio.run(scenario())


def test_only_the_recipients_postfix_accepted_are_charged(valkey, key_prefix):
    async def scenario():
        async with one_service(valkey.url, key_prefix, outbound_limit=limit(5, 300)) as (
            _server,
            mx,
        ):
            await reserve(mx, "t1", 4)
            # Postfix refused one of the four after this check (a later restriction).
            await end_message(mx, "t1", 3)
            actions = await send(mx, "t2", 3)
            assert actions[:2] == ["DUNNO", "DUNNO"]
            assert actions[2].startswith("451 4.7.1")

    asyncio.run(scenario())


def test_a_message_that_ends_after_its_reservations_lapsed_is_still_charged(valkey, key_prefix):
    clock = FakeClock()

    async def scenario():
        async with one_service(
            valkey.url, key_prefix, clock=clock, outbound_limit=limit(5, 300, hold_seconds=60)
        ) as (_server, mx):
            await reserve(mx, "slow", 3)
            clock.advance(120)  # a very slow DATA phase
            await end_message(mx, "slow", 3)
            assert (await send(mx, "next", 3)).count("DUNNO") == 2

    asyncio.run(scenario())


def test_a_user_who_keeps_hitting_the_limit_is_reported(valkey, key_prefix, caplog):
    clock = FakeClock()

    async def scenario():
        async with policy_services(
            valkey.url,
            key_prefix,
            clock=clock,
            outbound_limit=limit(2, 300, report_after_hits=3),
        ) as (server,):
            async with client(server) as mx:
                await send(mx, "t0", 2)
                for attempt in range(1, 3):
                    # Several refused recipients in one transaction count as one hit.
                    await send(mx, f"spam{attempt}", 4)
                    clock.advance(10)
                assert server.metrics.limit_reports.get(USER) == 0
                await send(mx, "spam3", 1)
                assert server.metrics.limit_reports.get(USER) == 1
            assert "policyd_outbound_limit_reports_total" in server.metrics.render()

    with caplog.at_level(logging.INFO, logger="mailstack.policyd"):
        asyncio.run(scenario())
    reports = [r.getMessage() for r in caplog.records if "REPORT" in r.getMessage()]
    assert len(reports) == 1
    assert USER in reports[0]
    assert "compromised" in reports[0]


def test_sent_and_refused_recipients_are_counted_per_mailbox(valkey, key_prefix):
    """policyd_sent_recipients_total counts what each message charged at its end (Postfix's
    recipient_count), policyd_refused_total each recipient the limit refused; another user's
    counts are its own."""

    async def scenario():
        async with one_service(valkey.url, key_prefix, outbound_limit=limit(5, 300)) as (
            server,
            mx,
        ):
            await send(mx, "t1", 3)
            # Seven asked, two admitted: the limit refuses five.
            actions = await reserve(mx, "t2", 7)
            # Postfix accepted one of the two admitted (another check refused the other).
            await end_message(mx, "t2", 1)
            assert actions.count("DUNNO") == 2
            await mx.ask(sasl_username="bob@example.net", instance="b1", recipient="x@example.org")
            metrics = server.metrics
            assert metrics.sent_recipients.get(USER) == 4
            assert metrics.refused.get(USER, "limit") == 5
            assert metrics.refused.get("bob@example.net", "limit") == 0
            text = metrics.render()
            assert f'policyd_sent_recipients_total{{user="{USER}"}} 4' in text
            assert f'policyd_refused_total{{user="{USER}",reason="limit"}} 5' in text

    asyncio.run(scenario())


def test_a_limit_that_cannot_be_checked_counts_as_refused_unchecked(own_valkey, key_prefix):
    async def scenario():
        async with one_service(own_valkey.url, key_prefix) as (server, mx):
            own_valkey.stop()
            action = await mx.ask(sasl_username=USER, instance="t", recipient="x@example.org")
            assert action.startswith("451 4.7.1 The recipient limit cannot be checked")
            assert server.metrics.refused.get(USER, "unchecked") == 1

    asyncio.run(scenario())


def test_authenticated_mail_is_not_limited_when_the_limit_is_off(valkey, key_prefix):
    async def scenario():
        async with one_service(
            valkey.url, key_prefix, outbound_limit=limit(1, 300, enabled=False)
        ) as (_server, mx):
            assert await send(mx, "t", 3) == ["DUNNO"] * 3

    asyncio.run(scenario())


# The window arithmetic, against a plain model of it --------------------------------------

steps = st.lists(
    st.tuples(st.integers(0, 120_000), st.integers(1, 4), st.booleans()), min_size=1, max_size=25
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps, st.integers(1, 8))
def test_the_window_admits_exactly_what_a_sliding_window_would(valkey, steps, limit_count):
    """Random transactions at random times, ended or abandoned: every RCPT is admitted exactly
    when fewer than the limit were charged in the 300 s before it or reserved, by a transaction
    that never ended, in the 120 s (hold_seconds) before it."""
    clock = FakeClock()
    # Hypothesis seeds `random` the same for every example; the prefix must differ each time.
    prefix = f"prop{uuid.uuid4().hex}:"

    async def scenario():
        counted: list[tuple[float, float]] = []  # (time of the RCPT, how long it counts)
        async with one_service(
            valkey.url,
            prefix,
            clock=clock,
            outbound_limit=limit(limit_count, 300, hold_seconds=120),
        ) as (_server, mx):
            for n, (advance_ms, recipients, ends) in enumerate(steps):
                clock.advance(advance_ms / 1000)
                actions = await send(mx, f"tx{n}", recipients, end=ends)
                for action in actions:
                    in_window = [t for t, span in counted if clock.now - t < span]
                    expected = len(in_window) < limit_count
                    assert (action == "DUNNO") == expected, (n, action, in_window)
                    if expected:
                        counted.append((clock.now, 300 if ends else 120))

    asyncio.run(scenario())


def test_mail_sieve_sends_for_a_user_counts_against_that_users_limit(valkey, key_prefix):
    """Redirects and vacation replies arrive without a login on the mx's Sieve listener, whose
    policy_context names it: the envelope sender (the user's own address) is the user."""
    clock = FakeClock()

    async def scenario():
        async with one_service(valkey.url, key_prefix, clock=clock) as (_server, mx):
            await send(mx, "s1", 59)
            sieve = {"policy_context": "sieve", "sender": USER.upper()}
            assert await mx.ask(protocol_state="RCPT", instance="s2", **sieve) == "DUNNO"
            await mx.ask(
                protocol_state="END-OF-MESSAGE", instance="s2", recipient_count="1", **sieve
            )
            refused = await mx.ask(protocol_state="RCPT", instance="s3", **sieve)
            assert refused.startswith("451 4.7.1 Recipient limit reached"), refused
            # Inbound mail with the same sender, outside the Sieve listener, is not limited.
            inbound = await mx.ask(
                protocol_state="RCPT", instance="s4", sender=USER,
                client_address="192.0.2.1", recipient="bob@example.net",
            )  # fmt: skip
            assert not inbound.startswith("451 4.7.1 Recipient limit")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("request_attributes", "expected"),
    [
        ({"sasl_username": "alice@example.org"}, "451 4.3.0"),
        ({"policy_context": "sieve", "sender": "alice@example.org"}, "451 4.3.0"),
        ({"sender": "bob@example.net", "client_address": "192.0.2.1"}, "DUNNO"),
    ],
)
def test_an_internal_error_makes_users_mail_wait_and_lets_inbound_mail_on(
    valkey, key_prefix, request_attributes, expected, monkeypatch
):
    async def broken(self, request):
        raise RuntimeError("a bug")

    async def scenario():
        async with one_service(valkey.url, key_prefix) as (server, mx):
            monkeypatch.setattr(type(server.policy), "decide", broken)
            action = await mx.ask(
                protocol_state="RCPT", recipient="carol@example.net", **request_attributes
            )
            assert action.startswith(expected), action
            assert server.metrics.decisions.get("none", "internal-error") == 1
            # A user's recipient the failure refused counts against that user.
            user = request_attributes.get("sasl_username") or request_attributes["sender"]
            refused = server.metrics.refused.get(user, "internal-error")
            assert refused == (1 if expected.startswith("451") else 0)

    asyncio.run(scenario())

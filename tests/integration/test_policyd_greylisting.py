"""Greylisting against a real Valkey, with one or two policy services (mx nodes)."""

import asyncio

import pytest

from mailstack.testing.policyd import FakeClock, client, one_service, policy_services

pytestmark = pytest.mark.valkey

GREYLISTING = {"delay_seconds": 300, "retry_window_seconds": 86400, "auto_allow_after": 0}


def test_first_attempt_is_deferred_and_the_retry_after_the_delay_passes(valkey, key_prefix):
    clock = FakeClock()

    async def scenario():
        async with policy_services(
            valkey.url, key_prefix, clock=clock, greylisting=GREYLISTING
        ) as (server,):
            async with client(server) as mx:
                first = await mx.ask()
                assert first.startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
                assert "retry in 300 seconds" in first
                clock.advance(100)
                early = await mx.ask()
                assert early.startswith("DEFER_IF_PERMIT")
                assert "retry in 200 seconds" in early
                clock.advance(200)
                assert await mx.ask() == "DUNNO"
                # Once passed, the triplet is known: later mail is not delayed.
                clock.advance(3600)
                assert await mx.ask() == "DUNNO"
                # Another recipient is another triplet.
                assert (await mx.ask(recipient="carol@example.net")).startswith("DEFER_IF_PERMIT")
            decisions = server.metrics.decisions
            assert decisions.get("greylist", "new") == 2
            assert decisions.get("greylist", "early") == 1
            assert decisions.get("greylist", "passed") == 1
            assert decisions.get("greylist", "known") == 1

    asyncio.run(scenario())


def test_a_retry_that_lands_on_another_mx_passes(valkey, key_prefix):
    clock = FakeClock()

    async def scenario():
        async with (
            policy_services(
                valkey.url, key_prefix, count=2, clock=clock, greylisting=GREYLISTING
            ) as (mx1, mx2),
            client(mx1) as first,
            client(mx2) as second,
        ):
            assert (await first.ask()).startswith("DEFER_IF_PERMIT")
            clock.advance(301)
            # The retry comes from another address of the sender's pool, with a new BATV tag.
            assert (
                await second.ask(
                    client_address="198.51.100.77", sender="prvs=2999abcdef=alice@example.org"
                )
                == "DUNNO"
            )

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("prefix", "same_network", "other_network"),
    [
        (64, "2001:db8:1:2:aaaa::99", "2001:db8:1:3::10"),
        (48, "2001:db8:1:ffff::99", "2001:db8:2::10"),
    ],
)
def test_ipv6_clients_are_grouped_by_the_prefix_the_settings_give(
    valkey, key_prefix, prefix, same_network, other_network
):
    """An IPv6 sender's pool spans a network of its own (mail.greylisting.ipv6_prefix): a retry
    from another address of it passes on another mx; another network is a new client."""
    clock = FakeClock()

    async def scenario():
        async with (
            policy_services(
                valkey.url,
                key_prefix,
                count=2,
                clock=clock,
                greylisting={**GREYLISTING, "ipv6_prefix": prefix},
            ) as (mx1, mx2),
            client(mx1) as first,
            client(mx2) as second,
        ):
            assert (await first.ask(client_address="2001:db8:1:2::10")).startswith(
                "DEFER_IF_PERMIT"
            )
            clock.advance(301)
            assert (await second.ask(client_address=other_network)).startswith("DEFER_IF_PERMIT")
            assert await second.ask(client_address=same_network) == "DUNNO"

    asyncio.run(scenario())


def test_a_retry_after_the_retry_window_starts_over(valkey, key_prefix):
    clock = FakeClock()

    async def scenario():
        async with one_service(
            valkey.url,
            key_prefix,
            clock=clock,
            greylisting={**GREYLISTING, "retry_window_seconds": 3600},
        ) as (_server, mx):
            assert (await mx.ask()).startswith("DEFER_IF_PERMIT")
            clock.advance(3601)
            retry = await mx.ask()
            assert "first attempt" in retry

    asyncio.run(scenario())


def test_entries_expire_in_valkey_by_themselves(valkey, key_prefix):
    import valkey as valkey_client

    async def scenario():
        async with one_service(
            valkey.url,
            key_prefix,
            greylisting={**GREYLISTING, "retry_window_seconds": 600},
        ) as (_server, mx):
            await mx.ask()

    asyncio.run(scenario())
    inspector = valkey_client.Valkey.from_url(valkey.url)
    keys = inspector.keys(f"{key_prefix}grey:*")
    assert len(keys) == 1
    assert 0 < inspector.pttl(keys[0]) <= 600_000


def test_a_client_network_is_allowed_after_n_passed_retries(valkey, key_prefix):
    clock = FakeClock()

    async def scenario():
        async with one_service(
            valkey.url,
            key_prefix,
            clock=clock,
            greylisting={**GREYLISTING, "auto_allow_after": 2},
        ) as (_server, mx):
            for recipient in ("one@example.net", "two@example.net"):
                assert (await mx.ask(recipient=recipient)).startswith("DEFER_IF_PERMIT")
            clock.advance(301)
            for recipient in ("one@example.net", "two@example.net"):
                assert await mx.ask(recipient=recipient) == "DUNNO"
            # A new triplet from the same /24 now passes at once.
            assert (
                await mx.ask(client_address="198.51.100.99", recipient="three@example.net")
                == "DUNNO"
            )
            # Another network does not.
            assert (
                await mx.ask(client_address="203.0.113.5", recipient="three@example.net")
            ).startswith("DEFER_IF_PERMIT")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "request_attributes",
    [
        {"sasl_username": "alice@example.net"},
        {"client_address": "127.0.0.1"},
        {"client_address": "10.20.1.15"},
        {"recipient": "postmaster@example.net"},
        {"client_name": "mail-ed1-f42.google.com"},
        {"protocol_state": "DATA"},
        {"client_address": "unknown"},
    ],
    ids=[
        "authenticated",
        "loopback",
        "trusted-network",
        "allow-listed-recipient",
        "big-sender-pool",
        "not-at-rcpt",
        "no-client-address",
    ],
)
def test_who_is_never_greylisted(valkey, key_prefix, request_attributes):
    async def scenario():
        async with one_service(
            valkey.url,
            key_prefix,
            greylisting={**GREYLISTING, "allow_recipients": ["postmaster@example.net"]},
            trusted_networks=["127.0.0.0/8", "10.20.0.0/16"],
        ) as (_server, mx):
            assert await mx.ask(**request_attributes) == "DUNNO"
            # The same request without the exemption is greylisted.
            assert (await mx.ask()).startswith("DEFER_IF_PERMIT")

    asyncio.run(scenario())


def test_greylisting_can_be_turned_off(valkey, key_prefix):
    async def scenario():
        async with one_service(valkey.url, key_prefix, greylisting={"enabled": False}) as (
            _server,
            mx,
        ):
            assert await mx.ask() == "DUNNO"

    asyncio.run(scenario())

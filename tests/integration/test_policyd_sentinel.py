"""The policy service follows Sentinel: a real Valkey primary and replica with a Sentinel (Debian
13's), the primary killed mid-run; answers stay bounded and decisions come back through the
promoted replica, which the service finds through the Sentinel by itself."""

import asyncio
import time

import pytest

from mailstack.testing.policyd import one_service
from mailstack.testing.valkey import SentinelServer, ValkeyServer

pytestmark = pytest.mark.valkey

PASSWORD = "valkey-test-password"
STORE = {"store_timeout_ms": 300, "store_retry_ms": 200}


def test_a_killed_primary_is_replaced_by_the_one_sentinel_names(key_prefix):
    async def scenario(primary, replica, sentinel):
        options = {
            "valkey_sentinels": [f"127.0.0.1:{sentinel.port}"],
            "valkey_service": "mailstack-policy",
            "valkey_sentinel_password": PASSWORD,
            "service": STORE,
        }
        async with one_service(primary.url, key_prefix, **options) as (server, mx):
            assert (await mx.ask(recipient="before@example.net")).startswith("DEFER_IF_PERMIT")
            primary.kill()
            killed = time.monotonic()
            recovered = None
            n = 0
            while time.monotonic() - killed < 20:
                n += 1
                started = time.monotonic()
                action = await mx.ask(recipient=f"r{n}@example.net")
                assert time.monotonic() - started < 1.5
                if action.startswith("DEFER_IF_PERMIT"):
                    recovered = time.monotonic() - killed
                    break
                assert action == "DUNNO"  # greylisting lets mail through meanwhile
                await asyncio.sleep(0.1)
            assert recovered is not None, "no decision through the new primary within 20 s"
            assert server.metrics.store_errors.get() >= 1
            print(f"decisions again {recovered:.1f} s after the primary's death")

    with ValkeyServer(password=PASSWORD, extra_args=("--masterauth", PASSWORD)) as primary:
        replica_args = ("--replicaof", "127.0.0.1", str(primary.port), "--masterauth", PASSWORD)
        with ValkeyServer(password=PASSWORD, extra_args=replica_args) as replica:
            primaries = [("mailstack-policy", primary.port, PASSWORD)]
            with SentinelServer(primaries, password=PASSWORD) as sentinel:
                time.sleep(2)  # the Sentinel finds the replica through the primary
                asyncio.run(scenario(primary, replica, sentinel))

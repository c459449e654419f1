"""Policy services run in-process for tests, against a real Valkey, with a clock tests move."""

import contextlib
import time

from mailstack.policyd.config import PolicydConfig
from mailstack.policyd.server import PolicyServer
from mailstack.testing.policy_client import PolicyClient


class FakeClock:
    """Wall-clock time that a test advances by hand (both services share it like NTP)."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(valkey_url: str, key_prefix: str, **overrides) -> PolicydConfig:
    return PolicydConfig.model_validate(
        {"listen": "127.0.0.1:0", "valkey_url": valkey_url, "key_prefix": key_prefix, **overrides}
    )


@contextlib.asynccontextmanager
async def policy_services(valkey_url: str, key_prefix: str, count=1, clock=time.time, **overrides):
    """`count` policy services sharing one Valkey, as on `count` mx nodes."""
    servers = []
    try:
        for _ in range(count):
            server = PolicyServer(make_config(valkey_url, key_prefix, **overrides), clock=clock)
            await server.start()
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            await server.close()


def client(server: PolicyServer) -> PolicyClient:
    return PolicyClient("127.0.0.1", server.port)


@contextlib.asynccontextmanager
async def one_service(valkey_url: str, key_prefix: str, **options):
    """One policy service and one client connection to it: (server, client)."""
    async with (
        policy_services(valkey_url, key_prefix, **options) as (server,),
        client(server) as mx,
    ):
        yield server, mx

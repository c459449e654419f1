"""Where the Valkey primary is: asked of every Sentinel at once, the first valid answer wins.

valkey-py's `Sentinel.discover_master` asks the Sentinels one after another, so a dead
Sentinel first in the list costs a whole connect timeout on every lookup, longer than the policy
service may wait (`store_timeout_ms`). This asks them all at once through valkey-py's own
clients and takes the first answer its `check_master_state` accepts (a primary that Sentinel
does not consider down, seen by at least `min_other_sentinels` other Sentinels).
"""

import asyncio
import contextlib

from valkey.asyncio.sentinel import Sentinel
from valkey.exceptions import ValkeyError


class MasterNotFound(ConnectionError):
    """No Sentinel named a usable primary."""


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


class SentinelLocator:
    """`await locator()` -> (host, port) of the primary of `service`, as the Sentinels see it."""

    def __init__(
        self,
        sentinels: list[str],
        service: str,
        password: str | None,
        timeout: float,
        min_other_sentinels: int = 0,
    ):
        self.service = service
        self.sentinel = Sentinel(
            [split_host_port(s) for s in sentinels],
            min_other_sentinels=min_other_sentinels,
            sentinel_kwargs={
                "password": password,
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
            },
        )

    async def _ask(self, client) -> tuple[str, int]:
        masters = await client.sentinel_masters()
        state = masters.get(self.service)
        if not state or not self.sentinel.check_master_state(state, self.service):
            raise MasterNotFound(f"{client} names no usable primary for {self.service}")
        return state["ip"], int(state["port"])

    async def __call__(self) -> tuple[str, int]:
        asks = [asyncio.ensure_future(self._ask(c)) for c in self.sentinel.sentinels]
        errors: list[str] = []
        try:
            for next_done in asyncio.as_completed(asks):
                try:
                    return await next_done
                except (ValkeyError, OSError, MasterNotFound) as error:
                    errors.append(f"{type(error).__name__}: {error}")
        finally:
            for ask in asks:
                ask.cancel()
            for ask in asks:
                with contextlib.suppress(BaseException):
                    await ask
        raise MasterNotFound(f"no Sentinel named a primary for {self.service}: {errors}")

    async def close(self) -> None:
        for client in self.sentinel.sentinels:
            with contextlib.suppress(ValkeyError, OSError):
                await client.aclose()

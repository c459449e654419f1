"""The shared state in Valkey, reached with a bounded wait.

Every decision is one Lua script run atomically in Valkey (one round trip). A call that fails or
takes longer than `timeout` raises `StoreUnavailable`; after a failure the store is not tried
again for `retry_interval`, so a dead Valkey costs requests nothing but the fault behaviour.
"""

import time
from importlib import resources

from mailstack.policyd.metrics import Metrics
from mailstack.policyd.resp import PipelinedClient, ReplyError


class StoreUnavailable(Exception):
    """Valkey could not answer in time (down, unreachable, too slow, or recently failed)."""


def _script(name: str) -> str:
    return resources.files("mailstack.policyd").joinpath("lua", name).read_text()


class Store:
    def __init__(
        self,
        url: str,
        prefix: str,
        timeout: float,
        retry_interval: float,
        metrics: Metrics,
        locate=None,
    ):
        self.prefix = prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.metrics = metrics
        self._down_until = 0.0
        self.locate = locate
        self.client = PipelinedClient(url, timeout=timeout, locate=locate)
        self._greylist = self.client.script(_script("greylist.lua"))
        self._outbound_check = self.client.script(_script("outbound_check.lua"))
        self._outbound_commit = self.client.script(_script("outbound_commit.lua"))
        self._scan_refusal = self.client.script(_script("scan_refusal.lua"))

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _run(self, script: str, keys: list[str], args: list):
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("failed moments ago; not retried yet")
        try:
            return await self.client.run_script(script, keys, args)
        except TimeoutError:
            self._failed()
            raise StoreUnavailable(f"no answer within {self.timeout:g} s") from None
        except (ReplyError, OSError) as error:
            self._failed()
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from None

    def _failed(self) -> None:
        self._down_until = time.monotonic() + self.retry_interval
        self.metrics.store_errors.inc()

    async def greylist(
        self,
        triplet_key: str,
        network_key: str,
        now_ms: int,
        delay_ms: int,
        retry_window_ms: int,
        expiry_ms: int,
        auto_allow_after: int,
    ) -> tuple[str, int]:
        verdict, number = await self._run(
            self._greylist,
            [triplet_key, network_key],
            [now_ms, delay_ms, retry_window_ms, expiry_ms, auto_allow_after],
        )
        return _text(verdict), int(number)

    def outbound_keys(self, user: str) -> list[str]:
        return [
            self.key("out", user),
            self.key("out-held", user),
            self.key("out-txn", user),
            self.key("out-hits", user),
        ]

    async def outbound_check(
        self, user: str, limit_class: str, instance: str, now_ms: int, hold_ms: int, limits: list
    ) -> list:
        result = await self._run(
            self._outbound_check,
            self.outbound_keys(user),
            [now_ms, limit_class, instance, hold_ms, *limits],
        )
        return [_text(v) if isinstance(v, bytes) else v for v in result]

    async def outbound_commit(
        self, user: str, instance: str, now_ms: int, recipient_count: int
    ) -> int:
        return int(
            await self._run(
                self._outbound_commit,
                self.outbound_keys(user)[:3],
                [now_ms, instance, recipient_count],
            )
        )

    async def scan_refusal(
        self, user: str, now_ms: int, window_ms: int, member: str, report: str, keep: int
    ) -> tuple[int, list[str]]:
        """Count a refused message of `user`; (refusals in the window, newest reports kept)."""
        count, reports = await self._run(
            self._scan_refusal,
            [self.key("scan-refused", user), self.key("scan-reports", user)],
            [now_ms, window_ms, member, report, keep],
        )
        return int(count), [_text(r) for r in reports]

    async def close(self) -> None:
        await self.client.close()
        if self.locate is not None:
            await self.locate.close()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

"""Users' outbound limit classes, read from the account data (PostgreSQL), cached.

The panel owns the account data; the policy service reads the view
`mail.outbound_limit_classes` as the read-only lookup role (docs/accounts.md). A class is reused
for `cache_seconds`; the database is asked with a bounded wait, and while it cannot answer, a
user keeps the class last read, or gets the default limit if none was.
"""

import asyncio
import contextlib
import logging
import time

import psycopg

from mailstack.policyd.metrics import Metrics

log = logging.getLogger("mailstack.policyd")

QUERY = "SELECT limit_class FROM mail.outbound_limit_classes WHERE sasl_username = %s"
DEFAULT = ""
"""The class name meaning 'the default limit' (an empty class in the account data)."""
CACHE_SWEEP_SIZE = 50_000
"""When the cache holds this many users, entries past their time are dropped."""


class LimitClasses:
    def __init__(
        self,
        dsn: str | None,
        cache_seconds: float,
        timeout: float,
        retry_interval: float,
        metrics: Metrics,
        clock=time.monotonic,
    ):
        self.dsn = dsn
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.metrics = metrics
        self.clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._connection: psycopg.AsyncConnection | None = None
        self._down_until = 0.0

    async def limit_class(self, user: str) -> str:
        """The user's class name; DEFAULT without account data, entry or reachable database."""
        if self.dsn is None:
            return DEFAULT
        now = self.clock()
        cached = self._cache.get(user)
        if cached is not None and cached[1] > now:
            return cached[0]
        if now < self._down_until:
            return cached[0] if cached else DEFAULT
        try:
            async with asyncio.timeout(self.timeout):
                found = await self._query(user)
        except (psycopg.Error, OSError, TimeoutError) as error:
            self._down_until = now + self.retry_interval
            self.metrics.account_errors.inc()
            await self._drop_connection()
            fallback = cached[0] if cached else DEFAULT
            log.warning(
                "outbound limit: account data unavailable (%s: %s); user=%s gets class %s",
                type(error).__name__,
                str(error).strip().splitlines()[0] if str(error).strip() else "",
                user,
                fallback or "default",
            )
            return fallback
        if len(self._cache) >= CACHE_SWEEP_SIZE:
            self._cache = {u: entry for u, entry in self._cache.items() if entry[1] > now}
        self._cache[user] = (found, now + self.cache_seconds)
        return found

    async def _query(self, user: str) -> str:
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        cursor = await self._connection.execute(QUERY, (user,))
        row = await cursor.fetchone()
        return row[0] if row and row[0] else DEFAULT

    async def _drop_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(psycopg.Error, OSError):
                await connection.close()

    async def close(self) -> None:
        await self._drop_connection()

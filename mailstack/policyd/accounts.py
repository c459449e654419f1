"""What the account data says of a sending user: their outbound limit class and whether their
sending is on hold; and the way to put them on hold.

The panel owns the account data. The policy service reads the views
`mail.outbound_limit_classes` and `mail.sending_holds` as the read-only lookup role
(docs/accounts.md), from any db node; an answer is reused for `cache_seconds`. The database is
asked with a bounded wait, and while it cannot answer, a user keeps the answer last read, or gets
the default limit and no hold if none was. Holds are written through `mail.hold_sending` on the
primary (`holds_dsn`).
"""

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass

import psycopg

from mailstack.policyd.metrics import Metrics

log = logging.getLogger("mailstack.policyd")

QUERY = """
SELECT (SELECT limit_class FROM mail.outbound_limit_classes WHERE sasl_username = %(user)s),
       (SELECT reason FROM mail.sending_holds WHERE sasl_username = lower(%(user)s))
"""
HOLD = "SELECT mail.hold_sending(%s, %s, %s::jsonb)"
DEFAULT = ""
"""The class name meaning 'the default limit' (an empty class in the account data)."""
CACHE_SWEEP_SIZE = 50_000
"""When the cache holds this many users, entries past their time are dropped."""


@dataclass(frozen=True)
class Account:
    limit_class: str = DEFAULT
    """The user's limit class; DEFAULT for the default limit."""
    hold: str = ""
    """Why the user's sending is on hold ('limit' or 'scan'); empty when it is not."""


UNKNOWN = Account()
"""A user without account data, entry or reachable database: default limit, no hold."""


class Connection:
    """One lazily opened connection, asked with a bounded wait, dropped after a failure."""

    def __init__(self, dsn: str, timeout: float):
        self.dsn, self.timeout = dsn, timeout
        self._connection: psycopg.AsyncConnection | None = None

    async def fetchone(self, query: str, params) -> tuple | None:
        try:
            async with asyncio.timeout(self.timeout):
                if self._connection is None or self._connection.closed:
                    self._connection = await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True
                    )
                cursor = await self._connection.execute(query, params)
                return await cursor.fetchone()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(psycopg.Error, OSError):
                await connection.close()


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


class Accounts:
    def __init__(
        self,
        dsn: str | None,
        cache_seconds: float,
        timeout: float,
        retry_interval: float,
        metrics: Metrics,
        holds_dsn: str | None = None,
        clock=time.monotonic,
    ):
        self.cache_seconds = cache_seconds
        self.retry_interval = retry_interval
        self.metrics = metrics
        self.clock = clock
        self._cache: dict[str, tuple[Account, float]] = {}
        self._reader = Connection(dsn, timeout) if dsn else None
        self._writer = Connection(holds_dsn, timeout) if holds_dsn else None
        self._down_until = 0.0

    async def account(self, user: str) -> Account:
        """What the account data says of `user`; UNKNOWN without it (see the module)."""
        if self._reader is None:
            return UNKNOWN
        now = self.clock()
        cached = self._cache.get(user)
        if cached is not None and cached[1] > now:
            return cached[0]
        if now < self._down_until:
            return cached[0] if cached else UNKNOWN
        try:
            row = await self._reader.fetchone(QUERY, {"user": user})
        except (psycopg.Error, OSError, TimeoutError) as error:
            self._down_until = now + self.retry_interval
            self.metrics.account_errors.inc()
            fallback = cached[0] if cached else UNKNOWN
            log.warning(
                "accounts: account data unavailable (%s: %s); user=%s gets class %s%s",
                type(error).__name__,
                first_line(error),
                user,
                fallback.limit_class or "default",
                ", on hold" if fallback.hold else "",
            )
            return fallback
        found = Account(limit_class=row[0] or DEFAULT, hold=row[1] or "")
        self._remember(user, found, now)
        return found

    def _remember(self, user: str, account: Account, now: float) -> None:
        if len(self._cache) >= CACHE_SWEEP_SIZE:
            self._cache = {u: entry for u, entry in self._cache.items() if entry[1] > now}
        self._cache[user] = (account, now + self.cache_seconds)

    async def hold(self, user: str, reason: str, evidence: dict) -> bool:
        """Put `user`'s sending on hold; True when this made a new hold (False: held already,
        not a live mailbox here). Raises psycopg.Error, OSError or TimeoutError when the primary
        cannot be reached; nothing is then held."""
        if self._writer is None:
            return False
        row = await self._writer.fetchone(HOLD, (user, reason, json.dumps(evidence)))
        # This node refuses at once; the others when their cached answer is stale.
        cached = self._cache.get(user, (UNKNOWN, 0.0))[0]
        self._remember(user, Account(cached.limit_class, reason), self.clock())
        return bool(row and row[0])

    async def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                await connection.close()

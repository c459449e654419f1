"""The asyncio server: Postfix's connections, one Valkey round trip per request.

Connections are protocol objects rather than stream coroutines: a request costs no timer and no
extra wake-ups. One sweeper closes connections that idle too long or send a request too slowly.
"""

import asyncio
import gc
import logging
import time
from collections import deque

from mailstack.policyd import scanreports
from mailstack.policyd.accounts import Accounts
from mailstack.policyd.config import PolicydConfig
from mailstack.policyd.metrics import Metrics
from mailstack.policyd.policy import DUNNO, Policy, sending_user
from mailstack.policyd.protocol import (
    Limits,
    ProtocolError,
    RequestFramer,
    answer,
    parse_request,
)
from mailstack.policyd.sentinel import SentinelLocator
from mailstack.policyd.store import Store

log = logging.getLogger("mailstack.policyd")

# A client may send the next request before the answer to the last (Postfix does not); past
# this many waiting, reading from it pauses.
MAX_QUEUED_REQUESTS = 16


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


INTERNAL_ERROR_TEXT = "451 4.3.0 The policy service failed on this request; please retry later"


class PolicyConnection(asyncio.Protocol):
    def __init__(self, server: "PolicyServer"):
        self.server = server
        self.framer = RequestFramer(server.limits)
        self.queue: deque[bytes] = deque()
        self.busy = False
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.idle_since = 0.0
        self.request_started = 0.0
        self.closed_by_us = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        self.idle_since = self.server.loop.time()
        self.server.connections.add(self)
        self.server.metrics.connections.inc()

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        self.server.metrics.connections.inc(amount=-1)
        if self.framer.pending and not self.closed_by_us:
            self.server.metrics.protocol_errors.inc("incomplete")
            log.info("policyd: connection from %s closed in the middle of a request", self.peer)

    def data_received(self, data: bytes) -> None:
        was_pending = self.framer.pending
        try:
            requests = self.framer.feed(data)
        except ProtocolError as error:
            self.close_for(error)
            return
        if self.framer.pending and (requests or not was_pending):
            self.request_started = self.server.loop.time()
        if requests:
            self.queue.extend(requests)
            if len(self.queue) > MAX_QUEUED_REQUESTS:
                self.transport.pause_reading()
            if not self.busy:
                self.busy = True
                self.server.loop.create_task(self._answer_queued())

    async def _answer_queued(self) -> None:
        server = self.server
        metrics = server.metrics
        try:
            while self.queue:
                block = self.queue.popleft()
                started = time.perf_counter()
                try:
                    request = parse_request(block, server.limits)
                except ProtocolError as error:
                    self.close_for(error)
                    return
                try:
                    decision = await server.policy.decide(request)
                    action = decision.action
                    metrics.decisions.inc(decision.check, decision.result)
                except Exception:
                    # A bug must not make Postfix wait for its timeout or lose mail: inbound
                    # mail goes on unchecked, mail a user sends waits (the limit is not skipped).
                    user = sending_user(request)
                    log.exception(
                        "policyd: internal error; answering %s", "DEFER" if user else "DUNNO"
                    )
                    action = INTERNAL_ERROR_TEXT if user else DUNNO
                    metrics.decisions.inc("none", "internal-error")
                    if user and request.get("protocol_state", "").upper() == "RCPT":
                        metrics.refused.inc(user, "internal-error")
                if self.transport.is_closing():
                    return
                self.transport.write(answer(action))
                metrics.latency.observe(time.perf_counter() - started)
                if len(self.queue) <= MAX_QUEUED_REQUESTS // 2:
                    self.transport.resume_reading()
        finally:
            self.busy = False
            self.idle_since = server.loop.time()

    def close_for(self, error: ProtocolError) -> None:
        self.closed_by_us = True
        self.server.metrics.protocol_errors.inc(error.kind)
        log.warning("policyd: closing connection from %s: %s", self.peer, error.reason)
        self.queue.clear()
        self.transport.abort()

    def check_time(self, now: float) -> None:
        """Close the connection if it idled or sent its request for too long (sweeper)."""
        limits = self.server.limits
        if self.busy:
            return
        if self.framer.pending:
            if now - self.request_started > limits.request_timeout:
                self.close_for(
                    ProtocolError(
                        f"request not complete within {limits.request_timeout:g} s", "timeout"
                    )
                )
        elif now - self.idle_since > limits.idle_timeout:
            # Postfix closes idle connections itself first; this only catches stray clients.
            log.info("policyd: closing connection from %s: idle", self.peer)
            self.closed_by_us = True
            self.transport.close()


class PolicyServer:
    def __init__(self, config: PolicydConfig, clock=time.time):
        self.config = config
        self.metrics = Metrics(max_users=config.service.metrics_max_users)
        service = config.service
        self.limits = Limits(
            max_line_bytes=service.max_line_bytes,
            max_attributes=service.max_attributes,
            request_timeout=service.request_timeout_seconds,
            idle_timeout=service.idle_timeout_seconds,
        )
        locate = None
        if config.valkey_sentinels:
            locate = SentinelLocator(
                config.valkey_sentinels,
                config.valkey_service,
                config.valkey_sentinel_password,
                timeout=service.store_timeout_ms / 1000,
            )
        self.store = Store(
            config.valkey_url,
            config.key_prefix,
            timeout=service.store_timeout_ms / 1000,
            retry_interval=service.store_retry_ms / 1000,
            metrics=self.metrics,
            locate=locate,
        )
        self.accounts = Accounts(
            config.accounts_dsn,
            cache_seconds=service.account_cache_seconds,
            timeout=service.store_timeout_ms / 1000,
            retry_interval=service.store_retry_ms / 1000,
            metrics=self.metrics,
            holds_dsn=config.holds_dsn,
        )
        self.policy = Policy(config, self.store, self.accounts, self.metrics, clock=clock)
        self.connections: set[PolicyConnection] = set()
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task | None = None
        self.scan_reports: asyncio.Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        host, port = split_host_port(self.config.listen)
        server = await self.loop.create_server(
            lambda: PolicyConnection(self), host, port, reuse_address=True
        )
        self._servers.append(server)
        if self.config.metrics_listen:
            metrics_host, metrics_port = split_host_port(self.config.metrics_listen)
            self._servers.append(
                await asyncio.start_server(self.metrics.serve_http, metrics_host, metrics_port)
            )
        if self.config.scan_reports_listen:
            reports_host, reports_port = split_host_port(self.config.scan_reports_listen)
            self.scan_reports = await asyncio.start_server(
                scanreports.handler(self.policy), reports_host, reports_port
            )
            self._servers.append(self.scan_reports)
        self._sweeper = self.loop.create_task(self._sweep())
        # Everything made so far lives as long as the process: keep it out of the collector's
        # full collections, whose pauses would show in the slowest answers.
        gc.freeze()
        log.info(
            "policyd: serving %s (metrics %s, scan reports %s), Valkey %s",
            self.config.listen,
            self.config.metrics_listen or "off",
            self.config.scan_reports_listen or "off",
            (
                f"{self.config.valkey_service} through Sentinels "
                + ",".join(self.config.valkey_sentinels)
                if self.config.valkey_sentinels
                else self.config.valkey_url.split("@")[-1]
            ),
        )

    async def _sweep(self) -> None:
        interval = min(1.0, self.limits.request_timeout / 4, self.limits.idle_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            for connection in list(self.connections):
                connection.check_time(now)

    @property
    def port(self) -> int:
        return self._servers[0].sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.gather(*(s.serve_forever() for s in self._servers))
        finally:
            await self.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.transport.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await self.store.close()
        await self.accounts.close()

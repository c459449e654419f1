"""The asyncio server: one coroutine per Postfix connection, one Valkey round trip per request."""

import asyncio
import logging
import time

from mailstack.policyd.config import PolicydConfig
from mailstack.policyd.metrics import Metrics
from mailstack.policyd.policy import DUNNO, Policy
from mailstack.policyd.protocol import Limits, ProtocolError, answer, parse_request, read_request
from mailstack.policyd.store import Store

log = logging.getLogger("mailstack.policyd")


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class PolicyServer:
    def __init__(self, config: PolicydConfig, clock=time.time):
        self.config = config
        self.metrics = Metrics()
        service = config.service
        self.limits = Limits(
            max_line_bytes=service.max_line_bytes,
            max_attributes=service.max_attributes,
            request_timeout=service.request_timeout_seconds,
            idle_timeout=service.idle_timeout_seconds,
        )
        self.store = Store(
            config.valkey_url,
            config.key_prefix,
            timeout=service.store_timeout_ms / 1000,
            retry_interval=service.store_retry_ms / 1000,
            metrics=self.metrics,
        )
        self.policy = Policy(config, self.store, self.metrics, clock=clock)
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        host, port = split_host_port(self.config.listen)
        server = await asyncio.start_server(
            self.handle, host, port, limit=self.limits.max_request_bytes, reuse_address=True
        )
        self._servers.append(server)
        if self.config.metrics_listen:
            metrics_host, metrics_port = split_host_port(self.config.metrics_listen)
            self._servers.append(
                await asyncio.start_server(self.metrics.serve_http, metrics_host, metrics_port)
            )
        log.info(
            "policyd: serving %s (metrics %s), Valkey %s",
            self.config.listen,
            self.config.metrics_listen or "off",
            self.config.valkey_url.split("@")[-1],
        )

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
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await self.store.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        metrics = self.metrics
        metrics.connections.inc()
        peer = writer.get_extra_info("peername")
        try:
            while True:
                block = await read_request(reader, self.limits)
                if block is None:
                    break
                started = time.perf_counter()
                request = parse_request(block, self.limits)
                try:
                    decision = await self.policy.decide(request)
                    action = decision.action
                    metrics.decisions.inc(decision.check, decision.result)
                except Exception:
                    # A bug must not make Postfix wait for its timeout or drop mail.
                    log.exception("policyd: internal error; answering DUNNO")
                    action = DUNNO
                    metrics.decisions.inc("none", "internal-error")
                writer.write(answer(action))
                metrics.latency.observe(time.perf_counter() - started)
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
        except ProtocolError as error:
            metrics.protocol_errors.inc(error.kind)
            log.warning("policyd: closing connection from %s: %s", _peer(peer), error.reason)
        except (ConnectionError, OSError) as error:
            log.info("policyd: connection from %s lost: %s", _peer(peer), error)
        finally:
            metrics.connections.inc(amount=-1)
            writer.close()


def _peer(peer) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)

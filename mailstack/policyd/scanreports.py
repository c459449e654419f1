"""rspamd's reports of refused mail from authenticated users, over HTTP on loopback.

rspamd's metadata exporter (templates/rspamd/etc/rspamd/local.d/metadata_exporter.conf) POSTs
its JSON for every message of an authenticated user whose action is reject; the policy service
counts them per user for sending holds (Policy.scan_refused). rspamd logs any answer but 200 as
an error, so only a report that could be counted is answered 200.
"""

import asyncio
import contextlib
import json
import logging

from mailstack.policyd.policy import Policy
from mailstack.policyd.store import StoreUnavailable

log = logging.getLogger("mailstack.policyd")

MAX_BODY_BYTES = 1 << 20
"""A report lists the message's symbols with their options: far below this."""
READ_SECONDS = 10


def _answer(writer: asyncio.StreamWriter, status: str) -> None:
    writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())


def content_length(head: bytes) -> int | None:
    """The Content-Length of a request head, None when missing or not a number."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            value = value.strip()
            return int(value) if value.isdigit() else None
    return None


def handler(policy: Policy):
    """The connection handler for asyncio.start_server."""
    metrics = policy.metrics

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
                length = content_length(head)
                if not head.startswith(b"POST ") or length is None or length > MAX_BODY_BYTES:
                    metrics.scan_reports.inc("bad-request")
                    _answer(writer, "400 Bad Request")
                    return
                body = await reader.readexactly(length)
            try:
                report = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                report = None
            if not isinstance(report, dict):
                metrics.scan_reports.inc("bad-request")
                _answer(writer, "400 Bad Request")
                return
            try:
                counted = await policy.scan_refused(report)
            except StoreUnavailable as error:
                log.warning("sending hold: a scan refusal was not counted: Valkey %s", error)
                metrics.scan_reports.inc("store-failure")
                _answer(writer, "503 Service Unavailable")
                return
            metrics.scan_reports.inc("counted" if counted else "ignored")
            _answer(writer, "200 OK")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            metrics.scan_reports.inc("bad-request")
        finally:
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()

    return serve

"""A small pipelining Valkey client for the service's hot path, with bounded waits.

Every request of the service is one script call. valkey-py's asyncio client checks a connection
out of its pool per command and parses replies in Python, which tops out far below the rate
the service must answer at. This client keeps one connection and lets every request in flight
share it: commands issued in the same event-loop turn go out in one write, and replies are
matched to callers in order (Valkey answers a connection's commands in the order sent).
Connecting and every reply are bounded by `timeout`: past it, callers get TimeoutError.

With a `locate` coroutine (mailstack.policyd.sentinel: the primary the Sentinels name), each new
connection asks it where to go and makes sure it reached a primary (ROLE); a reply saying the
server has become a replica (READONLY) drops the connection, so the next call finds the new one.
"""

import asyncio
import hashlib
from collections import deque
from urllib.parse import unquote, urlsplit


class ReplyError(Exception):
    """Valkey answered with an error reply (e.g. NOSCRIPT, WRONGTYPE)."""


class IncompleteReply(Exception):
    pass


def encode_arguments(args) -> bytes:
    """RESP bulk strings for command arguments (without the array header)."""
    texts = [arg if isinstance(arg, str) else str(arg) for arg in args]
    if "".join(texts).isascii():
        return "".join([f"${len(text)}\r\n{text}\r\n" for text in texts]).encode()
    return b"".join(b"$%d\r\n%s\r\n" % (len(data), data) for data in map(str.encode, texts))


def encode_command(args) -> bytes:
    return b"*%d\r\n" % len(args) + encode_arguments(args)


_BULK, _ARRAY, _INTEGER, _STATUS, _ERROR = b"$*:+-"


def parse_reply(buffer: bytes, pos: int):
    """One RESP2 reply from buffer[pos:]: (value, next position); IncompleteReply if cut off."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise IncompleteReply
    kind = buffer[pos]
    if kind == _BULK:
        length = int(buffer[pos + 1 : end])
        if length < 0:
            return None, end + 2
        start = end + 2
        if len(buffer) < start + length + 2:
            raise IncompleteReply
        return buffer[start : start + length], start + length + 2
    if kind == _ARRAY:
        count = int(buffer[pos + 1 : end])
        if count < 0:
            return None, end + 2
        pos = end + 2
        items = []
        for _ in range(count):
            item, pos = parse_reply(buffer, pos)
            items.append(item)
        return items, pos
    if kind == _INTEGER:
        return int(buffer[pos + 1 : end]), end + 2
    if kind == _STATUS:
        return buffer[pos + 1 : end], end + 2
    if kind == _ERROR:
        return ReplyError(buffer[pos + 1 : end].decode(errors="replace")), end + 2
    raise ConnectionError(f"unexpected reply type {bytes([kind])!r} from Valkey")


class _Connection(asyncio.Protocol):
    def __init__(self, reply_timeout: float):
        self.reply_timeout = reply_timeout
        self.transport: asyncio.Transport | None = None
        # Callers waiting for replies, oldest first, each with the time it gives up.
        self.pending: deque[tuple[asyncio.Future, float]] = deque()
        self.watchdog: asyncio.TimerHandle | None = None
        self.buffer = b""
        self.outgoing: list[bytes] = []
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        pos = 0
        try:
            while self.pending:
                value, pos = parse_reply(buffer, pos)
                future, _ = self.pending.popleft()
                if not future.done():
                    if isinstance(value, ReplyError):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except IncompleteReply:
            pass
        except (ValueError, ConnectionError) as error:
            self._fail(ConnectionError(f"unreadable reply from Valkey: {error}"))
            self.transport.abort()
            return
        self.buffer = buffer[pos:]

    def connection_lost(self, exc) -> None:
        self._fail(ConnectionError(f"connection to Valkey lost: {exc or 'closed'}"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.pending:
            future, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, command: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        if self.closed:
            raise ConnectionError("connection to Valkey closed")
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(command)
        future = loop.create_future()
        deadline = loop.time() + self.reply_timeout
        self.pending.append((future, deadline))
        if self.watchdog is None:
            self.watchdog = loop.call_at(deadline, self._check_replies, loop)
        return future

    def _check_replies(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer for all waiting callers: if the oldest waited too long, Valkey is stuck,
        and every caller gets TimeoutError (replies are in order; none can come first)."""
        self.watchdog = None
        if not self.pending:
            return
        oldest_deadline = self.pending[0][1]
        if oldest_deadline <= loop.time():
            self._fail(TimeoutError(f"no reply from Valkey within {self.reply_timeout:g} s"))
            self.transport.abort()
        else:
            self.watchdog = loop.call_at(oldest_deadline, self._check_replies, loop)

    def _flush(self) -> None:
        if not self.closed and self.outgoing:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()


class PipelinedClient:
    """Commands over one lazily (re)connected connection to the Valkey at `url`, or to the
    primary `locate()` returns as (host, port)."""

    def __init__(self, url: str, timeout: float, locate=None):
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "valkey"):
            raise ValueError(f"unsupported Valkey URL scheme {parts.scheme!r} (use redis://)")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.lstrip("/") or 0)
        self.timeout = timeout
        self.locate = locate
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future | None = None
        self._scripts: dict[str, str] = {}
        self._evalsha_heads: dict[tuple[str, int, int], bytes] = {}

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            host, port = await self.locate() if self.locate else (self.host, self.port)
            _, connection = await loop.create_connection(
                lambda: _Connection(self.timeout), host, port
            )
        setup = []
        if self.password is not None:
            setup.append(["AUTH", *([self.username] if self.username else []), self.password])
        if self.db:
            setup.append(["SELECT", self.db])
        try:
            for command in setup:
                await connection.send(encode_command(command), loop)
            if self.locate:
                # The Sentinels' word may be a moment old: only a primary takes our writes.
                role = await connection.send(encode_command(["ROLE"]), loop)
                if not role or role[0] != b"master":
                    raise ConnectionError(f"{host}:{port} is not the primary ({role[0]!r})")
        except BaseException:
            # A refused password or database, or a replica: this connection is of no use.
            connection.transport.close()
            raise
        return connection

    async def connection(self) -> _Connection:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        # Requests arriving while a connection is being made wait for that one.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            self._connection = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        return self._connection

    async def execute(self, *args):
        connection = await self.connection()
        return await connection.send(encode_command(args), asyncio.get_running_loop())

    def script(self, source: str) -> str:
        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts[sha] = source
        return sha

    async def run_script(self, sha: str, keys: list[str], args: list):
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self.connection()
        count = 3 + len(keys) + len(args)
        head = self._evalsha_heads.get((sha, count, len(keys)))
        if head is None:
            head = b"*%d\r\n" % count + encode_arguments(["EVALSHA", sha, len(keys)])
            self._evalsha_heads[(sha, count, len(keys))] = head
        try:
            return await connection.send(
                head + encode_arguments((*keys, *args)), asyncio.get_running_loop()
            )
        except ReplyError as error:
            if str(error).startswith("READONLY"):
                # The primary became a replica (a failover): find the new one next time.
                connection.closed = True
                connection.transport.close()
            if not str(error).startswith("NOSCRIPT"):
                raise
            return await self.execute("EVAL", self._scripts[sha], len(keys), *keys, *args)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None

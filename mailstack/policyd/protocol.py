"""Postfix's policy delegation protocol: requests in, actions out.

A request is `name=value` lines ended by a blank line; the answer is `action=...` and a blank
line. Postfix keeps the connection open for further requests. Anything that is not a request
Postfix would send raises `ProtocolError`, and the server closes that connection.
"""

import asyncio
import re
from dataclasses import dataclass

REQUEST_END = b"\n\n"
_NAME = re.compile(r"[a-z0-9_]{1,64}")
# Postfix never sends control characters (it rejects them in SMTP); junk does.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ProtocolError(Exception):
    """The client sent something that is not a policy request; `reason` says what.

    `kind` is a short fixed label for metrics: malformed, too-large, timeout, incomplete.
    """

    def __init__(self, reason: str, kind: str = "malformed"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, so a bad client costs bounded memory and time."""

    max_line_bytes: int = 4096
    max_attributes: int = 200
    request_timeout: float = 10.0
    idle_timeout: float = 330.0

    @property
    def max_request_bytes(self) -> int:
        return self.max_line_bytes * self.max_attributes


def parse_request(block: bytes, limits: Limits) -> dict[str, str]:
    """Parse one request (its lines and the blank line that ends it) into its attributes."""
    if not block.endswith(REQUEST_END):
        raise ProtocolError("request not ended by a blank line", "incomplete")
    raw_lines = block[: -len(REQUEST_END)].split(b"\n")
    if raw_lines == [b""]:
        raise ProtocolError("empty request")
    if len(raw_lines) > limits.max_attributes:
        raise ProtocolError(f"more than {limits.max_attributes} attributes", "too-large")
    attributes: dict[str, str] = {}
    for raw in raw_lines:
        if len(raw) > limits.max_line_bytes:
            raise ProtocolError(
                f"attribute line longer than {limits.max_line_bytes} bytes", "too-large"
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("attribute line is not UTF-8") from None
        name, sep, value = line.partition("=")
        if not sep:
            raise ProtocolError("attribute line without '='")
        if not _NAME.fullmatch(name):
            raise ProtocolError("malformed attribute name")
        if _CONTROL.search(value):
            raise ProtocolError("control character in attribute value")
        attributes[name] = value
    if attributes.get("request") != "smtpd_access_policy":
        raise ProtocolError("not an smtpd_access_policy request")
    return attributes


async def read_request(reader: asyncio.StreamReader, limits: Limits) -> bytes | None:
    """The next request's bytes, or None when the client closed the connection between requests.

    The client may stay idle between requests for `idle_timeout`; once a request has begun it must
    be complete within `request_timeout` and `max_request_bytes`.
    """
    try:
        async with asyncio.timeout(limits.idle_timeout):
            first = await reader.read(1)
    except TimeoutError:
        raise ProtocolError(f"idle for {limits.idle_timeout:g} s", "timeout") from None
    if not first:
        return None
    if first == b"\n":
        raise ProtocolError("empty request")
    try:
        async with asyncio.timeout(limits.request_timeout):
            rest = await reader.readuntil(REQUEST_END)
    except TimeoutError:
        raise ProtocolError(
            f"request not complete within {limits.request_timeout:g} s", "timeout"
        ) from None
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed in the middle of a request", "incomplete") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(
            f"request larger than {limits.max_request_bytes} bytes", "too-large"
        ) from None
    return first + rest


def answer(action: str) -> bytes:
    """The response line for an action such as `DUNNO` or `DEFER_IF_PERMIT 4.7.1 text`."""
    return f"action={action}\n\n".encode()

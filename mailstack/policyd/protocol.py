"""Postfix's policy delegation protocol: requests in, actions out.

A request is `name=value` lines ended by a blank line; the answer is `action=...` and a blank
line. Postfix keeps the connection open for further requests. Anything that is not a request
Postfix would send raises `ProtocolError`, and the server closes that connection.
"""

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


# Checked over a whole request at once (far cheaper than per line): control characters other
# than tab and the line ends, and attribute names of anything but [a-z0-9_].
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
_NAME_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789_"


def parse_request(block: bytes, limits: Limits) -> dict[str, str]:
    """Parse one request (its lines and the blank line that ends it) into its attributes."""
    if not block.endswith(REQUEST_END) or len(block.translate(None, _CONTROL_BYTES)) != len(block):
        _explain_malformed(block)
    try:
        lines = block[: -len(REQUEST_END)].decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise ProtocolError("request is not UTF-8") from None
    if len(lines) > limits.max_attributes:
        raise ProtocolError(f"more than {limits.max_attributes} attributes", "too-large")
    if len(block) > limits.max_line_bytes and any(
        len(line.encode()) > limits.max_line_bytes for line in lines
    ):
        raise ProtocolError(
            f"attribute line longer than {limits.max_line_bytes} bytes", "too-large"
        )
    try:
        attributes = dict([line.split("=", 1) for line in lines])
    except ValueError:
        _explain_malformed(block)
    names = "".join(attributes)
    if (
        not names.isascii()
        or names.encode().translate(None, _NAME_BYTES)
        or "" in attributes
        or max(map(len, attributes)) > 64
    ):
        _explain_malformed(block)
    if attributes.get("request") != "smtpd_access_policy":
        raise ProtocolError("not an smtpd_access_policy request")
    return attributes


def _explain_malformed(block: bytes) -> None:
    """Raise the ProtocolError that says what is wrong with a request that is not well formed."""
    if not block.endswith(REQUEST_END):
        raise ProtocolError("request not ended by a blank line", "incomplete")
    raw_lines = block[: -len(REQUEST_END)].split(b"\n")
    if raw_lines == [b""]:
        raise ProtocolError("empty request")
    for raw in raw_lines:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("request is not UTF-8") from None
        name, sep, value = line.partition("=")
        if not sep:
            raise ProtocolError("attribute line without '='")
        if not _NAME.fullmatch(name):
            raise ProtocolError("malformed attribute name")
        if _CONTROL.search(value):
            raise ProtocolError("control character in attribute value")
    raise ProtocolError("malformed request")


class RequestFramer:
    """Cuts the byte stream of one connection into requests, within the size limit."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.buffer = bytearray()

    @property
    def pending(self) -> bool:
        """Part of a request has arrived but not its end."""
        return bool(self.buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The requests completed by `data` (each with its blank line), in order."""
        self.buffer += data
        requests = []
        start = 0
        while (end := self.buffer.find(REQUEST_END, start)) >= 0:
            if self.buffer[start : start + 1] == b"\n":
                raise ProtocolError("empty request")
            requests.append(bytes(self.buffer[start : end + len(REQUEST_END)]))
            start = end + len(REQUEST_END)
        if start:
            del self.buffer[:start]
        if self.buffer[:1] == b"\n":
            raise ProtocolError("empty request")
        if len(self.buffer) > self.limits.max_request_bytes:
            raise ProtocolError(
                f"request larger than {self.limits.max_request_bytes} bytes", "too-large"
            )
        return requests


def answer(action: str) -> bytes:
    """The response line for an action such as `DUNNO` or `DEFER_IF_PERMIT 4.7.1 text`."""
    return _DUNNO_ANSWER if action == "DUNNO" else f"action={action}\n\n".encode()


_DUNNO_ANSWER = b"action=DUNNO\n\n"

"""A TLS client for the platform's mail endpoints, as a mail client or a foreign MTA sees them:
implicit TLS or STARTTLS (SMTP, IMAP, POP3, ManageSieve), optionally behind a PROXY protocol header as the
load balancers send it, with the protocol versions and cipher suites a test asks for."""

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int
    starttls: str | None
    """'smtp', 'imap', 'pop3', 'sieve', or None for implicit TLS."""
    proxy_from: str | None = None
    """Send a PROXY v1 header claiming this client address (talking to a node directly)."""
    opener: Callable[[str, int, float], socket.socket] | None = None
    """Makes the connection instead of this machine: a node's balancer (Platform.from_balancer),
    the one client its firewall lets speak PROXY."""

    def __str__(self) -> str:
        how = f"STARTTLS/{self.starttls}" if self.starttls else "TLS"
        return f"{self.address}:{self.port} ({how})"


class ProtocolError(Exception):
    """The server's plain-text dialogue before TLS went wrong (not a TLS refusal)."""


def _read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ProtocolError(f"connection closed after {line!r}")
        line += chunk
    return line


def _smtp_reply(sock: socket.socket) -> tuple[int, bytes]:
    """A whole (multi-line) SMTP reply: its code and last line."""
    while True:
        line = _read_line(sock)
        if len(line) >= 4 and line[3:4] == b" ":
            return int(line[:3]), line


def _expect(sock: socket.socket, prefix: bytes, dialogue: str) -> None:
    line = _read_line(sock)
    if not line.startswith(prefix):
        raise ProtocolError(f"{dialogue}: {line!r}")


def plain_connection(endpoint: Endpoint, timeout: float = 15) -> socket.socket:
    """A connection with the plain-text part done: the next bytes are the TLS handshake."""
    connect = endpoint.opener or (
        lambda *address: socket.create_connection(address[:2], address[2])
    )
    sock = connect(endpoint.address, endpoint.port, timeout)
    try:
        if endpoint.proxy_from:
            sock.sendall(
                f"PROXY TCP4 {endpoint.proxy_from} {endpoint.address} 40000 "
                f"{endpoint.port}\r\n".encode()
            )
        if endpoint.starttls == "smtp":
            code, line = _smtp_reply(sock)
            if code != 220:
                raise ProtocolError(f"greeting: {line!r}")
            sock.sendall(b"EHLO probe.peer.test\r\n")
            code, line = _smtp_reply(sock)
            if code != 250:
                raise ProtocolError(f"EHLO: {line!r}")
            sock.sendall(b"STARTTLS\r\n")
            code, line = _smtp_reply(sock)
            if code != 220:
                raise ProtocolError(f"STARTTLS: {line!r}")
        elif endpoint.starttls == "imap":
            _expect(sock, b"* OK", "greeting")
            sock.sendall(b"a STARTTLS\r\n")
            _expect(sock, b"a OK", "STARTTLS")
        elif endpoint.starttls == "pop3":
            _expect(sock, b"+OK", "greeting")
            sock.sendall(b"STLS\r\n")
            _expect(sock, b"+OK", "STLS")
        elif endpoint.starttls == "sieve":
            # ManageSieve (RFC 5804): capability lines, then OK.
            while not (line := _read_line(sock)).startswith(b"OK"):
                if line.startswith((b"NO", b"BYE")):
                    raise ProtocolError(f"greeting: {line!r}")
            sock.sendall(b"STARTTLS\r\n")
            _expect(sock, b"OK", "STARTTLS")
    except BaseException:
        sock.close()
        raise
    return sock


def handshake(endpoint: Endpoint, context: ssl.SSLContext, server_name: str) -> ssl.SSLSocket:
    """TLS with `context`; raises ssl.SSLError when the server refuses."""
    sock = plain_connection(endpoint)
    try:
        return context.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise


def verifying_context(root_pem: str) -> ssl.SSLContext:
    """Trusts only `root_pem` (Pebble's root) and checks the host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=root_pem)
    return context


def probing_context(
    version: ssl.TLSVersion | None = None, ciphers: str | None = None
) -> ssl.SSLContext:
    """Offers exactly one protocol version and, for TLS 1.2 and older, these cipher suites.

    Security level 0 so the client itself is willing to speak TLS 1.0 and weak suites: a
    refusal then comes from the server, not from this machine's OpenSSL policy."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(f"{ciphers or 'ALL:COMPLEMENTOFALL'}:@SECLEVEL=0")
    if version:
        context.minimum_version = version
        context.maximum_version = version
    return context


def tls12_suites() -> list[str]:
    """Every TLS 1.2-and-older cipher suite this machine's OpenSSL can offer (pre-shared-key
    and SRP suites need a secret both sides know; neither this client nor the servers have)."""
    context = probing_context()
    return [
        c["name"]
        for c in context.get_ciphers()
        if c["protocol"] != "TLSv1.3" and "PSK" not in c["name"] and "SRP" not in c["name"]
    ]


def server_alert(error: ssl.SSLError) -> bool:
    """Whether the handshake failed because the server said no (a TLS alert from it)."""
    return "ALERT" in str(error).upper()

"""Connections the test client makes from inside the lab: from any lab host (and from one of its
addresses), and with a PROXY protocol header first, as a load balancer sends it.

The hosts' firewalls let only a service's own clients in (only the balancers reach the mail
ports), so a test that plays a balancer or a platform host connects from that host: `connect_from`
runs a small relay there over SSH and hands the connection to this process as a local socket,
which smtplib, imaplib, ssl or plain sockets use as they would a direct one.
"""

import errno
import ipaddress
import shlex
import smtplib
import socket
import subprocess
import threading
from collections.abc import Callable

# On the lab host: connect (from `source` if given), report "0 connected" or "<errno> <reason>"
# on one line, then copy both ways until either side closes.
RELAY = r"""
import socket, sys, threading
source, address, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
out = sys.stdout.buffer
try:
    connection = socket.create_connection(
        (address, port), timeout, (source, 0) if source else None
    )
except OSError as error:
    out.write(f"{error.errno or 110} {error}\n".encode())
    out.flush()
    sys.exit(0)
out.write(b"0 connected\n")
out.flush()
connection.settimeout(None)

def down():
    while data := connection.recv(65536):
        out.write(data)
        out.flush()
    sys.stdout.close()
    import os
    os._exit(0)

threading.Thread(target=down, daemon=True).start()
stdin = sys.stdin.buffer.raw
while data := stdin.read(65536):
    connection.sendall(data)
import os
os._exit(0)
"""

Opener = Callable[[str, int, float], socket.socket]
"""(address, port, timeout) -> a connected socket."""


def connect_from(
    lab, host: str, address: str, port: int, source: str | None = None, timeout: float = 30
) -> socket.socket:
    """A TCP connection to address:port made by lab host `host` (from its address `source`),
    as a socket of this process. Raises OSError with the errno the host's connect() got
    (ConnectionRefusedError for a closed port, errno EHOSTUNREACH where a firewall refused)."""
    ours, theirs = socket.socketpair()
    arguments = (RELAY, source or "", address, str(port), str(timeout))
    command = "python3 -c " + " ".join(shlex.quote(argument) for argument in arguments)
    process = subprocess.Popen(
        lab.ssh_command(lab.host(host), command),
        stdin=theirs,
        stdout=theirs,
        stderr=subprocess.DEVNULL,
    )
    theirs.close()
    threading.Thread(target=process.wait, daemon=True).start()
    ours.settimeout(timeout + 30)
    status = b""
    try:
        while not status.endswith(b"\n"):
            chunk = ours.recv(1)
            if not chunk:
                raise OSError(errno.EIO, f"the relay on {host} ended before it connected")
            status += chunk
    except BaseException:
        ours.close()
        raise
    code, _, reason = status.decode().strip().partition(" ")
    if code != "0":
        ours.close()
        raise OSError(int(code), f"{host} to {address}:{port}: {reason}")
    ours.settimeout(timeout)
    return ours


def proxy_header(
    client: str, server: str, port: int, version: int = 1, client_port: int = 40000
) -> bytes:
    """A PROXY protocol header (haproxy's proxy-protocol.txt) for a TCP connection from
    client:client_port to server:port: version 1 is the text line (TCP4 or TCP6), version 2
    the binary form (AF_INET or AF_INET6, STREAM, command PROXY)."""
    source, destination = ipaddress.ip_address(client), ipaddress.ip_address(server)
    if source.version != destination.version:
        raise ValueError(f"{client} and {server} are of different address families")
    if version == 1:
        family = "TCP4" if source.version == 4 else "TCP6"
        return f"PROXY {family} {source} {destination} {client_port} {port}\r\n".encode()
    if version != 2:
        raise ValueError(f"PROXY protocol version {version}: 1 or 2")
    addresses = (
        source.packed
        + destination.packed
        + client_port.to_bytes(2, "big")
        + port.to_bytes(2, "big")
    )
    family = 0x11 if source.version == 4 else 0x21  # (AF_INET or AF_INET6) << 4 | STREAM
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    return signature + bytes([0x21, family]) + len(addresses).to_bytes(2, "big") + addresses


class ProxiedSMTP(smtplib.SMTP):
    """smtplib speaking PROXY protocol first, over connections `opener` makes (the balancer's,
    Platform.from_balancer), so the mx sees `client` as the balancer would hand it over."""

    def __init__(self, client: str, opener: Opener, version: int = 1, **kwargs):
        self.client = client
        self.opener = opener
        self.proxy_version = version
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        sock = self.opener(host, port, timeout)
        # The header's server address is of the client's family, as a balancer's public one.
        server = host if ipaddress.ip_address(self.client).version == 4 else "2001:db8::25"
        sock.sendall(proxy_header(self.client, server, port, self.proxy_version))
        return sock

"""IPv6 clients through the balancers (issue 9 E): the platform publishes AAAA records for its
balancers, which hand an IPv6 client's address to the nodes in PROXY headers over the private
IPv4 network. From the balancer host (the only one the nodes' firewalls let speak PROXY), with
both header versions (v1 `TCP6`, v2 binary AF_INET6) on every proxied port: a proper greeting,
the client's address in the service's log, a login on IMAP, and a whole mail transaction on
25 through postscreen and greylisting, whose retry from another address of the same /64 passes.
Clients are in the documentation prefix 2001:db8::/32; no packet is ever sent to them.
"""

import ipaddress
import secrets
import time
import uuid

import pytest

from mailstack.testing.platform import message
from mailstack.testing.proxied import proxy_header

pytestmark = pytest.mark.lab

SERVER = "2001:db8:ffff::25"
"""The balancer's public IPv6 address as the headers carry it."""
# port -> (balancer, implicit TLS, how the greeting starts, what ends the session)
PORTS = {
    25: ("smtp", False, b"220 ", b"QUIT\r\n"),
    465: ("smtp", True, b"220 ", b"QUIT\r\n"),
    587: ("smtp", False, b"220 ", b"QUIT\r\n"),
    143: ("mailaccess", False, b"* OK ", b"a LOGOUT\r\n"),
    993: ("mailaccess", True, b"* OK ", b"a LOGOUT\r\n"),
    110: ("mailaccess", False, b"+OK ", b"QUIT\r\n"),
    995: ("mailaccess", True, b"+OK ", b"QUIT\r\n"),
    4190: ("mailaccess", False, b'OK "', b"LOGOUT\r\n"),
}


def network_64() -> ipaddress.IPv6Network:
    """A /64 of the documentation prefix no earlier run used (postscreen and greylisting
    remember clients)."""
    return ipaddress.IPv6Network(f"2001:db8:{secrets.randbits(16):x}:{secrets.randbits(16):x}::/64")


def since() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 2))


def node_of(platform, purpose: str) -> tuple[str, str]:
    """The node (name, private address) the balancer of this purpose forwards to: the first
    mx, the active mailstore node."""
    role = "mx" if purpose == "smtp" else "mailstore"
    host = platform.inventory.with_role(role)[0]
    return host.name, str(host.private_ip)


def read_until(sock, ending: bytes, timeout: float = 20) -> bytes:
    """What arrives until a line starting with `ending` (a greeting's last line)."""
    sock.settimeout(timeout)
    data = b""
    while not any(line.startswith(ending) for line in data.split(b"\r\n")[:-1]):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def open_proxied(platform, port: int, client: str, version: int):
    """A session on a node's proxied port as its balancer hands `client` over; TLS done on
    implicit-TLS ports. Returns the socket and the greeting."""
    purpose, implicit_tls, ending, _ = PORTS[port]
    _, address = node_of(platform, purpose)
    sock = platform.from_balancer(purpose)(address, port, 30)
    sock.sendall(proxy_header(client, SERVER, port, version))
    if implicit_tls:
        sock = platform.client_tls().wrap_socket(sock)
    return sock, read_until(sock, ending)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("port", list(PORTS))
def test_every_proxied_port_greets_an_ipv6_client_and_logs_its_address(platform, port, version):
    purpose, _, ending, goodbye = PORTS[port]
    client = str(network_64()[0x25])
    started = since()
    sock, greeting = open_proxied(platform, port, client, version)
    with sock:
        assert any(line.startswith(ending) for line in greeting.split(b"\r\n")), greeting
        sock.sendall(goodbye)
        sock.recv(4096)
    node, _ = node_of(platform, purpose)
    unit = "postfix" if purpose == "smtp" else "dovecot"
    expected = f"[{client}]" if unit == "postfix" else f"rip={client}"
    deadline = time.monotonic() + 10
    while expected not in (log := platform.journal(node, started, unit)):
        assert time.monotonic() < deadline, f"{expected} not in {unit}'s log:\n{log[-3000:]}"
        time.sleep(1)


@pytest.mark.parametrize("version", [1, 2])
def test_an_ipv6_client_logs_in_over_imap(platform, version):
    mailbox = platform.new_mailbox()
    client = str(network_64()[0x993])
    started = since()
    sock, _ = open_proxied(platform, 993, client, version)
    with sock:
        sock.sendall(f'a LOGIN "{mailbox.address}" "{mailbox.password}"\r\n'.encode())
        reply = read_until(sock, b"a ")
        assert b"a OK" in reply, reply
        sock.sendall(b"b LOGOUT\r\n")
    node, _ = node_of(platform, "mailaccess")
    log = platform.journal(node, started, "dovecot")
    assert f"user=<{mailbox.address}>" in log and f"rip={client}" in log, log[-3000:]


@pytest.mark.parametrize("version", [1, 2])
def test_an_ipv6_sender_delivers_on_25_and_greylisting_groups_it_by_its_64(platform, version):
    """The first attempt is greylisted; after the delay the same triplet from another /64 is a
    new client network (still greylisted), and from another address of the first /64, on the
    other mx, it passes (mail.greylisting.ipv6_prefix: 64) and is delivered."""
    assert platform.settings.mail.greylisting.ipv6_prefix == 64
    mailbox = platform.new_mailbox()
    pool = network_64()
    first, retry, stranger = str(pool[0x10]), str(pool[0xBEEF]), str(network_64()[0x10])
    first_mx, other_mx = platform.hosts("mx")[:2]
    sender = f"v6-{uuid.uuid4().hex[:6]}@{platform.peer_domain}"

    def rcpt(mx: str, client: str):
        session = platform.mx_session(mx, client, proxy_version=version)
        assert session.mail(sender)[0] == 250
        return session, session.rcpt(mailbox.address)

    session, (code, reply) = rcpt(first_mx, first)
    session.quit()
    assert code == 450 and b"reylist" in reply, (code, reply)
    time.sleep(platform.settings.mail.greylisting.delay_seconds + 1)
    session, (code, reply) = rcpt(other_mx, stranger)
    session.quit()
    assert code == 450 and b"reylist" in reply, (code, reply)

    session, (code, reply) = rcpt(other_mx, retry)
    assert code == 250, (code, reply)
    marker = uuid.uuid4().hex
    code, reply = session.data(message("over IPv6", marker, sender, mailbox.address).as_bytes())
    session.quit()
    assert code == 250, (code, reply)
    delivered = platform.wait_for_imap(mailbox, marker)
    # Postfix's Received header names the client the balancer handed over.
    assert f"[IPv6:{retry}]".encode() in delivered, delivered[:2000]

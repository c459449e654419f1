"""The foreign provider's side of the test client (mailstack.testing.platform.Platform): the
lab's internet host as a peer that sends to and receives from the platform, and the clients it
plays, each from an address no mx has seen (postscreen and greylisting remember clients)."""

import contextlib
import ipaddress
import shlex
import smtplib
import time
from email.message import EmailMessage

from mailstack.testing.proxied import ProxiedSMTP

# postscreen defers a new client once after its protocol tests ("come back later") and each mx
# keeps its own verdicts, so a client may need a few sessions before one reaches smtpd.
POSTSCREEN_RETRY = "4.3.2"


class ForeignProvider:
    """What Platform does as the internet's side; it reads Platform's lab, state, inventory,
    addresses and `sh`."""

    @property
    def internet(self) -> str:
        return self.inventory.with_role("internet")[0].name

    def peer_send(self, message: EmailMessage, sender: str, *recipients: str) -> None:
        arguments = " ".join(shlex.quote(r) for r in recipients)
        self.sh(
            self.internet, f"sendmail -f {shlex.quote(sender)} {arguments}", stdin=bytes(message)
        )

    @contextlib.contextmanager
    def fresh_client_address(self):
        """A new address on the internet host that no mx has seen (postscreen caches verdicts)."""
        address = self.unused_lab_address()
        prefix = self.state.subnet.prefixlen
        self.sh(self.internet, f"ip addr add {address}/{prefix} dev host0")
        try:
            yield address
        finally:
            self.sh(self.internet, f"ip addr del {address}/{prefix} dev host0", check=False)

    def smtp_script(self, source: str, lines: list[str], pregreet: bool = False) -> str:
        """Speak SMTP to the platform from the internet host, line by line; the transcript."""
        script = rf"""
import socket, time
s = socket.create_connection(({self.smtp_address!r}, 25), timeout=20, source_address=({source!r}, 0))
def read(wait):
    s.settimeout(wait)
    out = b""
    try:
        while chunk := s.recv(4096):
            out += chunk
            if out.endswith(b"\r\n") and wait < 5:
                break
    except (TimeoutError, OSError):
        pass
    return out.decode(errors="replace")
lines = {lines!r}
if {pregreet!r}:
    s.sendall((lines.pop(0) + "\r\n").encode())
    print(read(9), end="")
else:
    print(read(9), end="")
for line in lines:
    s.sendall((line + "\r\n").encode())
    time.sleep(0.5)
    print(read(3), end="")
"""
        return self.sh(self.internet, "python3 -", stdin=script, check=False)

    def _take_unused(self, candidates) -> str:
        # postscreen and greylisting remember clients for days: never hand one out twice.
        used_file = self.lab.state_dir / "used-client-addresses"
        used = set(used_file.read_text().split()) if used_file.exists() else set()
        address = next((a for a in map(str, candidates) if a not in used), None)
        assert address, "no unused client address left"
        used_file.write_text("\n".join(sorted(used | {address})) + "\n")
        return address

    def unused_lab_address(self) -> str:
        """A lab address no host has, for a client the internet host plays."""
        taken = {str(address) for host in self.lab.hosts() for address in host.addresses}
        taken |= {str(self.state.gateway), str(self.state.internet_address)}
        taken.add(str(self.state.listed_address))
        return self._take_unused(
            a for a in reversed(list(self.state.subnet.hosts())) if str(a) not in taken
        )

    def proxied_client_address(self) -> str:
        """A client that exists only in a PROXY protocol header, in a /24 of its own (greylisting
        groups and auto-allows clients by network), from the benchmarking range 198.18.0.0/15:
        no packet is ever sent to it."""
        return self._take_unused(
            ipaddress.IPv4Address("198.18.0.0") + 256 * n + 10 for n in range(512)
        )

    def mx_session(
        self, mx: str, client: str, helo: str = "client.peer.test", proxy_version: int = 1
    ) -> smtplib.SMTP:
        """SMTP straight to one mx from its load balancer, handing over `client` (IPv4 or IPv6)
        in a PROXY header of that version, past postscreen (which tells a new client to come
        back once)."""
        address = str(self.inventory.host(mx).private_ip)
        for _attempt in range(3):
            session = ProxiedSMTP(client, self.from_balancer("smtp"), proxy_version, timeout=30)
            session.connect(address, 25)
            session.ehlo(helo)
            session.mail("probe@peer.test")
            code, reply = session.rcpt(f"postmaster@{self.domain}")
            if code == 450 and POSTSCREEN_RETRY.encode() in reply:
                session.close()
                continue
            session.rset()
            return session
        raise AssertionError(f"postscreen on {mx} kept deferring {client}")

    def peer_queue(self) -> str:
        return self.sh(self.internet, "postqueue -p")

    def peer_deliver(self, timeout: float = 90) -> None:
        """Make the peer retry until its queue is empty (postscreen, greylisting defer it)."""
        deadline = time.monotonic() + timeout
        while "Mail queue is empty" not in self.peer_queue():
            if time.monotonic() > deadline:
                raise AssertionError("the peer could not deliver:\n" + self.peer_queue())
            self.sh(self.internet, "postqueue -f")
            time.sleep(3)

    def peer_inbox(self) -> list[bytes]:
        """Every message the peer holds (none before the first delivery creates its Maildir)."""
        names = self.sh(self.internet, "find /var/mail/peer -type f -path '*/inbox/*'")
        return [self.sh(self.internet, f"cat {name}").encode() for name in names.split()]

    def wait_for_peer_message(self, marker: str, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.peer_inbox():
                if marker.encode() in message:
                    return message
            self.sh(self.internet, "postqueue -f")
            self.flush_mx()
            time.sleep(2)
        raise AssertionError(f"no message with {marker} reached the peer")

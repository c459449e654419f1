"""The deployed lab as a mail user, a foreign provider and an operator see it."""

import contextlib
import ipaddress
import shlex
import smtplib
import ssl
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage

from mailstack.inventory import Inventory, load_settings

# postscreen defers a new client once after its protocol tests ("come back later") and each mx
# keeps its own verdicts, so a client may need a few sessions before one reaches smtpd.
POSTSCREEN_RETRY = "4.3.2"


class ProxiedSMTP(smtplib.SMTP):
    """smtplib speaking PROXY protocol v1 first, as the load balancer does."""

    def __init__(self, client: str, **kwargs):
        self.client = client
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        sock.sendall(f"PROXY TCP4 {self.client} {host} 40000 {port}\r\n".encode())
        return sock


@dataclass
class Mailbox:
    address: str
    password: str


class Platform:
    def __init__(self, lab):
        self.lab = lab
        self.inventory = Inventory.read(lab.inventory_file)
        self.settings = load_settings(self.inventory.settings_file, self.inventory.stack)
        balancers = {b.purpose: str(b.private_ip) for b in self.inventory.load_balancers}
        self.smtp_address = balancers["smtp"]
        self.access_address = balancers["mailaccess"]
        self.state = lab.state()
        self.domain = self.settings.environment.primary_domain
        self.peer_domain = self.state.lab.peer_domain

    # --- hosts ----------------------------------------------------------------------------

    def host_name(self, role: str, index: int = 0) -> str:
        return self.inventory.with_role(role)[index].name

    def sh(self, host: str, command: str, stdin: str | bytes | None = None, check=True) -> str:
        import subprocess

        result = subprocess.run(
            self.lab.ssh_command(self.lab.host(host), command),
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            capture_output=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{host}: {command!r} exited {result.returncode}: "
                f"{result.stderr.decode(errors='replace')}"
            )
        return result.stdout.decode(errors="replace")

    def panel(self, *args: str, stdin: str | None = None, check=True) -> str:
        command = "mailstack-panel " + " ".join(shlex.quote(a) for a in args)
        return self.sh(self.host_name("web"), command, stdin=stdin, check=check)

    def mx_hosts(self) -> list[str]:
        return [h.name for h in self.inventory.with_role("mx")]

    def mx_queue(self) -> str:
        return "".join(self.sh(mx, "postqueue -p") for mx in self.mx_hosts())

    def flush_mx(self) -> None:
        for mx in self.mx_hosts():
            self.sh(mx, "postqueue -f")

    def mx_log(self, since: str) -> str:
        return "".join(
            self.sh(mx, f"journalctl -u postfix --no-pager -o cat --since {shlex.quote(since)}")
            for mx in self.mx_hosts()
        )

    # --- accounts --------------------------------------------------------------------------

    def new_mailbox(self, quota_mib: int | None = None, domain: str | None = None) -> Mailbox:
        address = f"u{uuid.uuid4().hex[:10]}@{domain or self.domain}"
        password = uuid.uuid4().hex
        args = ["mailbox", "add", address, "--password-stdin"]
        if quota_mib is not None:
            args += ["--quota-mib", str(quota_mib)]
        self.panel(*args, stdin=password + "\n")
        return Mailbox(address, password)

    # --- the foreign provider --------------------------------------------------------------

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
        taken = {str(address) for host in self.lab.hosts() for address in host.addresses}
        taken |= {
            str(self.state.gateway),
            str(self.state.internet_address),
            str(self.state.listed_address),
        }
        # postscreen remembers clients for days: never hand out an address twice in this lab.
        used_file = self.lab.state_dir / "used-client-addresses"
        used = set(used_file.read_text().split()) if used_file.exists() else set()
        candidates = [str(a) for a in self.state.subnet.hosts() if str(a) not in taken | used]
        assert candidates, f"no unused client address left in {self.state.subnet}"
        address = candidates[-1]
        used_file.write_text("\n".join(sorted(used | {address})) + "\n")
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

    def mx_session(self, mx: str, client: str, helo: str = "client.peer.test") -> smtplib.SMTP:
        """SMTP straight to one mx, as its load balancer would hand over `client`, past
        postscreen (which tells a new client to come back once)."""
        address = str(self.inventory.host(mx).private_ip)
        for _attempt in range(3):
            session = ProxiedSMTP(client, timeout=30)
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

    # --- clients ----------------------------------------------------------------------------

    def client_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        # Which CA issued the certificates is checked in the certificate tests.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    @contextlib.contextmanager
    def smtp_inbound(self, helo: str = "client.peer.test"):
        """An SMTP session on port 25 through the balancer that postscreen let through."""
        for _attempt in range(8):
            session = smtplib.SMTP(self.smtp_address, 25, local_hostname=helo, timeout=30)
            code, _ = session.ehlo()
            code, reply = session.mail("probe@peer.test")
            code, reply = session.rcpt(f"postmaster@{self.domain}")
            if code == 450 and POSTSCREEN_RETRY.encode() in reply:
                session.close()
                time.sleep(1)
                continue
            session.rset()
            try:
                yield session
            finally:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    session.quit()
            return
        raise AssertionError("postscreen kept deferring the test client")

    def send_inbound(self, mail: EmailMessage, recipient: str) -> tuple[int, bytes]:
        """One message over port 25 from the test machine, waiting out greylisting: the reply
        to its end of DATA, or the first refusal before it."""
        sender = mail["From"].addresses[0].addr_spec
        for _attempt in range(3):
            with self.smtp_inbound() as session:
                code, reply = session.mail(sender)
                if code != 250:
                    return code, reply
                code, reply = session.rcpt(recipient)
                if code == 450 and b"reylist" in reply:
                    time.sleep(self.settings.mail.greylisting.delay_seconds + 1)
                    continue
                assert code == 250, (code, reply)
                return session.data(mail.as_bytes())
        raise AssertionError(f"greylisting kept deferring {sender} -> {recipient}")

    def scan(self, host: str, mail: bytes, client: str, user: str | None = None) -> dict:
        """rspamd's verdict on a message, asked on an mx host as its milter would ask: score,
        action and symbols (rspamc's JSON)."""
        import json

        command = f"rspamc -h 127.0.0.1 -j -i {shlex.quote(client)}"
        if user:
            command += f" --user {shlex.quote(user)}"
        return json.loads(self.sh(host, command, stdin=mail))

    def rspamc(self, host: str, *args: str, stdin: bytes | None = None) -> str:
        command = "rspamc -h 127.0.0.1 " + " ".join(shlex.quote(a) for a in args)
        return self.sh(host, command, stdin=stdin)

    def mailbox_holds(self, mailbox: Mailbox, marker: str) -> bool:
        import imaplib

        with imaplib.IMAP4_SSL(self.access_address, 993, ssl_context=self.client_tls()) as imap:
            imap.login(mailbox.address, mailbox.password)
            imap.select("INBOX")
            _, found = imap.search(None, "BODY", marker)
            return bool(found[0])

    @contextlib.contextmanager
    def submission(self, mailbox: Mailbox, port: int = 587):
        """A logged-in submission session through the balancer: implicit TLS on 465, STARTTLS on
        587 (which must not offer AUTH before it)."""
        context = self.client_tls()
        if port == 465:
            session = smtplib.SMTP_SSL(self.smtp_address, 465, context=context, timeout=60)
        else:
            session = smtplib.SMTP(self.smtp_address, 587, timeout=60)
            session.ehlo("laptop.example")
            assert not session.has_extn("auth"), "AUTH offered before TLS"
            session.starttls(context=context)
        session.ehlo("laptop.example")
        session.login(mailbox.address, mailbox.password)
        try:
            yield session
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                session.quit()

    def wait_for_imap(self, mailbox: Mailbox, marker: str, timeout: float = 60) -> bytes:
        import imaplib

        deadline = time.monotonic() + timeout
        while True:
            with imaplib.IMAP4_SSL(self.access_address, 993, ssl_context=self.client_tls()) as imap:
                imap.login(mailbox.address, mailbox.password)
                imap.select("INBOX")
                _, found = imap.search(None, "BODY", marker)
                if found[0]:
                    _, data = imap.fetch(found[0].split()[-1], "(RFC822)")
                    return data[0][1]
            if time.monotonic() > deadline:
                raise AssertionError(f"{marker} did not arrive in {mailbox.address}")
            self.flush_mx()
            time.sleep(2)


def message(subject: str, body: str, sender: str, to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@peer.test>"
    mail.set_content(body)
    return mail

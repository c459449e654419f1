"""The one test client of a deployed lab: the platform as a mail user, a foreign provider and an
operator see it (tests/e2e, tests/lab, benchmarks).

Hosts are named as `Lab.host` accepts them: 'lab-mx1', 'mx1' or a host's address.
"""

import contextlib
import json
import shlex
import smtplib
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from mailstack.deploy import runner
from mailstack.inventory import Inventory, load_settings
from mailstack.services import rspamd
from mailstack.testing import proxied
from mailstack.testing.peer import POSTSCREEN_RETRY, ForeignProvider

DELIVERY_FOLDERS = ("INBOX", "Junk")
"""Where delivery files a message: spam-marked mail goes to Junk by the mailbox's default
settings (the panel's user settings, run by Dovecot's Sieve)."""


@dataclass
class Mailbox:
    address: str
    password: str


class Platform(ForeignProvider):
    def __init__(self, lab):
        self.lab = lab
        self.inventory = Inventory.read(lab.inventory_file)
        self.settings = load_settings(self.inventory.settings_file, self.inventory.stack)
        self.smtp_address = self.balancer("smtp")
        self.access_address = self.balancer("mailaccess")
        self.state = lab.state()
        self.domain = self.settings.environment.primary_domain
        self.peer_domain = self.state.lab.peer_domain

    # --- hosts ----------------------------------------------------------------------------

    def host_name(self, role: str, index: int = 0) -> str:
        return self.inventory.with_role(role)[index].name

    def hosts(self, role: str) -> list[str]:
        """The names of a role's hosts."""
        return [host.name for host in self.inventory.with_role(role)]

    def addresses(self, role: str) -> list[str]:
        """The private addresses of a role's hosts."""
        return [str(host.private_ip) for host in self.inventory.with_role(role)]

    def balancer(self, purpose: str) -> str:
        """The private address of the 'smtp', 'mailaccess' or 'http' load balancer."""
        return next(
            str(b.private_ip) for b in self.inventory.load_balancers if b.purpose == purpose
        )

    def from_balancer(self, purpose: str) -> proxied.Opener:
        """Connections as the 'smtp', 'mailaccess' or 'http' balancer makes them to its nodes:
        from the balancer host and the balancer's address, the only one the nodes let in
        (mailstack.testing.proxied.connect_from)."""
        host, source = self.hosts("loadbalancer")[0], self.balancer(purpose)
        return lambda address, port, timeout=30.0: proxied.connect_from(
            self.lab, host, address, port, source, timeout
        )

    def sh(
        self,
        host: str,
        command: str,
        stdin: str | bytes | None = None,
        check=True,
        timeout: float = 120,
    ) -> str:
        result = subprocess.run(
            self.lab.ssh_command(self.lab.host(host), command),
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            capture_output=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{host}: {command!r} exited {result.returncode}: "
                f"{result.stderr.decode(errors='replace')}"
            )
        return result.stdout.decode(errors="replace")

    def lab_secret(self, name: str) -> str:
        """One of the lab's generated secrets (mailstack.secrets), e.g. a service password."""
        from mailstack.secrets import SecretStore

        return SecretStore(self.lab.state_dir / "secrets.json").get(name)

    def panel(self, *args: str, stdin: str | None = None, check=True) -> str:
        command = "mailstack-panel " + " ".join(shlex.quote(a) for a in args)
        return self.sh(self.host_name("web"), command, stdin=stdin, check=check)

    def account_sql(self, statement: str) -> str:
        """Run SQL on the account database as its superuser, around the panel (as data written
        by hand would be)."""
        from mailstack.services import postgresql

        return self.sh(
            self.database_primary(),
            f"runuser -u postgres -- psql -v ON_ERROR_STOP=1 -tA {postgresql.DATABASE}",
            stdin=statement,
        )

    def database_primary(self) -> str:
        """The db host whose PostgreSQL takes writes (with Patroni, whichever member leads)."""
        for host in self.hosts("db"):
            answer = self.lab.ssh(
                self.lab.host(host),
                "runuser -u postgres -- psql -tAc 'SELECT pg_is_in_recovery()'",
                timeout=15,
            )
            if answer.returncode == 0 and answer.stdout.strip() == "f":
                return host
        raise AssertionError(f"no PostgreSQL primary among {self.hosts('db')}")

    def mx_hosts(self) -> list[str]:
        return self.hosts("mx")

    def journal(self, host: str, since: str, *units: str) -> str:
        """What the units logged on a host since a time (journalctl's --since format)."""
        selected = " ".join(f"-u {shlex.quote(unit)}" for unit in units)
        return self.sh(
            host, f"journalctl --no-pager -o cat --since {shlex.quote(since)} {selected}"
        )

    # --- deploys ----------------------------------------------------------------------------

    def deploy(
        self,
        *limit: str,
        inventory_file: str | Path | None = None,
        deploy_file: str | Path = "deploy.py",
    ) -> runner.DeployResult:
        """The deploy of the lab (or of a variant's inventory, or another deploy file), to these
        groups or hosts only; pyinfra's output is captured."""
        return runner.run(
            inventory_file or self.lab.inventory_file,
            limit,
            capture=True,
            timeout=1800,
            deploy_file=deploy_file,
        )

    def variant_inventory(self, directory: Path, changes: dict) -> Path:
        """An inventory contract of this lab whose hosts run with the settings changed as
        `changes` says (nested mappings replace keys at their depth)."""
        settings = _merged(self.settings.model_dump(mode="json"), changes)
        (directory / "settings.json").write_text(json.dumps(settings))
        inventory = self.lab.inventory().model_copy(
            update={"settings_file": str(directory / "settings.json")}
        )
        inventory.write(directory / "inventory.json")
        return directory / "inventory.json"

    @contextlib.contextmanager
    def deployed_variant(
        self, changes: dict, limit: Sequence[str]
    ) -> Iterator[runner.DeployResult]:
        """Deploy a variant of the settings to some hosts; afterwards they get the lab's own
        settings back (a deploy that must succeed)."""
        with tempfile.TemporaryDirectory(prefix="mailstack-variant-") as directory:
            try:
                yield self.deploy(
                    *limit, inventory_file=self.variant_inventory(Path(directory), changes)
                )
            finally:
                restored = self.deploy(*limit)
                assert restored.returncode == 0, restored.output[-5000:]

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

    def scan(
        self,
        host: str,
        mail: bytes,
        client: str,
        user: str | None = None,
        recipient: str | None = None,
    ) -> dict:
        """rspamd's verdict on a message, asked on an mx host as its milter would ask: score,
        action and symbols (rspamc's JSON)."""
        arguments = ["-j", "-i", client, *(["--user", user] if user else [])]
        arguments += ["-r", recipient] if recipient else []
        return json.loads(self.rspamc(host, *arguments, stdin=mail))

    def rspamc(self, host: str, *args: str, stdin: bytes | None = None) -> str:
        """rspamc on an mx host as an operator runs it, with the controller's password."""
        password = f'"$(cat {rspamd.CONTROLLER_PASSWORD_FILE})"'
        command = f"rspamc -h 127.0.0.1 -P {password} " + " ".join(shlex.quote(a) for a in args)
        return self.sh(host, command, stdin=stdin)

    def mailbox_holds(self, mailbox: Mailbox, marker: str) -> bool:
        return self.fetch_delivered(mailbox, marker) is not None

    def fetch_delivered(self, mailbox: Mailbox, marker: str) -> bytes | None:
        """The newest message with `marker` in its body where delivery files mail: INBOX, or
        Junk for spam-marked mail (the mailbox's default settings); None if there is none."""
        import imaplib

        with imaplib.IMAP4_SSL(self.access_address, 993, ssl_context=self.client_tls()) as imap:
            imap.login(mailbox.address, mailbox.password)
            for folder in DELIVERY_FOLDERS:
                if imap.select(folder)[0] != "OK":
                    continue
                _, found = imap.search(None, "BODY", marker)
                if found[0]:
                    _, data = imap.fetch(found[0].split()[-1], "(RFC822)")
                    return data[0][1]
        return None

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
        """The message with `marker` once delivered (fetch_delivered); AssertionError after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            delivered = self.fetch_delivered(mailbox, marker)
            if delivered is not None:
                return delivered
            if time.monotonic() > deadline:
                raise AssertionError(f"{marker} did not arrive in {mailbox.address}")
            self.flush_mx()
            time.sleep(2)


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def message(subject: str, body: str, sender: str, to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@peer.test>"
    mail.set_content(body)
    return mail

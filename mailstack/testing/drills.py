"""Failure drills on a deployed lab: traffic that counts what it got, and the clusters' state.

`Traffic` runs, while a fault happens, what the platform's users and operators do:
- a writer committing numbered rows through the panel's own connection path (its environment
  file on the web host: the host list and target_session_attrs=read-write), noting for every
  acknowledged row the server that took it;
- Postfix's lookups on an mx (postmap through its pgsql tables, as smtpd asks them);
- IMAP logins through the mail-access balancer (Dovecot's passdb);
- submission on 587 and inbound SMTP on 25 through the SMTP balancer, every accepted message
  remembered so the drill can check that it arrived.
Each event is (kind, ok, time, detail). Remote loops run over SSH and stream one line per event.
"""

import contextlib
import imaplib
import json
import smtplib
import statistics
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

from mailstack.services import patroni, valkey
from mailstack.testing.platform import Mailbox, Platform, message

PANEL_CONNECTION = r"""
import sys, time, psycopg
env = {}
for line in open("/etc/mailstack/panel.env"):
    if "=" in line and not line.startswith("#"):
        key, value = line.rstrip("\n").split("=", 1)
        env[key] = value
conninfo = psycopg.conninfo.make_conninfo(
    host=env["MAILPANEL_DB_HOST"], port=env["MAILPANEL_DB_PORT"], dbname=env["MAILPANEL_DB_NAME"],
    user=env["MAILPANEL_DB_USER"], password=env["MAILPANEL_DB_PASSWORD"],
    target_session_attrs=env["MAILPANEL_DB_TARGET_SESSION_ATTRS"],
    connect_timeout=env["MAILPANEL_DB_CONNECT_TIMEOUT"], load_balance_hosts="random",
    tcp_user_timeout=env["MAILPANEL_DB_TCP_USER_TIMEOUT"])
"""
"""Python on a web host: the connection the panel makes (its environment file and the options
panel/mailpanel/settings.py adds), as `conninfo`."""

PANEL_SQL = (
    PANEL_CONNECTION
    + r"""
with psycopg.connect(conninfo, autocommit=True) as connection:
    cursor = connection.execute(sys.argv[1])
    if cursor.description:
        for row in cursor.fetchall():
            print(*row)
"""
)

WRITER = (
    PANEL_CONNECTION
    + r"""
table, deadline = sys.argv[1], time.time() + float(sys.argv[2])
# Numbers go on from the table's highest, so one table can take several runs.
while True:
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            number = connection.execute(f"SELECT coalesce(max(n), 0) + 1 FROM {table}").fetchone()[0]
        break
    except psycopg.Error:
        time.sleep(0.5)
connection = None
while time.time() < deadline:
    try:
        if connection is None:
            connection = psycopg.connect(conninfo, autocommit=True)
        server = connection.execute(
            f"INSERT INTO {table} (n) VALUES (%s) RETURNING host(inet_server_addr())", (number,)
        ).fetchone()[0]
        print(f"write 1 {time.time():.3f} {number} {server}", flush=True)
        number += 1
        time.sleep(0.2)
    except Exception as error:
        print(f"write 0 {time.time():.3f} {number} {type(error).__name__}", flush=True)
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass
        connection = None
        time.sleep(0.2)
"""
)

LOOKUPS = r"""
import subprocess, sys, time
address, deadline = sys.argv[1], time.time() + float(sys.argv[2])
while time.time() < deadline:
    started = time.time()
    try:
        result = subprocess.run(
            ["postmap", "-q", address, "pgsql:/etc/postfix/sql/virtual_mailbox_maps.cf"],
            capture_output=True, text=True, timeout=15)
        ok = result.returncode == 0 and result.stdout.strip() != ""
        detail = (result.stdout.strip() or result.stderr.strip().replace(" ", "_"))[:80]
    except subprocess.TimeoutExpired:
        ok, detail = False, "timeout"
    print(f"lookup {int(ok)} {time.time():.3f} {time.time() - started:.3f} {detail}", flush=True)
    time.sleep(0.3)
"""


def panel_sql(platform: Platform, sql: str) -> str:
    """Run one statement through the panel's connection path on the web host; rows as lines."""
    import shlex

    return platform.sh(
        platform.host_name("web"),
        f"/opt/mailstack/venv/bin/python - {shlex.quote(sql)}",
        stdin=PANEL_SQL,
    )


DRILL_SENDER = "drill@{}"
"""The foreign sender of the traffic's inbound mail (its greylisting triplet passed beforehand)."""


@dataclass
class Event:
    kind: str
    ok: bool
    at: float
    detail: list[str] = field(default_factory=list)


class Traffic:
    """Load that records every outcome; `with Traffic(platform, ...) as traffic:` runs it."""

    def __init__(
        self,
        platform: Platform,
        table: str,
        mailboxes: list[Mailbox],
        seconds: float,
        mail: bool = True,
    ):
        """`mail`: also IMAP logins, submission and inbound SMTP (else writes and lookups)."""
        self.mail = mail
        self.platform = platform
        self.table = table
        self.sender, self.recipient = mailboxes[:2]
        self.seconds = seconds
        self.events: list[Event] = []
        self.accepted: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._remote: list[subprocess.Popen] = []

    def _record(self, kind: str, ok: bool, *detail: str, at: float | None = None) -> None:
        with self._lock:
            self.events.append(Event(kind, ok, at or time.time(), list(detail)))

    def _remote_loop(self, host: str, script: str, *args: str) -> None:
        command = "python3 - " + " ".join(args)
        if host == self.platform.host_name("web"):
            command = f"/opt/mailstack/venv/bin/python - {' '.join(args)}"
        process = subprocess.Popen(
            self.platform.lab.ssh_command(self.platform.lab.host(host), command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        process.stdin.write(script)
        process.stdin.close()
        self._remote.append(process)

        def read():
            for line in process.stdout:
                kind, ok, at, *detail = line.split()
                self._record(kind, ok == "1", *detail, at=float(at))

        self._threads.append(threading.Thread(target=read, daemon=True))

    def _imap_logins(self) -> None:
        context = self.platform.client_tls()
        while not self._stop.wait(1.0):
            try:
                with imaplib.IMAP4_SSL(
                    self.platform.access_address, 993, ssl_context=context, timeout=15
                ) as imap:
                    imap.login(self.recipient.address, self.recipient.password)
                self._record("imap", True)
            except (imaplib.IMAP4.error, OSError) as error:
                self._record("imap", False, type(error).__name__)

    def _mail(self) -> None:
        inbound_sender = DRILL_SENDER.format(self.platform.peer_domain)
        while not self._stop.wait(3.0):
            marker = f"drill-{uuid.uuid4().hex[:12]}"
            mail = message(marker, marker, self.sender.address, self.recipient.address)
            try:
                with self.platform.submission(self.sender) as session:
                    refused = session.sendmail(
                        self.sender.address, [self.recipient.address], mail.as_bytes()
                    )
                self._record("submission", not refused, marker)
                if not refused:
                    self.accepted.append(marker)
            except smtplib.SMTPRecipientsRefused as error:
                codes = sorted({str(code) for code, _ in error.recipients.values()})
                self._record("submission", False, ",".join(codes), marker)
            except smtplib.SMTPResponseException as error:
                self._record("submission", False, str(error.smtp_code), marker)
            except (smtplib.SMTPException, OSError) as error:
                self._record("submission", False, type(error).__name__, marker)
            marker = f"drill-{uuid.uuid4().hex[:12]}"
            mail = message(marker, marker, inbound_sender, self.recipient.address)
            try:
                with self.platform.smtp_inbound() as session:
                    session.sendmail(inbound_sender, [self.recipient.address], mail.as_bytes())
                self._record("inbound", True, marker)
                self.accepted.append(marker)
            except smtplib.SMTPRecipientsRefused as error:
                codes = sorted({str(code) for code, _ in error.recipients.values()})
                self._record("inbound", False, ",".join(codes), marker)
            except smtplib.SMTPResponseException as error:
                self._record("inbound", False, str(error.smtp_code), marker)
            except (smtplib.SMTPException, OSError, AssertionError) as error:
                self._record("inbound", False, type(error).__name__, marker)

    def __enter__(self) -> "Traffic":
        self.started = time.time()
        web, mx = self.platform.host_name("web"), self.platform.host_name("mx")
        self._remote_loop(web, WRITER, self.table, str(self.seconds))
        self._remote_loop(mx, LOOKUPS, self.recipient.address, str(self.seconds))
        if self.mail:
            self._threads += [
                threading.Thread(target=self._imap_logins, daemon=True),
                threading.Thread(target=self._mail, daemon=True),
            ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        # The traffic runs its whole time, whenever the fault inside the block happened.
        time.sleep(max(0.0, self.started + self.seconds - time.time()))
        self._stop.set()
        for process in self._remote:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=self.seconds + 60)
            if process.poll() is None:
                process.kill()
        for thread in self._threads:
            thread.join(timeout=60)

    # --- what happened ----------------------------------------------------------------------

    def of(self, kind: str) -> list[Event]:
        with self._lock:
            return sorted((e for e in self.events if e.kind == kind), key=lambda e: e.at)

    def acknowledged_rows(self) -> dict[int, tuple[float, str]]:
        """Row number -> (time acknowledged, server that took it)."""
        return {int(e.detail[0]): (e.at, e.detail[1]) for e in self.of("write") if e.ok}

    def first_ok_after(self, kind: str, moment: float) -> float | None:
        """Seconds from `moment` to the first success of this kind after it."""
        later = [e.at for e in self.of(kind) if e.ok and e.at > moment]
        return later[0] - moment if later else None

    def failures(self, kind: str, since: float = 0.0) -> list[Event]:
        return [e for e in self.of(kind) if not e.ok and e.at >= since]

    def summary(self, moment: float) -> dict:
        return {
            kind: {
                "ok": sum(e.ok for e in self.of(kind)),
                "failed": len(self.failures(kind)),
                "first_ok_after_fault_s": _round(self.first_ok_after(kind, moment)),
            }
            for kind in ("write", "lookup", "imap", "submission", "inbound")
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def median_and_worst(values: list[float]) -> tuple[float, float]:
    return round(statistics.median(values), 2), round(max(values), 2)


# --- the clusters as a drill sees them --------------------------------------------------------


class Clusters:
    """The db nodes' clusters of a lab, asked over SSH."""

    def __init__(self, platform: Platform):
        self.platform = platform
        self.db = platform.hosts("db")

    def _answering(self, command: str, hosts=None) -> str:
        for host in hosts or self.db:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                return self.platform.sh(host, command, timeout=30)
        raise AssertionError(f"no db node answered {command!r}")

    def patroni_members(self, hosts=None) -> list[dict]:
        return json.loads(self._answering(f"{patroni.CTL} list -f json", hosts))

    def primary(self, hosts=None) -> str | None:
        """The host name of the running Patroni leader, None if there is none."""
        leaders = [
            m["Member"]
            for m in self.patroni_members(hosts)
            if m["Role"] == "Leader" and m["State"] == "running"
        ]
        return leaders[0] if len(leaders) == 1 else None

    def valkey_primary(self, use: str = "policy", hosts=None) -> str:
        """The host name of the Valkey primary Sentinel names for a use."""
        answer = self._answering(
            f"valkey-cli -p {valkey.SENTINEL_PORT}"
            f" SENTINEL get-master-addr-by-name {valkey.MASTER_NAMES[use]}",
            hosts,
        )
        address = answer.split()[0]
        return next(h.name for h in self.platform.inventory.hosts if str(h.private_ip) == address)

    def switchover(self, away_from: str) -> str:
        """A planned switchover (the documented command) to another member; the new primary."""
        # With synchronous replication Patroni hands over only to the synchronous standby.
        standbys = [
            m["Member"]
            for m in self.patroni_members()
            if m["Role"] in ("Sync Standby", "Quorum Standby") and m["Member"] != away_from
        ]
        candidate = (standbys or [h for h in self.db if h != away_from])[0]
        self.platform.sh(
            candidate,
            f"{patroni.CTL} switchover {patroni.SCOPE} --candidate {candidate} --force",
        )
        for _ in range(60):
            if self.primary() == candidate:
                return candidate
            time.sleep(2)
        raise AssertionError(f"the switchover to {candidate} did not happen")

    def healthy(self) -> tuple[bool, str]:
        """Whether both clusters have their primary and every member (the status command)."""
        for host in self.db:
            result = subprocess.run(
                self.platform.lab.ssh_command(self.platform.lab.host(host), patroni.STATUS_COMMAND),
                capture_output=True,
                text=True,
                timeout=120,
            )
            if result.returncode in (0, 1):
                return result.returncode == 0, result.stdout
        return False, "no db node answered"

    def wait_healthy(self, timeout: float = 300) -> float:
        """Seconds until both clusters are whole again; AssertionError with the last report."""
        started = time.monotonic()
        report = ""
        while time.monotonic() - started < timeout:
            ok, report = self.healthy()
            if ok:
                return time.monotonic() - started
            time.sleep(3)
        raise AssertionError(f"the clusters did not recover within {timeout:g} s:\n{report}")

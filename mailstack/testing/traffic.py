"""Continuous mail both ways through the platform, into the delivery ledger, and where it all
arrived (tests/e2e/test_drills.py, benchmarks/test_failover.py).

- Inbound: the peer MTA sends to the platform's mailboxes by MX, as a foreign provider does,
  retrying what the platform defers; the ledger takes each 250 the peer got from its log.
- Outbound: a user submits (587, through the balancer) to addresses at the peer; the ledger
  takes each 250 the client got. Refusals (4xx while a node is away) are not entries.
"""

import contextlib
import imaplib
import re
import smtplib
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from mailstack.testing.ledger import Entry, Ledger
from mailstack.testing.platform import DELIVERY_FOLDERS, Mailbox, message

PEER_SENT = re.compile(
    r"^(?P<time>\d+\.\d+) \S+ postfix/smtp\[\d+\]: (?P<queue_id>\w+): to=<(?P<to>[^>]+)>,"
    r".* status=sent \(250 "
)
PEER_CLEANUP = re.compile(
    r"^\d+\.\d+ \S+ postfix/cleanup\[\d+\]: (?P<queue_id>\w+): message-id=<(?P<id>[^>]+)>"
)


class Traffic:
    """Sends a message each way every `interval` seconds in background threads until stopped;
    `collect()` brings the peer's 250s into the ledger."""

    def __init__(
        self,
        platform,
        ledger: Ledger,
        recipients: list[Mailbox],
        senders: list[Mailbox],
        interval: float = 2.0,
    ):
        """`senders` take turns, each staying within the outbound recipient limit."""
        self.platform = platform
        self.ledger = ledger
        self.recipients = recipients
        self.senders = senders
        self.interval = interval
        self.started = time.time()
        self.refused = Counter()
        """Submissions refused (by reply code or exception name), not in the ledger."""
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(self._inbound,), daemon=True),
            threading.Thread(target=self._loop, args=(self._outbound,), daemon=True),
            threading.Thread(target=self._loop, args=(self._flush_peer,), daemon=True),
        ]
        self._sequence = 0

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self, step) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                step()
            self._stop.wait(self.interval)

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    def _inbound(self) -> None:
        mailbox = self.recipients[self._next() % len(self.recipients)]
        sender = f"ledger@{self.platform.peer_domain}"
        mail = message("ledger inbound", f"inbound {uuid.uuid4().hex}", sender, mailbox.address)
        self.platform.peer_send(mail, sender, mailbox.address)

    def _outbound(self) -> None:
        number = self._next()
        sender = self.senders[number % len(self.senders)]
        recipient = f"ledger-{number}@{self.platform.peer_domain}"
        mail = message("ledger outbound", uuid.uuid4().hex, sender.address, recipient)
        try:
            with self.platform.submission(sender) as session:
                refused = session.sendmail(sender.address, [recipient], mail.as_bytes())
        except smtplib.SMTPResponseException as error:
            self.refused[str(error.smtp_code)] += 1
            return
        except (smtplib.SMTPException, OSError) as error:
            self.refused[type(error).__name__] += 1
            return
        if not refused:
            message_id = mail["Message-ID"].strip("<>")
            self.ledger.record(Entry(message_id, recipient, time.time(), "outbound"))

    def _flush_peer(self) -> None:
        # The peer retries what the platform deferred (postscreen, greylisting, failovers).
        self.platform.sh(self.platform.internet, "postqueue -f", timeout=30)

    def collect(self) -> None:
        """Put every 250 the platform gave the peer since the start into the ledger."""
        since = datetime.fromtimestamp(self.started - 5, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        log = self.platform.sh(
            self.platform.internet,
            f"journalctl --no-pager -o short-unix --since '{since}' "
            "-t postfix/smtp -t postfix/cleanup",
            timeout=60,
        )
        ids = {m["queue_id"]: m["id"] for m in map(PEER_CLEANUP.match, log.splitlines()) if m}
        addresses = {mailbox.address for mailbox in self.recipients}
        for line in log.splitlines():
            sent = PEER_SENT.match(line)
            if sent and sent["to"] in addresses and sent["queue_id"] in ids:
                self.ledger.record(
                    Entry(ids[sent["queue_id"]], sent["to"], float(sent["time"]), "inbound")
                )


def delivered(platform, mailboxes: list[Mailbox]) -> Counter:
    """(Message-ID, recipient) -> how often it is there: in each mailbox (IMAP) and in the
    peer's maildir (by Message-ID and the recipient it was delivered to)."""
    found: Counter = Counter()
    for mailbox in mailboxes:
        with imaplib.IMAP4_SSL(
            platform.access_address, 993, ssl_context=platform.client_tls()
        ) as imap:
            imap.login(mailbox.address, mailbox.password)
            for folder in DELIVERY_FOLDERS:
                status, count = imap.select(folder, readonly=True)
                if status != "OK" or count[0] == b"0":
                    continue
                _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                for part in data:
                    if isinstance(part, tuple):
                        header = part[1].decode(errors="replace")
                        match = re.search(r"Message-ID:\s*<([^>]+)>", header, re.I)
                        if match:
                            found[(match[1], mailbox.address)] += 1
    listing = platform.sh(
        platform.internet,
        "find /var/mail/peer -type f -path '*/inbox/*' -exec "
        "grep -H -i -m2 -E '^(Message-ID|Delivered-To):' {} +",
        timeout=120,
    )
    per_file: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        path, _, header = line.partition(":")
        name, _, value = header.partition(":")
        per_file.setdefault(path, {})[name.strip().lower()] = value.strip()
    for headers in per_file.values():
        if "message-id" in headers and "delivered-to" in headers:
            found[(headers["message-id"].strip("<>"), headers["delivered-to"])] += 1
    return found

"""The delivery ledger: every message the platform answered 250 to, checked against where it
arrived (tests/e2e/test_drills.py, benchmarks).

An entry is (Message-ID, recipient, when the 250 came, which way): inbound from the peer MTA
(the 250 the platform gave the peer, from the peer's log) and outbound from submission (the 250
a client got). At the end every entry must be found exactly once where it was going: the
recipient's mailbox (over IMAP) or the peer's maildir. Missing is lost; more than once is a
duplicate (the platform delivers at least once: a node that dies after delivering a message and
before removing it from its queue delivers it again from the queue's volume).
"""

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    message_id: str
    recipient: str
    accepted_at: float
    """When the 250 was given (epoch seconds)."""
    direction: str
    """'inbound' (peer MTA to a mailbox) or 'outbound' (submission to the peer)."""


@dataclass(frozen=True)
class Report:
    """What happened to the entries of one window."""

    accepted: int
    delivered: int
    lost: list[Entry] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    """Message-ID -> times delivered, for those delivered more than once."""

    def line(self, name: str, recovery_seconds: float | None) -> str:
        recovered = f"{recovery_seconds:.1f} s" if recovery_seconds is not None else "-"
        return (
            f"{name}: accepted {self.accepted}, delivered {self.delivered}, "
            f"lost {len(self.lost)}, duplicated {len(self.duplicated)}, "
            f"time to recover {recovered}"
        )


class Ledger:
    """The entries of a run, added from any thread."""

    def __init__(self):
        self._entries: dict[tuple[str, str], Entry] = {}
        self._lock = threading.Lock()

    def record(self, entry: Entry) -> None:
        with self._lock:
            self._entries.setdefault((entry.message_id, entry.recipient), entry)

    def entries(self, since: float = 0.0, until: float = float("inf")) -> list[Entry]:
        """The entries accepted in [since, until)."""
        with self._lock:
            return [e for e in self._entries.values() if since <= e.accepted_at < until]

    @staticmethod
    def report(entries: Iterable[Entry], found: Counter) -> Report:
        """Check entries against `found`, a count of (Message-ID, recipient) delivered."""
        entries = list(entries)
        lost = [e for e in entries if found[(e.message_id, e.recipient)] == 0]
        duplicated = {
            e.message_id: found[(e.message_id, e.recipient)]
            for e in entries
            if found[(e.message_id, e.recipient)] > 1
        }
        return Report(len(entries), len(entries) - len(lost), lost, duplicated)

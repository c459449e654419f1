"""The service's metrics in Prometheus' text format, served over HTTP for scraping."""

import asyncio
import bisect
import logging
from collections import OrderedDict

log = logging.getLogger("mailstack.policyd")


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.labels = name, help_text, labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *label_values: str, amount: float = 1) -> None:
        self.values[label_values] = self.values.get(label_values, 0) + amount

    def get(self, *label_values: str) -> float:
        return self.values.get(label_values, 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if not self.labels and not self.values:
            self.values[()] = 0
        for label_values, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.labels, label_values)} {value:g}")
        return lines


OTHER_USERS = "_other"
"""The `user` label of what users evicted from a UserCounter had counted (no address has it: a
user label is a mail address)."""


class UserCounter:
    """A counter per user (and further labels) that keeps at most `max_users` users' series.

    Counting for a user beyond the bound evicts the user counted longest ago and adds its
    counts to `user="_other"`, so the series stay bounded while every sum over users keeps
    rising as a counter must (a rate of the sum stays right); a user counted again after its
    eviction starts a new series from zero, which Prometheus reads as a new series.
    """

    def __init__(
        self, name: str, help_text: str, labels: tuple[str, ...] = (), max_users: int = 1000
    ):
        if max_users < 1:
            raise ValueError("max_users must be at least 1")
        self.name, self.help, self.labels, self.max_users = name, help_text, labels, max_users
        self.users: OrderedDict[str, dict[tuple[str, ...], float]] = OrderedDict()
        self.other: dict[tuple[str, ...], float] = {}

    def inc(self, user: str, *label_values: str, amount: float = 1) -> None:
        counts = self.users.get(user)
        if counts is None:
            if len(self.users) >= self.max_users:
                _, evicted = self.users.popitem(last=False)
                for key, value in evicted.items():
                    self.other[key] = self.other.get(key, 0) + value
            counts = self.users[user] = {}
        else:
            self.users.move_to_end(user)
        counts[label_values] = counts.get(label_values, 0) + amount

    def get(self, user: str, *label_values: str) -> float:
        return self.users.get(user, {}).get(label_values, 0)

    def render(self) -> list[str]:
        names = ("user", *self.labels)
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for user, counts in [*sorted(self.users.items()), (OTHER_USERS, self.other)]:
            for label_values, value in sorted(counts.items()):
                lines.append(f"{self.name}{_labels(names, (user, *label_values))} {value:g}")
        return lines


class Gauge(Counter):
    def set(self, value: float) -> None:
        self.values[()] = value

    def render(self) -> list[str]:
        lines = super().render()
        lines[1] = f"# TYPE {self.name} gauge"
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]):
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.sum:.6f}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


def _escape(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and line feed
    escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


REFUSAL_REASONS = ("limit", "unchecked", "internal-error", "hold")
"""Why the service refused a user's recipient: the recipient limit was reached, the limit could
not be checked (Valkey unavailable, on_store_failure: defer), the service failed on the request,
the user's sending is on hold."""


class Metrics:
    def __init__(self, max_users: int = 1000):
        """`max_users`: the most users whose own series each per-user counter keeps."""
        self.decisions = Counter(
            "policyd_decisions_total",
            "Answers given, by check and result.",
            ("check", "result"),
        )
        self.latency = Histogram(
            "policyd_request_seconds",
            "Time from a complete request to its answer.",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.store_errors = Counter(
            "policyd_store_errors_total", "Valkey calls that failed or timed out."
        )
        self.account_errors = Counter(
            "policyd_account_errors_total",
            "Account data (limit class) lookups that failed or timed out.",
        )
        self.protocol_errors = Counter(
            "policyd_protocol_errors_total",
            "Connections closed for malformed input, by reason.",
            ("reason",),
        )
        self.connections = Gauge("policyd_connections", "Open client connections.")
        self.limit_reports = UserCounter(
            "policyd_outbound_limit_reports_total",
            "Reports of users who keep hitting the outbound limit (possibly compromised).",
            max_users=max_users,
        )
        self.sent_recipients = UserCounter(
            "policyd_sent_recipients_total",
            "Recipients of messages users sent, counted at the end of each message.",
            max_users=max_users,
        )
        self.refused = UserCounter(
            "policyd_refused_total",
            "Recipients refused to authenticated users, by reason: limit, unchecked, "
            "internal-error, hold.",
            ("reason",),
            max_users=max_users,
        )
        self.scan_refused = UserCounter(
            "policyd_scan_refused_total",
            "Messages of authenticated users the outbound scan (rspamd) refused.",
            max_users=max_users,
        )
        self.holds = UserCounter(
            "policyd_sending_holds_total",
            "Users this node put on hold, by reason: limit, scan.",
            ("reason",),
            max_users=max_users,
        )
        self.scan_reports = Counter(
            "policyd_scan_reports_total",
            "Reports from rspamd taken, by result: counted, ignored, bad-request, store-failure.",
            ("result",),
        )

    def render(self) -> str:
        lines: list[str] = []
        for metric in (
            self.decisions,
            self.latency,
            self.store_errors,
            self.account_errors,
            self.protocol_errors,
            self.connections,
            self.limit_reports,
            self.sent_recipients,
            self.refused,
            self.scan_refused,
            self.holds,
            self.scan_reports,
        ):
            lines += metric.render()
        return "\n".join(lines) + "\n"

    async def serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        """Answer one scrape: any GET gets the metrics; the request is read with a time limit."""
        try:
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            if request.startswith(b"GET "):
                body = self.render().encode()
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
            else:
                body = b""
                head = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

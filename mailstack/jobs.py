"""What the platform's services and jobs on the hosts share: logging to the journal with each
line's priority, and reports for node exporter's textfile collector."""

import logging
import os
import sys
from pathlib import Path


class JournalFormatter(logging.Formatter):
    """Prefixes each line with its syslog priority (`<4>` for a warning), which the journal
    reads from a service's standard error (sd-daemon(3)), so `journalctl -p warning` finds it
    and a failed run is an error in the journal, not information."""

    PRIORITIES = {logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

    def format(self, record: logging.LogRecord) -> str:
        priority = next(
            (
                p
                for level, p in sorted(self.PRIORITIES.items(), reverse=True)
                if record.levelno >= level
            ),
            7,
        )
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def log_to_stderr(level: int | str = logging.INFO, fmt: str = "%(message)s") -> None:
    """Log to standard error; under systemd (which says so in JOURNAL_STREAM) with priorities."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JournalFormatter if os.environ.get("JOURNAL_STREAM") else logging.Formatter
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])


def write_metrics(report: Path, metrics: list[tuple[str, str, str, int | float]]) -> None:
    """Write node exporter's textfile report: (name, help, labels as `k="v"`, value) gauges.
    Renamed into place, so the collector never reads it half-written."""
    lines = []
    for name, help_text, labels, value in metrics:
        lines += [
            f"# HELP {name} {help_text}",
            f"# TYPE {name} gauge",
            f"{name}{{{labels}}} {value}" if labels else f"{name} {value}",
        ]
    partial = report.with_name(report.name + ".tmp")
    partial.write_text("\n".join(lines) + "\n")
    partial.chmod(0o644)
    partial.replace(report)


class BackupError(RuntimeError):
    """A step of a backup or restore failed; the message says which and what the tool said."""

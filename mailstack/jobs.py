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
    Renamed into place, so the collector never reads it half-written. The directory is made when
    missing: a job can run before the exporters role installs node exporter (the backup of a new
    database cluster, started by the Patroni role)."""
    lines = []
    for name, help_text, labels, value in metrics:
        lines += [
            f"# HELP {name} {help_text}",
            f"# TYPE {name} gauge",
            f"{name}{{{labels}}} {value}" if labels else f"{name} {value}",
        ]
    report.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    partial = report.with_name(report.name + ".tmp")
    partial.write_text("\n".join(lines) + "\n")
    partial.chmod(0o644)
    partial.replace(report)


BACKUP_METRIC = "mailstack_backup_last_success_timestamp_seconds"
"""What backup jobs export, one series per backup with a `backup` label: the Unix time of its
last success (alert BackupTooOld)."""


def write_backup_report(
    report: Path, backup: str, succeeded: float, added_bytes: int, seconds: float
) -> None:
    """A backup job's report: when it last succeeded, what that added to the repository
    (bytes), how long it took (seconds)."""
    label = f'backup="{backup}"'
    write_metrics(
        report,
        [
            (BACKUP_METRIC, "When the backup last succeeded (Unix time).", label, succeeded),
            (
                "mailstack_backup_last_added_bytes",
                "What the last successful backup added to the repository.",
                label,
                int(added_bytes),
            ),
            (
                "mailstack_backup_last_duration_seconds",
                "How long the last successful backup took.",
                label,
                round(seconds, 1),
            ),
        ],
    )


STATUS_SLACK_SECONDS = 300


def freshness(age_seconds: float, interval_seconds: float) -> tuple[int, str]:
    """A backup status's rule: (0, "") while the newest backup is younger than two intervals
    (and five minutes: a run takes time), else (1, a mark for the report line)."""
    if age_seconds <= 2 * interval_seconds + STATUS_SLACK_SECONDS:
        return 0, ""
    return 1, " (OLDER THAN TWO INTERVALS)"


class BackupError(RuntimeError):
    """A step of a backup or restore failed; the message says which and what the tool said."""


class Job:
    """A backup job's command line: `--config FILE` and the commands every job has (`run`, the
    timer's; `status`; `check-config`, the deploy's check), plus its own (`command`).

        job = Job("python -m mailstack.x", run_help="...", status_help="...")
        restoring = job.command("restore", restore_handler, help="...")
        sys.exit(job.main(argv, read_config, run=run, status=status))

    A handler takes (config, args) and returns an exit status (None: 0). Exit status: 0 done, 1 a
    step failed (BackupError or one of `errors`, logged), 2 a bad configuration or request."""

    def __init__(self, prog: str, run_help: str, status_help: str):
        import argparse

        self.parser = argparse.ArgumentParser(prog=prog)
        self.parser.add_argument("--config", required=True, help="the job's JSON configuration")
        self.commands = self.parser.add_subparsers(dest="command", required=True)
        self.commands.add_parser("run", help=run_help)
        self.commands.add_parser("status", help=status_help)
        self.commands.add_parser("check-config", help="read the configuration and exit")
        self.handlers = {}

    def command(self, name: str, handler, help: str):
        """Add a command of the job's own; returns its parser, for its arguments."""
        self.handlers[name] = handler
        return self.commands.add_parser(name, help=help)

    def main(self, argv, read_config, run, status, errors: tuple = ()) -> int:
        """`run(config)` returns what it did (logged); `status(config)` returns (exit status,
        report), printed."""
        args = self.parser.parse_args(argv)
        log_to_stderr()
        log = logging.getLogger("mailstack.backup")
        try:
            config = read_config(args.config)
        except ValueError as error:
            log.error("%s", error)
            return 2
        try:
            if args.command == "check-config":
                return 0
            if args.command == "run":
                log.info("%s", run(config))
                return 0
            if args.command == "status":
                code, report = status(config)
                print(report)
                return code
            return self.handlers[args.command](config, args) or 0
        except (BackupError, *errors) as error:
            log.error("%s", error)
            return 1

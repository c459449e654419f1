"""The mail store's off-site backup, and restores of one mailbox or folder from it, with restic
over SFTP on a mailstore node (docs/operations.md#backups).

    python -m mailstack.mailstore.backup --config /etc/mailstack/backup/mail.json COMMAND

- `run` (the timer's job, templates/backup/...): where Dovecot serves from the mounted mail
  volume, backs up the mail root into the repository (created on first use), forgets snapshots
  beyond the retention and, once per `prune_interval_hours`, prunes their data; then reports to
  node exporter (mailstack_backup_last_success_timestamp_seconds{backup="mail"}, alert
  BackupTooOld). On the node that does not serve it withdraws its report and does nothing.
- `snapshots`: the mail snapshots, oldest first (time in UTC, id, what it added).
- `status`: the newest snapshot and its age; exit 0 when it is younger than two intervals (and
  five minutes), 1 when older, 2 when there is none.
- `restore ADDRESS [--at TIME] [--folder NAME]`: the mailbox (or one folder of it) as it was in
  the newest snapshot taken at or before TIME (ISO 8601, UTC unless it names its offset;
  default: the newest), imported with `doveadm import` beside the mail the user has now: under
  a new folder `Restored <snapshot time>`, so nothing current is touched or duplicated.
- `restore-store --into DIR [--at TIME]`: the whole mail store as it was in the newest
  snapshot at or before TIME, into the empty or missing directory DIR (what a rebuild puts on
  a new mail volume before Dovecot starts there).
- `check-config`: reads the configuration (the deploy's check before it is applied).

Configuration (JSON, mailstack.services.backup.job_config): repository, ssh_command (argv of
the SFTP transport), password_file, cache_dir, state_dir, report, mail_root, dovecot_unit,
snapshot_host, keep (hourly/daily/weekly/monthly), prune_interval_hours, interval_minutes.
Exit status: 0 done, 1 a step failed (its output on stderr), 2 a bad configuration or request.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailstack.jobs import BackupError, Job, freshness, write_backup_report
from mailstack.restic import (
    INCOMPLETE,
    LOCKED,
    Repository,
    ensure_repository,
    parse_time,
    restic,
    snapshots,
    summary,
)

KEEP = ("hourly", "daily", "weekly", "monthly")
TAG = "mail"

log = logging.getLogger("mailstack.backup")


@dataclass(frozen=True)
class BackupConfig:
    repository: Repository
    state_dir: Path
    report: Path
    mail_root: Path
    dovecot_unit: str
    snapshot_host: str
    keep: dict[str, int]
    prune_interval_hours: int
    interval_minutes: int

    @classmethod
    def read(cls, path: str | Path) -> "BackupConfig":
        """Raises ValueError naming what is wrong."""
        try:
            values = json.loads(Path(path).read_text())
            config = cls(
                repository=Repository.from_config(values),
                state_dir=Path(values["state_dir"]),
                report=Path(values["report"]),
                mail_root=Path(values["mail_root"]),
                dovecot_unit=str(values["dovecot_unit"]),
                snapshot_host=str(values["snapshot_host"]),
                keep={k: int(values["keep"][k]) for k in KEEP},
                prune_interval_hours=int(values["prune_interval_hours"]),
                interval_minutes=int(values["interval_minutes"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: {error!r}") from None
        if not all(p.is_absolute() for p in (config.mail_root, config.report)):
            raise ValueError(f"{path}: mail_root and report must be absolute paths")
        if not any(config.keep.values()):
            raise ValueError(f"{path}: keep must keep some snapshots")
        return config


def serving(config: BackupConfig) -> bool:
    """Whether this node serves the mail store: Dovecot active on the mounted mail volume."""
    active = subprocess.run(
        ["systemctl", "is-active", "--quiet", config.dovecot_unit], check=False
    ).returncode
    return active == 0 and os.path.ismount(config.mail_root)


def _state(config: BackupConfig) -> dict:
    try:
        return json.loads((config.state_dir / "mail.json").read_text())
    except (OSError, ValueError):
        return {}


def _save_state(config: BackupConfig, state: dict) -> None:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    partial = config.state_dir / "mail.json.tmp"
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(config.state_dir / "mail.json")


def write_report(config: BackupConfig, state: dict) -> None:
    """node exporter's view of the last success."""
    write_backup_report(
        config.report, TAG, state["succeeded"], state["added_bytes"], state["seconds"]
    )


def _line(output: str, limit: int = 500) -> str:
    """A tool's output as one journal line."""
    return " | ".join(part.strip() for part in output.strip().splitlines())[-limit:]


def run(config: BackupConfig) -> str:
    """The timer's job. Returns what it did, for the journal."""
    if not serving(config):
        config.report.unlink(missing_ok=True)
        return "not serving the mail store: nothing to back up here"
    started = time.time()
    ensure_repository(config.repository)
    # Locks of a run that died with its node (restic calls them stale after 30 minutes).
    restic(config.repository, "unlock")
    backup = restic(
        config.repository,
        "backup",
        "--json",
        "--host",
        config.snapshot_host,
        "--tag",
        TAG,
        "--one-file-system",
        str(config.mail_root),
        ok=(0, INCOMPLETE),
    )
    if backup.returncode == INCOMPLETE:
        log.warning("some files changed while read (next run takes them): %s", _line(backup.stderr))
    outcome = summary(backup.stdout)
    state = _state(config)
    keep = [a for kind, n in config.keep.items() if n for a in (f"--keep-{kind}", str(n))]
    forget = ["forget", "--host", config.snapshot_host, "--tag", TAG, *keep]
    prune_due = time.time() - state.get("pruned", 0) >= config.prune_interval_hours * 3600
    forgot = restic(config.repository, *forget, *(["--prune"] if prune_due else []), ok=(0, LOCKED))
    if forgot.returncode == LOCKED:
        # A lock of a run that died with its node, not yet stale: the snapshot is safe, the
        # clean-up waits for a later run.
        log.warning(
            "repository locked, forget and prune left for a later run: %s", _line(forgot.stderr)
        )
        prune_due = False
    state.update(
        succeeded=time.time(),
        seconds=time.time() - started,
        added_bytes=int(outcome.get("data_added", 0)),
        snapshot=outcome.get("snapshot_id", ""),
    )
    if prune_due:
        state["pruned"] = time.time()
    _save_state(config, state)
    write_report(config, state)
    return (
        f"snapshot {state['snapshot'][:8]}: {outcome.get('total_files_processed', 0)} files, "
        f"{state['added_bytes']} bytes added in {state['seconds']:.1f} s"
        + (", pruned" if prune_due else "")
    )


def mail_snapshots(config: BackupConfig) -> list[dict]:
    """The mail snapshots, oldest first (mailstack.restic.snapshots)."""
    return snapshots(config.repository, config.snapshot_host, TAG)


def status(config: BackupConfig) -> tuple[int, str]:
    """(exit status, report line) of the newest snapshot (see the module's `status`)."""
    found = mail_snapshots(config)
    if not found:
        return 2, f"mail: no snapshot in {config.repository.address}"
    newest = found[-1]["time"]
    age = (datetime.now(UTC) - newest).total_seconds()
    code, mark = freshness(age, config.interval_minutes * 60)
    return code, (
        f"mail: newest snapshot {newest:%Y-%m-%d %H:%M:%S} UTC, {age / 60:.0f} min ago"
        f"{mark}; {len(found)} snapshots in "
        f"{config.repository.address}"
    )


def mailbox_home(address: str) -> Path:
    """The mailbox's home as Dovecot's userdb gives it. Raises BackupError for an unknown user."""
    result = subprocess.run(
        ["doveadm", "user", "-f", "home", address], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BackupError(f"no mailbox {address}: {result.stderr.strip() or result.stdout.strip()}")
    return Path(result.stdout.strip())


def restore(config: BackupConfig, address: str, at: datetime | None, folder: str | None) -> str:
    """Import the mailbox (or one folder) from the newest snapshot at or before `at` under a
    new folder `Restored <snapshot time>`. Returns that folder's name."""
    home = mailbox_home(address)
    if not home.is_relative_to(config.mail_root):
        raise BackupError(f"{address}'s home {home} is not below {config.mail_root}")
    chosen = [s for s in mail_snapshots(config) if at is None or s["time"] <= at]
    if not chosen:
        raise BackupError(f"no mail snapshot taken at or before {at or 'now'}")
    snapshot = chosen[-1]
    maildir = home / "Maildir"
    parent = f"Restored {snapshot['time']:%Y-%m-%d %H%M} UTC"
    # Readable by the mail's owner, as whom doveadm reads the restored copy.
    scratch = Path(tempfile.mkdtemp(prefix="mailstack-restore-", dir="/var/tmp"))
    try:
        scratch.chmod(0o711)
        restic(
            config.repository,
            "restore",
            snapshot["id"],
            "--target",
            str(scratch),
            "--include",
            str(maildir),
        )
        source = scratch / maildir.relative_to("/")
        if not source.is_dir():
            raise BackupError(
                f"the snapshot of {snapshot['time']:%Y-%m-%d %H:%M} UTC holds no mail of {address}"
            )
        query = ["mailbox", folder] if folder else ["all"]
        imported = subprocess.run(
            # Subscribed: most clients show only subscribed folders.
            ["doveadm", "import", "-u", address, "-s", f"maildir:{source}", parent, *query],
            capture_output=True,
            text=True,
            check=False,
        )
        if imported.returncode != 0:
            raise BackupError(f"doveadm import failed: {imported.stderr.strip()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return parent


def restore_store(config: BackupConfig, at: datetime | None, into: Path) -> str:
    """The whole mail store as it was in the newest snapshot at or before `at`, restored into
    the empty or missing directory `into` (a new mail volume's mount before Dovecot starts, or
    a scratch directory): `into` holds what the mail root held, owners and modes kept."""
    if into.exists() and any(into.iterdir()):
        raise BackupError(f"{into} is not empty")
    chosen = [s for s in mail_snapshots(config) if at is None or s["time"] <= at]
    if not chosen:
        raise BackupError(f"no mail snapshot taken at or before {at or 'now'}")
    snapshot = chosen[-1]
    restic(
        config.repository,
        "restore",
        f"{snapshot['id']}:{config.mail_root}",
        "--target",
        str(into),
    )
    return f"the mail store as of {snapshot['time']:%Y-%m-%d %H:%M:%S} UTC is in {into}"


def _snapshots(config: BackupConfig, _args) -> None:
    for snapshot in mail_snapshots(config):
        added = snapshot.get("summary", {}).get("data_added", "")
        print(f"{snapshot['time']:%Y-%m-%d %H:%M:%S} UTC  {snapshot['short_id']}  {added}")


def _restore(config: BackupConfig, args) -> None:
    parent = restore(config, args.address, args.at, args.folder)
    print(f"restored into {parent!r} of {args.address}")


def main(argv: list[str] | None = None) -> int:
    job = Job(
        "python -m mailstack.mailstore.backup",
        run_help="back up the mail store (where this node serves it)",
        status_help="the newest snapshot and its age",
    )
    job.command("snapshots", _snapshots, help="list the mail snapshots")
    restoring = job.command("restore", _restore, help="bring back a mailbox or one of its folders")
    restoring.add_argument("address", help="the mailbox, e.g. user@example.net")
    restoring.add_argument("--at", type=parse_time, help="as it was at this time (ISO 8601)")
    restoring.add_argument("--folder", help="only this folder (IMAP name, e.g. INBOX or Sent)")
    whole = job.command(
        "restore-store",
        lambda config, args: print(restore_store(config, args.at, args.into)),
        help="the whole mail store, into a directory",
    )
    whole.add_argument("--at", type=parse_time, help="as it was at this time (ISO 8601)")
    whole.add_argument("--into", type=Path, required=True, help="an empty directory")
    return job.main(argv, BackupConfig.read, run=run, status=status)


if __name__ == "__main__":
    sys.exit(main())

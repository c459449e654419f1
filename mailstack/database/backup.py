"""The account data's off-site backups with pgBackRest, and restores of it to a moment, on a db
node (docs/operations.md#backups).

    python -m mailstack.database.backup --config /etc/mailstack/backup/database.json COMMAND

PostgreSQL archives every completed WAL segment itself (archive_command, set by
mailstack.services.patroni while backups are configured). This job adds the base backups:

- `run` (the timer's job, every few minutes on every db node): where this node is the primary,
  creates the stanza on first use, then takes a backup when the newest one is older than
  `backup_interval_hours`: full when the newest full one is older than `full_interval_days`,
  differential otherwise (pgBackRest expires what `repo1-retention-full` no longer keeps). It
  then reports the newest backup's time to node exporter
  (mailstack_backup_last_success_timestamp_seconds{backup="database"}, alert BackupTooOld). A
  replica (PostgreSQL in recovery, or not running) withdraws its report and does nothing, so
  after a failover the new primary carries on with no step by hand.
- `backup [--type full|diff|incr]`: a backup now, whatever the schedule (on the primary
  only; default incremental: what changed since the last backup of any type), e.g. before a
  risky change.
- `status`: the newest backup and its age, the WAL archived; exit 0 when the newest backup is
  younger than two intervals (and five minutes), 1 when older, 2 when there is none.
- `restore --at TIME --into DIR`: the database as it was at TIME (ISO 8601, UTC unless it names
  its offset), restored from the newest backup before it and the archived WAL into the empty
  or missing directory DIR, and started there as a separate server on a Unix socket in DIR (no
  network, no archiving, no replication), so its data can be read or dumped beside the running
  cluster. `discard DIR` stops it and removes DIR.
- `check-config`: reads the configuration (the deploy's check before it is applied).

Configuration (JSON, mailstack.services.pgbackrest.job_config): stanza, report,
backup_interval_hours, full_interval_days, bin_dir (the PostgreSQL server's programs),
restore_port, database. Exit status: 0 done, 1 a step failed (its output on stderr), 2 a bad
configuration or request.
"""

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailstack.jobs import BackupError, Job, freshness, write_backup_report

TAG = "database"
MISSING_STANZA = (1, 3)
"""pgBackRest's info status codes for a stanza that was never created (its path, or its data
in the repository, is missing)."""
NO_BACKUP = 2
"""pgBackRest's info status code for a stanza without a valid backup."""
OWNER = "postgres"

log = logging.getLogger("mailstack.backup")


@dataclass(frozen=True)
class DatabaseBackupConfig:
    stanza: str
    report: Path
    backup_interval_hours: int
    full_interval_days: int
    bin_dir: Path
    restore_port: int
    database: str

    @classmethod
    def read(cls, path: str | Path) -> "DatabaseBackupConfig":
        """Raises ValueError naming what is wrong."""
        try:
            values = json.loads(Path(path).read_text())
            config = cls(
                stanza=str(values["stanza"]),
                report=Path(values["report"]),
                backup_interval_hours=int(values["backup_interval_hours"]),
                full_interval_days=int(values["full_interval_days"]),
                bin_dir=Path(values["bin_dir"]),
                restore_port=int(values["restore_port"]),
                database=str(values["database"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: {error!r}") from None
        if not (config.report.is_absolute() and config.bin_dir.is_absolute()):
            raise ValueError(f"{path}: report and bin_dir must be absolute paths")
        if config.backup_interval_hours < 1 or config.full_interval_days < 1:
            raise ValueError(f"{path}: the intervals must be at least 1")
        return config


def as_owner(*command: str) -> list[str]:
    return ["runuser", "-u", OWNER, "--", *command]


def pgbackrest(config: DatabaseBackupConfig, *arguments: str) -> subprocess.CompletedProcess:
    """Run pgBackRest on the stanza as PostgreSQL's owner; raises BackupError when it fails."""
    command = as_owner("pgbackrest", f"--stanza={config.stanza}", *arguments)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(
            f"pgbackrest {arguments[-1]} failed ({result.returncode}): "
            + (result.stderr.strip() or result.stdout.strip())[-2000:]
        )
    return result


def is_primary() -> bool:
    """Whether PostgreSQL runs here as the primary (out of recovery)."""
    answer = subprocess.run(
        as_owner("psql", "-X", "-At", "-c", "SELECT pg_is_in_recovery()"),
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.returncode == 0 and answer.stdout.strip() == "f"


def info(config: DatabaseBackupConfig) -> dict:
    """pgBackRest's view of the stanza in the repository (`info --output=json`)."""
    listed = json.loads(pgbackrest(config, "--output=json", "info").stdout or "[]")
    if not listed:
        raise BackupError("pgbackrest info printed no stanza")
    return listed[0]


def backups(stanza: dict) -> list[dict]:
    """The stanza's backups, oldest first."""
    return sorted(stanza.get("backup", []), key=lambda b: b["timestamp"]["stop"])


def due(stanza: dict, config: DatabaseBackupConfig, now: float) -> str | None:
    """The type of backup due now ('full', 'diff'), or None."""
    taken = backups(stanza)
    fulls = [b for b in taken if b["type"] == "full"]
    if not fulls or now - fulls[-1]["timestamp"]["stop"] >= config.full_interval_days * 86400:
        return "full"
    if now - taken[-1]["timestamp"]["stop"] >= config.backup_interval_hours * 3600:
        return "diff"
    return None


def write_report(config: DatabaseBackupConfig, newest: dict) -> None:
    write_backup_report(
        config.report,
        TAG,
        newest["timestamp"]["stop"],
        newest["info"]["repository"]["delta"],
        newest["timestamp"]["stop"] - newest["timestamp"]["start"],
    )


def run(config: DatabaseBackupConfig) -> str:
    """The timer's job. Returns what it did, for the journal."""
    if not is_primary():
        config.report.unlink(missing_ok=True)
        return "not the primary: nothing to back up here"
    stanza = info(config)
    if stanza["status"]["code"] in MISSING_STANZA:
        log.info("creating the stanza %s in the repository", config.stanza)
        pgbackrest(config, "stanza-create")
        stanza = info(config)
    kind = due(stanza, config, time.time())
    did = take(config, kind) if kind else "no backup due"
    taken = backups(info(config) if kind else stanza)
    if taken:
        write_report(config, taken[-1])
    return did


def take(config: DatabaseBackupConfig, kind: str) -> str:
    """A backup of `kind` ('full', 'diff', 'incr') now. Returns what was taken."""
    started = time.time()
    # A checkpoint at once, instead of waiting for a spread one (minutes).
    pgbackrest(config, f"--type={kind}", "--start-fast", "backup")
    return f"{kind} backup {backups(info(config))[-1]['label']} in {time.time() - started:.1f} s"


def parse_time(text: str) -> datetime:
    """The operator's time: ISO 8601, UTC unless it names its offset."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def status(config: DatabaseBackupConfig) -> tuple[int, str]:
    """(exit status, report line) of the newest backup (see the module's `status`)."""
    stanza = info(config)
    taken = backups(stanza)
    if not taken:
        return 2, f"database: no backup ({stanza['status']['message']})"
    newest = taken[-1]
    stop = datetime.fromtimestamp(newest["timestamp"]["stop"], UTC)
    age = (datetime.now(UTC) - stop).total_seconds()
    code, mark = freshness(age, config.backup_interval_hours * 3600)
    archives = stanza.get("archive") or [{}]
    return code, (
        f"database: newest backup {newest['label']} ({newest['type']}) "
        f"{stop:%Y-%m-%d %H:%M:%S} UTC, {age / 3600:.1f} h ago"
        f"{mark}; {len(taken)} backups; WAL archived "
        f"up to {archives[-1].get('max') or 'none'}"
    )


def _psql(config: DatabaseBackupConfig, into: Path, query: str) -> str:
    result = subprocess.run(
        as_owner(
            "psql",
            "-X",
            "-At",
            "-h",
            str(into),
            "-p",
            str(config.restore_port),
            "-d",
            config.database,
            "-c",
            query,
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def restore(config: DatabaseBackupConfig, at: datetime, into: Path, timeout: float = 600) -> str:
    """Restore the database as it was at `at` into `into` and start it there (see the module's
    `restore`). Returns how to reach it."""
    if into.exists() and any(into.iterdir()):
        raise BackupError(f"{into} is not empty")
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.chown(into, OWNER, OWNER)
    target = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    pgbackrest(
        config,
        f"--pg1-path={into}",
        "--type=time",
        f"--target={target}",
        "--target-action=promote",
        # The copy must never push WAL of its own into the cluster's archive.
        "--archive-mode=off",
        "restore",
    )
    # Its own socket, no network, no replication, no synchronous standby to wait for.
    options = " ".join(
        f"-c {name}={value}"
        for name, value in {
            "port": config.restore_port,
            "listen_addresses": "''",
            "unix_socket_directories": f"'{into}'",
            "archive_mode": "off",
            "synchronous_standby_names": "''",
            "primary_conninfo": "''",
            "hba_file": f"'{into}/pg_hba.conf'",
            "ident_file": f"'{into}/pg_ident.conf'",
        }.items()
    )
    started = subprocess.run(
        as_owner(
            str(config.bin_dir / "pg_ctl"),
            "-D",
            str(into),
            "-l",
            str(into / "restore.log"),
            "-o",
            options,
            "start",
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise BackupError(f"the restored copy did not start: {_tail(into / 'restore.log')}")
    deadline = time.monotonic() + timeout
    while _psql(config, into, "SELECT pg_is_in_recovery()") != "f":
        if time.monotonic() > deadline or not (into / "postmaster.pid").exists():
            raise BackupError(
                f"the restored copy did not reach {target}: {_tail(into / 'restore.log')}"
            )
        time.sleep(1)
    return (
        f"restored as of {target} into {into}, running: psql -h {into} -p {config.restore_port} "
        f"{config.database} (as {OWNER}); remove it with `discard {into}`"
    )


def _tail(log_file: Path) -> str:
    try:
        return " | ".join(log_file.read_text().strip().splitlines()[-5:])
    except OSError:
        return "(no log)"


def discard(config: DatabaseBackupConfig, into: Path) -> None:
    """Stop a restored copy and remove its directory."""
    if not (into / "PG_VERSION").exists():
        raise BackupError(f"{into} holds no restored database")
    if (into / "postmaster.pid").exists():
        subprocess.run(
            as_owner(str(config.bin_dir / "pg_ctl"), "-D", str(into), "-m", "fast", "stop"),
            capture_output=True,
            check=False,
        )
    shutil.rmtree(into)


def _take(config: DatabaseBackupConfig, args) -> int:
    if not is_primary():
        log.error("not the primary: run it on the primary (`mailstack status`)")
        return 2
    print(take(config, args.type))
    return 0


def main(argv: list[str] | None = None) -> int:
    job = Job(
        "python -m mailstack.database.backup",
        run_help="back up the database when due (where this node is primary)",
        status_help="the newest backup and its age",
    )
    taking = job.command("backup", _take, help="a backup now (on the primary)")
    taking.add_argument("--type", choices=("full", "diff", "incr"), default="incr")
    restoring = job.command(
        "restore",
        lambda config, args: print(restore(config, args.at, args.into)),
        help="the database as it was at a time, beside the cluster",
    )
    restoring.add_argument("--at", type=parse_time, required=True, help="ISO 8601 time")
    restoring.add_argument("--into", type=Path, required=True, help="an empty directory")
    discarding = job.command(
        "discard",
        lambda config, args: discard(config, args.into),
        help="stop and remove a restored copy",
    )
    discarding.add_argument("into", type=Path)
    return job.main(argv, DatabaseBackupConfig.read, run=run, status=status)


if __name__ == "__main__":
    sys.exit(main())

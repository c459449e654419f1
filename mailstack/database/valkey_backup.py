"""Valkey's data off-site (the greylisting passes and limit windows of `policy`, rspamd's Bayes
statistics and fuzzy hashes of `filters`), with restic over SFTP on a db node
(docs/operations.md#backups).

    python -m mailstack.database.valkey_backup --config /etc/mailstack/backup/valkey.json COMMAND

- `run` (the timer's job, on every db node): for each use whose primary runs on this node,
  writes every key as Valkey's own DUMP of it, with its expiry as an absolute time, to a file
  (one JSON line per key), backs the file up (snapshot host `valkey`, tag the use), forgets
  snapshots beyond the retention and prunes; then reports to node exporter
  (mailstack_backup_last_success_timestamp_seconds{backup="valkey-<use>"}, alert BackupTooOld).
  Where a use's replica runs (or its instance does not answer) it withdraws that use's report,
  so after a Sentinel failover the new primary's node carries on by itself. The keys are read
  one by one while clients write: each key is consistent, the whole is not a point in time (it
  need not be, for learned data).
- `status`: each use's newest snapshot and its age; exit 0 when each is younger than two
  intervals (and five minutes), 1 when one is older, 2 when one has none.
- `restore USE [--at TIME]`: the use's keys as they were in the newest snapshot taken at or
  before TIME (default: the newest) written into its primary, which must run on this node (it
  replicates them): a key of the backup replaces the key of the same name, keys made since stay,
  keys whose expiry has passed are left out.
- `check-config`: reads the configuration (the deploy's check before it is applied).

Configuration (JSON, mailstack.services.valkeybackup.job_config): the repository
(mailstack.restic), uses ({use: port}), valkey_password_file, staging_dir, report_dir,
snapshot_host, keep (hourly/daily/weekly), interval_minutes. Exit status: 0 done, 1 a step
failed (its output on stderr), 2 a bad configuration or request.
"""

import base64
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailstack.jobs import BackupError, Job, freshness, write_backup_report
from mailstack.restic import (
    LOCKED,
    Repository,
    ensure_repository,
    parse_time,
    restic,
    snapshots,
    summary,
)

KEEP = ("hourly", "daily", "weekly")
SCAN_BATCH = 1000

log = logging.getLogger("mailstack.backup")


@dataclass(frozen=True)
class ValkeyBackupConfig:
    repository: Repository
    uses: dict[str, int]
    valkey_password_file: Path
    staging_dir: Path
    report_dir: Path
    snapshot_host: str
    keep: dict[str, int]
    interval_minutes: int

    @classmethod
    def read(cls, path: str | Path) -> "ValkeyBackupConfig":
        """Raises ValueError naming what is wrong."""
        try:
            values = json.loads(Path(path).read_text())
            config = cls(
                repository=Repository.from_config(values),
                uses={str(use): int(port) for use, port in values["uses"].items()},
                valkey_password_file=Path(values["valkey_password_file"]),
                staging_dir=Path(values["staging_dir"]),
                report_dir=Path(values["report_dir"]),
                snapshot_host=str(values["snapshot_host"]),
                keep={k: int(values["keep"][k]) for k in KEEP},
                interval_minutes=int(values["interval_minutes"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: {error!r}") from None
        if not config.uses:
            raise ValueError(f"{path}: uses names no Valkey instance")
        if not (config.staging_dir.is_absolute() and config.report_dir.is_absolute()):
            raise ValueError(f"{path}: staging_dir and report_dir must be absolute paths")
        if not any(config.keep.values()):
            raise ValueError(f"{path}: keep must keep some snapshots")
        return config

    def report(self, use: str) -> Path:
        return self.report_dir / f"mailstack_backup_valkey_{use}.prom"


def client(config: ValkeyBackupConfig, use: str):
    """A client of this node's instance of `use` (over loopback)."""
    import valkey

    return valkey.Valkey(
        host="127.0.0.1",
        port=config.uses[use],
        password=config.valkey_password_file.read_text().strip(),
        socket_timeout=30,
    )


def is_primary(connection) -> bool:
    """Whether this node's instance is its use's primary; an instance that does not answer
    (stopped, starting, loading its data) is not."""
    from valkey.exceptions import ValkeyError

    try:
        return connection.info("replication").get("role") == "master"
    except ValkeyError:
        return False


def dump(connection, destination: Path) -> int:
    """Write every key (DUMP payload, absolute expiry in ms or 0) as JSON lines; returns how
    many. Keys that expire or go while it reads are left out."""
    now_ms = int(time.time() * 1000)
    count = 0
    partial = destination.with_name(destination.name + ".tmp")
    with partial.open("w") as out:
        for key in connection.scan_iter(count=SCAN_BATCH):
            payload, ttl = connection.pipeline(transaction=False).dump(key).pttl(key).execute()
            if payload is None or ttl == -2:
                continue
            expires = now_ms + ttl if ttl > 0 else 0
            entry = {
                "key": base64.b64encode(key).decode(),
                "expires_ms": expires,
                "dump": base64.b64encode(payload).decode(),
            }
            out.write(json.dumps(entry) + "\n")
            count += 1
    partial.replace(destination)
    return count


def back_up(config: ValkeyBackupConfig, use: str, connection) -> str:
    """Dump one use and take its snapshot. Returns what it did."""
    started = time.time()
    config.staging_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = config.staging_dir / f"{use}.jsonl"
    keys = dump(connection, staged)
    taken = restic(
        config.repository,
        "backup",
        "--json",
        "--host",
        config.snapshot_host,
        "--tag",
        use,
        str(staged),
    )
    outcome = summary(taken.stdout)
    keep = [a for kind, n in config.keep.items() if n for a in (f"--keep-{kind}", str(n))]
    forgot = restic(
        config.repository,
        "forget",
        "--host",
        config.snapshot_host,
        "--tag",
        use,
        *keep,
        "--prune",
        ok=(0, LOCKED),
    )
    if forgot.returncode == LOCKED:
        log.warning("repository locked, forget and prune left for a later run")
    seconds = time.time() - started
    write_backup_report(
        config.report(use),
        f"valkey-{use}",
        time.time(),
        int(outcome.get("data_added", 0)),
        seconds,
    )
    return f"{use}: {keys} keys, snapshot {outcome.get('snapshot_id', '')[:8]} in {seconds:.1f} s"


def run(config: ValkeyBackupConfig) -> str:
    """The timer's job. Returns what it did, for the journal."""
    done = []
    ensured = False
    for use in config.uses:
        connection = client(config, use)
        if not is_primary(connection):
            config.report(use).unlink(missing_ok=True)
            done.append(f"{use}: no primary here, nothing to back up")
            continue
        if not ensured:
            ensure_repository(config.repository)
            restic(config.repository, "unlock")
            ensured = True
        done.append(back_up(config, use, connection))
    return "; ".join(done)


def use_snapshots(config: ValkeyBackupConfig, use: str) -> list[dict]:
    return snapshots(config.repository, config.snapshot_host, use)


def status(config: ValkeyBackupConfig) -> tuple[int, str]:
    """(exit status, report lines) of each use's newest snapshot."""
    worst, lines = 0, []
    for use in config.uses:
        found = use_snapshots(config, use)
        if not found:
            worst = 2
            lines.append(f"valkey {use}: no snapshot in {config.repository.address}")
            continue
        newest = found[-1]["time"]
        age = (datetime.now(UTC) - newest).total_seconds()
        code, mark = freshness(age, config.interval_minutes * 60)
        worst = max(worst, code)
        lines.append(
            f"valkey {use}: newest snapshot {newest:%Y-%m-%d %H:%M:%S} UTC, {age / 60:.0f} min ago"
            f"{mark}; {len(found)} snapshots"
        )
    return worst, "\n".join(lines)


def restore(config: ValkeyBackupConfig, use: str, at: datetime | None) -> str:
    """Write the use's keys from the newest snapshot at or before `at` into its primary here.
    Returns what it did."""
    if use not in config.uses:
        raise BackupError(f"no Valkey use {use!r} (known: {', '.join(config.uses)})")
    connection = client(config, use)
    if not is_primary(connection):
        raise BackupError(f"{use}'s primary does not run here: run it where it does")
    chosen = [s for s in use_snapshots(config, use) if at is None or s["time"] <= at]
    if not chosen:
        raise BackupError(f"no {use} snapshot taken at or before {at or 'now'}")
    snapshot = chosen[-1]
    path = str(config.staging_dir / f"{use}.jsonl")
    content = restic(config.repository, "dump", snapshot["id"], path).stdout
    now_ms = int(time.time() * 1000)
    written = expired = 0
    pipeline = connection.pipeline(transaction=False)
    for line in content.splitlines():
        entry = json.loads(line)
        if entry["expires_ms"] and entry["expires_ms"] <= now_ms:
            expired += 1
            continue
        pipeline.restore(
            base64.b64decode(entry["key"]),
            entry["expires_ms"],
            base64.b64decode(entry["dump"]),
            replace=True,
            absttl=bool(entry["expires_ms"]),
        )
        written += 1
        if written % SCAN_BATCH == 0:
            pipeline.execute()
    pipeline.execute()
    return (
        f"{use}: {written} keys written from the snapshot of {snapshot['time']:%Y-%m-%d %H:%M:%S}"
        f" UTC ({expired} expired since, left out)"
    )


def main(argv: list[str] | None = None) -> int:
    from valkey.exceptions import ValkeyError

    job = Job(
        "python -m mailstack.database.valkey_backup",
        run_help="back up the uses whose primary runs here",
        status_help="each use's newest snapshot and its age",
    )
    restoring = job.command(
        "restore",
        lambda config, args: print(restore(config, args.use, args.at)),
        help="write a use's keys back from a snapshot",
    )
    restoring.add_argument("use", help="policy or filters")
    restoring.add_argument("--at", type=parse_time, help="as it was at this time (ISO 8601)")
    return job.main(argv, ValkeyBackupConfig.read, run=run, status=status, errors=(ValkeyError,))


if __name__ == "__main__":
    sys.exit(main())

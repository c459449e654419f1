"""restic over SFTP, as the platform's backup jobs run it (the mail store's, Valkey's).

A repository is its address (`sftp:user@host:path`), the SSH command that reaches it (pinned
host key, the environment's key), the file with its password and a local cache directory.
"""

import json
import logging
import re
import shlex
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailstack.jobs import BackupError

REPOSITORY_MISSING = 10
"""restic's exit status when the repository does not exist (restic 0.17 and later)."""
INCOMPLETE = 3
"""restic's exit status when a snapshot was written but some files could not be read."""
LOCKED = 11
"""restic's exit status when it cannot lock the repository."""

log = logging.getLogger("mailstack.backup")


@dataclass(frozen=True)
class Repository:
    address: str
    ssh_command: list[str]
    password_file: Path
    cache_dir: Path

    @classmethod
    def from_config(cls, values: dict) -> "Repository":
        """From a job's JSON configuration (keys repository, ssh_command, password_file,
        cache_dir). Raises KeyError, TypeError or ValueError naming what is wrong."""
        repository = cls(
            address=str(values["repository"]),
            ssh_command=[str(a) for a in values["ssh_command"]],
            password_file=Path(values["password_file"]),
            cache_dir=Path(values["cache_dir"]),
        )
        if not repository.address.startswith("sftp:"):
            raise ValueError("repository must be an sftp: address")
        if not repository.cache_dir.is_absolute():
            raise ValueError("cache_dir must be an absolute path")
        return repository


def restic(repository: Repository, *arguments: str, ok=(0,)) -> subprocess.CompletedProcess:
    """Run restic on the repository; raises BackupError for an exit status not in `ok`."""
    command = [
        "restic",
        "--repo",
        repository.address,
        "--option",
        "sftp.command=" + shlex.join(repository.ssh_command),
        "--password-file",
        str(repository.password_file),
        "--cache-dir",
        str(repository.cache_dir),
        *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in ok:
        raise BackupError(
            f"restic {arguments[0]} failed ({result.returncode}): "
            + (result.stderr.strip() or result.stdout.strip())[-2000:]
        )
    return result


def ensure_repository(repository: Repository) -> None:
    """Create the repository on first use (and only then: any other failure is an error)."""
    found = restic(repository, "cat", "config", ok=(0, REPOSITORY_MISSING))
    if found.returncode == REPOSITORY_MISSING:
        log.info("creating the repository %s", repository.address)
        restic(repository, "init")


def parse_time(text: str) -> datetime:
    """restic's and the operator's times: ISO 8601, nanoseconds cut to microseconds, UTC
    unless an offset is given."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    moment = datetime.fromisoformat(trimmed)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def snapshots(repository: Repository, host: str, tag: str) -> list[dict]:
    """The snapshots of one host name and tag, oldest first, each with its `time` as a
    datetime in UTC."""
    listed = restic(repository, "snapshots", "--json", "--host", host, "--tag", tag)
    found = json.loads(listed.stdout or "[]") or []
    for snapshot in found:
        snapshot["time"] = parse_time(snapshot["time"]).astimezone(UTC)
    return sorted(found, key=lambda s: s["time"])


def summary(output: str) -> dict:
    """The summary message of `restic backup --json`."""
    for line in reversed(output.splitlines()):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("message_type") == "summary":
            return message
    raise BackupError("restic backup printed no summary")

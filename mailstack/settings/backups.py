"""Off-site backups: where they go and how often (roles/backup.py, docs/operations.md#backups)."""

import re
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, Field

from mailstack.settings.base import FQDN, Model

_HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")


def _check_host_key(value: str) -> str:
    key = value.strip()
    if not _HOST_KEY.match(key):
        raise ValueError(
            "must be a public host key as `ssh-keyscan` prints it, without the host name: "
            "'ssh-ed25519 AAAA...'"
        )
    return key


def _check_repository_path(value: PurePosixPath) -> PurePosixPath:
    if value.is_absolute() or ".." in value.parts or not value.parts:
        raise ValueError(f"{value} must be a relative path below the account's home, without '..'")
    return value


def _check_home(value: PurePosixPath) -> PurePosixPath:
    if not value.is_absolute() or ".." in value.parts:
        raise ValueError(f"{value} must be an absolute path without '..'")
    return value


class BackupTarget(Model):
    """An SFTP account off the platform, as a Hetzner Storage Box offers it. Every backup of
    the environment goes below `path` there, encrypted before it leaves the host."""

    host: FQDN = Field(
        description="The SFTP server's host name.",
        examples=["u123456.your-storagebox.de"],
    )
    port: int = Field(
        23,
        ge=1,
        le=65535,
        description="Its SSH port (a Storage Box serves SFTP with keys on 23).",
    )
    user: str = Field(
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="The account the hosts log in as, with the key the deploy generates (the "
        "public key to install on the account: `mailstack backup key --stack NAME`).",
        examples=["u123456"],
    )
    path: Annotated[PurePosixPath, AfterValidator(_check_repository_path)] = Field(
        PurePosixPath("mailstack"),
        description="Directory below the account's home that holds this environment's "
        "repositories (one per kind of backup).",
    )
    home: Annotated[PurePosixPath, AfterValidator(_check_home)] = Field(
        PurePosixPath("/home"),
        description="The account's home directory as its SFTP server shows it: pgBackRest "
        "addresses its repository by absolute path (a Storage Box shows /home; a server that "
        "locks the account in its home shows /).",
        examples=["/home"],
    )
    host_key: Annotated[str, AfterValidator(_check_host_key)] = Field(
        description="The server's public host key, so a host never sends its backups to "
        "another server (`ssh-keyscan -p 23 HOST` prints it after the host name).",
        examples=[
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        ],
    )


class MailBackup(Model):
    """The mail store, backed up with restic from whichever mailstore node holds the mail
    volume: incremental, deduplicated, encrypted."""

    interval_minutes: int = Field(
        15,
        ge=5,
        le=1440,
        description="How often a backup runs: at most this much stored mail is at risk when "
        "the mail volume is lost (the recovery point).",
    )
    keep_hourly: int = Field(48, ge=0, le=10000, description="Hourly snapshots kept.")
    keep_daily: int = Field(14, ge=0, le=10000, description="Daily snapshots kept.")
    keep_weekly: int = Field(8, ge=0, le=10000, description="Weekly snapshots kept.")
    keep_monthly: int = Field(12, ge=1, le=10000, description="Monthly snapshots kept.")
    prune_interval_hours: int = Field(
        24,
        ge=1,
        le=720,
        description="How often a backup run also removes the data of forgotten snapshots from "
        "the repository (restic prune reads and rewrites part of it).",
    )


class ValkeyBackup(Model):
    """Valkey's data (greylisting passes, limit windows, rspamd's Bayes statistics and fuzzy
    hashes), backed up with restic from whichever db node runs each use's primary."""

    interval_minutes: int = Field(
        60,
        ge=5,
        le=1440,
        description="How often a backup runs: at most this much learned data is at risk.",
    )
    keep_hourly: int = Field(24, ge=0, le=10000, description="Hourly snapshots kept.")
    keep_daily: int = Field(14, ge=0, le=10000, description="Daily snapshots kept.")
    keep_weekly: int = Field(8, ge=1, le=10000, description="Weekly snapshots kept.")


class DatabaseBackup(Model):
    """The account data (PostgreSQL), backed up with pgBackRest from whichever db node is the
    primary: every WAL segment as it is completed, and full and differential backups on a
    schedule, restorable to any moment since the oldest full backup kept."""

    backup_interval_hours: int = Field(
        24,
        ge=1,
        le=168,
        description="How often a backup runs: differential (what changed since the last full "
        "one) until a full backup is due. Restoring replays the WAL archived since that backup, "
        "so a shorter interval makes restores faster; the recovery point is set by "
        "archive_timeout_seconds.",
    )
    full_interval_days: int = Field(
        7,
        ge=1,
        le=90,
        description="A full backup when the newest full one is older than this.",
    )
    keep_full: int = Field(
        2,
        ge=1,
        le=100,
        description="Full backups kept, with the differential backups and the WAL that depend "
        "on them: the database can be restored to any moment since the oldest one.",
    )
    archive_timeout_seconds: int = Field(
        60,
        ge=10,
        le=3600,
        description="PostgreSQL's archive_timeout: a WAL segment is completed and archived at "
        "least this often while anything is written, so at most this much committed account "
        "data is at risk when every db node is lost (the recovery point).",
    )


AGE_RECIPIENT = re.compile(
    r"^(ssh-ed25519 |ssh-rsa )[A-Za-z0-9+/]+={0,3}( .*)?$|^age1[0-9a-z]{58}$"
)
"""What age encrypts to: an SSH key (Ed25519 or RSA, as ssh-keygen prints it) or an age key."""


def _check_recipients(values: list[str]) -> list[str]:
    for value in values:
        if not AGE_RECIPIENT.match(value.strip()):
            raise ValueError(
                f"{value[:40]!r} is not an age recipient: an 'ssh-ed25519 ...' or 'ssh-rsa ...' "
                "public key, or an 'age1...' key"
            )
    return [value.strip() for value in values]


class BackupSettings(Model):
    """Where backups go, and how often."""

    target: BackupTarget | None = Field(
        None,
        description="The off-site SFTP account. None: nothing is backed up (`mailstack backup "
        "status` says so); every production environment should set one.",
    )
    mail: MailBackup = Field(MailBackup(), description="The mail store's backups.")
    secrets_recipients: Annotated[list[str], AfterValidator(_check_recipients)] = Field(
        [],
        description="Who can read the off-site copy of the environment's secrets (its DKIM "
        "keys, passwords and the backups' repository password), which every deploy puts "
        "beside the backups when they changed: age recipients, i.e. SSH public keys (Ed25519 "
        "or RSA) or age keys. Empty: the Ed25519 and RSA keys of environment.admin_ssh_keys.",
        examples=[["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... ops@example.net"]],
    )
    valkey: ValkeyBackup = Field(ValkeyBackup(), description="Valkey's data's backups.")
    database: DatabaseBackup = Field(
        DatabaseBackup(), description="The account data's backups (db clusters only)."
    )

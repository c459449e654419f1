"""Deletes removed mailboxes' mail once its retention is over (docs/accounts.md, "The mail store:
deleting removed mailboxes' mail").

    python -m mailstack.mailstore.purge --config /etc/mailstack/purge-removed-mail.json

The account data's view `mail.expired_storage` (read as the lookup role) lists the homes whose
deadline has passed; each is deleted below the mail root. A home that is gone already is
skipped, so the job can run as often as wanted; a home that would leave the mail root (never
stored: the database allows only `<domain>/<name>`) or is not a directory is refused and
reported. Runs hourly from a systemd timer on the mailstore nodes, where Dovecot is active
(templates/dovecot/.../mailstack-purge-removed-mail.*), as the owner of the mail.

Configuration (JSON): `accounts_dsn` (libpq connection string of the lookup role), `mail_root`.
Exit status: 0 when every due home is gone, 1 when one could not be deleted (the others are),
2 for a bad configuration.
"""

import argparse
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

HOME = re.compile(r"^[a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9._-]*$")
"""A stored home: `<domain>/<local part>[.<storage id>]` (the database's own check)."""
QUERY = "SELECT storage_id, home FROM mail.expired_storage ORDER BY purge_after"

log = logging.getLogger("mailstack.purge")


@dataclass(frozen=True)
class PurgeConfig:
    accounts_dsn: str
    mail_root: Path

    @classmethod
    def read(cls, path: str | Path) -> "PurgeConfig":
        """Raises ValueError naming what is wrong."""
        try:
            values = json.loads(Path(path).read_text())
            config = cls(str(values["accounts_dsn"]), Path(values["mail_root"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: {error!r}") from None
        if not config.mail_root.is_absolute():
            raise ValueError(f"{path}: mail_root must be an absolute path")
        return config


def target(mail_root: Path, home: str) -> Path:
    """The directory a stored home names below the mail root. Raises ValueError for a home
    that is not of the stored form or would leave the mail root."""
    if not HOME.fullmatch(home) or ".." in home.split("/"):
        raise ValueError(f"refusing home {home!r}: not <domain>/<name>")
    path = mail_root / home
    root = mail_root.resolve()
    if not path.resolve(strict=False).is_relative_to(root) or path.resolve() == root:
        raise ValueError(f"refusing home {home!r}: it leaves {mail_root}")
    return path


def purge(mail_root: Path, due: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Delete each due home (storage id, home) below the mail root; returns the homes deleted
    and the problems met (one line each)."""
    deleted, problems = [], []
    for storage_id, home in due:
        try:
            path = target(mail_root, home)
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise ValueError(f"refusing home {home!r}: not a directory")
            if not path.exists():
                continue
            shutil.rmtree(path)
        except (ValueError, OSError) as error:
            problems.append(f"{storage_id}: {error}")
        else:
            deleted.append(home)
            log.info("deleted %s (storage %s): its retention is over", home, storage_id)
    return deleted, problems


def due_homes(dsn: str) -> list[tuple[str, str]]:
    import psycopg

    with psycopg.connect(dsn) as connection:
        return [(str(sid), home) for sid, home in connection.execute(QUERY).fetchall()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailstack.mailstore.purge")
    parser.add_argument("--config", required=True, help="the job's JSON configuration")
    parser.add_argument(
        "--check-config", action="store_true", help="read the configuration, then stop"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        config = PurgeConfig.read(args.config)
    except ValueError as error:
        print(f"purge: {error}", file=sys.stderr)
        return 2
    if args.check_config:
        return 0
    if not config.mail_root.is_dir():
        print(f"purge: the mail root {config.mail_root} is not here", file=sys.stderr)
        return 1
    due = due_homes(config.accounts_dsn)
    deleted, problems = purge(config.mail_root, due)
    for problem in problems:
        print(f"purge: {problem}", file=sys.stderr)
    log.info("%d home(s) due, %d deleted, %d refused", len(due), len(deleted), len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())

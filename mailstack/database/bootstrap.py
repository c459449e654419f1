"""How a new database cluster begins: from its off-site backup when the repository holds one,
otherwise empty (Patroni's custom bootstrap, configured by mailstack.services.patroni while a
backup target is set).

    python -m mailstack.database.bootstrap --scope=S --datadir=DIR --stanza=NAME
        --bindir=DIR --initdb_options="--encoding=UTF8 ..."

Patroni runs it once, as PostgreSQL's owner, on the node that takes the new cluster's
initialize key (a first deploy, or a rebuild after every db node was lost), with the data
directory empty:

- the repository holds a backup of the stanza: pgBackRest restores the newest one into DIR and
  leaves PostgreSQL to replay the archived WAL to its end; Patroni starts it with the recovery
  pgBackRest wrote (`keep_existing_recovery_conf`), it promotes at the end of the archive and the
  cluster carries on from the last archived transaction, on a new timeline, archiving into the
  same stanza. The other nodes then copy it as replicas.
- the stanza does not exist or holds no backup (a new environment): initdb with the options
  Patroni's own initdb would use (mailstack.services.patroni.INITDB_OPTIONS).
- the repository cannot be read (the target unreachable, a wrong key): exit 1 without making
  anything, so Patroni tries again instead of starting an empty cluster beside a backed-up one.

Exit status 0 when DIR holds a cluster, 1 otherwise (the cause on stderr, in Patroni's log).
"""

import argparse
import json
import logging
import shlex
import subprocess
import sys
from pathlib import Path

from mailstack.database.backup import MISSING_STANZA, NO_BACKUP
from mailstack.jobs import log_to_stderr

log = logging.getLogger("mailstack.bootstrap")


class BootstrapError(Exception):
    """The repository cannot be read, or the restore or initdb failed."""


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def newest_backup(stanza: str) -> str | None:
    """The label of the stanza's newest backup; None when the stanza does not exist or holds no
    backup. Raises BootstrapError when pgBackRest cannot read the repository."""
    result = _run(["pgbackrest", f"--stanza={stanza}", "info", "--output=json"])
    if result.returncode != 0:
        raise BootstrapError(f"pgbackrest info failed: {result.stderr.strip() or result.stdout}")
    stanzas = json.loads(result.stdout or "[]")
    if not stanzas:
        return None
    status = stanzas[0]["status"]
    if status["code"] in (*MISSING_STANZA, NO_BACKUP):
        return None
    if status["code"] != 0:
        raise BootstrapError(f"the stanza {stanza} is not usable: {status['message']}")
    backups = sorted(stanzas[0].get("backup", []), key=lambda b: b["timestamp"]["stop"])
    return backups[-1]["label"] if backups else None


def bootstrap(stanza: str, data_dir: Path, bin_dir: Path, initdb_options: list[str]) -> str:
    """Fill the empty `data_dir`: the newest backup, else a new cluster. Returns what it did."""
    label = newest_backup(stanza)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if label is None:
        command = [str(bin_dir / "initdb"), f"--pgdata={data_dir}", *initdb_options]
        what = "no backup in the repository: a new cluster (initdb)"
    else:
        command = ["pgbackrest", f"--stanza={stanza}", f"--pg1-path={data_dir}", "restore"]
        what = f"restored from backup {label}; PostgreSQL replays the archived WAL to its end"
    result = _run(command)
    if result.returncode != 0:
        raise BootstrapError(f"{shlex.join(command)} failed: {result.stderr.strip()}")
    return what


def main(argv: list[str] | None = None) -> int:
    log_to_stderr()
    parser = argparse.ArgumentParser(prog="python -m mailstack.database.bootstrap")
    parser.add_argument("--scope", required=True, help="the cluster (Patroni's scope)")
    parser.add_argument("--datadir", required=True, type=Path)
    parser.add_argument("--stanza", required=True, help="the cluster's name in the repository")
    parser.add_argument("--bindir", required=True, type=Path, help="PostgreSQL's programs")
    parser.add_argument("--initdb_options", default="", help="initdb's options, one string")
    args = parser.parse_args(argv)
    try:
        what = bootstrap(args.stanza, args.datadir, args.bindir, shlex.split(args.initdb_options))
    except BootstrapError as error:
        log.error("the cluster %s was not bootstrapped: %s", args.scope, error)
        return 1
    log.info("cluster %s: %s", args.scope, what)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Off-site backups of the account data: pgBackRest over SFTP on the db nodes of a cluster
(mailstack.database.backup), and the names PostgreSQL's archiving, the job and the restore
command share.

PostgreSQL on the primary archives every completed WAL segment to the repository itself
(`archive_command`, part of Patroni's cluster-wide settings while a target is set); the job's
timer runs on every db node and takes base backups only where Patroni says the node is the
primary. The repository sits below the same off-site account as the mail's, encrypted with the
same repository password.
"""

import json

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.services import backup, postgresql
from mailstack.services.textfile import TEXTFILE_DIR

PACKAGES = ["pgbackrest"]
STANZA = "mailstack"
"""The repository's name for the cluster (pgBackRest's stanza)."""
OWNER = "postgres"
CONFIG_DIR = "/etc/pgbackrest"
CONFIG = f"{CONFIG_DIR}/pgbackrest.conf"
SSH_KEY = f"{CONFIG_DIR}/ssh_key"
SSH_PUBLIC_KEY = f"{CONFIG_DIR}/ssh_key.pub"
KNOWN_HOSTS = f"{CONFIG_DIR}/known_hosts"
ARCHIVE_COMMAND = f"pgbackrest --stanza={STANZA} archive-push %p"
"""PostgreSQL's archive_command while backups are configured (mailstack.services.patroni)."""
UNIT = "mailstack-backup-database"
JOB_CONFIG = f"{backup.CONFIG_DIR}/database.json"
REPORT = f"{TEXTFILE_DIR}/mailstack_backup_database.prom"
CHECK_MINUTES = 15
"""How often each db node's timer looks whether a backup is due (and whether it is primary)."""
RESTORE_PORT = 5439
"""The port (on a Unix socket only) of a copy restored beside the cluster."""
MODULE = "mailstack.database.backup"
COMMAND = f"env PYTHONPATH={APP_SOURCE} {APP_VENV}/bin/python -m {MODULE} --config {JOB_CONFIG}"
"""How the job, its check and the restore command start (as root on a db node)."""
# pgBackRest parses its configuration for any command: `help` fails on a bad value, and warns
# (without failing) of an option it does not know, which a check must not let through.
CHECK = (
    f"{COMMAND} check-config && runuser -u {OWNER} -- pgbackrest --stanza={STANZA} help backup "
    "2>&1 | (! grep -E 'WARN|ERROR')"
)


def repository_path(target) -> str:
    """The repository's absolute path as the SFTP server shows it."""
    return str(target.home / target.path / "database")


def job_config(deployment, host) -> dict:
    """What mailstack.database.backup reads."""
    settings = deployment.settings.backups.database
    return {
        "stanza": STANZA,
        "report": REPORT,
        "backup_interval_hours": settings.backup_interval_hours,
        "full_interval_days": settings.full_interval_days,
        "bin_dir": postgresql.BIN_DIR,
        "restore_port": RESTORE_PORT,
        "database": postgresql.DATABASE,
    }


def archive_parameters(settings) -> dict:
    """PostgreSQL's archiving, cluster-wide: on, into the repository, while a target is set."""
    target = settings.backups.target
    return {
        "archive_mode": "on" if target else "off",
        "archive_command": ARCHIVE_COMMAND if target else "",
        "archive_timeout": settings.backups.database.archive_timeout_seconds,
    }


def config_files(deployment, host) -> list[ConfigFile]:
    """pgBackRest's configuration and the SFTP key (PostgreSQL's owner's), the job's
    configuration, its service and its timer; nothing without a backup target."""
    settings = deployment.settings.backups
    target = settings.target
    if target is None:
        return []
    # pgBackRest reads them anew for every command: nothing to restart.
    owned = {"effect": "none", "user": OWNER, "group": OWNER, "mode": "600"}
    return [
        ConfigFile.template(
            "pgbackrest",
            CONFIG,
            **owned,
            owner=OWNER,
            repository_path=repository_path(target),
            target=target,
            ssh_key=SSH_KEY,
            ssh_public_key=SSH_PUBLIC_KEY,
            known_hosts=KNOWN_HOSTS,
            cipher_pass=deployment.secrets.get(backup.REPOSITORY_PASSWORD_SECRET),
            keep_full=settings.database.keep_full,
            stanza=STANZA,
            data_dir=postgresql.DATA_DIR,
            port=postgresql.PORT,
            socket_dir=postgresql.SOCKET_DIR,
        ),
        ConfigFile.literal(SSH_KEY, backup.ssh_private_key(deployment.secrets), **owned),
        ConfigFile.literal(
            SSH_PUBLIC_KEY,
            backup.ssh_public_key(deployment.secrets, deployment.settings.environment.name) + "\n",
            **owned,
        ),
        ConfigFile.literal(KNOWN_HOSTS, backup.known_hosts_line(target), **owned),
        ConfigFile.literal(
            JOB_CONFIG, json.dumps(job_config(deployment, host), indent=2) + "\n", mode="600"
        ),
        ConfigFile.template(
            "pgbackrest",
            f"/etc/systemd/system/{UNIT}.service",
            app_source=APP_SOURCE,
            app_venv=APP_VENV,
            code_version=code_version(),
            module=MODULE,
            config=JOB_CONFIG,
            textfile_dir=TEXTFILE_DIR,
        ),
        ConfigFile.template(
            "pgbackrest", f"/etc/systemd/system/{UNIT}.timer", check_minutes=CHECK_MINUTES
        ),
    ]

"""Off-site backups of the mail store: restic over SFTP from the mailstore node that holds the
mail volume (mailstack.mailstore.backup), and the names the job, the restore command and the
lab's storage account share.

Both mailstore nodes carry the job and its timer; it backs up only where Dovecot serves, so it
follows a failover. Every snapshot is taken under one host name, so either node's backups form
one lineage and each run reads only what changed since the last.
"""

import json

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.services import dovecot
from mailstack.services.textfile import TEXTFILE_DIR

PACKAGES = ["restic", "openssh-client"]
UNIT = "mailstack-backup-mail"
CONFIG_DIR = "/etc/mailstack/backup"
CONFIG = f"{CONFIG_DIR}/mail.json"
SSH_KEY = f"{CONFIG_DIR}/ssh_key"
KNOWN_HOSTS = f"{CONFIG_DIR}/known_hosts"
PASSWORD_FILE = f"{CONFIG_DIR}/repository-password"
CACHE_DIR = "/var/cache/mailstack-backup"
"""restic's cache of the repository's index (rebuilt from the repository when lost)."""
STATE_DIR = "/var/lib/mailstack-backup"
REPORT = f"{TEXTFILE_DIR}/mailstack_backup_mail.prom"
"""The job's report for node exporter (alert BackupTooOld)."""
SNAPSHOT_HOST = "mailstore"
"""The host name every mail snapshot is taken under, whichever node takes it."""
SSH_KEY_SECRET = "backup_ssh_key"
REPOSITORY_PASSWORD_SECRET = "backup_repository_password"
"""restic encrypts the repository with a key derived from it: without it no backup can be read.
Keep it off-site with the operator's other credentials (docs/operations.md#backups)."""
MODULE = "mailstack.mailstore.backup"
COMMAND = f"env PYTHONPATH={APP_SOURCE} {APP_VENV}/bin/python -m {MODULE} --config {CONFIG}"
"""How the job, its check and the restore command start (as root on a mailstore node)."""
CHECK = f"{COMMAND} check-config"


def generate_ssh_key() -> str:
    """A new Ed25519 private key in OpenSSH's format."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


def ssh_private_key(secrets) -> str:
    return secrets.get(SSH_KEY_SECRET, generate_ssh_key)


def ssh_public_key(secrets, environment: str) -> str:
    """The line to install on the backup account ('ssh-ed25519 AAAA... mailstack-<env>')."""
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_ssh_private_key(ssh_private_key(secrets).encode(), None)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} mailstack-{environment}"


def repository(target, kind: str) -> str:
    """restic's address of one kind of backup below the target's path."""
    return f"sftp:{target.user}@{target.host}:{target.path}/{kind}"


def known_hosts_line(target) -> str:
    """The target's pinned host key as ssh looks it up (a host on port 22 goes without it)."""
    name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
    return f"{name} {target.host_key}\n"


def ssh_command(target) -> list[str]:
    """restic's SFTP transport: the environment's key, the pinned host key, no prompts."""
    return [
        "ssh",
        "-p",
        str(target.port),
        "-i",
        SSH_KEY,
        "-o",
        f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=15",
        f"{target.user}@{target.host}",
        "-s",
        "sftp",
    ]


def repository_config(target, kind: str) -> dict:
    """How a job reaches its restic repository (mailstack.restic.Repository.from_config)."""
    return {
        "repository": repository(target, kind),
        "ssh_command": ssh_command(target),
        "password_file": PASSWORD_FILE,
        "cache_dir": CACHE_DIR,
    }


def job_config(deployment) -> dict:
    """What mailstack.mailstore.backup reads: the repository, how to reach it, what to keep."""
    settings = deployment.settings.backups
    target, mail = settings.target, settings.mail
    return {
        **repository_config(target, "mail"),
        "state_dir": STATE_DIR,
        "report": REPORT,
        "mail_root": dovecot.MAIL_ROOT,
        "dovecot_unit": dovecot.UNIT,
        "snapshot_host": SNAPSHOT_HOST,
        "keep": {
            "hourly": mail.keep_hourly,
            "daily": mail.keep_daily,
            "weekly": mail.keep_weekly,
            "monthly": mail.keep_monthly,
        },
        "prune_interval_hours": mail.prune_interval_hours,
        "interval_minutes": mail.interval_minutes,
    }


SECRET = {"mode": "600"}
"""Root's only. Each run reads the job's files anew: a change only restarts its timer, once the
check has passed."""


def credential_files(deployment) -> list[ConfigFile]:
    """What every restic job on a host reaches the repositories with."""
    target = deployment.settings.backups.target
    return [
        ConfigFile.literal(SSH_KEY, ssh_private_key(deployment.secrets), **SECRET),
        ConfigFile.literal(KNOWN_HOSTS, known_hosts_line(target)),
        ConfigFile.literal(
            PASSWORD_FILE, deployment.secrets.get(REPOSITORY_PASSWORD_SECRET) + "\n", **SECRET
        ),
    ]


def config_files(deployment, host) -> list[ConfigFile]:
    """The job's configuration and secrets (root only), its service and its timer; nothing
    without a backup target."""
    settings = deployment.settings.backups
    if settings.target is None:
        return []
    return [
        ConfigFile.literal(CONFIG, json.dumps(job_config(deployment), indent=2) + "\n", **SECRET),
        *credential_files(deployment),
        ConfigFile.template(
            "backup",
            f"/etc/systemd/system/{UNIT}.service",
            app_source=APP_SOURCE,
            app_venv=APP_VENV,
            code_version=code_version(),
            module=MODULE,
            config=CONFIG,
            mail_root=dovecot.MAIL_ROOT,
            textfile_dir=TEXTFILE_DIR,
            cache_dir=CACHE_DIR,
            state_dir=STATE_DIR,
        ),
        ConfigFile.template(
            "backup",
            f"/etc/systemd/system/{UNIT}.timer",
            interval_minutes=settings.mail.interval_minutes,
        ),
    ]

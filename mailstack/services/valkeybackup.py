"""Off-site backups of Valkey's data on the db nodes: restic over SFTP into the repository
`valkey` beside the mail's, from whichever node runs each use's primary
(mailstack.database.valkey_backup). Every db node carries the job and its timer; each run backs
up only the uses whose primary is local, so it follows a Sentinel failover.
"""

import json

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.services import backup, valkey
from mailstack.services.textfile import TEXTFILE_DIR

UNIT = "mailstack-backup-valkey"
CONFIG = f"{backup.CONFIG_DIR}/valkey.json"
VALKEY_PASSWORD_FILE = f"{backup.CONFIG_DIR}/valkey-password"
STAGING_DIR = f"{backup.STATE_DIR}/valkey"
"""Where each run writes the keys of a use before restic reads them (root only)."""
SNAPSHOT_HOST = "valkey"
MODULE = "mailstack.database.valkey_backup"
COMMAND = f"env PYTHONPATH={APP_SOURCE} {APP_VENV}/bin/python -m {MODULE} --config {CONFIG}"
"""How the job, its check and the restore command start (as root on a db node)."""
CHECK = f"{COMMAND} check-config"


def job_config(deployment) -> dict:
    """What mailstack.database.valkey_backup reads."""
    settings = deployment.settings.backups
    return {
        **backup.repository_config(settings.target, "valkey"),
        "uses": {use: valkey.PORTS[use] for use in valkey.USES},
        "valkey_password_file": VALKEY_PASSWORD_FILE,
        "staging_dir": STAGING_DIR,
        "report_dir": TEXTFILE_DIR,
        "snapshot_host": SNAPSHOT_HOST,
        "keep": {
            "hourly": settings.valkey.keep_hourly,
            "daily": settings.valkey.keep_daily,
            "weekly": settings.valkey.keep_weekly,
        },
        "interval_minutes": settings.valkey.interval_minutes,
    }


def config_files(deployment, host) -> list[ConfigFile]:
    """The job's configuration and secrets (root only), its service and its timer; nothing
    without a backup target."""
    settings = deployment.settings.backups
    if settings.target is None:
        return []
    return [
        ConfigFile.literal(
            CONFIG, json.dumps(job_config(deployment), indent=2) + "\n", **backup.SECRET
        ),
        ConfigFile.literal(
            VALKEY_PASSWORD_FILE,
            deployment.secrets.get(valkey.PASSWORD_SECRET) + "\n",
            **backup.SECRET,
        ),
        *backup.credential_files(deployment),
        ConfigFile.template(
            "backup",
            f"/etc/systemd/system/{UNIT}.service",
            app_source=APP_SOURCE,
            app_venv=APP_VENV,
            code_version=code_version(),
            module=MODULE,
            config=CONFIG,
            textfile_dir=TEXTFILE_DIR,
            cache_dir=backup.CACHE_DIR,
            state_dir=backup.STATE_DIR,
        ),
        ConfigFile.template(
            "backup",
            f"/etc/systemd/system/{UNIT}.timer",
            interval_minutes=settings.valkey.interval_minutes,
        ),
    ]

"""Dovecot 2.4 on the mailstore pair, and the names its clients share: LMTP and SASL for
Postfix, the mail root and owner on the mail volume, the name the pair answers to.

Both nodes carry the identical configuration and keep all mail under one mount point (the mail
volume that moves to the survivor), so whichever node holds the volume can serve.
"""

import json

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.services import certificates, postgresql

UNIT = "dovecot"
CHECK = "doveconf -n >/dev/null"
PACKAGES = [
    "dovecot-core",
    "dovecot-imapd",
    "dovecot-pop3d",
    "dovecot-lmtpd",
    "dovecot-pgsql",
    "dovecot-sieve",
    "dovecot-managesieved",
]

MAIL_ROOT = "/srv/mail"
"""Where the mail volume is mounted; each user's home is <MAIL_ROOT>/<domain>/<local part>."""
VMAIL_USER = "vmail"
VMAIL_UID = 5000
"""Fixed, so the files on the mail volume belong to the same user on either node."""
LMTP_PORT = 24
SASL_PORT = 12345
"""Dovecot's auth service for Postfix's SASL, on the mailstore nodes' private addresses."""
SERVICE_NAME = "mailstore.private"
"""The name the mx hosts reach LMTP, SASL and the quota check by: both nodes' addresses (only
the active node runs Dovecot, so only it listens; mailstack.services.pacemaker)."""
QUOTA_STATUS_PORT = 12340
"""Dovecot's quota-status service, asked by Postfix at RCPT whether a mailbox has room."""
SIEVE_SUBMISSION_PORT = 10587
"""Where the mx hosts' Postfix takes the mail Sieve sends for a user (from the mailstore nodes
only); Dovecot is its only client."""
MX_NAME = "mx.private"
"""The name the mailstore nodes reach the mx hosts' Sieve listener by: every mx address (and the
monitoring hosts their listener for the platform's own mail)."""
METRICS_PORT = 9900
"""Dovecot's stats service serves its metrics (OpenMetrics) here, on the private address."""
DOVEADM_HTTP_PORT = 8425
"""doveadm's HTTP API on the mailstore nodes' private addresses, for the web nodes only: the
panel kicks the sessions of a mailbox whose password changed or that stopped taking logins."""
DOVEADM_API_KEY_SECRET = "doveadm_api_key"
SETTINGS_SCRIPT = "mailstack-settings"
"""The name of the users' settings script in the view mail.sieve_scripts (docs/accounts.md)."""
PURGE_UNIT = "mailstack-purge-removed-mail"
"""Deletes removed mailboxes' mail once its retention is over (mailstack.mailstore.purge), on
whichever node runs Dovecot: its timer runs on both, the service only where Dovecot is active."""
PURGE_CONFIG = "/etc/mailstack/purge-removed-mail.json"
PURGE_CHECK = (
    f"env PYTHONPATH={APP_SOURCE} {APP_VENV}/bin/python -m mailstack.mailstore.purge"
    f" --config {PURGE_CONFIG} --check-config"
)


def doveadm_url() -> str:
    """Where the web nodes reach the doveadm HTTP API: the pair's shared name, of which only the
    active node listens (the other refuses the connection at once)."""
    return f"http://{SERVICE_NAME}:{DOVEADM_HTTP_PORT}/doveadm/v1"


def service_files(deployment, host) -> list[ConfigFile]:
    """What Dovecot reads."""
    settings = deployment.settings
    quota_mib = settings.mail.default_quota_mib
    lookup = deployment.database_reader
    database = {
        "db_hosts": list(lookup.hosts),
        "db_port": lookup.port,
        "db_name": lookup.name,
        "db_user": lookup.user,
        "db_password": lookup.password,
        "connect_timeout": postgresql.CONNECT_TIMEOUT,
        "tcp_user_timeout": postgresql.TCP_USER_TIMEOUT_MS,
    }
    # They hold the lookup role's password.
    readable = {"user": "root", "group": "dovecot", "mode": "640"}
    return [
        ConfigFile.template(
            "dovecot",
            "/etc/dovecot/conf.d/auth-sql.conf.ext",
            **readable,
            **database,
            mail_root=MAIL_ROOT,
        ),
        ConfigFile.template(
            "dovecot",
            "/etc/dovecot/conf.d/dict-sql.conf.ext",
            **readable,
            **database,
        ),
        ConfigFile.template(
            "dovecot",
            "/etc/dovecot/dovecot.conf",
            user="root",
            group="dovecot",
            mode="640",
            private_ip=str(host.private_ip),
            # Only the balancer that forwards Dovecot's ports may hand over a client address.
            load_balancer_ips=[deployment.load_balancer("mailaccess")],
            mail_root=MAIL_ROOT,
            vmail_uid=VMAIL_UID,
            tls_certificate=certificates.CERTIFICATE,
            tls_key=certificates.PRIVATE_KEY,
            default_quota=f"{quota_mib}M" if quota_mib else "unlimited",
            quota_tempfail=settings.mail.quota_exceeded == "defer",
            lmtp_port=LMTP_PORT,
            sasl_port=SASL_PORT,
            quota_status_port=QUOTA_STATUS_PORT,
            submission_host=MX_NAME,
            sieve_submission_port=SIEVE_SUBMISSION_PORT,
            lmtp_user_concurrency=settings.mailstore.lmtp_user_concurrency,
            metrics_port=METRICS_PORT,
            primary_domain=settings.environment.primary_domain,
            doveadm_http_port=DOVEADM_HTTP_PORT,
            doveadm_api_key=deployment.secrets.get(DOVEADM_API_KEY_SECRET),
            settings_script=SETTINGS_SCRIPT,
        ),
    ]


def stale_lock_files() -> list[ConfigFile]:
    """The removal of a dead node's dot-locks before Dovecot starts (mailstack.mailstore.locks):
    systemd reads it at the next start, so a daemon-reload (and Dovecot's harmless reload where
    it runs) applies it."""
    return [
        ConfigFile.template(
            "dovecot",
            f"/etc/systemd/system/{UNIT}.service.d/mailstack-stale-locks.conf",
            effect="reload",
            vmail_user=VMAIL_USER,
            app_source=APP_SOURCE,
            app_venv=APP_VENV,
            mail_root=MAIL_ROOT,
        )
    ]


def purge_files(deployment, host) -> list[ConfigFile]:
    """The clean-up job of removed mailboxes' mail: its configuration (the lookup role's
    connection, root only, handed to the job as a credential), service and timer."""
    config = {
        "accounts_dsn": postgresql.client_dsn(deployment.database_reader),
        "mail_root": MAIL_ROOT,
    }
    unit = {
        "app_venv": APP_VENV,
        "app_source": APP_SOURCE,
        "config": PURGE_CONFIG,
        "mail_root": MAIL_ROOT,
        "vmail_user": VMAIL_USER,
        "dovecot_unit": UNIT,
        "code_version": code_version(),
    }
    return [
        ConfigFile.literal(PURGE_CONFIG, json.dumps(config, indent=2) + "\n", mode="600"),
        ConfigFile.template("dovecot", f"/etc/systemd/system/{PURGE_UNIT}.service", **unit),
        ConfigFile.template("dovecot", f"/etc/systemd/system/{PURGE_UNIT}.timer"),
    ]


def config_files(deployment, host) -> list[ConfigFile]:
    return service_files(deployment, host) + stale_lock_files() + purge_files(deployment, host)

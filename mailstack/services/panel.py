"""The control panel (Django) on the web hosts: gunicorn on loopback behind nginx
(mailstack.services.web), its configuration, the `mailstack-panel` command (manage.py with its
configuration) and the platform settings it applies. Its code and venv come from roles/venv.py.
"""

import secrets

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.services import dovecot, postfix, postgresql
from mailstack.settings.monitoring import alert_sender

UNIT = "mailstack-panel.service"
TRACE_PURGE_UNIT = "mailstack-trace-purge"
"""Deletes trace lines past tracing.retention_days (tracing.retention), hourly from a timer on
every web host (the deletes of two hosts do not clash)."""
NOTICES_UNIT = "mailstack-hold-notices"
"""Mails the admins of newly held mailboxes (accounts.holdnotices), from a timer on every web
host; each notice goes out once whichever host sends it."""
ENVIRONMENT = "/etc/mailstack/panel.env"
PLATFORM_SETTINGS = "/etc/mailstack/platform-settings.json"
COMMAND = "/usr/local/bin/mailstack-panel"
SECRET_KEY_SECRET = "panel_secret_key"
LISTEN = "127.0.0.1:8001"
"""gunicorn, for nginx on the same node only."""
STATIC_ROOT = "/var/lib/mailstack/panel/static"
"""The collected static files nginx serves at /static/ (mailstack-panel collectstatic)."""
CHECK = f"{COMMAND} check --deploy --fail-level WARNING"
"""Django's own checks of the settings the environment file gives (the deployment checklist)."""
PROXY_COUNT = 1
"""nginx alone sets X-Forwarded-For, to the client the balancer named (mailstack.services.web)."""


def environment_file(deployment, host) -> ConfigFile:
    """MAILPANEL_* for the service and for `mailstack-panel` (docs/accounts.md)."""
    settings = deployment.settings
    database = deployment.database_writer
    filters = deployment.valkey_store("filters")
    return ConfigFile.template(
        "panel",
        ENVIRONMENT,
        mode="600",
        # The version changes with the code, and with it the migrations to run.
        code_version=code_version(),
        app_source=APP_SOURCE,
        db_hosts=list(database.hosts),
        db_port=database.port,
        db_name=database.name,
        db_user=database.user,
        db_password=database.password,
        db_target_session_attrs=database.target_session_attrs,
        db_connect_timeout=postgresql.CONNECT_TIMEOUT,
        db_tcp_user_timeout=postgresql.TCP_USER_TIMEOUT_MS,
        lookup_role=postgresql.LOOKUP_USER,
        trace_role=postgresql.TRACE_USER,
        # Django's deployment check asks for at least 50 characters.
        secret_key=deployment.secrets.get(SECRET_KEY_SECRET, lambda: secrets.token_urlsafe(48)),
        allowed_hosts=[settings.environment.hostname("panel")],
        brand_name=settings.web.brand_name,
        platform_settings=PLATFORM_SETTINGS,
        # rspamd's Valkey (use 'filters'), whose primary the Sentinels name.
        valkey_url=filters.url(),
        valkey_sentinels=list(filters.sentinels),
        valkey_master=filters.master_name,
        removed_mail_retention_days=settings.mailstore.removed_mail_retention_days,
        static_root=STATIC_ROOT,
        proxy_count=PROXY_COUNT,
        doveadm_url=dovecot.doveadm_url(),
        doveadm_api_key=deployment.secrets.get(dovecot.DOVEADM_API_KEY_SECRET),
        # The mx hosts' listener for the platform's own mail, and the sender it admits.
        notice_relay=f"{dovecot.MX_NAME}:{postfix.NOTICES_PORT}",
        notice_from=alert_sender(settings),
    )


def config_files(deployment, host) -> list[ConfigFile]:
    """What the panel reads, and its command; a change of any restarts the service."""
    return [
        ConfigFile.literal(PLATFORM_SETTINGS, deployment.settings.model_dump_json(indent=2) + "\n"),
        environment_file(deployment, host),
        ConfigFile.template(
            "panel",
            COMMAND,
            mode="755",
            app_source=APP_SOURCE,
            app_venv=APP_VENV,
            environment=ENVIRONMENT,
        ),
        ConfigFile.template(
            "panel",
            f"/etc/systemd/system/{UNIT}",
            app_venv=APP_VENV,
            environment=ENVIRONMENT,
            listen=LISTEN,
            workers=deployment.settings.web.panel_workers,
        ),
    ]


def job_files(unit: str) -> list[ConfigFile]:
    """The service and timer of one of the panel's jobs (NOTICES_UNIT: the notices of sending
    holds; TRACE_PURGE_UNIT: trace lines past their retention), which read the panel's
    environment file."""
    return [
        ConfigFile.template(
            "panel",
            f"/etc/systemd/system/{unit}.service",
            app_venv=APP_VENV,
            app_source=APP_SOURCE,
            environment=ENVIRONMENT,
        ),
        ConfigFile.template("panel", f"/etc/systemd/system/{unit}.timer"),
    ]


def wait_for_database(timeout_seconds: int = 300) -> str:
    """A shell command that returns once the panel can log in to the primary, and fails after
    `timeout_seconds`: on a new environment the db cluster is still being made while the web
    hosts are ready (the deploy orders operations per host, not across hosts)."""
    probe = f"{COMMAND} shell -c 'from django.db import connection; connection.ensure_connection()'"
    return (
        f"for i in $(seq {timeout_seconds // 3}); do {probe} >/dev/null 2>&1 && exit 0; sleep 3;"
        f" done; {probe}"
    )

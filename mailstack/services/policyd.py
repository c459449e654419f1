"""The policy service on the mx hosts: greylisting and the outbound recipient limit
(docs/policyd.md). Its code and venv come from roles/venv.py; its configuration is rendered from
the settings, handed to the unit as a credential."""

from psycopg.conninfo import make_conninfo

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.policyd.config import PolicydConfig, dump_config
from mailstack.services import postgresql

UNIT = "mailstack-policyd.service"
CONFIG = "/etc/mailstack/policyd.json"
CHECK = (
    f"env PYTHONPATH={APP_SOURCE} {APP_VENV}/bin/python -m mailstack.policyd"
    f" --config {CONFIG} --check-config"
)


def lookup_dsn(deployment, target_session_attrs: str) -> str:
    """The lookup role's connection string, to any node ('any') or the primary ('read-write')."""
    lookup = deployment.database_reader
    return make_conninfo(
        host=postgresql.libpq_hosts(lookup.hosts),
        port=lookup.port,
        dbname=lookup.name,
        user=lookup.user,
        password=lookup.password,
        # pg_hba.conf admits the mail services over TLS only.
        sslmode="require",
        connect_timeout=postgresql.CONNECT_TIMEOUT,
        tcp_user_timeout=postgresql.TCP_USER_TIMEOUT_MS,
        target_session_attrs=target_session_attrs,
        # Reads from any node are spread, so a dead first node costs only the lookups that
        # try it first.
        load_balance_hosts="random" if target_session_attrs == "any" else "disable",
    )


def policyd_config(deployment, host) -> PolicydConfig:
    settings = deployment.settings
    service = settings.mail.policy_service
    lookup = deployment.database_reader
    store = deployment.valkey_store("policy")
    return PolicydConfig(
        # Postfix on the same host is the only client.
        listen=f"127.0.0.1:{service.port}",
        metrics_listen=f"{host.private_ip}:{service.metrics_port}",
        valkey_url=store.url(),
        valkey_sentinels=list(store.sentinels),
        valkey_service=store.master_name,
        accounts_dsn=lookup_dsn(deployment, lookup.target_session_attrs),
        # Holds are written, on the primary.
        holds_dsn=lookup_dsn(deployment, "read-write"),
        # rspamd on the same host is the only client.
        scan_reports_listen=f"127.0.0.1:{service.scan_reports_port}",
        # As Postfix's mynetworks: clients on the private network are no more trusted than
        # others (the load balancers hand over the real client address).
        trusted_networks=["127.0.0.0/8", "::1/128"],
        greylisting=settings.mail.greylisting,
        outbound_limit=settings.mail.outbound_limit,
        service=service,
    )


def config_files(deployment, host) -> list[ConfigFile]:
    return [
        ConfigFile.literal(CONFIG, dump_config(policyd_config(deployment, host)), mode="600"),
        ConfigFile.template(
            "policyd",
            f"/etc/systemd/system/{UNIT}",
            app_venv=APP_VENV,
            app_source=APP_SOURCE,
            config=CONFIG,
            # The unit changes with the code, which restarts the service.
            code_version=code_version(),
        ),
    ]

"""The policy service on the mx hosts: greylisting and the outbound recipient limit
(docs/policyd.md). Its code and venv come from roles/venv.py; its configuration is rendered from
the settings, handed to the unit as a credential."""

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
        accounts_dsn=postgresql.client_dsn(lookup),
        # Holds are written, on the primary.
        holds_dsn=postgresql.client_dsn(lookup, "read-write"),
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

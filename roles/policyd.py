"""The policy service on the mx hosts: greylisting and the outbound recipient limit
(docs/policyd.md). Its code and venv come from roles/venv.py; this role renders its
configuration from the settings, installs the systemd unit and keeps the service running,
restarted when the code, the configuration or the unit changed."""

from io import StringIO

from psycopg.conninfo import make_conninfo
from pyinfra import host, inventory
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from mailstack import database, keyvalue
from mailstack.deploying import (
    APP_SOURCE,
    APP_VENV,
    code_version,
    group_hosts,
    secrets,
    settings,
)
from mailstack.policyd.config import PolicydConfig, dump_config

UNIT = "mailstack-policyd.service"
CONFIG = "/etc/mailstack/policyd.json"

config = settings(host)
service = config.mail.policy_service
db_hosts = [member["private_ip"] for member in group_hosts(inventory, "db")]
policyd_config = PolicydConfig(
    # Postfix on the same host is the only client.
    listen=f"127.0.0.1:{service.port}",
    metrics_listen=f"{host.data.get('private_ip')}:{service.metrics_port}",
    valkey_url=keyvalue.valkey_url(db_hosts, secrets(host).get(keyvalue.PASSWORD_SECRET)),
    accounts_dsn=make_conninfo(
        host=database.libpq_hosts(db_hosts),
        port=database.PORT,
        dbname=database.DATABASE,
        user=database.LOOKUP_USER,
        password=secrets(host).get("db_lookup_password"),
        # pg_hba.conf admits the mail services over TLS only.
        sslmode="require",
        connect_timeout=2,
    ),
    # As Postfix's mynetworks: clients on the private network are no more trusted than others
    # (the load balancers hand over the real client address).
    trusted_networks=["127.0.0.0/8", "::1/128"],
    greylisting=config.mail.greylisting,
    outbound_limit=config.mail.outbound_limit,
    service=service,
)

files.directory(name="Create the configuration directory", path="/etc/mailstack", mode="755")
configured = files.put(
    name="Configure the policy service",
    src=StringIO(dump_config(policyd_config)),
    dest=CONFIG,
    mode="600",
)
unit = files.template(
    name="Install the policy service's unit",
    src="templates/policyd/etc/systemd/system/mailstack-policyd.service.j2",
    dest=f"/etc/systemd/system/{UNIT}",
    mode="644",
    app_venv=APP_VENV,
    app_source=APP_SOURCE,
    config=CONFIG,
    code_version=code_version(),
)
systemd.daemon_reload(name="Reload systemd for the policy service's unit", _if=unit.did_change)
systemd.service(name="Run the policy service", service=UNIT, running=True, enabled=True)
systemd.service(
    name="Restart the policy service for its new code or configuration",
    service=UNIT,
    restarted=True,
    _if=any_changed(configured, unit),
)

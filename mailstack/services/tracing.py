"""Message tracing on the mx and mailstore nodes (docs/tracing.md): rsyslog hands the mail
services' log lines to the ingester (mailstack.tracing, run by omprog), which stores them in the
account database as the trace role. rsyslog keeps what the database could not take yet in a
disk-assisted queue of at most `tracing.queue_max_mib`."""

import json

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV, code_version
from mailstack.services import postgresql

UNIT = "rsyslog.service"
PACKAGES = ["rsyslog"]
CONFIG = "/etc/mailstack/tracing.json"
RSYSLOG_CONFIG = "/etc/rsyslog.d/60-mailstack-tracing.conf"
RSYSLOG_DROP_IN = "/etc/systemd/system/rsyslog.service.d/mailstack-tracing.conf"
QUEUE_DIR = "/var/spool/rsyslog"
"""rsyslog's work directory: the queue's files while the database takes no writes."""
PROGRAMS = ("postfix", "dovecot", "rspamd", "mailstack-policyd")
"""The syslog program names whose lines are traced (rsyslog's $programname: Postfix's
'postfix/smtpd' is 'postfix')."""
INGESTER = f"{APP_VENV}/bin/python -m mailstack.tracing --config {CONFIG}"
RSYSLOG_CHECK = "rsyslogd -N1 -f /etc/rsyslog.conf"
"""rsyslog reads its whole configuration, ours included, and exits non-zero naming an error."""
CHECK = f"{RSYSLOG_CHECK} && env PYTHONPATH={APP_SOURCE} {INGESTER} --check-config"


def config_files(deployment, host) -> list[ConfigFile]:
    config = {"dsn": postgresql.client_dsn(deployment.database_tracer)}
    return [
        ConfigFile.literal(CONFIG, json.dumps(config, indent=2) + "\n", mode="600"),
        ConfigFile.template("tracing", RSYSLOG_DROP_IN),
        ConfigFile.template(
            "tracing",
            RSYSLOG_CONFIG,
            programs=PROGRAMS,
            ingester=f"/usr/bin/env PYTHONPATH={APP_SOURCE} {INGESTER}",
            queue_dir=QUEUE_DIR,
            queue_max_mib=deployment.settings.tracing.queue_max_mib,
            # The ingester's code changes with the code, which restarts rsyslog and with it
            # the ingester.
            code_version=code_version(),
        ),
    ]

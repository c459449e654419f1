"""The exporters Prometheus scrapes (mailstack.services.monitoring names their ports), each on
its host's private address only: node exporter on every host, the Postfix exporter on the mx
hosts, the PostgreSQL and Valkey exporters on the db hosts (the Valkey exporter scrapes both
instances and, in a cluster, Sentinel). Patroni and etcd serve their own metrics
(mailstack.services.monitoring scrapes them).

Node exporter also reports what its textfile directory holds: when the certificate a host
serves expires (written hourly by `mailstack-certificate-metrics`) and, once backups exist, when
each last succeeded (mailstack.jobs.BACKUP_METRIC, written by the backup jobs); and whether the
units that run on every host of the host's roles are active (its systemd collector).

The services that serve metrics themselves (rspamd, Dovecot, the policy service, HAProxy) are
configured by their own modules.
"""

import json
import re

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.roles import PLATFORM
from mailstack.services import (
    acme,
    alert_rules,
    certificates,
    clamav,
    firewall,
    monitoring,
    nginx,
    postsrsd,
    unbound,
    valkey,
    valkeyproxy,
)
from mailstack.services.textfile import TEXTFILE_DIR
from mailstack.topology import balanced_services

NODE_UNIT = "prometheus-node-exporter"
POSTFIX_UNIT = "prometheus-postfix-exporter"
POSTGRES_UNIT = "prometheus-postgres-exporter"
VALKEY_UNIT = "prometheus-redis-exporter"
POSTFIX_LOG = "/var/log/mail.log"
"""Where the Postfix exporter reads Postfix's log lines: the file Debian's rsyslog (which the
exporter's package depends on) writes from the journal, root:adm 0640 (the unit adds the group
adm). The exporter exits at once when the file does not exist, as before rsyslog's first mail
line, so the role makes it first."""
POSTGRES_ROLE = "prometheus"
"""The exporter's database role: the exporter's system user by peer authentication, a member
of pg_monitor (reads statistics, nothing else)."""
CERTIFICATE_METRICS = "mailstack-certificate-metrics"
CERTIFICATE_SCRIPT = f"/usr/local/sbin/{CERTIFICATE_METRICS}"
CERTIFICATE_TIMER = f"{CERTIFICATE_METRICS}.timer"


environment_file = monitoring.environment_file


_PARSE_ONLY = {VALKEY_UNIT: "-version", POSTFIX_UNIT: "--help"}
"""The flag that stops each exporter after parsing its arguments (the Valkey exporter takes Go's
single-dash flags, the Postfix exporter has no --version)."""


def check(unit: str) -> str:
    """The exporter's arguments, parsed as its unit starts it."""
    return monitoring.arguments_check(unit, _PARSE_ONLY.get(unit, "--version"))


def serves_certificate(settings, roles) -> bool:
    """Whether a host with these roles serves its certificate (mailstack.services.certificates)
    to clients: mx and mailstore hosts always, web hosts when the HTTP balancer passes TLS
    through (with a Hetzner-managed certificate the balancer serves its own)."""
    if certificates.services_using_certificate(roles):
        return True
    return "web" in roles and any(
        service.port == 443 for service in balanced_services(settings, "http")[1]
    )


def watched_units(deployment, host) -> list[str]:
    """Units that run on every host of the host's roles, whose collapse the systemd collector
    reports (services that serve metrics are watched by their scrape instead)."""
    roles = set(host.roles) & PLATFORM
    if not roles:
        # The lab's balancer host: HAProxy is scraped itself.
        return []
    units = [f"{firewall.UNIT}.service"]
    if "mx" in roles:
        units += [f"{clamav.UNIT}.service", f"{unbound.UNIT}.service", f"{postsrsd.UNIT}.service"]
        if deployment.db_clustered:
            units.append(valkeyproxy.UNIT)
    if acme.challenge_names(deployment, host):
        units += [f"{nginx.UNIT}.service", "certbot.timer"]
    if serves_certificate(deployment.settings, roles):
        units.append(CERTIFICATE_TIMER)
    return units


def node_files(deployment, host) -> list[ConfigFile]:
    units = watched_units(deployment, host)
    options = [
        f"--web.listen-address={host.private_ip}:{monitoring.NODE_EXPORTER_PORT}",
        f"--collector.textfile.directory={TEXTFILE_DIR}",
    ]
    if units:
        pattern = "|".join(re.escape(unit) for unit in units)
        options += ["--collector.systemd", f"--collector.systemd.unit-include=({pattern})"]
    else:
        # Debian turns it on by default: it would report every unit of the host.
        options.append("--no-collector.systemd")
    return [ConfigFile.literal(environment_file(NODE_UNIT), _arguments(options))]


def certificate_files(deployment, host) -> list[ConfigFile]:
    """The script that reports the certificate's expiry, and the units that run it hourly."""
    if not serves_certificate(deployment.settings, set(host.roles) & PLATFORM):
        return []
    return [
        ConfigFile.template(
            "exporters",
            CERTIFICATE_SCRIPT,
            effect="none",
            mode="755",
            certificate=certificates.CERTIFICATE,
            textfile_dir=TEXTFILE_DIR,
            metric=alert_rules.CERTIFICATE_METRIC,
        ),
        ConfigFile.template(
            "exporters",
            f"/etc/systemd/system/{CERTIFICATE_METRICS}.service",
            script=CERTIFICATE_SCRIPT,
        ),
        ConfigFile.template("exporters", f"/etc/systemd/system/{CERTIFICATE_TIMER}"),
    ]


def postfix_files(deployment, host) -> list[ConfigFile]:
    options = [f"--web.listen-address={host.private_ip}:{monitoring.POSTFIX_EXPORTER_PORT}"]
    return [ConfigFile.literal(environment_file(POSTFIX_UNIT), _arguments(options))]


def postgres_files(deployment, host) -> list[ConfigFile]:
    options = [f"--web.listen-address={host.private_ip}:{monitoring.POSTGRES_EXPORTER_PORT}"]
    source = f"user={POSTGRES_ROLE} host=/run/postgresql dbname=postgres sslmode=disable"
    return [
        ConfigFile.literal(
            environment_file(POSTGRES_UNIT),
            f"DATA_SOURCE_NAME='{source}'\n" + _arguments(options),
        )
    ]


VALKEY_PASSWORDS = "/etc/prometheus/mailstack-valkey-passwords.json"
"""The Valkey exporter's password for each target URL (Sentinel has none, so it is not listed)."""


def valkey_files(deployment, host) -> list[ConfigFile]:
    # No target of its own: Prometheus names each instance to scrape (/scrape?target=), and the
    # exporter looks its password up by that URL, so none shows in a process list.
    options = [
        f"-web.listen-address={host.private_ip}:{monitoring.VALKEY_EXPORTER_PORT}",
        "-redis.addr=",
        f"-redis.password-file={VALKEY_PASSWORDS}",
    ]
    password = deployment.secrets.get(valkey.PASSWORD_SECRET)
    passwords = {
        monitoring.valkey_target_url(port): password
        for use, port in monitoring.valkey_targets(deployment).items()
        if use in valkey.USES
    }
    return [
        ConfigFile.literal(environment_file(VALKEY_UNIT), _arguments(options)),
        ConfigFile.literal(
            VALKEY_PASSWORDS,
            json.dumps(passwords, indent=2, sort_keys=True) + "\n",
            user="root",
            group="prometheus",
            mode="640",
        ),
    ]


def _arguments(options: list[str]) -> str:
    return "# Managed by mailstack (roles/exporters.py).\n" + 'ARGS="' + " ".join(options) + '"\n'


def config_files(deployment, host) -> list[ConfigFile]:
    roles = set(host.roles)
    files = node_files(deployment, host) + certificate_files(deployment, host)
    if "mx" in roles:
        files += postfix_files(deployment, host)
    if "db" in roles:
        files += postgres_files(deployment, host) + valkey_files(deployment, host)
    return files

"""Prometheus and Alertmanager on the monitoring hosts, and what they scrape where.

The monitoring hosts are the web nodes (docs/architecture.md says why): each runs Prometheus,
scraping every exporter over the private network, and Alertmanager; with two or more web nodes
the Prometheus servers scrape the same targets side by side and the Alertmanagers form one
cluster, which sends each notification once, so monitoring survives the loss of any one node.

Alerts go to the operators by mail, through the mx hosts' listener for the platform's own mail
(mailstack.services.postfix.NOTICES_PORT), and to webhooks (settings `monitoring`). The alert
rules are mailstack.services.alert_rules.
"""

from dataclasses import dataclass, field

import yaml

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import MONITORING_ROLE
from mailstack.services import alert_rules, dovecot, etcd, haproxy, patroni, postfix, rspamd, valkey
from mailstack.settings.monitoring import alert_sender

ROLE = MONITORING_ROLE

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CLUSTER_PORT = 9094
"""Alertmanager's gossip between the monitoring hosts (TCP and UDP)."""

NODE_EXPORTER_PORT = 9100
POSTFIX_EXPORTER_PORT = 9154
POSTGRES_EXPORTER_PORT = 9187
VALKEY_EXPORTER_PORT = 9121

PROMETHEUS_UNIT = "prometheus"
ALERTMANAGER_UNIT = "prometheus-alertmanager"
PACKAGES = ["prometheus", "prometheus-alertmanager"]
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
RULES = "/etc/prometheus/rules/mailstack.yml"
ALERTMANAGER_CONFIG = "/etc/prometheus/alertmanager.yml"


def environment_file(unit: str) -> str:
    """Where Debian's unit of a Prometheus daemon or exporter reads its environment (ARGS)."""
    return f"/etc/default/{unit}"


def arguments_check(unit: str, version_flag: str = "--version") -> str:
    """The daemon parses the arguments its unit starts it with, then only prints its version:
    an unknown or malformed argument fails."""
    return f"sh -c '. {environment_file(unit)} && {unit} $ARGS {version_flag} >/dev/null'"


PROMETHEUS_CHECK = (
    f"promtool check config {PROMETHEUS_CONFIG} && promtool check rules {RULES}"
    f" && {arguments_check(PROMETHEUS_UNIT)}"
)
ALERTMANAGER_CHECK = (
    f"amtool check-config {ALERTMANAGER_CONFIG} && {arguments_check(ALERTMANAGER_UNIT)}"
)
CHECK = f"{PROMETHEUS_CHECK} && {ALERTMANAGER_CHECK}"
"""Both services' checks (the role runs each before its own service reloads)."""


@dataclass(frozen=True)
class Job:
    """One kind of target Prometheus scrapes: an exporter (or a service's own endpoint) on the
    private address of every host of some roles."""

    name: str
    roles: tuple[str, ...]
    port: int
    path: str = "/metrics"
    params: dict[str, list[str]] = field(default_factory=dict)


def jobs(deployment) -> list[Job]:
    settings = deployment.settings
    cluster = [
        # Patroni's own REST /metrics and etcd's metrics listener; the single profile's
        # database runs without either.
        Job("patroni", ("db",), patroni.REST_PORT),
        Job("etcd", ("db",), etcd.METRICS_PORT),
    ]
    return [
        Job("node", ("mx", "mailstore", "db", "web", "loadbalancer"), NODE_EXPORTER_PORT),
        Job("postfix", ("mx",), POSTFIX_EXPORTER_PORT),
        Job("policyd", ("mx",), settings.mail.policy_service.metrics_port),
        Job(
            "rspamd",
            ("mx",),
            rspamd.CONTROLLER_PORT,
            # The controller takes its password as a query argument too (Prometheus 2.53 sends
            # no custom headers).
            params={"password": [deployment.secrets.get(rspamd.METRICS_PASSWORD_SECRET)]},
        ),
        Job("dovecot", ("mailstore",), dovecot.METRICS_PORT),
        Job("postgresql", ("db",), POSTGRES_EXPORTER_PORT),
        # Valkey's instances and Sentinel, each through the node's exporter.
        Job("valkey", ("db",), VALKEY_EXPORTER_PORT, path="/scrape"),
        # Only the lab has balancer hosts; Hetzner's balancers report through their API.
        Job("haproxy", ("loadbalancer",), haproxy.METRICS_PORT),
        Job("prometheus", (ROLE,), PROMETHEUS_PORT),
        Job("alertmanager", (ROLE,), ALERTMANAGER_PORT),
        *(cluster if deployment.db_clustered else []),
    ]


def valkey_targets(deployment) -> dict[str, int]:
    """The Valkey instances (and the Sentinel, where there is one) on each db node, by use, each
    scraped through the node's exporter: {'policy': 6379, 'filters': 6380, 'sentinel': 26379}."""
    targets = {use: valkey.PORTS[use] for use in valkey.USES}
    if deployment.db_clustered:
        targets["sentinel"] = valkey.SENTINEL_PORT
    return targets


def valkey_target_url(port: int) -> str:
    """How the exporter reaches an instance of its own host (Valkey and Sentinel listen on
    loopback too, so the host firewall is not involved)."""
    return f"redis://127.0.0.1:{port}"


def _hosts(deployment, roles) -> list:
    """The hosts of these roles, each once (the single profile's host has them all)."""
    found = {}
    for role in roles:
        for host in deployment.inventory.with_role(role):
            found.setdefault(host.name, host)
    return list(found.values())


def static_configs(deployment, job: Job) -> list[dict]:
    """The job's targets, each labelled with its host's name as `instance`."""
    configs = []
    for host in _hosts(deployment, job.roles):
        address = f"{host.private_ip}:{job.port}"
        if job.name == "valkey":
            configs += [
                {
                    "targets": [address],
                    "labels": {
                        "instance": host.name,
                        "valkey": use,
                        "__param_target": valkey_target_url(port),
                    },
                }
                for use, port in valkey_targets(deployment).items()
            ]
        else:
            configs.append({"targets": [address], "labels": {"instance": host.name}})
    return configs


def alertmanager_addresses(deployment) -> list[str]:
    return [f"{address}:{ALERTMANAGER_PORT}" for address in deployment.monitoring_addresses]


def prometheus_config(deployment) -> dict:
    monitoring = deployment.settings.monitoring
    interval = monitoring.scrape_interval_seconds
    scrape_configs = []
    for job in jobs(deployment):
        targets = static_configs(deployment, job)
        if not targets:
            continue
        config = {"job_name": job.name, "metrics_path": job.path, "static_configs": targets}
        if job.params:
            config["params"] = job.params
        scrape_configs.append(config)
    return {
        "global": {
            "scrape_interval": f"{interval}s",
            "scrape_timeout": f"{min(interval, 10)}s",
            "evaluation_interval": f"{monitoring.evaluation_interval_seconds}s",
            # The same on every Prometheus of the environment, so the Alertmanagers see one
            # alert from both and send it once.
            "external_labels": {"environment": deployment.settings.environment.name},
        },
        "rule_files": [RULES],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": alertmanager_addresses(deployment)}]}]
        },
        "scrape_configs": scrape_configs,
    }


RECEIVER = "operators"


def alertmanager_config(deployment, host) -> dict:
    settings = deployment.settings
    notifications = settings.monitoring.notifications
    receiver: dict = {"name": RECEIVER}
    if notifications.email_to:
        receiver["email_configs"] = [
            {"to": address, "send_resolved": notifications.send_resolved}
            for address in notifications.email_to
        ]
    if notifications.webhook_urls:
        receiver["webhook_configs"] = [
            {"url": str(url), "send_resolved": notifications.send_resolved}
            for url in notifications.webhook_urls
        ]
    return {
        "global": {
            # The mx hosts' listener for the platform's own mail, by one name for all of them
            # (Alertmanager tries each address in turn). Plain SMTP on the private network, as
            # Postfix's LMTP and the Sieve listener: the mx hosts' certificates name their
            # public names, and a bootstrap one verifies with no one.
            "smtp_smarthost": f"{dovecot.MX_NAME}:{postfix.NOTICES_PORT}",
            "smtp_from": alert_sender(settings),
            "smtp_hello": settings.environment.host_fqdn(host.name),
            "smtp_require_tls": False,
        },
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname"],
            "group_wait": f"{notifications.group_wait_seconds}s",
            "group_interval": f"{notifications.group_interval_seconds}s",
            "repeat_interval": f"{notifications.repeat_interval_seconds}s",
        },
        "receivers": [receiver],
        "inhibit_rules": alert_rules.inhibit_rules(),
    }


def _arguments(options: list[str]) -> str:
    """An ARGS line for the units' environment files (the units expand $ARGS unquoted)."""
    return 'ARGS="' + " ".join(options) + '"\n'


def prometheus_options(deployment, host) -> list[str]:
    monitoring = deployment.settings.monitoring
    address = f"{host.private_ip}:{PROMETHEUS_PORT}"
    return [
        f"--config.file={PROMETHEUS_CONFIG}",
        f"--web.listen-address={address}",
        f"--web.external-url=http://{address}/",
        f"--storage.tsdb.retention.time={monitoring.retention_days}d",
        f"--storage.tsdb.retention.size={monitoring.retention_gib}GB",
    ]


def alertmanager_options(deployment, host) -> list[str]:
    address = str(host.private_ip)
    options = [
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--web.listen-address={address}:{ALERTMANAGER_PORT}",
        f"--web.external-url=http://{address}:{ALERTMANAGER_PORT}/",
    ]
    peers = [a for a in deployment.monitoring_addresses if a != address]
    if not peers:
        # Alone: no cluster port at all.
        return [*options, "--cluster.listen-address="]
    return [
        *options,
        f"--cluster.listen-address={address}:{ALERTMANAGER_CLUSTER_PORT}",
        f"--cluster.advertise-address={address}:{ALERTMANAGER_CLUSTER_PORT}",
        *(f"--cluster.peer={peer}:{ALERTMANAGER_CLUSTER_PORT}" for peer in peers),
    ]


def _yaml(document: dict) -> str:
    return "# Managed by mailstack (roles/monitoring.py); overwritten on the next deploy.\n" + (
        yaml.safe_dump(document, sort_keys=False, width=100)
    )


# Both hold secrets (the rspamd metrics password, webhook URLs): root and the daemons only.
_READABLE = {"user": "root", "group": "prometheus", "mode": "640"}


def prometheus_files(deployment, host) -> list[ConfigFile]:
    return [
        ConfigFile.literal(
            environment_file(PROMETHEUS_UNIT), _arguments(prometheus_options(deployment, host))
        ),
        ConfigFile.literal(
            RULES, _yaml(alert_rules.rule_groups(deployment.settings)), effect="reload"
        ),
        ConfigFile.literal(
            PROMETHEUS_CONFIG, _yaml(prometheus_config(deployment)), effect="reload", **_READABLE
        ),
    ]


def alertmanager_files(deployment, host) -> list[ConfigFile]:
    return [
        ConfigFile.literal(
            environment_file(ALERTMANAGER_UNIT),
            _arguments(alertmanager_options(deployment, host)),
        ),
        ConfigFile.literal(
            ALERTMANAGER_CONFIG,
            _yaml(alertmanager_config(deployment, host)),
            effect="reload",
            **_READABLE,
        ),
    ]


def config_files(deployment, host) -> list[ConfigFile]:
    return prometheus_files(deployment, host) + alertmanager_files(deployment, host)

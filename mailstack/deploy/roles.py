"""The roles deploy.py applies, in order, and the inventory groups each applies to.

A role is `roles/<name>.py`; the service module of the same name in mailstack.services, where
there is one, lists the files it installs (rendered in tests without hosts).
"""

from mailstack.deploy.deployment import MONITORING_ROLE

PLATFORM = frozenset({"mx", "mailstore", "db", "web"})
EVERY_HOST = PLATFORM | {"loadbalancer", "internet"}

ROLES: list[tuple[str, frozenset[str]]] = [
    ("base", EVERY_HOST),
    # Before any service listens: each port only for its clients (mailstack.services.firewall).
    ("firewall", PLATFORM),
    ("internet", frozenset({"internet"})),
    ("haproxy", frozenset({"loadbalancer"})),
    # Before the services' packages: their data is created on the volumes.
    ("volumes", frozenset({"mx", "mailstore", "db"})),
    ("certificates", frozenset({"mx", "mailstore", "web"})),
    # The quorum device of the failover clusters, beside etcd and Patroni on the first db node.
    ("qnetd", frozenset({"db"})),
    # The code the policy service, the panel, the clusters' agents and the jobs run.
    ("venv", frozenset({"mx", "mailstore", "web", "db"})),
    # After the venv (its job's code), before Patroni: a new cluster starts from the newest
    # backup when there is one, and PostgreSQL archives into the repository from its first start.
    ("pgbackrest", frozenset({"db"})),
    # A cluster's db nodes run etcd and Patroni, the single profile's host PostgreSQL alone.
    ("etcd", frozenset({"db"})),
    ("patroni", frozenset({"db"})),
    ("postgresql", frozenset({"db"})),
    ("valkey", frozenset({"db"})),
    ("panel", frozenset({"web"})),
    ("webmail", frozenset({"web"})),
    ("dovecot", frozenset({"mailstore"})),
    ("unbound", frozenset({"mx"})),
    ("policyd", frozenset({"mx"})),
    # rspamd reaches the Valkey primary through it.
    ("valkeyproxy", frozenset({"mx"})),
    # rspamd's package makes the group clamd's socket belongs to.
    ("rspamd", frozenset({"mx"})),
    ("clamav", frozenset({"mx"})),
    ("postfix", frozenset({"mx"})),
    # After Postfix: Debian's launcher asks postconf for the domain when the package starts it.
    ("postsrsd", frozenset({"mx"})),
    # After the mail services: their lines, stored for message tracing.
    ("tracing", frozenset({"mx", "mailstore"})),
    # After the services it runs: the clusters start Dovecot and Postfix where they belong.
    ("pacemaker", frozenset({"mx", "mailstore"})),
    # After the services they report on; Prometheus and Alertmanager on the monitoring hosts.
    ("exporters", PLATFORM | {"loadbalancer"}),
    ("monitoring", frozenset({MONITORING_ROLE})),
    # After the exporters: the backup jobs report into node exporter's directory.
    ("backup", frozenset({"mailstore", "db"})),
    # The node's one web server: ACME challenges, and on web nodes the panel and webmail.
    ("nginx", frozenset({"mx", "mailstore", "web"})),
    # Last: a failed ACME order fails its host after the services are in place.
    ("acme", frozenset({"mx", "mailstore", "web"})),
    # Resellers' names, ordered the same way from then on (without a deploy).
    ("resellerhosts", frozenset({"web"})),
]


SHARED_SERVICES_LAST_ROLE = "valkey"
"""After this role every host waits for the others (deploy.py): the roles before it start the
services the later ones use (the database, Valkey)."""


def roles_of(groups) -> list[str]:
    """The roles a host in these inventory groups gets, in deploy order."""
    return [role for role, applies_to in ROLES if applies_to & set(groups)]

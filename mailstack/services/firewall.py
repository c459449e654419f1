"""The host firewall of every platform host (nftables): the one table of who may reach which
port, and the ruleset each host gets from it.

Hetzner Cloud firewalls filter only public interfaces, while every service listens on the
private network, which all hosts and the load balancers share: there, only each host's own
firewall keeps a service to the clients that need it. Each row of the table says which role's
hosts open a port, to whom (the load balancer that forwards it, the hosts of the roles that use
it, the admin networks) and why. Ports are the services' own constants and addresses come from
the inventory, so a new node, balancer or admin network reaches every host's ruleset with the
next deploy. What no row opens is refused at once, never left to time out: TCP with a reset
(as a closed port answers; the kernel rate-limits ICMP errors, which would leave clients
waiting), anything else with ICMP "administratively prohibited"; the named counter `refused`
counts both. Replies to the host's own connections, loopback and ICMP pass.

A service adds its ports with one row each in OPENINGS, e.g.:

    Opening(("mailstore",), dovecot.LMTP_PORT, hosts("mx"), "LMTP: Postfix delivers"),

or, where the rows depend on the settings, a function beside `acme_peers` and `cluster_peers`.

Every exporter and metrics port is open to the monitoring hosts (mailstack.services.monitoring)
alone; Patroni's REST API, which serves Patroni's metrics, is open to them and to the other db
nodes. clamd, the policy service's policy port, postsrsd, unbound and rspamd's milter, scanner
and fuzzy workers listen on loopback only.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, collapse_addresses, ip_network
from typing import Literal

from mailstack.deploy.configfile import ConfigFile
from mailstack.services import (
    certificates,
    corosync,
    dovecot,
    etcd,
    monitoring,
    patroni,
    postfix,
    postgresql,
    qnetd,
    rspamd,
    valkey,
)
from mailstack.settings.plan import LOAD_BALANCER_PURPOSES, cluster_roles
from mailstack.settings.topology import ROLES, Role
from mailstack.topology import balanced_services, https_terminated_backend, port80_forwards

UNIT = "nftables"
RULESET = "/etc/nftables.conf"
# nft parses the whole ruleset and has the kernel check it without loading it.
CHECK = f"nft -c -f {RULESET}"
TABLE = "mailstack"
REFUSED_COUNTER = "refused"
"""Counts what the ruleset refused (`nft list counter inet mailstack refused`)."""
SSH_PORT = 22

Protocol = Literal["tcp", "udp"]
Network = IPv4Network | IPv6Network


@dataclass(frozen=True)
class Clients:
    """Who opens connections to a port: the hosts of some roles, the load balancers of some
    purposes, the admin networks, fixed networks (from settings)."""

    roles: tuple[Role, ...] = ()
    balancers: tuple[str, ...] = ()
    admin: bool = False
    networks: tuple[Network, ...] = ()

    def addresses(self, deployment) -> list[Network]:
        """Their addresses in this deployment (private addresses of hosts and balancers)."""
        found = [
            ip_network(address) for role in self.roles for address in deployment.addresses(role)
        ]
        found += [
            ip_network(balancer.private_ip)
            for balancer in deployment.inventory.load_balancers
            if balancer.purpose in self.balancers
        ]
        if self.admin:
            found += deployment.settings.environment.admin_cidrs
        return found + list(self.networks)


def hosts(*roles: Role) -> Clients:
    """The hosts of these roles, by their private addresses."""
    return Clients(roles=roles)


def balancer(purpose: str) -> Clients:
    """The load balancer of this purpose ('smtp', 'mailaccess', 'http'), by its private address."""
    return Clients(balancers=(purpose,))


ADMINS = Clients(admin=True)
"""`environment.admin_cidrs`: where the deploy and operators come from."""
PROMETHEUS = hosts(monitoring.ROLE)
"""The monitoring hosts: Prometheus scrapes, Alertmanager sends."""


@dataclass(frozen=True)
class Opening:
    """A port the hosts of some roles answer, the clients that may reach it, and why."""

    roles: tuple[Role, ...]
    ports: int | tuple[int, ...]
    clients: Clients
    why: str
    """Carried into the ruleset as the rule's comment (no double quotes, at most 100 bytes)."""
    protocol: Protocol = "tcp"
    first_only: bool = False
    """Open on the first host of `roles` alone (where one host serves them all, e.g. the quorum
    device on the first db node), not on every host of the roles."""

    def __post_init__(self):
        if '"' in self.why or "\\" in self.why or len(self.why.encode()) > 100:
            raise ValueError(f"firewall opening comment {self.why!r}: no quotes, <= 100 bytes")

    @property
    def port_list(self) -> tuple[int, ...]:
        return (self.ports,) if isinstance(self.ports, int) else tuple(self.ports)


OPENINGS: list[Opening] = [
    Opening(ROLES, SSH_PORT, ADMINS, "SSH: the deploy and operators"),
    Opening(("mailstore",), dovecot.LMTP_PORT, hosts("mx"), "LMTP: Postfix delivers"),
    Opening(("mailstore",), dovecot.SASL_PORT, hosts("mx"), "SASL: Postfix checks logins"),
    Opening(("mailstore",), dovecot.QUOTA_STATUS_PORT, hosts("mx"), "quota-status at RCPT"),
    Opening(("mx",), dovecot.SIEVE_SUBMISSION_PORT, hosts("mailstore"), "Sieve's outgoing mail"),
    Opening(
        ("mailstore",),
        dovecot.DOVEADM_HTTP_PORT,
        hosts("web"),
        "doveadm HTTP API: the panel ends a changed account's sessions",
    ),
    Opening(
        ("db",),
        postgresql.PORT,
        hosts("mx", "mailstore", "web", "db"),
        "PostgreSQL: accounts, and the other members' replication",
    ),
    Opening(("db",), patroni.REST_PORT, hosts("db"), "Patroni REST API: the other members"),
    Opening(("db",), (etcd.CLIENT_PORT, etcd.PEER_PORT), hosts("db"), "etcd: the members"),
    Opening(("db",), valkey.PORTS["policy"], hosts("mx", "db"), "Valkey policy: policyd, replicas"),
    Opening(
        ("db",),
        valkey.PORTS["filters"],
        hosts("mx", "web", "db"),
        "Valkey filters: rspamd, the panel's DKIM keys, replicas",
    ),
    Opening(
        ("db",),
        valkey.SENTINEL_PORT,
        hosts("mx", "web", "db"),
        "Sentinel: Valkey's clients find the primaries",
    ),
    # Monitoring: Prometheus on the monitoring hosts scrapes, Alertmanager mails through the mx.
    Opening(ROLES, monitoring.NODE_EXPORTER_PORT, PROMETHEUS, "node exporter: Prometheus"),
    Opening(
        ("mx",),
        (monitoring.POSTFIX_EXPORTER_PORT, rspamd.CONTROLLER_PORT),
        PROMETHEUS,
        "Postfix exporter, rspamd's metrics: Prometheus",
    ),
    Opening(
        ("mx",),
        postfix.NOTICES_PORT,
        hosts(monitoring.ROLE, "web"),
        "the platform's own mail: Alertmanager, the panel's notices",
    ),
    Opening(("mailstore",), dovecot.METRICS_PORT, PROMETHEUS, "Dovecot's metrics: Prometheus"),
    Opening(
        ("db",),
        (monitoring.POSTGRES_EXPORTER_PORT, monitoring.VALKEY_EXPORTER_PORT),
        PROMETHEUS,
        "PostgreSQL and Valkey exporters: Prometheus",
    ),
    # Patroni answers GET /metrics to anyone it lets in; what changes the cluster takes the
    # REST password. etcd's metrics have a listener of their own, apart from its client API.
    Opening(("db",), patroni.REST_PORT, PROMETHEUS, "Patroni's metrics: Prometheus"),
    Opening(("db",), etcd.METRICS_PORT, PROMETHEUS, "etcd's metrics: Prometheus"),
    Opening(
        (monitoring.ROLE,),
        (monitoring.PROMETHEUS_PORT, monitoring.ALERTMANAGER_PORT),
        Clients(roles=(monitoring.ROLE,), admin=True),
        "Prometheus, Alertmanager: each other and operators",
    ),
    *(
        Opening(
            (monitoring.ROLE,),
            monitoring.ALERTMANAGER_CLUSTER_PORT,
            PROMETHEUS,
            f"Alertmanager cluster ({protocol})",
            protocol,
        )
        for protocol in ("tcp", "udp")
    ),
]
"""The platform's own clients of each port, but for what the balancers forward (derived from
mailstack.topology) and the ACME peer port (derived from where port 80 is forwarded)."""


def balanced(settings) -> list[Opening]:
    """Every port a load balancer forwards to a role, open to that balancer alone: only the
    balancers speak PROXY protocol, so no one else may claim a client address."""
    forwarded = [
        Opening((role,), service.port, balancer(purpose), f"{service.why} ({purpose} balancer)")
        for purpose in LOAD_BALANCER_PURPOSES
        for role, services in [balanced_services(settings, purpose)]
        for service in services
    ]
    terminated = https_terminated_backend(settings)
    if terminated is not None:
        forwarded.append(Opening(("web",), terminated.port, balancer("http"), terminated.why))
    return forwarded


def acme_peers(settings) -> list[Opening]:
    """The ACME peer port (mailstack.services.acme), between the nodes of each role whose
    balancer forwards port 80 for http-01 challenges."""
    if settings.tls.mode != "acme":
        return []
    return [
        Opening(
            (role,),
            certificates.ACME_PEER_PORT,
            hosts(role),
            "ACME: the role's other nodes ask for challenge tokens",
        )
        for role in ROLES
        if port80_forwards(settings, [role])
    ]


def policy_service_metrics(settings) -> list[Opening]:
    """The policy service's metrics port (a setting) on the mx hosts, for Prometheus."""
    port = settings.mail.policy_service.metrics_port
    return [Opening(("mx",), port, PROMETHEUS, "policy service's metrics: Prometheus")]


def cluster_peers(settings) -> list[Opening]:
    """The failover clusters' ports (mailstack.services.corosync, .qnetd), where the settings
    have clusters: knet between the nodes of each cluster only (Pacemaker talks through
    Corosync, on no port of its own), and the quorum device on the first db node to every
    cluster node."""
    roles = cluster_roles(settings)
    if not roles:
        return []
    return [
        *(
            Opening(
                (role,),
                corosync.KNET_PORT,
                hosts(role),
                f"Corosync knet: the {role} cluster",
                protocol="udp",
            )
            for role in roles
        ),
        Opening(
            ("db",),
            qnetd.PORT,
            hosts(*roles),
            "corosync-qnetd: the clusters' quorum device votes",
            first_only=True,
        ),
    ]


def allowed_by_settings(settings) -> list[Opening]:
    """The operator's own clients (`network.firewall.allow`)."""
    return [
        Opening(
            (entry.role,),
            entry.port,
            Clients(networks=tuple(entry.sources)),
            entry.description,
            entry.protocol,
        )
        for entry in settings.network.firewall.allow
    ]


def openings(settings) -> list[Opening]:
    """The whole table for these settings."""
    return [
        *OPENINGS,
        *policy_service_metrics(settings),
        *balanced(settings),
        *acme_peers(settings),
        *cluster_peers(settings),
        *allowed_by_settings(settings),
    ]


@dataclass(frozen=True)
class Rule:
    """One accept rule of a host's ruleset: these sources of one address family may reach these
    ports."""

    family: Literal["ip", "ip6"]
    sources: tuple[str, ...]
    protocol: Protocol
    ports: tuple[int, ...]
    why: str


def _by_family(networks: Sequence[Network]) -> dict[str, tuple[str, ...]]:
    """Collapsed (no overlaps, which nft refuses in one set), per nft address family."""
    result = {}
    for family, version in (("ip", 4), ("ip6", 6)):
        same = [network for network in networks if network.version == version]
        if same:
            result[family] = tuple(str(n) for n in collapse_addresses(same))
    return result


def rules(deployment, host) -> list[Rule]:
    """The accept rules of one host: every opening of its roles, with its clients' addresses.
    An opening whose clients do not exist here (a role without hosts) gives no rule."""
    found: list[Rule] = []
    for opening in openings(deployment.settings):
        if not set(opening.roles) & set(host.roles):
            continue
        if opening.first_only and not any(
            deployment.first(role).name == host.name for role in opening.roles
        ):
            continue
        for family, sources in _by_family(opening.clients.addresses(deployment)).items():
            rule = Rule(family, sources, opening.protocol, opening.port_list, opening.why)
            if rule not in found:
                found.append(rule)
    return found


def config_files(deployment, host) -> list[ConfigFile]:
    # A reload loads the new ruleset in one transaction; a restart would flush the old one first.
    return [
        ConfigFile.template(
            "firewall",
            RULESET,
            effect="reload",
            mode="755",
            host_name=host.name,
            table=TABLE,
            refused_counter=REFUSED_COUNTER,
            rules=rules(deployment, host),
        )
    ]

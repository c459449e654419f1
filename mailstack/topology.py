"""The hosts an environment consists of, derived from its settings.

One plan feeds both worlds: the Pulumi program creates Hetzner servers from it and the lab
creates local hosts from it, so host names, roles and private addresses are the same in both.
"""

from dataclasses import dataclass
from ipaddress import IPv4Address

from mailstack.settings.topology import ROLES, Role


@dataclass(frozen=True)
class HostPlan:
    """One host to create."""

    name: str
    roles: tuple[Role, ...]
    private_ip: IPv4Address
    server_type: str
    volume_size_gb: int
    index: int
    """1-based position of the host within its (first) role."""


@dataclass(frozen=True)
class LoadBalancerPlan:
    """One load balancer to create (in the lab: served by the load-balancer host)."""

    name: str
    purpose: str
    private_ip: IPv4Address


LOAD_BALANCER_PURPOSES = ("smtp", "mailaccess", "http")


@dataclass(frozen=True)
class BalancedService:
    """A TCP port a load balancer forwards to the same port on its role's hosts."""

    port: int
    proxy_protocol: bool
    why: str


# What each load balancer forwards, to which role: Hetzner's in production, HAProxy in the lab.
# PROXY protocol carries the real client address to Postfix (postscreen, smtpd) and Dovecot,
# which log it and rate-limit by it.
BALANCED_SERVICES: dict[str, tuple[Role, list[BalancedService]]] = {
    "smtp": (
        "mx",
        [
            BalancedService(25, True, "inbound SMTP to postscreen"),
            BalancedService(465, True, "submission with implicit TLS"),
            BalancedService(587, True, "submission with STARTTLS"),
        ],
    ),
    "mailaccess": (
        "mailstore",
        [
            BalancedService(143, True, "IMAP with STARTTLS"),
            BalancedService(993, True, "IMAP with implicit TLS"),
            BalancedService(110, True, "POP3 with STARTTLS"),
            BalancedService(995, True, "POP3 with implicit TLS"),
            BalancedService(4190, True, "ManageSieve"),
        ],
    ),
    "http": ("web", []),
}
# The mail host names get their certificates by ACME http-01 on the nodes behind these. With
# PROXY protocol like every other port 80 forward, so one listener on a node serves them all
# (the single profile puts mx, mailstore and web behind three balancers on one host).
ACME_HTTP = BalancedService(80, True, "ACME http-01 challenges for the mail host names")
# Without a Hetzner-managed certificate, HTTP and HTTPS pass through to the web nodes.
HTTP_PASSTHROUGH = [
    BalancedService(80, True, "HTTP, redirected to HTTPS by the web nodes"),
    BalancedService(443, True, "HTTPS, terminated by the web nodes"),
]


def balanced_services(settings, purpose: str) -> tuple[Role, list[BalancedService]]:
    """The role behind a load balancer and the TCP services it forwards there.

    The HTTPS balancer with a Hetzner-managed certificate terminates TLS itself and is not a
    plain TCP forward; it has no entries here then.
    """
    role, services = BALANCED_SERVICES[purpose]
    if purpose == "http":
        return role, [] if settings.dns.managed_zone else list(HTTP_PASSTHROUGH)
    if settings.tls.mode == "acme" and settings.tls.acme.challenge == "http-01":
        services = [*services, ACME_HTTP]
    return role, list(services)


def port80_forwards(settings, roles) -> list[BalancedService]:
    """The port 80 services the balancers forward to a host with these roles (http-01 reaches
    the host only through them)."""
    return [
        service
        for purpose in LOAD_BALANCER_PURPOSES
        for role, services in [balanced_services(settings, purpose)]
        if role in roles
        for service in services
        if service.port == 80
    ]


def plan_hosts(settings) -> list[HostPlan]:
    """Every host of the environment, in a stable order (by role, then index)."""
    env = settings.environment.name
    subnet_base = int(settings.network.subnet.network_address)
    offsets = settings.network.offsets
    topology = settings.topology
    if topology.profile == "single":
        # One host carries every role; its size is the largest asked for, its volume the sum.
        role_settings = [topology.role(role) for role in ROLES]
        return [
            HostPlan(
                name=f"{env}-mail1",
                roles=ROLES,
                private_ip=IPv4Address(subnet_base + offsets.mx),
                server_type=topology.mx.server_type,
                volume_size_gb=sum(r.volume_size_gb for r in role_settings),
                index=1,
            )
        ]
    hosts = []
    for role in ROLES:
        spec = topology.role(role)
        for index in range(1, spec.count + 1):
            hosts.append(
                HostPlan(
                    name=f"{env}-{role}{index}",
                    roles=(role,),
                    private_ip=IPv4Address(subnet_base + getattr(offsets, role) + index - 1),
                    server_type=spec.server_type,
                    volume_size_gb=spec.volume_size_gb,
                    index=index,
                )
            )
    return hosts


def plan_load_balancers(settings) -> list[LoadBalancerPlan]:
    """The SMTP, IMAP/POP3 and HTTP load balancers with their private addresses."""
    env = settings.environment.name
    base = int(settings.network.subnet.network_address) + settings.network.offsets.load_balancers
    return [
        LoadBalancerPlan(
            name=f"{env}-lb-{purpose}", purpose=purpose, private_ip=IPv4Address(base + i)
        )
        for i, purpose in enumerate(LOAD_BALANCER_PURPOSES)
    ]


def hosts_with_role(hosts: list[HostPlan], role: Role) -> list[HostPlan]:
    return [host for host in hosts if role in host.roles]

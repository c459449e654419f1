"""The hosts and load balancers an environment consists of, derived from its settings.

One plan feeds both worlds: the Pulumi program creates Hetzner servers from it and the lab
creates local hosts from it, so host names, roles and private addresses are the same in both.
It lives beside the settings because the settings check that every planned address fits.
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


@dataclass(frozen=True)
class VolumePlan:
    """One Hetzner volume to create, and the host it is first attached to."""

    name: str
    size_gb: int
    server: str
    """Name of the host the volume is attached to at creation."""
    movable: bool
    """Failover moves it to another host, so the Pulumi program must not move it back."""


LOAD_BALANCER_PURPOSES = ("smtp", "mailaccess", "http")


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


def plan_volumes(settings, hosts: list[HostPlan]) -> list[VolumePlan]:
    """The environment's volumes: a data volume per mx host (the mail queue, movable: a
    survivor delivers a dead node's queue) and per db host (the database), and ONE mail volume
    for the mailstore pair, attached to the first mailstore host; the single profile's host
    gets one data volume. A role whose `volume_size_gb` is 0 gets none."""
    if settings.topology.profile == "single":
        host = hosts[0]
        if not host.volume_size_gb:
            return []
        return [VolumePlan(f"{host.name}-data", host.volume_size_gb, host.name, False)]
    # A dead mx node's queue volume is taken over by a survivor until it returns.
    volumes = [
        VolumePlan(f"{host.name}-data", host.volume_size_gb, host.name, role == "mx")
        for role in ("mx", "db")
        for host in hosts_with_role(hosts, role)
        if host.volume_size_gb
    ]
    mailstores = hosts_with_role(hosts, "mailstore")
    if mailstores and mailstores[0].volume_size_gb:
        env = settings.environment.name
        volumes.append(
            VolumePlan(f"{env}-mail", mailstores[0].volume_size_gb, mailstores[0].name, True)
        )
    return volumes


def cluster_roles(settings) -> tuple[Role, ...]:
    """The roles whose hosts form a failover cluster (Pacemaker with a quorum device): the
    mailstore pair (the mail volume moves to the survivor) and the mx nodes (a dead node's queue
    volume is delivered by a survivor). The single profile has one host and no cluster."""
    if settings.topology.profile == "single":
        return ()
    return ("mailstore", "mx")


def resource_labels(settings) -> dict[str, str]:
    """Labels on every Hetzner resource of the environment."""
    return {"mailstack-environment": settings.environment.name}


def server_labels(settings, host: HostPlan) -> dict[str, str]:
    """A server's labels: the environment's, and `role-<role>: "true"` for each of its roles."""
    return {**resource_labels(settings), **{f"role-{role}": "true" for role in host.roles}}

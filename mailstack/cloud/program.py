"""The whole environment: network, servers, load balancers, DNS, and the stack outputs."""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from mailstack.cloud.dns import create_records, create_zones
from mailstack.cloud.loadbalancers import LoadBalancers
from mailstack.cloud.network import PrivateNetwork
from mailstack.cloud.servers import SENDING_ROLES, RoleServers
from mailstack.dkim import DkimKey, domain_keys
from mailstack.dnsrecords import AddressPair, PublicAddresses, RecordSpec, plan_records
from mailstack.inventory import Inventory, InventoryHost, InventoryVolume, LoadBalancerAddress
from mailstack.secrets import secret_store
from mailstack.settings.plan import (
    HostPlan,
    LoadBalancerPlan,
    cluster_roles,
    plan_hosts,
    plan_load_balancers,
    plan_volumes,
    resource_labels,
)
from mailstack.settings.stackfile import CONFIG_KEY, settings_from_mapping

FAILOVER_TOKEN_KEY = "failover_api_token"
"""Stack config (a Pulumi secret, `mailstack:failover_api_token`): the Hetzner API token the
clusters' fence and volume agents use on the hosts, exported as the secret output of the same
name for `mailstack deploy --stack`."""


@dataclass
class Platform:
    """What `build` created, for exports and tests."""

    inventory: pulumi.Output
    load_balancers: pulumi.Output
    dns_records: pulumi.Output
    zones: dict[str, hcloud.Zone]
    servers: dict[str, hcloud.Server]
    failover_api_token: pulumi.Output | None
    """The failover agents' API token, a secret; None where no role runs a cluster."""


def _public_addresses(
    hosts: list[HostPlan],
    servers: dict[str, hcloud.Server],
    plans: list[LoadBalancerPlan],
    balancers: dict[str, hcloud.LoadBalancer],
) -> pulumi.Output:
    host_outputs = {
        host.name: pulumi.Output.all(
            servers[host.name].ipv4_address, servers[host.name].ipv6_address
        )
        for host in hosts
    }
    balancer_outputs = {
        plan.purpose: pulumi.Output.all(balancers[plan.purpose].ipv4, balancers[plan.purpose].ipv6)
        for plan in plans
    }
    sending = tuple(host.name for host in hosts if SENDING_ROLES & set(host.roles))
    return pulumi.Output.all(hosts=host_outputs, balancers=balancer_outputs).apply(
        lambda resolved: PublicAddresses(
            hosts={name: AddressPair(*pair) for name, pair in resolved["hosts"].items()},
            load_balancers={
                name: AddressPair(*pair) for name, pair in resolved["balancers"].items()
            },
            sending_hosts=sending,
        )
    )


def _inventory(
    settings, hosts, plans, addresses: PublicAddresses, volumes: dict, stack: str
) -> dict:
    """The inventory contract; `volumes` maps each planned volume's name to (id, device)."""
    inventory = Inventory(
        stack=stack,
        environment=settings.environment.name,
        hosts=[
            InventoryHost(
                name=host.name,
                roles=list(host.roles),
                private_ip=host.private_ip,
                public_ipv4=addresses.hosts[host.name].ipv4,
                public_ipv6=addresses.hosts[host.name].ipv6,
                ssh_address=addresses.hosts[host.name].ipv4,
            )
            for host in hosts
        ],
        load_balancers=[
            LoadBalancerAddress(
                name=plan.name,
                purpose=plan.purpose,
                private_ip=plan.private_ip,
                public_ipv4=addresses.load_balancers[plan.purpose].ipv4,
                public_ipv6=addresses.load_balancers[plan.purpose].ipv6,
            )
            for plan in plans
        ],
        volumes=[
            InventoryVolume(
                name=plan.name,
                id=int(volumes[plan.name][0]),
                linux_device=volumes[plan.name][1],
                server=plan.server,
            )
            for plan in plan_volumes(settings, hosts)
        ],
    )
    return inventory.model_dump(mode="json")


def _record_table(
    specs: list[RecordSpec], addresses: PublicAddresses, zones: dict[str, hcloud.Zone]
) -> list[dict]:
    return [
        {
            "zone": spec.zone,
            "name": spec.fqdn,
            "type": spec.type,
            "ttl": spec.ttl,
            "values": spec.values(addresses),
            "managed": spec.zone in zones,
        }
        for spec in specs
    ]


def build(
    settings,
    stack: str,
    dkim_keys: Sequence[DkimKey] = (),
    failover_api_token: pulumi.Input[str] | None = None,
) -> Platform:
    """Every resource of the environment. `failover_api_token` is required where roles run a
    failover cluster (`cluster_roles`): without it the clusters could not fence or move
    volumes, so the program stops, naming the config key."""
    if cluster_roles(settings) and failover_api_token is None:
        raise pulumi.RunError(
            f"the {', '.join(cluster_roles(settings))} clusters need a Hetzner API token: "
            f"pulumi config set --secret mailstack:{FAILOVER_TOKEN_KEY} <token>"
        )
    labels = resource_labels(settings)
    hosts = plan_hosts(settings)
    plans = plan_load_balancers(settings)

    network = PrivateNetwork(settings, labels)
    servers = RoleServers(settings, hosts, network, labels)
    zones = create_zones(settings, labels, pulumi.ResourceOptions())
    balancers = LoadBalancers(
        settings, hosts, plans, network, servers.servers, labels, list(zones.values())
    )
    addresses = _public_addresses(hosts, servers.servers, plans, balancers.balancers)
    specs = plan_records(settings, {host.name: host.roles for host in hosts}, dkim_keys)
    create_records(specs, addresses, zones, pulumi.ResourceOptions())
    if settings.dns.managed_zone:
        # Records outside every managed zone must be published by the operator.
        outside = sorted({spec.fqdn for spec in specs if spec.zone is None})
        if outside:
            pulumi.log.warn("not in a managed zone, publish by hand: " + ", ".join(outside))

    volumes = pulumi.Output.all(
        **{
            name: pulumi.Output.all(volume.id, volume.linux_device)
            for name, volume in servers.volumes.items()
        }
    )
    return Platform(
        inventory=pulumi.Output.all(addresses, volumes).apply(
            lambda resolved: _inventory(settings, hosts, plans, *resolved, stack)
        ),
        load_balancers=addresses.apply(
            lambda a: {
                purpose: {"ipv4": pair.ipv4, "ipv6": pair.ipv6}
                for purpose, pair in a.load_balancers.items()
            }
        ),
        dns_records=addresses.apply(lambda a: _record_table(specs, a, zones)),
        zones=zones,
        servers=servers.servers,
        failover_api_token=(
            pulumi.Output.secret(failover_api_token) if cluster_roles(settings) else None
        ),
    )


def run() -> None:
    """Entry point of `pulumi up`: settings from the stack's config, then build and export."""
    stack = pulumi.get_stack()
    raw = pulumi.Config().require_object(CONFIG_KEY.split(":", 1)[1])
    settings = settings_from_mapping(raw, f"stacks/Pulumi.{stack}.yaml")
    token = pulumi.Config().get_secret(FAILOVER_TOKEN_KEY)
    # The deploy signs with these keys; generating them here lets the records go out first.
    platform = build(settings, stack, domain_keys(settings, secret_store(stack)), token)
    pulumi.export("inventory", platform.inventory)
    if platform.failover_api_token is not None:
        pulumi.export(FAILOVER_TOKEN_KEY, platform.failover_api_token)
    pulumi.export("load_balancers", platform.load_balancers)
    pulumi.export("dns_records", platform.dns_records)

"""Servers per role, with placement, addresses, volumes, firewalls and reverse DNS."""

import pulumi
import pulumi_hcloud as hcloud

from mailstack.cloud.firewall import public_rules
from mailstack.cloud.network import PrivateNetwork
from mailstack.settings.plan import HostPlan, hosts_with_role, plan_volumes, server_labels
from mailstack.settings.topology import ROLES

IMAGE = "debian-13"
# Roles whose servers hold state of their own: never deleted or rebuilt by accident.
STATEFUL_ROLES = {"db", "mailstore"}
# Roles whose hosts send mail to the internet: their addresses are kept across rebuilds
# (reputation, PTR, SPF) as primary IPs that outlive the server.
SENDING_ROLES = {"mx"}


def cloud_init(settings, host: HostPlan) -> str:
    fqdn = settings.environment.host_fqdn(host.name)
    return (
        "#cloud-config\n"
        f"hostname: {host.name}\n"
        f"fqdn: {fqdn}\n"
        "ssh_pwauth: false\n"
        "disable_root: false\n"
    )


class RoleServers(pulumi.ComponentResource):
    """Every host of the plan as a Hetzner server, with what belongs to it."""

    def __init__(
        self,
        settings,
        hosts: list[HostPlan],
        network: PrivateNetwork,
        labels: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        env = settings.environment.name
        location = settings.environment.location
        super().__init__("mailstack:cloud:RoleServers", env, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        ssh_keys = [
            hcloud.SshKey(
                f"{env}-admin-{number}",
                name=f"{env}-admin-{number}",
                public_key=key,
                labels=labels,
                opts=child,
            )
            for number, key in enumerate(settings.environment.admin_ssh_keys, start=1)
        ]
        placement_groups = {
            role: hcloud.PlacementGroup(
                f"{env}-{role}", name=f"{env}-{role}", type="spread", labels=labels, opts=child
            )
            for role in ROLES
            if len(hosts_with_role(hosts, role)) > 1
        }

        self.servers: dict[str, hcloud.Server] = {}
        self.primary_ips: dict[str, tuple[hcloud.PrimaryIp, hcloud.PrimaryIp]] = {}
        for host in hosts:
            host_labels = server_labels(settings, host)
            public_net = hcloud.ServerPublicNetArgs(ipv4_enabled=True, ipv6_enabled=True)
            if SENDING_ROLES & set(host.roles):
                ips = tuple(
                    hcloud.PrimaryIp(
                        f"{host.name}-{kind}",
                        name=f"{host.name}-{kind}",
                        type=kind,
                        location=location,
                        assignee_type="server",
                        auto_delete=False,
                        delete_protection=True,
                        labels=host_labels,
                        opts=child,
                    )
                    for kind in ("ipv4", "ipv6")
                )
                self.primary_ips[host.name] = ips
                public_net = hcloud.ServerPublicNetArgs(
                    ipv4_enabled=True,
                    ipv4=ips[0].id.apply(int),
                    ipv6_enabled=True,
                    ipv6=ips[1].id.apply(int),
                )
            group = next((placement_groups[r] for r in host.roles if r in placement_groups), None)
            protected = bool(STATEFUL_ROLES & set(host.roles))
            self.servers[host.name] = hcloud.Server(
                host.name,
                name=host.name,
                server_type=host.server_type,
                image=IMAGE,
                location=location,
                ssh_keys=[key.id for key in ssh_keys],
                placement_group_id=group.id.apply(int) if group else None,
                public_nets=[public_net],
                networks=[
                    hcloud.ServerNetworkArgs(
                        network_id=network.network.id.apply(int), ip=str(host.private_ip)
                    )
                ],
                user_data=cloud_init(settings, host),
                labels=host_labels,
                # Hetzner requires both protections to be equal.
                delete_protection=protected,
                rebuild_protection=protected,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[network.subnet],
                    # Changing these would replace a running server; rebuilds are deliberate.
                    ignore_changes=["user_data", "ssh_keys", "image"],
                ),
            )
            fqdn = settings.environment.host_fqdn(host.name)
            server = self.servers[host.name]
            for kind, address in (("ipv4", server.ipv4_address), ("ipv6", server.ipv6_address)):
                hcloud.Rdns(
                    f"{host.name}-ptr-{kind}",
                    server_id=server.id.apply(int),
                    ip_address=address,
                    dns_ptr=fqdn,
                    opts=child,
                )

        self.volumes = self._volumes(settings, hosts, labels, child)
        self.firewalls = self._firewalls(settings, hosts, labels, child)
        self.register_outputs({})

    def _volumes(self, settings, hosts, labels, child) -> dict[str, hcloud.Volume]:
        """The planned volumes (`plan_volumes`), each attached to its first host.

        The mail volume and the mx queue volumes are movable: failover moves the mail volume to
        the surviving mailstore host and a dead mx's queue volume to a surviving mx until it
        returns, so Pulumi must not move them back (ignore_changes on server_id).
        """
        volumes: dict[str, hcloud.Volume] = {}
        for plan in plan_volumes(settings, hosts):
            volumes[plan.name] = hcloud.Volume(
                plan.name,
                name=plan.name,
                size=plan.size_gb,
                location=settings.environment.location,
                format="ext4",
                delete_protection=True,
                labels=labels,
                opts=child,
            )
            hcloud.VolumeAttachment(
                f"{plan.name}-attachment",
                volume_id=volumes[plan.name].id.apply(int),
                server_id=self.servers[plan.server].id.apply(int),
                automount=False,
                opts=pulumi.ResourceOptions(
                    parent=self, ignore_changes=["server_id"] if plan.movable else None
                ),
            )
        return volumes

    def _firewalls(self, settings, hosts, labels, child) -> dict[str, hcloud.Firewall]:
        env = settings.environment.name
        firewalls: dict[str, hcloud.Firewall] = {}
        for role in ROLES:
            members = hosts_with_role(hosts, role)
            if not members:
                continue
            firewalls[role] = hcloud.Firewall(
                f"{env}-{role}",
                name=f"{env}-{role}",
                labels=labels,
                rules=[
                    hcloud.FirewallRuleArgs(
                        direction="in",
                        protocol=rule.protocol,
                        port=rule.port,
                        source_ips=list(rule.source_ips),
                        description=rule.description,
                    )
                    for rule in public_rules(role, settings)
                ],
                opts=child,
            )
            # Hetzner allows one attachment per firewall: it lists every server of the role.
            hcloud.FirewallAttachment(
                f"{env}-{role}-attachment",
                firewall_id=firewalls[role].id.apply(int),
                server_ids=[self.servers[host.name].id.apply(int) for host in members],
                opts=child,
            )
        return firewalls

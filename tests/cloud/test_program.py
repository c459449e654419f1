"""The Pulumi program's resources and outputs, for each example stack, under mocks."""

import base64
import ipaddress

import pulumi
import pytest
from hcloud_types import args_class, check_arguments
from mocks import FAILOVER_TOKEN, build_under_mocks

from mailstack.dnsrecords import https_hostnames
from mailstack.inventory import Inventory
from mailstack.settings.plan import (
    cluster_roles,
    hosts_with_role,
    plan_hosts,
    plan_load_balancers,
)
from mailstack.settings.topology import ROLES
from mailstack.topology import HTTPS_TERMINATED


def servers_by_name(built):
    return {r.inputs["name"]: r for r in built.mocks.of_type("Server")}


def test_every_input_has_the_type_pulumi_hcloud_declares(built):
    errors = []
    for resource in built.mocks.resources:
        if not resource.type.startswith("hcloud:"):
            continue
        errors += check_arguments(args_class(resource.type), resource.inputs, resource.name)
    assert errors == []


def test_one_server_per_planned_host_with_its_private_ip(built):
    plan = plan_hosts(built.settings)
    servers = servers_by_name(built)
    assert sorted(servers) == sorted(host.name for host in plan)
    network = built.mocks.of_type("Network")[0]
    for host in plan:
        server = servers[host.name].inputs
        assert server["image"] == "debian-13"
        assert server["location"] == built.settings.environment.location
        assert server["serverType"] == host.server_type
        assert [n["ip"] for n in server["networks"]] == [str(host.private_ip)]
        assert server["networks"][0]["networkId"] == int(network.id)
        assert f"hostname: {host.name}\n" in server["userData"]
    if built.settings.topology.profile == "ha":
        for role in ROLES:
            assert len(hosts_with_role(plan, role)) == built.settings.topology.role(role).count


def test_private_network_holds_the_subnet(built):
    (network,) = built.mocks.of_type("Network")
    (subnet,) = built.mocks.of_type("NetworkSubnet")
    assert network.inputs["ipRange"] == str(built.settings.network.ip_range)
    assert subnet.inputs["ipRange"] == str(built.settings.network.subnet)
    assert subnet.inputs["networkZone"] == built.settings.environment.network_zone


def test_hosts_of_a_role_are_spread_over_physical_machines(built):
    groups = {r.id: r for r in built.mocks.of_type("PlacementGroup")}
    assert all(group.inputs["type"] == "spread" for group in groups.values())
    servers = servers_by_name(built)
    for role in ROLES:
        members = hosts_with_role(plan_hosts(built.settings), role)
        if len(members) < 2:
            continue
        used = {servers[host.name].inputs.get("placementGroupId") for host in members}
        assert len(used) == 1, f"{role} hosts are in different placement groups"
        (group_id,) = used
        assert groups[str(int(group_id))].inputs["name"].endswith(f"-{role}")


def test_stateful_servers_and_all_volumes_are_protected(built):
    for server in built.mocks.of_type("Server"):
        inputs = server.inputs
        assert inputs["deleteProtection"] == inputs["rebuildProtection"]
        stateful = any(inputs["labels"].get(f"role-{r}") for r in ("db", "mailstore"))
        assert inputs["deleteProtection"] is stateful
    volumes = built.mocks.of_type("Volume")
    assert volumes
    assert all(v.inputs["deleteProtection"] for v in volumes)
    assert all(v.inputs["location"] == built.settings.environment.location for v in volumes)


def test_mailstore_pair_shares_one_movable_mail_volume(built):
    if built.settings.topology.profile != "ha":
        return
    attachments = {r.name: r for r in built.mocks.of_type("VolumeAttachment")}
    env = built.settings.environment.name
    mail = f"{env}-mail-attachment"
    servers = servers_by_name(built)
    first = servers[f"{env}-mailstore1"]
    assert attachments[mail].inputs["serverId"] == int(first.id)
    assert "server_id" in (built.options[mail].ignore_changes or [])
    assert f"{env}-mailstore2-data-attachment" not in attachments
    # A survivor delivers a dead mx's queue from its volume: Pulumi must not move it back.
    for host in hosts_with_role(plan_hosts(built.settings), "mx"):
        attachment = attachments[f"{host.name}-data-attachment"]
        assert attachment.inputs["serverId"] == int(servers[host.name].id)
        assert "server_id" in (built.options[attachment.name].ignore_changes or [])
    for host in hosts_with_role(plan_hosts(built.settings), "db"):
        attachment = attachments[f"{host.name}-data-attachment"]
        assert not built.options[attachment.name].ignore_changes


def test_the_inventory_names_each_volume_its_device_and_home(built):
    volumes = {v.name: v for v in Inventory.model_validate(built.inventory).volumes}
    created = {r.inputs["name"]: r for r in built.mocks.of_type("Volume")}
    assert set(volumes) == set(created)
    attachments = {r.name: r for r in built.mocks.of_type("VolumeAttachment")}
    servers = servers_by_name(built)
    for name, volume in volumes.items():
        assert volume.id == int(created[name].id)
        assert volume.linux_device == f"/dev/disk/by-id/scsi-0HC_Volume_{volume.id}"
        server_id = attachments[f"{name}-attachment"].inputs["serverId"]
        assert server_id == int(servers[volume.server].id)


def test_the_failover_token_is_a_secret_output_where_clusters_run(built):
    if cluster_roles(built.settings):
        assert built.failover_api_token == FAILOVER_TOKEN
        assert built.failover_token_is_secret is True
    else:
        assert built.failover_api_token is None


def test_without_the_failover_token_a_clustered_environment_stops_naming_the_key(built):
    if not cluster_roles(built.settings):
        return
    with pytest.raises(pulumi.RunError, match="mailstack:failover_api_token"):
        build_under_mocks(built.settings, built.stack, failover_api_token=None)


def test_firewalls_open_ssh_only_to_admin_networks(built):
    admin = sorted(str(c) for c in built.settings.environment.admin_cidrs)
    firewalls = built.mocks.of_type("Firewall")
    assert firewalls
    for firewall in firewalls:
        for rule in firewall.inputs["rules"]:
            assert rule["direction"] == "in"
            if rule["protocol"] == "icmp":
                continue
            assert rule["protocol"] == "tcp" and rule["port"] == "22", rule
            assert sorted(rule["sourceIps"]) == admin
            assert not {"0.0.0.0/0", "::/0"} & set(rule["sourceIps"])


def test_the_db_clusters_need_nothing_public_and_no_balancer(built):
    """PostgreSQL, Patroni, etcd, Valkey and Sentinel answer on the private network only, which
    Hetzner's firewalls do not filter: no public rule names their ports, no balancer targets the
    db nodes (clients find the primary themselves: libpq read-write, Sentinel), and in the HA
    profile the three db nodes are spread over physical machines."""
    from mailstack.services import etcd, patroni, postgresql, valkey

    cluster_ports = {
        str(port)
        for port in (
            postgresql.PORT,
            patroni.REST_PORT,
            etcd.CLIENT_PORT,
            etcd.PEER_PORT,
            valkey.SENTINEL_PORT,
            *valkey.PORTS.values(),
        )
    }
    for firewall in built.mocks.of_type("Firewall"):
        assert not cluster_ports & {rule.get("port") for rule in firewall.inputs["rules"]}
    servers = servers_by_name(built)
    plan = hosts_with_role(plan_hosts(built.settings), "db")
    # The single profile's one host is also the mail balancers' target, for its other roles.
    db_only = {int(servers[h.name].id) for h in plan if h.roles == ("db",)}
    targets = {int(t.inputs["serverId"]) for t in built.mocks.of_type("LoadBalancerTarget")}
    assert not db_only & targets
    if built.settings.topology.profile == "ha":
        assert len(db_only) == 3
        groups = {servers[h.name].inputs.get("placementGroupId") for h in plan}
        assert len(groups) == 1 and None not in groups


def test_each_firewall_has_one_attachment_listing_its_role(built):
    firewalls = {r.id: r for r in built.mocks.of_type("Firewall")}
    attachments = built.mocks.of_type("FirewallAttachment")
    assert sorted(int(a.inputs["firewallId"]) for a in attachments) == sorted(
        int(i) for i in firewalls
    )
    servers = servers_by_name(built)
    for attachment in attachments:
        role = firewalls[str(int(attachment.inputs["firewallId"]))].inputs["name"].rsplit("-", 1)[1]
        expected = {
            int(servers[h.name].id) for h in hosts_with_role(plan_hosts(built.settings), role)
        }
        assert set(attachment.inputs["serverIds"]) == expected


def balancer_services(built, purpose):
    (balancer,) = [
        r for r in built.mocks.of_type("LoadBalancer") if r.inputs["name"].endswith(f"-{purpose}")
    ]
    services = [
        s
        for s in built.mocks.of_type("LoadBalancerService")
        if s.inputs["loadBalancerId"] == balancer.id
    ]
    return balancer, {int(s.inputs["listenPort"]): s.inputs for s in services}


def test_smtp_balancer_forwards_with_proxy_protocol_and_health_checks(built):
    _, services = balancer_services(built, "smtp")
    assert {25, 465, 587} <= set(services)
    for port in (25, 465, 587):
        service = services[port]
        assert service["protocol"] == "tcp"
        assert service["proxyprotocol"] is True
        assert int(service["destinationPort"]) == port
        assert service["healthCheck"]["protocol"] == "tcp"
        assert int(service["healthCheck"]["port"]) == port


def test_mail_access_balancer_serves_imap_and_pop3(built):
    _, services = balancer_services(built, "mailaccess")
    assert {143, 993, 110, 995} <= set(services)
    assert 25 not in services


def test_http_balancer(built):
    _, services = balancer_services(built, "http")
    if built.settings.dns.managed_zone:
        https = services[443]
        assert https["protocol"] == "https"
        assert https["http"]["redirectHttp"] is True
        (certificate,) = built.mocks.of_type("ManagedCertificate")
        assert https["http"]["certificates"] == [int(certificate.id)]
        assert certificate.inputs["domainNames"] == https_hostnames(built.settings)
        assert https["healthCheck"]["http"]["path"] == "/healthz"
        # Plain HTTP to the web nodes' own port for it, which only this balancer reaches.
        assert https["destinationPort"] == HTTPS_TERMINATED.port
        assert https["healthCheck"]["port"] == HTTPS_TERMINATED.port
        zone_names = {z.name for z in built.mocks.of_type("Zone")}
        depends = {d._name for d in built.options[certificate.name].depends_on or []}
        assert zone_names and depends == zone_names
    else:
        assert services[443]["protocol"] == "tcp" and services[443]["proxyprotocol"] is True
        assert services[80]["protocol"] == "tcp"
        assert not built.mocks.of_type("ManagedCertificate")


def test_balancers_reach_targets_by_private_ip_after_joining_the_network(built):
    networks = {r.name: r for r in built.mocks.of_type("LoadBalancerNetwork")}
    plans = {p.name: p for p in plan_load_balancers(built.settings)}
    for name, plan in plans.items():
        assert networks[f"{name}-network"].inputs["ip"] == str(plan.private_ip)
        assert isinstance(networks[f"{name}-network"].inputs["subnetId"], str)
    role_of = {"smtp": "mx", "mailaccess": "mailstore", "http": "web"}
    servers = servers_by_name(built)
    balancer_ids = {r.inputs["name"]: int(r.id) for r in built.mocks.of_type("LoadBalancer")}
    for name, plan in plans.items():
        targets = [
            t
            for t in built.mocks.of_type("LoadBalancerTarget")
            if t.inputs["loadBalancerId"] == balancer_ids[name]
        ]
        expected = hosts_with_role(plan_hosts(built.settings), role_of[plan.purpose])
        assert sorted(int(t.inputs["serverId"]) for t in targets) == sorted(
            int(servers[h.name].id) for h in expected
        )
        for target in targets:
            assert target.inputs["usePrivateIp"] is True
            depends = built.options[target.name].depends_on
            assert [d._name for d in depends] == [f"{name}-network"]


def test_every_sending_address_and_balancer_has_reverse_dns(built):
    inventory = Inventory.model_validate(built.inventory)
    ptrs = {r.inputs["ipAddress"]: r.inputs["dnsPtr"] for r in built.mocks.of_type("Rdns")}
    env = built.settings.environment
    for host in inventory.with_role("mx"):
        assert ptrs[str(host.public_ipv4)] == env.host_fqdn(host.name)
        assert ptrs[str(host.public_ipv6)] == env.host_fqdn(host.name)
    for balancer in inventory.load_balancers:
        assert str(balancer.public_ipv4) in ptrs and str(balancer.public_ipv6) in ptrs
    smtp = next(b for b in inventory.load_balancers if b.purpose == "smtp")
    assert ptrs[str(smtp.public_ipv4)] == env.hostname("mx")


def test_sending_hosts_keep_their_addresses_across_rebuilds(built):
    primary_ips = {r.name: r for r in built.mocks.of_type("PrimaryIp")}
    servers = servers_by_name(built)
    for host in hosts_with_role(plan_hosts(built.settings), "mx"):
        v4, v6 = primary_ips[f"{host.name}-ipv4"], primary_ips[f"{host.name}-ipv6"]
        assert v4.inputs["autoDelete"] is False and v4.inputs["deleteProtection"] is True
        (public_net,) = servers[host.name].inputs["publicNets"]
        assert public_net["ipv4"] == int(v4.id) and public_net["ipv6"] == int(v6.id)


def test_inventory_output_matches_the_contract_and_the_plan(built):
    inventory = Inventory.model_validate(built.inventory)
    assert inventory.environment == built.settings.environment.name
    assert inventory.stack == built.stack
    plan = plan_hosts(built.settings)
    assert [(h.name, list(h.roles), h.private_ip) for h in plan] == [
        (h.name, h.roles, h.private_ip) for h in inventory.hosts
    ]
    for host in inventory.hosts:
        assert host.ssh_address == str(host.public_ipv4)
    assert {b.purpose for b in inventory.load_balancers} == {"smtp", "mailaccess", "http"}
    groups = inventory.pyinfra_groups()
    assert [(name, data["ssh_hostname"]) for name, data in groups["mx"]] == [
        (h.name, str(h.public_ipv4)) for h in inventory.with_role("mx")
    ]
    assert built.load_balancers["smtp"]["ipv4"] == str(
        next(b.public_ipv4 for b in inventory.load_balancers if b.purpose == "smtp")
    )


def records(built, name, rtype):
    return [r for r in built.dns_records if r["name"] == name and r["type"] == rtype]


def test_dns_records_cover_mail_policy(built):
    inventory = Inventory.model_validate(built.inventory)
    env = built.settings.environment
    smtp = next(b for b in inventory.load_balancers if b.purpose == "smtp")
    (mx_a,) = records(built, env.hostname("mx"), "A")
    assert mx_a["values"] == [str(smtp.public_ipv4)]
    sending = [h for h in inventory.with_role("mx")]
    for domain in env.mail_domains:
        (mx,) = records(built, domain, "MX")
        assert mx["values"] == [f"10 {env.hostname('mx')}."]
        (spf,) = records(built, domain, "TXT")
        text = spf["values"][0].strip('"')
        mechanisms = text.split()
        assert mechanisms[0] == "v=spf1" and mechanisms[-1] == built.settings.dns.spf_all
        listed = sorted(m.split(":", 1)[1] for m in mechanisms[1:-1])
        # Exactly the sending addresses: the mx hosts', not the balancers' or other hosts'.
        assert listed == sorted(
            [str(h.public_ipv4) for h in sending] + [str(h.public_ipv6) for h in sending]
        )
        (dmarc,) = records(built, f"_dmarc.{domain}", "TXT")
        assert f"p={built.settings.dns.dmarc_policy};" in dmarc["values"][0]
        (sts,) = records(built, f"_mta-sts.{domain}", "TXT")
        assert sts["values"][0].startswith('"v=STSv1; id=')
        assert records(built, f"mta-sts.{domain}", "A")
        (rpt,) = records(built, f"_smtp._tls.{domain}", "TXT")
        assert rpt["values"][0].startswith('"v=TLSRPTv1; rua=mailto:')
        (srv,) = records(built, f"_submissions._tcp.{domain}", "SRV")
        assert srv["values"] == [f"0 1 465 {env.hostname('submission')}."]


def test_every_mail_domain_publishes_its_dkim_key(built):
    from cryptography.hazmat.primitives import serialization

    selector = built.settings.mail.dkim.selector
    assert sorted(k.domain for k in built.dkim_keys) == sorted(
        built.settings.environment.mail_domains
    )
    for key in built.dkim_keys:
        (record,) = records(built, f"{selector}._domainkey.{key.domain}", "TXT")
        # Long TXT values are split into strings of at most 255 bytes.
        strings = [s.strip('"') for s in record["values"][0].split('" "')]
        assert all(len(s) <= 255 for s in strings)
        text = "".join(strings)
        assert text.startswith("v=DKIM1; k=rsa; p=")
        private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
        published = serialization.load_der_public_key(base64.b64decode(text.split("p=", 1)[1]))
        assert published.public_numbers() == private.public_key().public_numbers()


def test_records_are_published_only_in_managed_zones(built):
    rrsets = built.mocks.of_type("ZoneRrset")
    zones = built.mocks.of_type("Zone")
    if not built.settings.dns.managed_zone:
        assert rrsets == [] and zones == []
        assert built.dns_records
        assert not any(r["managed"] for r in built.dns_records)
        return
    assert all(r["managed"] == (r["zone"] is not None) for r in built.dns_records)
    assert sorted(z.inputs["name"] for z in zones) == sorted(
        built.settings.environment.mail_domains
    )
    assert all(z.inputs["deleteProtection"] for z in zones)
    published = {(r.inputs["zone"], r.inputs["name"], r.inputs["type"]) for r in rrsets}
    for record in built.dns_records:
        if record["zone"] is None:
            continue
        zone = record["zone"]
        relative = "@" if record["name"] == zone else record["name"].removesuffix("." + zone)
        assert (zone, relative, record["type"]) in published
    for rrset in rrsets:
        for value in rrset.inputs["records"]:
            if rrset.inputs["type"] == "A":
                ipaddress.IPv4Address(value["value"])


def test_every_balancer_checks_its_targets_as_the_failover_settings_say(built):
    failover = built.settings.failover
    services = built.mocks.of_type("LoadBalancerService")
    assert services
    for service in services:
        check = service.inputs["healthCheck"]
        assert int(check["interval"]) == failover.balancer_check_interval_seconds
        assert int(check["timeout"]) == failover.balancer_check_timeout_seconds
        assert int(check["retries"]) == failover.balancer_check_retries

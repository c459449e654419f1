"""The host firewall's table (mailstack.services.firewall): who may reach which port of which
role, as each host's ruleset says, for the stacks' own settings; how a service adds its ports;
the operator's extra clients from settings. The lab tests (tests/e2e/test_firewall.py) show the
same from every host class on running hosts; tests/unit/test_templates.py has nft check every
ruleset."""

from ipaddress import collapse_addresses, ip_address, ip_network
from pathlib import Path

import pytest
from pydantic import ValidationError

from mailstack.deploy.deployment import REPOSITORY, Deployment
from mailstack.secrets import SecretStore
from mailstack.services import firewall
from mailstack.services.firewall import Opening, hosts
from mailstack.settings import Settings, load_stack_file
from mailstack.topology import HTTPS_TERMINATED


def deployment(stack: str = "production", **changes) -> Deployment:
    settings = load_stack_file(REPOSITORY / f"stacks/Pulumi.{stack}.yaml")
    if changes:
        data = settings.model_dump(mode="json")
        for dotted, value in changes.items():
            *path, key = dotted.split("__")
            target = data
            for part in path:
                target = target[part]
            target[key] = value
        settings = Settings.model_validate(data)
    return Deployment.planned(settings, SecretStore(Path("/nonexistent/secrets.json")), stack)


def opened(deployment: Deployment, host) -> dict[tuple[str, int], set]:
    """(protocol, port) -> every source address or network the host's rules let in."""
    result: dict[tuple[str, int], set] = {}
    for rule in firewall.rules(deployment, host):
        for port in rule.ports:
            result.setdefault((rule.protocol, port), set()).update(
                ip_network(source) for source in rule.sources
            )
    return result


def addresses(networks) -> set:
    """Every single address in some networks (the private ones are small)."""
    return {address for network in networks for address in network}


def private(deployment: Deployment, *roles: str) -> set:
    return {ip_address(a) for role in roles for a in deployment.addresses(role)}


def balancer(deployment: Deployment, purpose: str) -> set:
    return {ip_address(deployment.load_balancer(purpose))}


def test_each_port_of_each_role_opens_to_its_clients_alone():
    production = deployment()
    admins = set(production.settings.environment.admin_cidrs)
    smtp, access = balancer(production, "smtp"), balancer(production, "mailaccess")
    # The monitoring hosts (the web nodes): Prometheus scrapes every exporter.
    prometheus = private(production, "web")
    expected = {
        "mx": {
            **dict.fromkeys((25, 465, 587, 80), smtp),
            8402: private(production, "mx"),
            10587: private(production, "mailstore"),
            # Node and Postfix exporters, rspamd's controller, the policy service's metrics,
            # and Alertmanager's mail.
            **dict.fromkeys((9100, 9154, 11334, 9740, 10588), prometheus),
            # Corosync's knet: the mx cluster's own nodes.
            5405: private(production, "mx"),
        },
        "mailstore": {
            **dict.fromkeys((143, 993, 110, 995, 4190, 80), access),
            **dict.fromkeys((24, 12345, 12340), private(production, "mx")),
            8402: private(production, "mailstore"),
            **dict.fromkeys((9100, 9900), prometheus),
            5405: private(production, "mailstore"),
            # The panel ends a changed account's sessions through doveadm's HTTP API.
            8425: private(production, "web"),
        },
        "db": {
            # Every member replicates from the primary, or rewinds against it.
            5432: private(production, "mx", "mailstore", "web", "db"),
            # Patroni's REST API also serves its metrics.
            8008: private(production, "db") | prometheus,
            2379: private(production, "db"),
            2380: private(production, "db"),
            6379: private(production, "mx", "db"),
            # The panel keeps customer domains' DKIM keys there for rspamd.
            6380: private(production, "mx", "web", "db"),
            26379: private(production, "mx", "web", "db"),
            # Node, PostgreSQL and Valkey exporters, etcd's metrics listener.
            **dict.fromkeys((9100, 9187, 9121, 2381), prometheus),
        },
        # The HTTP balancer terminates TLS itself with a managed zone and sends plain HTTP to
        # a port of its own, open to it alone. Node exporter; Alertmanager's cluster (TCP and
        # UDP) between the monitoring hosts.
        "web": {
            HTTPS_TERMINATED.port: balancer(production, "http"),
            **dict.fromkeys((9100, 9094), prometheus),
        },
    }
    # Prometheus and Alertmanager: each other and the operators.
    monitoring = set(collapse_addresses(ip_network(a) for a in production.addresses("web")))
    monitoring |= admins
    assert production.settings.dns.managed_zone
    quorum_device = production.quorum_device_host.name
    for host in production.inventory.hosts:
        (role,) = host.roles
        wanted = dict(expected[role])
        if host.name == quorum_device:
            # The quorum device: every node of both clusters, on the first db node alone.
            wanted[5403] = private(production, "mx", "mailstore")
        ports = opened(production, host)
        assert ports.pop(("tcp", 22)) == admins, host.name
        if role == "web":
            for port in (9090, 9093):
                assert ports.pop(("tcp", port)) == monitoring, (host.name, port)
            assert addresses(ports.pop(("udp", 9094))) == prometheus, host.name
        assert {port for _, port in ports} == set(wanted), host.name
        for (_, port), sources in ports.items():
            assert addresses(sources) == wanted[port], (host.name, port)


def test_the_clusters_ports_carry_their_protocols_and_only_where_clusters_run():
    production = deployment()
    for host in production.inventory.hosts:
        ports = opened(production, host)
        if {"mx", "mailstore"} & set(host.roles):
            assert ("udp", 5405) in ports and ("tcp", 5405) not in ports, host.name
        assert (("tcp", 5403) in ports) == (host.name == "production-db1"), host.name
    # The single profile's one host runs no cluster: neither port opens.
    staging = deployment("staging")
    (host,) = staging.inventory.hosts
    assert not {5403, 5405} & {port for _, port in opened(staging, host)}


def test_ssh_opens_to_admin_networks_of_both_families():
    production = deployment()
    ssh = [r for r in firewall.rules(production, production.first("mx")) if r.ports == (22,)]
    assert {(r.family, r.sources) for r in ssh} == {
        ("ip", ("198.51.100.0/28",)),
        ("ip6", ("2001:db8:100::/48",)),
    }


def test_web_nodes_open_http_and_https_to_the_http_balancer_when_it_passes_tls_through():
    passthrough = deployment("production", dns__managed_zone=False)
    web = passthrough.first("web")
    http = balancer(passthrough, "http")
    ports = opened(passthrough, web)
    assert addresses(ports[("tcp", 80)]) == http
    assert addresses(ports[("tcp", 443)]) == http


def test_the_policy_services_metrics_port_is_open_to_prometheus_alone():
    production = deployment()
    metrics = production.settings.mail.policy_service.metrics_port
    for host in production.inventory.hosts:
        ports = opened(production, host)
        if "mx" in host.roles:
            assert addresses(ports[("tcp", metrics)]) == private(production, "web")
        else:
            assert ("tcp", metrics) not in ports


def test_one_host_with_every_role_opens_each_port_to_the_balancer_that_forwards_it():
    staging = deployment("staging")
    (host,) = staging.inventory.hosts
    ports = opened(staging, host)
    assert addresses(ports[("tcp", 25)]) == balancer(staging, "smtp")
    assert addresses(ports[("tcp", 993)]) == balancer(staging, "mailaccess")
    # Port 80: the challenges come through every balancer that forwards it here.
    assert addresses(ports[("tcp", 80)]) == balancer(staging, "smtp") | balancer(
        staging, "mailaccess"
    ) | (balancer(staging, "http") if not staging.settings.dns.managed_zone else set())


def test_a_service_adds_its_ports_with_one_row_each(monkeypatch):
    """The way a service opens its ports: Patroni's API and etcd, and a UDP port of the pair
    (see the module's docstring)."""
    production = deployment()
    rows = [
        Opening(("db",), 8008, hosts("db"), "Patroni REST API: the other members"),
        Opening(("db",), (2379, 2380), hosts("db"), "etcd: the members"),
        Opening(("mailstore",), 5999, hosts("mailstore"), "a UDP service", protocol="udp"),
    ]
    monkeypatch.setattr(firewall, "OPENINGS", [*firewall.OPENINGS, *rows])
    for host in production.inventory.hosts:
        ports = opened(production, host)
        if "mailstore" in host.roles:
            assert addresses(ports[("udp", 5999)]) == private(production, "mailstore")
            ruleset = firewall.config_files(production, host)[0].render()
            assert 'udp dport { 5999 } accept comment "a UDP service"' in ruleset
        else:
            assert ("udp", 5999) not in ports


def test_clients_outside_the_platform_come_in_by_settings():
    monitoring = {
        "role": "mx",
        "port": 9740,
        "sources": ["10.20.2.5/32", "2001:db8:5::/64"],
        "description": "an outside Prometheus scrapes the policy service",
    }
    production = deployment(network__firewall={"allow": [monitoring]})
    own = set(collapse_addresses(ip_network(a) for a in production.addresses("web")))
    for host in production.inventory.hosts:
        ports = opened(production, host)
        if "mx" in host.roles:
            # Beside the platform's own Prometheus.
            assert ports[("tcp", 9740)] == {ip_network(s) for s in monitoring["sources"]} | own
        else:
            assert ("tcp", 9740) not in ports


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"sources": ["0.0.0.0/0"]}, "every address"),
        ({"sources": []}, "at least 1"),
        ({"port": 22}, "environment.admin_cidrs"),
        ({"description": 'say "hi"'}, "pattern"),
        ({"role": "lb"}, "role"),
        ({"port": 0}, "greater than or equal to 1"),
    ],
)
def test_an_allowance_that_would_open_too_much_or_break_the_ruleset_is_refused(entry, message):
    allowance = {"role": "mx", "port": 9740, "sources": ["10.20.2.5/32"], "description": "x"}
    with pytest.raises(ValidationError, match=message) as refused:
        deployment(network__firewall={"allow": [{**allowance, **entry}]})
    assert "network.firewall.allow.0" in str(refused.value)


def test_overlapping_admin_networks_become_one_set_nft_accepts():
    overlapping = deployment(environment__admin_cidrs=["10.9.0.0/16", "10.9.1.0/24", "10.9.1.7/32"])
    (ssh,) = [r for r in firewall.rules(overlapping, overlapping.first("db")) if r.ports == (22,)]
    assert ssh.sources == ("10.9.0.0/16",)


def test_a_comment_nft_would_refuse_is_an_error_where_the_row_is_written():
    with pytest.raises(ValueError, match="no quotes"):
        Opening(("db",), 1, hosts("mx"), 'a "quoted" reason')

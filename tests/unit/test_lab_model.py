"""The lab's models without hosts: lab settings, names, DNS zones, inventory groups."""

import os
from ipaddress import IPv4Address, IPv4Network

import pytest

from mailstack.inventory import Inventory, InventoryHost
from mailstack.lab.hosts import machine_name
from mailstack.lab.lab import DEFAULT_STACK_FILE
from mailstack.lab.settings import LabSettings, load_lab_settings, validate_name
from mailstack.lab.state import LabState
from mailstack.lab.system import LabError, check_preconditions
from mailstack.lab.zones import lab_zones
from mailstack.settings import SettingsError, load_stack_file
from mailstack.settings.plan import plan_hosts, plan_load_balancers


def test_lab_stack_file_is_valid_and_has_the_lab_shape():
    settings = load_stack_file(DEFAULT_STACK_FILE)
    lab = load_lab_settings(DEFAULT_STACK_FILE)
    roles = [host.roles for host in plan_hosts(settings)]
    assert roles.count(("mx",)) == 2 and roles.count(("mailstore",)) == 2
    # Three db nodes: etcd and Sentinel need a majority of three to fail over.
    # Two web nodes: either serves a logged-in session.
    assert roles.count(("db",)) == 3 and roles.count(("web",)) == 2
    assert all(domain.endswith(".test") for domain in settings.environment.mail_domains)
    assert settings.tls.mode == "acme" and lab.services_domain in settings.tls.acme.directory_url
    assert settings.network.subnet.subnet_of(lab.address_pool)


def test_lab_settings_errors_name_the_field(tmp_path):
    stack = tmp_path / "Pulumi.lab.yaml"
    stack.write_text("config:\n  mailstack:lab:\n    internet_offset: 9\n    listed_offset: 9\n")
    with pytest.raises(SettingsError, match="internet_offset and listed_offset must differ"):
        load_lab_settings(stack)
    stack.write_text("config:\n  mailstack:lab:\n    apt_cache_port: 80\n")
    with pytest.raises(SettingsError, match=r"mailstack:lab\.apt_cache_port"):
        load_lab_settings(stack)


@pytest.mark.parametrize("name", ["", "Lab", "1lab", "lab-test", "twelvecharsx"])
def test_lab_names_must_fit_an_interface_name(name):
    with pytest.raises(LabError, match="lab name"):
        validate_name(name)


def test_machine_names_fit_a_link_name_and_differ_between_labs():
    names = {machine_name(lab, host) for lab in ("a", "b") for host in ("lab-mx1", "lab-mx2")}
    assert len(names) == 4
    assert all(len(f"vb-{name}") <= 15 for name in names)


def _state(subnet: str = "10.77.1.0/24") -> LabState:
    return LabState(
        name="t", stack_file="x", subnet=IPv4Network(subnet), bridge="msl-t", lab=LabSettings()
    )


def test_zones_hold_what_the_platform_and_the_tests_need():
    settings = load_stack_file(DEFAULT_STACK_FILE)
    state = _state()
    zones = {zone.name: zone for zone in lab_zones(settings, state)}
    assert set(zones) == {
        "mailstack.test",
        "tenant.test",
        "internet.test",
        "peer.test",
        "dnsbl.test",
        "resellers.test",
        "1.77.10.in-addr.arpa",
        "",
    }
    # The root is empty: every other name does not exist.
    assert zones[""].records == () and zones[""].origin == "."
    records = {(r.name, r.type): r.value for zone in zones.values() for r in zone.records}
    smtp = next(lb.private_ip for lb in plan_load_balancers(settings) if lb.purpose == "smtp")
    assert records[("tenant.test", "MX")] == "10 mx.mailstack.test."
    assert records[("mx.mailstack.test", "A")] == str(smtp)
    assert records[("251.1.77.10.dnsbl.test", "A")] == "127.0.0.2"
    assert records[("2.0.0.127.dnsbl.test", "A")] == "127.0.0.2"
    assert ("250.1.77.10.dnsbl.test", "A") not in records
    assert records[("mailstack-listed-link.com.dnsbl.test", "A")] == "127.0.0.2"
    assert records[("mx.peer.test", "A")] == "10.77.1.250"
    # Resellers' own host names reach the HTTP balancer.
    http = next(lb.private_ip for lb in plan_load_balancers(settings) if lb.purpose == "http")
    assert records[("*.resellers.test", "A")] == str(http)
    assert records[("10.1.77.10.in-addr.arpa", "PTR")] == "lab-mx1.mailstack.test."
    for zone in zones.values():
        assert all(r.name == zone.name or r.name.endswith("." + zone.name) for r in zone.records), (
            zone.name
        )


def test_zone_serial_changes_exactly_with_the_records():
    settings = load_stack_file(DEFAULT_STACK_FILE)
    first = {z.name: z.serial for z in lab_zones(settings, _state())}
    assert first == {z.name: z.serial for z in lab_zones(settings, _state())}
    moved = {
        z.name: z.serial
        for z in lab_zones(
            settings,
            _state("10.77.1.0/24").model_copy(update={"lab": LabSettings(listed_offset=252)}),
        )
    }
    assert moved["dnsbl.test"] != first["dnsbl.test"]
    assert moved["mailstack.test"] == first["mailstack.test"]


def test_inventory_groups_include_lab_only_groups_only_where_hosts_have_them():
    host = InventoryHost(
        name="lab-mx1", roles=["mx"], private_ip=IPv4Address("10.77.1.10"), ssh_address="10.77.1.10"
    )
    lb = InventoryHost(
        name="lab-lb1",
        roles=["loadbalancer"],
        private_ip=IPv4Address("10.77.1.2"),
        ssh_address="10.77.1.2",
    )
    plain = Inventory(stack="lab", environment="lab", hosts=[host])
    assert set(plain.pyinfra_groups()) == {"mx", "mailstore", "db", "web"}
    lab = Inventory(
        stack="lab",
        environment="lab",
        hosts=[host, lb],
        ssh_key_file="/k",
        settings_file="/s.json",
        lab_file="/lab.json",
    )
    groups = lab.pyinfra_groups()
    assert set(groups) == {"mx", "mailstore", "db", "web", "loadbalancer"}
    name, data = groups["loadbalancer"][0]
    assert name == "lab-lb1" and data["ssh_hostname"] == "10.77.1.2"
    assert data["settings_file"] == "/s.json" and data["lab_file"] == "/lab.json"
    assert data["ssh_key"] == "/k"


def test_not_root_is_refused(monkeypatch):
    """As any other user sees it. In-process: a clone in root's home (mode 0700) has a venv no
    other user can even start."""
    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    with pytest.raises(LabError, match="the lab needs root"):
        check_preconditions()

"""Monitoring on the hosts: every exporter and metrics endpoint runs and listens on its host's
private address only, Prometheus' and Alertmanager's files pass their own checkers, and
Prometheus scrapes every target it should (all but Dovecot on the passive mailstore node)."""

import json
import time

import pytest

from mailstack.services import dovecot, etcd, exporters, monitoring, rspamd, valkey

pytestmark = pytest.mark.lab


def listening(connection) -> set[tuple[str, int]]:
    result = set()
    for line in connection.check_output("ss -Htln").splitlines():
        address, _, port = line.split()[3].rpartition(":")
        result.add((address.strip("[]"), int(port)))
    return result


def assert_private_only(member, connection, ports) -> None:
    found = {(address, port) for address, port in listening(connection) if port in ports}
    assert found == {(str(member.private_ip), port) for port in ports}, (member.name, found)


def test_exporters_run_on_the_private_address_only(hosts):
    for role, members in hosts.items():
        for member, connection in members:
            units = {exporters.NODE_UNIT: monitoring.NODE_EXPORTER_PORT}
            if role == "mx":
                units[exporters.POSTFIX_UNIT] = monitoring.POSTFIX_EXPORTER_PORT
            if role == "db":
                units[exporters.POSTGRES_UNIT] = monitoring.POSTGRES_EXPORTER_PORT
                units[exporters.VALKEY_UNIT] = monitoring.VALKEY_EXPORTER_PORT
            for unit in units:
                service = connection.service(unit)
                assert service.is_running and service.is_enabled, (member.name, unit)
                assert connection.run(exporters.check(unit)).rc == 0, (member.name, unit)
            ports = set(units.values())
            if role == "db" and len(members) > 1:
                # etcd's metrics listener (its client port also listens on loopback).
                ports.add(etcd.METRICS_PORT)
            assert_private_only(member, connection, ports)


def test_rspamd_serves_metrics_on_the_private_address_with_its_read_only_password(hosts):
    for member, connection in hosts["mx"]:
        found = {a for a, port in listening(connection) if port == rspamd.CONTROLLER_PORT}
        assert found == {"127.0.0.1", str(member.private_ip)}, member.name
        url = f"http://{member.private_ip}:{rspamd.CONTROLLER_PORT}/metrics"
        # Without a password: refused.
        assert connection.run(f"curl -sf {url}").rc != 0, member.name


def test_dovecot_serves_metrics_on_the_active_node(hosts):
    (active, connection), *_ = hosts["mailstore"]
    assert_private_only(active, connection, {dovecot.METRICS_PORT})
    metrics = connection.check_output(
        f"curl -sf http://{active.private_ip}:{dovecot.METRICS_PORT}/metrics"
    )
    assert "dovecot_auth_success_total" in metrics


def test_prometheus_and_alertmanager_run_with_checked_files(hosts):
    for member, connection in hosts[monitoring.ROLE]:
        for unit in (monitoring.PROMETHEUS_UNIT, monitoring.ALERTMANAGER_UNIT):
            service = connection.service(unit)
            assert service.is_running and service.is_enabled, (member.name, unit)
        check = connection.run(monitoring.CHECK)
        assert check.rc == 0, (member.name, check.stdout, check.stderr)
        for path in (monitoring.PROMETHEUS_CONFIG, monitoring.ALERTMANAGER_CONFIG):
            config = connection.file(path)
            assert (config.mode, config.user, config.group) == (0o640, "root", "prometheus")
        ports = {monitoring.PROMETHEUS_PORT, monitoring.ALERTMANAGER_PORT}
        found = {(a, p) for a, p in listening(connection) if p in ports}
        assert found == {(str(member.private_ip), port) for port in ports}, member.name


def test_prometheus_scrapes_every_target(hosts, inventory):
    passive = {member.name for member, _ in hosts["mailstore"][1:]}
    # A Prometheus the suite's deploys just restarted has not scraped every target yet: their
    # health is "unknown" until the first scrape, within one interval.
    interval = inventory.settings().monitoring.scrape_interval_seconds
    for member, connection in hosts[monitoring.ROLE]:
        deadline = time.monotonic() + 3 * interval + 10
        while True:
            targets = json.loads(
                connection.check_output(
                    f"curl -sf http://{member.private_ip}:{monitoring.PROMETHEUS_PORT}"
                    "/api/v1/targets"
                )
            )["data"]["activeTargets"]
            if all(t["health"] != "unknown" for t in targets) or time.monotonic() > deadline:
                break
            time.sleep(2)
        health = {
            (t["labels"]["job"], t["labels"]["instance"], t["labels"].get("valkey")): t["health"]
            for t in targets
        }
        down = {
            target: state
            for target, state in health.items()
            if state != "up" and not (target[0] == "dovecot" and target[1] in passive)
        }
        assert not down, down
        jobs = {job for job, _, _ in health}
        expected = {"node", "postfix", "policyd", "rspamd", "dovecot", "postgresql", "valkey"}
        expected |= {"prometheus", "alertmanager"}
        if inventory.with_role("loadbalancer"):
            expected.add("haproxy")
        clustered = len(inventory.with_role("db")) > 1
        if clustered:
            expected |= {"patroni", "etcd"}
        assert jobs == expected
        nodes = {instance for job, instance, _ in health if job == "node"}
        assert nodes == {h.name for h in inventory.hosts if "internet" not in h.roles}
        # Both Valkey instances of every db node, and its Sentinel in a cluster.
        uses = {*valkey.USES, "sentinel"} if clustered else set(valkey.USES)
        for db in inventory.with_role("db"):
            found = {
                use for job, instance, use in health if job == "valkey" and instance == db.name
            }
            assert found == uses, db.name

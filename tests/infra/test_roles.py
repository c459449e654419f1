"""Each role's packages, services, listening ports and configuration validity."""

import json
import time

import pytest

from mailstack.services import (
    backup,
    clamav,
    dovecot,
    etcd,
    panel,
    patroni,
    pgbackrest,
    postgresql,
    resellerhosts,
    rspamd,
    tracing,
    valkey,
    valkeybackup,
    valkeyproxy,
    webmail,
)
from mailstack.settings.plan import cluster_roles

pytestmark = pytest.mark.lab


def listening(connection, protocol: str = "t") -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket (or bound UDP socket, protocol "u")."""
    result = set()
    for line in connection.check_output(f"ss -Hl{protocol}n").splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        result.add((address.strip("[]"), int(port)))
    return result


MAIL_PORTS = {25, 465, 587}
ACCESS_PORTS = {143, 993, 110, 995, 4190}
WILDCARD = {"0.0.0.0", "*", "::"}


def public_ports(connection) -> set[int]:
    """Ports bound to every address (reachable from anywhere the host is)."""
    return {port for address, port in listening(connection) if address in WILDCARD}


def test_mx_hosts(hosts, inventory):
    clustered = "mx" in cluster_roles(inventory.settings())
    for member, host in hosts["mx"]:
        for package in ("postfix", "postfix-pgsql"):
            assert host.package(package).is_installed, (member.name, package)
        # The mx cluster runs the main instance on its own queue, never systemd at boot.
        postfix = host.service("postfix")
        assert postfix.is_running and postfix.is_enabled is not clustered, member.name
        check = host.run("postfix check")
        assert check.rc == 0 and check.stderr == "", (member.name, check.stderr)
        ports = listening(host)
        assert {(str(member.private_ip), port) for port in MAIL_PORTS} <= ports, member.name
        assert not (MAIL_PORTS | {5432}) & public_ports(host), member.name
        assert not ACCESS_PORTS & {port for _, port in ports}, member.name
        sql = host.file("/etc/postfix/sql/virtual_alias_maps.cf")
        assert sql.mode == 0o640 and sql.user == "root" and sql.group == "postfix"


def test_mailstore_hosts(hosts, inventory):
    clustered = "mailstore" in cluster_roles(inventory.settings())
    running = []
    for member, host in hosts["mailstore"]:
        for package in ("dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd", "dovecot-pgsql"):
            assert host.package(package).is_installed, (member.name, package)
        assert host.run("doveconf -n").rc == 0, member.name
        assert host.user("vmail").uid == 5000
        ports = listening(host)
        assert 25 not in {port for _, port in ports}, member.name
        assert not public_ports(host) - {22}, member.name
        imap = host.service(dovecot.UNIT)
        # The cluster starts Dovecot on the node holding the mail volume, never systemd at boot.
        assert imap.is_enabled is not clustered, member.name
        private = {port for address, port in ports if address == str(member.private_ip)}
        if imap.is_running:
            running.append(member.name)
            assert ACCESS_PORTS | {24, 12345} <= private, member.name
            # doveadm's HTTP API listens on the private address of the active node alone.
            assert dovecot.DOVEADM_HTTP_PORT in private, member.name
        else:
            # The passive node stands by until a failover gives it the mail volume.
            assert not (ACCESS_PORTS | {24, 12345, dovecot.DOVEADM_HTTP_PORT}) & private, (
                member.name
            )
        # Both run the timer; its job runs only where Dovecot is active.
        purge = host.service(f"{dovecot.PURGE_UNIT}.timer")
        assert purge.is_running and purge.is_enabled, member.name
        if inventory.settings().backups.target is not None:
            timer = host.service(f"{backup.UNIT}.timer")
            assert timer.is_running and timer.is_enabled, member.name
            for secret in (backup.SSH_KEY, backup.PASSWORD_FILE, backup.CONFIG):
                found = host.file(secret)
                assert (found.user, found.mode) == ("root", 0o600), (member.name, secret)
    assert len(running) == 1, f"Dovecot runs on {running}, not on exactly one node"


def test_the_trace_ingester_runs_where_mail_services_log(hosts):
    """rsyslog runs its rule, which runs the ingester as nobody; the configuration (a database
    password) is root's alone (docs/tracing.md)."""
    for member, host in [*hosts["mx"], *hosts["mailstore"]]:
        rsyslog = host.service(tracing.UNIT)
        assert rsyslog.is_running and rsyslog.is_enabled, member.name
        assert host.run(tracing.RSYSLOG_CHECK).rc == 0, member.name
        config = host.file(tracing.CONFIG)
        assert (config.user, config.mode) == ("root", 0o600), member.name
        # rsyslog starts the ingester with the first line its rule takes (a passive mailstore
        # node may have had none): one it drops, as of no interest.
        host.run("logger -t postfix/master 'infra test: starts the trace ingester'")
        time.sleep(1)
        # The bracket keeps the pattern from matching the shell that runs pgrep.
        ingester = "[m]ailstack.tracing --config"
        assert host.run(f"pgrep -u nobody -f '{ingester}'").rc == 0, member.name
        assert host.run(f"pgrep -u root -f '{ingester}'").rc == 1, member.name


def test_web_hosts(hosts):
    panel_address, _, panel_port = panel.LISTEN.rpartition(":")
    for member, host in hosts["web"]:
        timers = (resellerhosts.UNIT, panel.NOTICES_UNIT, panel.TRACE_PURGE_UNIT)
        for unit in ("nginx", webmail.FPM_UNIT, panel.UNIT, *(f"{t}.timer" for t in timers)):
            service = host.service(unit)
            assert service.is_running and service.is_enabled, (member.name, unit)
        # Debian's Apache never comes with Roundcube: nginx is the one web server.
        assert not host.package("apache2").is_installed, member.name
        assert host.run("nginx -t -q").rc == 0, member.name
        assert host.run(webmail.CHECK).rc == 0, member.name
        ports = listening(host)
        # gunicorn for nginx on this node only; HTTPS on the private address.
        assert (panel_address, int(panel_port)) in ports, member.name
        assert (str(member.private_ip), 443) in ports, member.name
        assert not public_ports(host) - {22}, member.name
        # Roundcube's configuration holds the database password and the session key.
        config = host.file(f"{webmail.CONFIG_DIR}/config.inc.php")
        assert config.mode == 0o640 and config.group == "www-data", member.name
        assert host.file(panel.ENVIRONMENT).mode == 0o600, member.name


def local_ports(ports, member) -> set[int]:
    """Ports listening on an address other than the host's private one and loopback."""
    allowed = {str(member.private_ip), "127.0.0.1", "::1"}
    return {port for address, port in ports if address not in allowed}


CLUSTER_PORTS = {
    postgresql.PORT,
    patroni.REST_PORT,
    etcd.CLIENT_PORT,
    etcd.PEER_PORT,
    valkey.SENTINEL_PORT,
    *valkey.PORTS.values(),
}


def test_db_hosts(hosts, inventory):
    settings = inventory.settings()
    clustered = settings.topology.profile != "single"
    allowed = {
        str(h.private_ip)
        for h in inventory.hosts
        if set(h.roles) & {"mx", "mailstore", "web", "db"}
    }
    for member, host in hosts["db"]:
        ports = listening(host)
        # Every cluster port on the private address (or loopback) only.
        assert not CLUSTER_PORTS & local_ports(ports, member), (member.name, ports)
        assert (str(member.private_ip), postgresql.PORT) in ports
        for use in valkey.USES:
            assert host.service(valkey.unit(use)).is_running, (member.name, use)
            assert (str(member.private_ip), valkey.PORTS[use]) in ports, (member.name, use)
        if not clustered:
            assert host.service(postgresql.UNIT).is_running
            continue
        for unit in (patroni.UNIT, etcd.UNIT, valkey.SENTINEL_UNIT):
            service = host.service(unit)
            assert service.is_running and service.is_enabled, (member.name, unit)
        # Patroni runs the only PostgreSQL; Debian made no cluster of its own.
        assert not host.file(f"/etc/postgresql/{postgresql.VERSION}/main").exists, member.name
        for port in (patroni.REST_PORT, etcd.PEER_PORT, valkey.SENTINEL_PORT):
            assert (str(member.private_ip), port) in ports, (member.name, port)
        config = host.file(patroni.CONFIG)
        assert config.mode == 0o600 and config.user == "postgres", member.name
        assert host.run(patroni.CHECK).rc == 0, member.name
        # pg_hba.conf as Patroni wrote it: TLS and SCRAM only, from the platform's hosts.
        hba = host.file(f"{postgresql.DATA_DIR}/pg_hba.conf").content_string
        for rule in (line.split() for line in hba.splitlines() if line.startswith("host")):
            assert rule[0] == "hostssl" and rule[-1] == "scram-sha-256", rule
            assert rule[3].removesuffix("/32") in allowed, rule
        if inventory.settings().backups.target is not None:
            # Every node looks whether a backup is due; PostgreSQL archives into the repository.
            for unit in (pgbackrest.UNIT, valkeybackup.UNIT):
                timer = host.service(f"{unit}.timer")
                assert timer.is_running and timer.is_enabled, (member.name, unit)
            for secret in (pgbackrest.CONFIG, pgbackrest.SSH_KEY):
                found = host.file(secret)
                assert (found.user, found.mode) == ("postgres", 0o600), (member.name, secret)
            assert host.run(pgbackrest.CHECK).rc == 0, member.name
            archiving = host.run(
                "runuser -u postgres -- psql -X -At -c 'SHOW archive_mode' "
                "-c 'SHOW archive_command'"
            ).stdout.split("\n")
            assert archiving[:2] == ["on", pgbackrest.ARCHIVE_COMMAND], (member.name, archiving)
        # Patroni's REST API refuses changes without its password.
        refused = host.run(
            f"curl -s -o /dev/null -w '%{{http_code}}' -X POST "
            f"http://{member.private_ip}:{patroni.REST_PORT}/restart"
        )
        assert refused.stdout.strip() == "401", (member.name, refused.stdout)


def test_db_clusters_are_whole(hosts, inventory):
    """One running primary, every other member streaming within the lag the settings allow,
    etcd healthy on every member, Sentinel naming one primary per Valkey use with every replica
    linked (the status command checks the same)."""
    settings = inventory.settings()
    if settings.topology.profile == "single":
        pytest.skip("the single profile has no clusters")
    (_, host), *_ = hosts["db"]
    members = json.loads(host.check_output(f"{patroni.CTL} list -f json"))
    assert [m["Role"] for m in members].count("Leader") == 1, members
    assert len(members) == len(hosts["db"]), members
    lag_limit_mb = settings.database.maximum_lag_on_failover_bytes / 1024 / 1024
    for m in members:
        if m["Role"] == "Leader":
            assert m["State"] == "running", m
        else:
            assert m["State"] == "streaming", m
            assert float(m.get("Lag in MB") or 0) <= lag_limit_mb, m
    assert any(m["Role"] == "Sync Standby" for m in members), members
    endpoints = ",".join(f"http://{h.private_ip}:{etcd.CLIENT_PORT}" for h, _ in hosts["db"])
    assert host.run(f"etcdctl --endpoints={endpoints} endpoint health").rc == 0
    status = host.run(patroni.STATUS_COMMAND)
    assert status.rc == 0, status.stdout + status.stderr


def test_lookup_role_reads_views_but_not_account_tables(hosts):
    (_, mx), *_ = hosts["mx"]
    views = "/etc/postfix/sql/virtual_mailbox_domains.cf"
    # Postfix's own pgsql client, as the lookup role: the view answers (found or not found).
    lookup = mx.run(f"postmap -q nonexistent.invalid pgsql:{views}")
    assert lookup.rc in (0, 1) and "fatal" not in lookup.stderr, lookup.stderr
    probe = "/root/table-probe.cf"
    mx.run(
        f"sed 's/^query = .*/query = SELECT password_hash FROM accounts_mailbox LIMIT 1/' "
        f"{views} > {probe}"
    )
    denied = mx.run(f"postmap -q x pgsql:{probe}; rm -f {probe}")
    assert "permission denied" in denied.stderr, denied.stderr


def test_policy_service_on_mx_hosts(hosts):
    for member, host in hosts["mx"]:
        service = host.service("mailstack-policyd")
        assert service.is_running and service.is_enabled, member.name
        ports = listening(host)
        # Postfix on the same host is its only client; Prometheus scrapes the private address.
        assert ("127.0.0.1", 10040) in ports, member.name
        assert (str(member.private_ip), 9740) in ports, member.name
        assert not {10040, 9740} & public_ports(host), member.name
        config = host.file("/etc/mailstack/policyd.json")
        assert config.mode == 0o600 and config.user == "root", member.name


def test_filters_on_mx_hosts(hosts):
    scanner_ports = {
        rspamd.MILTER_PORT,
        rspamd.SCANNER_PORT,
        rspamd.CONTROLLER_PORT,
    }
    for member, host in hosts["mx"]:
        for service in ("rspamd", "clamav-daemon"):
            unit = host.service(service)
            assert unit.is_running and unit.is_enabled, (member.name, service)
        # Debian's one-shot freshclam would fail without updates and duplicates the daemon.
        for unit in ("clamav-freshclam-once.timer", "clamav-freshclam-once.service"):
            assert host.service(unit).is_masked, (member.name, unit)
        check = host.run("rspamadm configtest")
        assert check.rc == 0 and check.stdout.strip() == "syntax OK", (member.name, check.stdout)
        # The milter, scanner and fuzzy storage answer this host only; the controller also
        # Prometheus, on the private address (tests/infra/test_monitoring.py).
        tcp = {(address, port) for address, port in listening(host) if port in scanner_ports}
        expected = {("127.0.0.1", port) for port in scanner_ports}
        assert tcp == expected | {(str(member.private_ip), rspamd.CONTROLLER_PORT)}, member.name
        udp = {(a, p) for a, p in listening(host, "u") if p == rspamd.FUZZY_PORT}
        assert udp == {("127.0.0.1", rspamd.FUZZY_PORT)}, member.name
        assert host.socket(f"unix://{clamav.CLAMD_SOCKET}").is_listening, member.name
        postconf = host.check_output("postconf -h smtpd_milters milter_default_action")
        assert postconf.split() == [rspamd.MILTER, "tempfail"], member.name
        for key in host.file(rspamd.DKIM_KEY_DIR).listdir():
            key_file = host.file(f"{rspamd.DKIM_KEY_DIR}/{key}")
            assert key_file.mode == 0o600 and key_file.user == "_rspamd", (member.name, key)
        redis = host.file("/etc/rspamd/local.d/redis.conf")
        assert redis.mode == 0o640 and redis.group == "_rspamd", member.name


def test_rspamd_reaches_the_filters_primary_through_the_local_proxy(hosts, inventory):
    """In a cluster, rspamd's Valkey address is the local HAProxy, and what answers there is the
    primary Sentinel names (a replica would refuse rspamd's writes)."""
    if len(inventory.with_role("db")) < 2:
        pytest.skip("the single profile has one Valkey, which rspamd reaches directly")
    local = f"{valkeyproxy.LISTEN_ADDRESS}:{valkeyproxy.LOCAL_PORTS['filters']}"
    for member, host in hosts["mx"]:
        unit = host.service(valkeyproxy.UNIT)
        assert unit.is_running and unit.is_enabled, member.name
        assert not host.service("haproxy").is_running, member.name
        assert f'servers = "{local}";' in host.file("/etc/rspamd/local.d/redis.conf").content_string
        password = host.check_output(
            "sed -n 's/^password = \"\\(.*\\)\";$/\\1/p' /etc/rspamd/local.d/redis.conf"
        )
        address, port = valkeyproxy.LISTEN_ADDRESS, valkeyproxy.LOCAL_PORTS["filters"]
        ask = (
            f"import socket; s = socket.create_connection(('{address}', {port}), 5);"
            f" s.sendall(b'AUTH {password}\\r\\n'); s.recv(100);"
            " s.sendall(b'ROLE\\r\\n'); print(s.recv(200).decode())"
        )
        # ROLE's array: its first element is "master" on the primary alone.
        role = host.check_output(f'python3 -c "{ask}"').split()[2]
        assert role == "master", (member.name, role)

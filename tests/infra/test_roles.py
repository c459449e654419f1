"""Each role's packages, services, listening ports and configuration validity."""

import pytest

from mailstack import spamfilter

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


def test_mx_hosts(hosts):
    for member, host in hosts["mx"]:
        for package in ("postfix", "postfix-pgsql"):
            assert host.package(package).is_installed, (member.name, package)
        postfix = host.service("postfix")
        assert postfix.is_running and postfix.is_enabled, member.name
        check = host.run("postfix check")
        assert check.rc == 0 and check.stderr == "", (member.name, check.stderr)
        ports = listening(host)
        assert {(str(member.private_ip), port) for port in MAIL_PORTS} <= ports, member.name
        assert not (MAIL_PORTS | {5432}) & public_ports(host), member.name
        assert not ACCESS_PORTS & {port for _, port in ports}, member.name
        sql = host.file("/etc/postfix/sql/virtual_alias_maps.cf")
        assert sql.mode == 0o640 and sql.user == "root" and sql.group == "postfix"


def test_mailstore_hosts(hosts):
    members = hosts["mailstore"]
    for index, (member, host) in enumerate(members):
        for package in ("dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd", "dovecot-pgsql"):
            assert host.package(package).is_installed, (member.name, package)
        assert host.run("doveconf -n").rc == 0, member.name
        assert host.user("vmail").uid == 5000
        ports = listening(host)
        assert 25 not in {port for _, port in ports}, member.name
        assert not public_ports(host) - {22}, member.name
        dovecot = host.service("dovecot")
        if index == 0:
            assert dovecot.is_running and dovecot.is_enabled, member.name
            private = {port for address, port in ports if address == str(member.private_ip)}
            assert ACCESS_PORTS | {24, 12345} <= private, member.name
        else:
            # The passive node stands by until a failover gives it the mail volume.
            assert not dovecot.is_running and not dovecot.is_enabled, member.name


def test_db_hosts(hosts, inventory):
    for member, host in hosts["db"]:
        assert host.package("postgresql-17").is_installed
        assert host.service("postgresql@17-main").is_running
        ports = listening(host)
        assert (str(member.private_ip), 5432) in ports
        assert 5432 not in public_ports(host), member.name
        hba = host.file("/etc/postgresql/17/main/pg_hba.conf").content_string
        rules = [line.split() for line in hba.splitlines() if line.startswith("host")]
        allowed = {
            str(h.private_ip) for h in inventory.hosts if set(h.roles) & {"mx", "mailstore", "web"}
        }
        for rule in rules:
            assert rule[0] == "hostssl" and rule[-1] == "scram-sha-256", rule
            assert rule[3].removesuffix("/32") in allowed, rule


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
        spamfilter.MILTER_PORT,
        spamfilter.SCANNER_PORT,
        spamfilter.CONTROLLER_PORT,
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
        # The milter, scanner, controller and fuzzy storage answer this host only.
        tcp = {(address, port) for address, port in listening(host) if port in scanner_ports}
        assert tcp == {("127.0.0.1", port) for port in scanner_ports}, member.name
        udp = {(a, p) for a, p in listening(host, "u") if p == spamfilter.FUZZY_PORT}
        assert udp == {("127.0.0.1", spamfilter.FUZZY_PORT)}, member.name
        assert host.socket(f"unix://{spamfilter.CLAMD_SOCKET}").is_listening, member.name
        postconf = host.check_output("postconf -h smtpd_milters milter_default_action")
        assert postconf.split() == [spamfilter.MILTER, "tempfail"], member.name
        for key in host.file(spamfilter.DKIM_KEY_DIR).listdir():
            key_file = host.file(f"{spamfilter.DKIM_KEY_DIR}/{key}")
            assert key_file.mode == 0o600 and key_file.user == "_rspamd", (member.name, key)
        redis = host.file("/etc/rspamd/local.d/redis.conf")
        assert redis.mode == 0o640 and redis.group == "_rspamd", member.name

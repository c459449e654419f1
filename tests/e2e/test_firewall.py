"""The host firewalls on the lab: from every host class (the machine, the internet, each load
balancer, mx, mailstore, db, web), what every platform host answers and what it refuses; the
attacks of issue 9 B (PROXY from a private host claiming loopback, LMTP from a non-mx host);
and the local listeners' own guards (rspamd's controller password, clamd's socket).

The policy below is written out by hand, apart from mailstack.services.firewall: the test
compares the hosts' behaviour with what the design says, not with what the code derived.
"""

import json
import shlex
import socket
import subprocess

import pytest

from mailstack.services import clamav, dovecot, rspamd
from mailstack.testing import proxied

pytestmark = pytest.mark.lab

MACHINE = "machine"
"""The lab machine: the lab's admin network (environment.admin_cidrs), where deploys come from."""
SMTP, ACCESS, HTTP = "smtp balancer", "mail-access balancer", "http balancer"

POLICY: dict[str, dict[int, set[str]]] = {
    "mx": {
        22: {MACHINE},
        **{port: {SMTP} for port in (25, 465, 587, 80)},
        8402: {"mx"},
        10587: {"mailstore"},
        # Prometheus on the web nodes: node and Postfix exporters, rspamd's controller, the
        # policy service's metrics; Alertmanager's mail.
        **{port: {"web"} for port in (9100, 9154, 11334, 9740, 10588)},
    },
    "mailstore": {
        22: {MACHINE},
        **{port: {ACCESS} for port in (143, 993, 110, 995, 4190, 80)},
        **{port: {"mx"} for port in (24, 12345, 12340)},
        8402: {"mailstore"},
        **{port: {"web"} for port in (9100, 9900)},
        # doveadm's HTTP API: the panel ends a changed account's sessions.
        8425: {"web"},
    },
    "db": {
        22: {MACHINE},
        5432: {"mx", "mailstore", "web", "db"},
        # Patroni's REST API (its metrics for Prometheus), etcd, Valkey and Sentinel.
        8008: {"db", "web"},
        **{port: {"db"} for port in (2379, 2380)},
        6379: {"mx", "db"},
        **{port: {"mx", "web", "db"} for port in (6380, 26379)},
        # Node, PostgreSQL and Valkey exporters, etcd's metrics listener.
        **{port: {"web"} for port in (9100, 9187, 9121, 2381)},
    },
    "web": {
        22: {MACHINE},
        80: {HTTP},
        443: {HTTP},
        8402: {"web"},
        9100: {"web"},
        # Prometheus and Alertmanager: each other and the operators; Alertmanager's cluster.
        **{port: {MACHINE, "web"} for port in (9090, 9093)},
        9094: {"web"},
    },
}
"""role -> port -> the host classes that may connect (everyone else is refused)."""
QUORUM_DEVICE = {5403: {"mx", "mailstore"}}
"""corosync-qnetd on the first db node alone: every node of the mailstore and mx clusters."""


def policy(platform, role: str, name: str) -> dict[int, set[str]]:
    """The ports a host answers and to whom: its role's, and the quorum device's on the first
    db node."""
    if name == platform.hosts("db")[0]:
        return POLICY[role] | QUORUM_DEVICE
    return POLICY[role]


# Connects to each (source address, address, port) at once; prints what each got: "open",
# "closed" (Connection refused: a reset, from a closed port or from a firewall), "timeout", or
# another error. Which resets the firewall sent, its counter tells. As HAProxy's health checks
# do, it resets a connection as soon as the server's SYN-ACK arrives, before acknowledging it,
# so no service sees (and logs) a client that said nothing.
PROBE = r"""
import concurrent.futures, json, socket, struct, sys

def probe(target):
    source, address, port = target
    sock = socket.socket()
    sock.settimeout(5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect((address, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except TimeoutError:
        return "timeout"
    except OSError as error:
        return str(error)
    finally:
        sock.close()

targets = json.load(sys.stdin)
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


def listening_ports(platform, host: str) -> set[int]:
    """TCP ports the host listens on where others could reach: its private address or all."""
    address = str(platform.inventory.host(host).private_ip)
    ports = set()
    for line in platform.sh(host, "ss -Htln").splitlines():
        local, _, port = line.split()[3].rpartition(":")
        if local.strip("[]") in (address, "0.0.0.0", "*", "::"):
            ports.add(int(port))
    return ports


def refused_count(platform, host: str) -> int:
    """Packets the host's firewall refused so far (its named counter)."""
    listing = json.loads(platform.sh(host, "nft -j list counter inet mailstack refused"))
    return next(item["counter"]["packets"] for item in listing["nftables"] if "counter" in item)


def run_probe(platform, host: str | None, targets: list) -> list[str]:
    payload = json.dumps(targets)
    if host is None:
        result = subprocess.run(
            ["python3", "-c", PROBE], input=payload, capture_output=True, text=True, check=True
        )
        return json.loads(result.stdout)
    return json.loads(platform.sh(host, f"python3 -c {shlex.quote(PROBE)}", stdin=payload))


def test_each_host_answers_exactly_the_clients_its_role_serves(platform):
    lb = platform.hosts("loadbalancer")[0]
    sources = {
        MACHINE: (None, None),
        "internet": (platform.internet, None),
        SMTP: (lb, platform.balancer("smtp")),
        ACCESS: (lb, platform.balancer("mailaccess")),
        HTTP: (lb, platform.balancer("http")),
        **{role: (platform.hosts(role)[0], None) for role in POLICY},
    }
    targets = {
        host.name: (host.roles[0], str(host.private_ip))
        for role in POLICY
        for host in platform.inventory.with_role(role)
    }
    listening = {name: listening_ports(platform, name) for name in targets}
    metrics = platform.settings.mail.policy_service.metrics_port
    ports = sorted(
        {p for role in POLICY.values() for p in role}
        | set(QUORUM_DEVICE)
        | set().union(*listening.values())
        | {metrics}
    )
    assert metrics in listening[platform.hosts("mx")[0]], "the metrics port should listen"
    refused_before = {name: refused_count(platform, name) for name in targets}

    wrong, refused_to = [], dict.fromkeys(targets, 0)
    for source, (host, address) in sources.items():
        probes = [(name, port) for name in targets if name != host for port in ports]
        results = run_probe(
            platform, host, [(address, targets[name][1], port) for name, port in probes]
        )
        for (name, port), got in zip(probes, results, strict=True):
            allowed = source in policy(platform, targets[name][0], name).get(port, set())
            refused_to[name] += not allowed
            expected = "open" if allowed and port in listening[name] else "closed"
            if got != expected:
                wrong.append(f"{source} -> {name}:{port}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)
    # Of the resets, the firewall sent exactly those to the clients the policy refuses (the
    # others came from closed ports: the passive mailstore node's, HTTPS without the panel).
    refused = {name: refused_count(platform, name) - refused_before[name] for name in targets}
    assert refused == refused_to


def refused_by_firewall(platform, target: str, source: str | None, port: int) -> None:
    """From lab host `source` (None: the machine), a connection to the target's port gets
    Connection refused, and the target's firewall is what refused it."""
    address = str(platform.inventory.host(target).private_ip)
    before = refused_count(platform, target)
    with pytest.raises(ConnectionRefusedError):
        if source is None:
            socket.create_connection((address, port), timeout=10)
        else:
            proxied.connect_from(platform.lab, source, address, port, timeout=10)
    assert refused_count(platform, target) > before, (source, target, port)


def test_a_private_host_cannot_hand_postfix_a_client_address(platform):
    """Issue 9 B as reported: from the db host, 'PROXY TCP4 127.0.0.1 <mx> 40000 25' then a
    relay to the outside. The connection is refused before a byte of it is sent; so it is from
    every other host that is not the SMTP balancer."""
    others = [platform.hosts(role)[0] for role in ("db", "web", "mailstore")]
    for mx in platform.hosts("mx"):
        for source in [*others, platform.internet, None]:
            refused_by_firewall(platform, mx, source, 25)


@pytest.mark.parametrize("claimed", ["127.0.0.1", "::1"])
def test_a_client_the_balancer_hands_over_as_loopback_cannot_relay(platform, claimed):
    """Even through the balancer (the one sender of PROXY headers), a loopback client is not
    trusted: mynetworks has no say on the internet-facing listeners."""
    session = platform.mx_session(platform.hosts("mx")[0], claimed)
    try:
        assert session.mail("a@peer.test")[0] == 250
        code, reply = session.rcpt("x@peer.test")
        assert code == 554 and b"Relay access denied" in reply, (code, reply)
    finally:
        session.close()


def test_lmtp_takes_deliveries_from_the_mx_hosts_only(platform):
    store = platform.hosts("mailstore")[0]
    address = str(platform.inventory.host(store).private_ip)
    for mx in platform.hosts("mx"):
        with proxied.connect_from(platform.lab, mx, address, dovecot.LMTP_PORT) as sock:
            greeting = sock.recv(1024)
            sock.sendall(b"LHLO probe.test\r\n")
            assert sock.recv(1024).startswith(b"250-"), mx
        assert greeting.startswith(b"220 ") and b"Dovecot ready" in greeting, greeting
    lb = platform.hosts("loadbalancer")[0]
    others = [platform.hosts(role)[0] for role in ("db", "web")] + [lb, platform.internet, None]
    for source in others:
        for port in (dovecot.LMTP_PORT, dovecot.SASL_PORT):
            refused_by_firewall(platform, store, source, port)


def test_rspamds_controller_asks_every_client_for_its_password(platform):
    url = f"http://127.0.0.1:{rspamd.CONTROLLER_PORT}/stat"
    for mx in platform.hosts("mx"):
        status = f"curl -s -o /dev/null -w '%{{http_code}}' {url}"
        for header in ("", "-H 'Password: wrong'"):
            assert platform.sh(mx, f"{status} {header}") == "401", (mx, header)
        password = f'-H "Password: $(cat {rspamd.CONTROLLER_PASSWORD_FILE})"'
        assert platform.sh(mx, f"{status} {password}") == "200", mx
        # The operators' way (docs/operations.md), as the filter tests use it.
        assert "Messages scanned" in platform.rspamc(mx, "stat")


CLAMD_PING = f"""
import socket
sock = socket.socket(socket.AF_UNIX)
try:
    sock.connect({clamav.CLAMD_SOCKET!r})
except PermissionError:
    print("refused")
else:
    sock.sendall(b"zPING\\0")
    print(sock.recv(16).rstrip(b"\\0").decode())
"""


def test_clamds_socket_answers_rspamd_alone(platform):
    for mx in platform.hosts("mx"):
        mode = platform.sh(mx, f"stat -c '%a %U %G' {clamav.CLAMD_SOCKET}").split()
        assert mode == ["660", "clamav", clamav.SOCKET_GROUP], (mx, mode)
        for user, answer in (("_rspamd", "PONG"), ("nobody", "refused"), ("postfix", "refused")):
            got = platform.sh(mx, f"runuser -u {user} -- python3 -", stdin=CLAMD_PING).strip()
            assert got == answer, (mx, user, got)


def test_a_new_client_comes_in_by_settings_and_the_deploy_keeps_its_own_way_in(platform):
    """network.firewall.allow lets a monitoring server (the internet host plays it) reach the
    policy service's metrics; the deploy reloads the ruleset while connected, and restoring the
    settings closes the port again."""
    mx = platform.hosts("mx")[0]
    address = str(platform.inventory.host(mx).private_ip)
    metrics = platform.settings.mail.policy_service.metrics_port
    monitor = str(platform.state.internet_address)
    refused_by_firewall(platform, mx, platform.internet, metrics)
    allowance = {
        "role": "mx",
        "port": metrics,
        "sources": [f"{monitor}/32"],
        "description": "Prometheus scrapes the policy service",
    }
    with platform.deployed_variant({"network": {"firewall": {"allow": [allowance]}}}, [mx]) as run:
        assert run.returncode == 0, run.output[-3000:]
        target = [(None, address, metrics)]
        assert run_probe(platform, platform.internet, target) == ["open"]
        assert "Prometheus scrapes the policy service" in platform.sh(mx, "nft list ruleset")
    refused_by_firewall(platform, mx, platform.internet, metrics)

"""Every alert rule fires in the lab, from real exporters, and reaches the operator: in
Alertmanager, at the webhook (a receiver on the machine's bridge address, where the lab points
`monitoring.notifications.webhook_urls`) and by mail through the platform into the operator's
mailbox; when the causes are gone, each resolves.

One state for all: every condition is caused at once, directly (a stopped service, deferred
mail, small file systems filled, Valkey's limit lowered to what it holds, a certificate about to
expire, an unused replication slot and a Patroni standby that stopped replaying, a backup's report from
1970, a burst against the recipient limit); the lab stack's short intervals and `for` durations
let all of them fire within a minute or two.
"""

import contextlib
import email
import http.server
import imaplib
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstack.deploy.deployment import REPOSITORY
from mailstack.services import (
    alert_rules,
    certificates,
    exporters,
    monitoring,
    patroni,
    policyd,
    textfile,
    valkey,
)
from mailstack.settings import load_stack_file
from mailstack.settings.monitoring import alert_sender
from mailstack.testing.drills import Clusters

pytestmark = pytest.mark.lab

# Debian's node exporter leaves out file systems under /mnt, /media and /run.
FILL_LOW = "/srv/mailstack-alert-low"
FILL_FULL = "/srv/mailstack-alert-full"
SLOT = "mailstack_alert_test"
BACKUP_REPORT = f"{textfile.TEXTFILE_DIR}/mailstack_backup_alerttest.prom"
UNREACHABLE = "192.0.2.1"
"""TEST-NET-1: the lab hosts have no route to it, so mail for it is deferred at once."""
ALERTS = [
    a.name for a in alert_rules.alerts(load_stack_file(REPOSITORY / "stacks/Pulumi.lab.yaml"))
]


class Receiver(http.server.ThreadingHTTPServer):
    """Alertmanager's webhook notifications, as they arrive."""

    def __init__(self, address: tuple[str, int]):
        self.notifications: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(address, Handler)

    def alerts(self, status: str) -> list[dict]:
        return [a for n in self.notifications for a in n["alerts"] if a["status"] == status]


def matches(alert: dict, name: str, labels: dict) -> bool:
    return alert["labels"].get("alertname") == name and all(
        alert["labels"].get(k) == v for k, v in labels.items()
    )


class Alerting:
    """The lab's monitoring as the operator sees it."""

    def __init__(self, platform):
        self.platform = platform
        web = platform.inventory.with_role(monitoring.ROLE)[0]
        self.alertmanager = f"http://{web.private_ip}:{monitoring.ALERTMANAGER_PORT}"
        self.prometheus = f"http://{web.private_ip}:{monitoring.PROMETHEUS_PORT}"

    def get(self, url: str):
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def active(self) -> list[dict]:
        return self.get(f"{self.alertmanager}/api/v2/alerts")

    def query(self, expression: str) -> list[dict]:
        query = urllib.parse.urlencode({"query": expression})
        return self.get(f"{self.prometheus}/api/v1/query?{query}")["data"]["result"]


# --- the causes ---------------------------------------------------------------------------


@contextlib.contextmanager
def stopped(platform, host: str, unit: str) -> Iterator[None]:
    platform.sh(host, f"systemctl stop {unit}")
    try:
        yield
    finally:
        platform.sh(host, f"systemctl start {unit}")


@contextlib.contextmanager
def deferred_mail(platform, host: str, count: int) -> Iterator[None]:
    """Mail the mx cannot deliver and keeps deferred."""
    tag = uuid.uuid4().hex[:8]
    for number in range(count):
        platform.sh(
            host,
            f"sendmail -f alerttest@{platform.domain} alert-{tag}-{number}@[{UNREACHABLE}]",
            stdin=f"Subject: alert test {tag}\n\nundeliverable\n",
        )
    try:
        yield
    finally:
        queued = [json.loads(line) for line in platform.sh(host, "postqueue -j").splitlines()]
        ids = [m["queue_id"] for m in queued if any(tag in r["address"] for r in m["recipients"])]
        for queue_id in ids:
            platform.sh(host, f"postsuper -d {queue_id}")


@contextlib.contextmanager
def filled(platform, host: str, mountpoint: str, percent: int) -> Iterator[None]:
    """A small file system at `mountpoint`, filled to `percent`."""
    platform.sh(host, f"mkdir -p {mountpoint} && mount -t tmpfs -o size=1m tmpfs {mountpoint}")
    try:
        platform.sh(
            host,
            f"dd if=/dev/zero of={mountpoint}/fill bs=4k count={256 * percent // 100}"
            " 2>/dev/null || true",
        )
        yield
    finally:
        platform.sh(host, f"umount {mountpoint}")


@contextlib.contextmanager
def valkey_nearly_full(platform, host: str) -> Iterator[None]:
    """Valkey's limit lowered to what it holds (93 % used)."""
    password = json.loads(Path(platform.lab.state_dir / "secrets.json").read_text())[
        valkey.PASSWORD_SECRET
    ]
    cli = (
        f"valkey-cli -h {platform.inventory.host(host).private_ip} --no-auth-warning -a {password}"
    )
    original = platform.sh(host, f"{cli} config get maxmemory").split()[-1]
    info = platform.sh(host, f"{cli} info memory")
    used = int(
        next(line for line in info.splitlines() if line.startswith("used_memory:")).split(":")[1]
    )
    platform.sh(host, f"{cli} config set maxmemory {int(used / 0.93)}")
    try:
        yield
    finally:
        platform.sh(host, f"{cli} config set maxmemory {original}")


@contextlib.contextmanager
def expiring_certificate(platform, host: str) -> Iterator[None]:
    """A certificate that expires in two days, where the host's is (the passive mailstore
    node's, which serves nothing now)."""
    paths = (certificates.CERTIFICATE, certificates.PRIVATE_KEY)
    for path in paths:
        platform.sh(host, f"cp -a {path} {path}.alert-test")
    report = f"systemctl start {exporters.CERTIFICATE_METRICS}.service"
    try:
        platform.sh(
            host,
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
            f" -subj /CN=alert.test -keyout {paths[1]} -out {paths[0]} 2>/dev/null && {report}",
        )
        yield
    finally:
        for path in paths:
            platform.sh(host, f"mv {path}.alert-test {path}")
        platform.sh(host, report)


@contextlib.contextmanager
def old_backup(platform, host: str) -> Iterator[None]:
    """A backup's report, as the backup work will write it, of a success in 1970."""
    metric = alert_rules.BACKUP_METRIC
    platform.sh(
        host,
        f"printf '%s\\n' '{metric}{{backup=\"alerttest\"}} 0' > {BACKUP_REPORT}.tmp"
        f" && mv {BACKUP_REPORT}.tmp {BACKUP_REPORT}",
    )
    try:
        yield
    finally:
        platform.sh(host, f"rm -f {BACKUP_REPORT}")


def psql(platform, host: str, sql: str) -> str:
    return platform.sh(host, f'runuser -u postgres -- psql -tAc "{sql}"')


@contextlib.contextmanager
def unused_slot(platform, primary: str) -> Iterator[None]:
    psql(platform, primary, f"SELECT pg_create_physical_replication_slot('{SLOT}', true)")
    try:
        yield
    finally:
        psql(
            platform,
            primary,
            f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            f" WHERE slot_name = '{SLOT}'",
        )


DELAY_REPLAY = """
import sys, yaml
path, delay = sys.argv[1], sys.argv[2]
with open(path) as file:
    config = yaml.safe_load(file)
config["postgresql"].setdefault("recovery_conf", {})["recovery_min_apply_delay"] = delay
config.setdefault("tags", {})["nofailover"] = True
with open(path, "w") as file:
    yaml.safe_dump(config, file)
"""


@contextlib.contextmanager
def lagging_standby(platform, primary: str, standby: str) -> Iterator[None]:
    """One of Patroni's standbys holds back its replay by an hour while the primary writes on:
    it receives the WAL (so commits are not held up) and falls behind by megabytes. Patroni
    resumes a replay paused by hand and drops a delay set with ALTER SYSTEM, so the delay goes
    through its own configuration, and the standby may not be promoted meanwhile."""
    config = patroni.CONFIG
    platform.sh(standby, f"cp -a {config} {config}.alert-test")
    try:
        platform.sh(standby, f"python3 - {config} 1h", stdin=DELAY_REPLAY)
        platform.sh(standby, f"systemctl reload {patroni.UNIT}")
        deadline = time.monotonic() + 30
        while psql(platform, standby, "SHOW recovery_min_apply_delay").strip() != "1h":
            assert time.monotonic() < deadline, "Patroni did not apply the replay delay"
            time.sleep(1)
        # A commit the standby now waits an hour to replay, then megabytes of WAL behind it.
        psql(platform, primary, "CREATE TEMPORARY TABLE alert_test () ; SELECT txid_current()")
        psql(
            platform,
            primary,
            "SELECT pg_logical_emit_message(false, 'mailstack-alert-test', repeat('x', 1000000))"
            " FROM generate_series(1, 3)",
        )
        yield
    finally:
        platform.sh(standby, f"mv {config}.alert-test {config}")
        platform.sh(standby, f"systemctl reload {patroni.UNIT}")


REFUSALS = r"""
import socket, sys
user, limit, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
connection = socket.create_connection(("127.0.0.1", int(sys.argv[4])), timeout=10)
replies = connection.makefile("rb")
def ask(**attributes):
    attributes = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                  "sasl_username": user, "instance": "alerttest." + user, **attributes}
    connection.sendall("".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n")
    answer = replies.readline().decode().strip()
    replies.readline()
    return answer
answers = [ask(recipient=f"r{i}@peer.test") for i in range(limit + extra)]
ask(protocol_state="END-OF-MESSAGE", recipient="", recipient_count=str(limit))
print(sum(a != "action=DUNNO" for a in answers))
"""


def refused_burst(platform, host: str, user: str, extra: int) -> None:
    """One user's transaction past the recipient limit, straight to the policy service the way
    Postfix asks it: `extra` recipients refused, the rest charged at the end of the message."""
    settings = platform.settings
    limit = settings.mail.outbound_limit.default.recipients
    port = settings.mail.policy_service.port
    refused = platform.sh(host, f"python3 - {user} {limit} {extra} {port}", stdin=REFUSALS)
    assert int(refused) == extra, refused


# --- fixtures -----------------------------------------------------------------------------


def expected(platform, user: str, primary: str) -> dict[str, dict]:
    """Per alert: labels the test's own cause gives it (`primary`: Patroni's leader)."""
    mx1, mx2 = platform.mx_hosts()[:2]
    db = platform.host_name("db")
    passive = platform.hosts("mailstore")[1]
    return {
        "ServiceDown": {"job": "policyd", "instance": mx2},
        "MailQueueLarge": {"instance": mx1},
        "DeferredMailOld": {"instance": mx1},
        "PostgreSQLReplicationLag": {"instance": primary},
        "PostgreSQLStandbyMissing": {"instance": primary, "slot_name": SLOT},
        "DiskSpaceLow": {"instance": mx1, "mountpoint": FILL_LOW},
        "DiskSpaceCritical": {"instance": mx1, "mountpoint": FILL_FULL},
        "MailVolumeFilling": {"instance": passive, "mountpoint": alert_rules.MAIL_ROOT},
        "ValkeyMemoryHigh": {"instance": db, "valkey": "policy"},
        "CertificateExpiresSoon": {"instance": passive},
        "BackupTooOld": {"instance": db, "backup": "alerttest"},
        "OutboundRefusalsSpike": {},
        "MailboxOutboundRefusals": {"user": user},
    }


@pytest.fixture(scope="module")
def operator(platform):
    """The operator's mailbox on the platform (the lab stack's notifications.email_to)."""
    address = platform.settings.monitoring.notifications.email_to[0]
    password = uuid.uuid4().hex
    added = platform.panel(
        "mailbox", "add", address, "--password-stdin", stdin=password + "\n", check=False
    )
    if address not in added:
        platform.panel("mailbox", "change", address, "--password-stdin", stdin=password + "\n")
    return address, password


@pytest.fixture(scope="module")
def receiver(platform):
    state = platform.state
    server = Receiver((str(state.gateway), state.lab.alert_webhook_port))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Fired:
    def __init__(self, alerting, receiver, expected, causes):
        self.alerting, self.receiver, self.expected, self.causes = (
            alerting,
            receiver,
            expected,
            causes,
        )
        self.seen: dict[str, dict] = {}

    def wait(self, timeout: float) -> None:
        """Until every expected alert was active in Alertmanager with its labels."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < len(self.expected) and time.monotonic() < deadline:
            for alert in self.alerting.active():
                for name, labels in self.expected.items():
                    if name not in self.seen and matches(alert, name, labels):
                        self.seen[name] = alert
            time.sleep(2)


@pytest.fixture(scope="module")
def fired(platform, operator, receiver):
    user = f"alerttest-{uuid.uuid4().hex[:8]}@{platform.domain}"
    mx1, mx2 = platform.mx_hosts()[:2]
    db = platform.host_name("db")
    clusters = Clusters(platform)
    primary = clusters.primary()
    assert primary, "the database cluster has no leader"
    # The asynchronous standby: the synchronous one keeps acknowledging commits.
    standby = next(m["Member"] for m in clusters.patroni_members() if m["Role"] == "Replica")
    passive = platform.hosts("mailstore")[1]
    queue = platform.settings.monitoring.alerts.mail_queue
    with contextlib.ExitStack() as causes:
        causes.enter_context(stopped(platform, mx2, policyd.UNIT))
        causes.enter_context(
            deferred_mail(platform, mx1, max(queue.messages, queue.deferred_messages) + 1)
        )
        causes.enter_context(filled(platform, mx1, FILL_LOW, 90))
        causes.enter_context(filled(platform, mx1, FILL_FULL, 100))
        causes.enter_context(filled(platform, passive, alert_rules.MAIL_ROOT, 100))
        causes.enter_context(valkey_nearly_full(platform, db))
        causes.enter_context(expiring_certificate(platform, passive))
        causes.enter_context(old_backup(platform, db))
        causes.enter_context(unused_slot(platform, primary))
        causes.enter_context(lagging_standby(platform, primary, standby))
        refused_burst(
            platform,
            mx1,
            user,
            extra=platform.settings.monitoring.alerts.outbound.mailbox_refused + 2,
        )
        state = Fired(Alerting(platform), receiver, expected(platform, user, primary), causes)
        state.user = user
        state.wait(timeout=240)
        yield state


@pytest.mark.parametrize("name", ALERTS)
def test_the_alert_fires_in_alertmanager(fired, name):
    assert name in fired.seen, f"{name} never fired; fired: {sorted(fired.seen)}"
    assert fired.seen[name]["annotations"]["runbook"].startswith("docs/operations.md#alert-")


def test_a_critical_disk_silences_its_low_space_alert(fired):
    full = {"instance": fired.expected["DiskSpaceCritical"]["instance"], "mountpoint": FILL_FULL}
    inhibited = [a for a in fired.alerting.active() if matches(a, "DiskSpaceLow", full)]
    assert inhibited and all(a["status"]["inhibitedBy"] for a in inhibited), inhibited


def test_every_alert_reaches_the_webhook(fired):
    deadline = time.monotonic() + 60
    while True:
        missing = [
            name
            for name, labels in fired.expected.items()
            if not any(matches(a, name, labels) for a in fired.receiver.alerts("firing"))
        ]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, f"not at the webhook: {missing}"


def test_every_alert_reaches_the_operators_mailbox_through_the_platform(fired, operator, platform):
    address, password = operator
    deadline = time.monotonic() + 90
    while True:
        with imaplib.IMAP4_SSL(
            platform.access_address, 993, ssl_context=platform.client_tls()
        ) as imap:
            imap.login(address, password)
            imap.select("INBOX")
            missing = [
                name
                for name in fired.expected
                if not imap.search(None, "SUBJECT", "FIRING", "SUBJECT", name)[1][0]
            ]
            if not missing:
                _, found = imap.search(None, "SUBJECT", "ServiceDown")
                _, data = imap.fetch(found[0].split()[-1], "(RFC822)")
                message = data[0][1]
                break
        assert time.monotonic() < deadline, f"no mail for {missing}"
        platform.flush_mx()
        time.sleep(3)
    # Sent through the mx hosts and signed like the operator's own mail.
    mail = email.message_from_bytes(message)
    assert alert_sender(platform.settings) in mail["From"]
    assert f"d={platform.domain};" in mail["DKIM-Signature"].replace(" ", ""), mail[
        "DKIM-Signature"
    ]


def test_per_mailbox_counters_reach_prometheus(fired, platform):
    limit = platform.settings.mail.outbound_limit.default.recipients
    sent = fired.alerting.query(f'policyd_sent_recipients_total{{user="{fired.user}"}}')
    refused = fired.alerting.query(f'policyd_refused_total{{user="{fired.user}"}}')
    assert [float(r["value"][1]) for r in sent] == [limit]
    assert [(r["metric"]["reason"], float(r["value"][1])) for r in refused] == [
        ("limit", platform.settings.monitoring.alerts.outbound.mailbox_refused + 2)
    ]


def test_alerts_resolve_once_their_causes_are_gone(fired):
    fired.causes.close()
    deadline = time.monotonic() + 180
    while True:
        unresolved = [
            name
            for name, labels in fired.expected.items()
            if not any(matches(a, name, labels) for a in fired.receiver.alerts("resolved"))
        ]
        if not unresolved or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert not unresolved, f"never resolved: {unresolved}"

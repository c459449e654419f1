"""Failure drills of the db clusters, each with traffic flowing (mailstack.testing.drills):
the PostgreSQL primary's host killed, the primary cut off from the other db nodes, the Valkey
primary's host killed, and each killed host coming back and rejoining, then a deploy that
changes nothing. Every drill recovers in place and prints its figures (`-s` shows them).

Goals (issue 11): a new primary takes writes within database.failover_bound_seconds; no
acknowledged row lost; no failed lookups; no accepted mail lost; no acknowledged write on an
isolated old primary once the new one took writes; policy decisions go on through the new Valkey
primary, submission meanwhile deferred (4xx), never let past the limit.
"""

import imaplib
import json
import time
import uuid

import pytest

from mailstack.testing.drills import DRILL_SENDER, Clusters, Traffic, panel_sql
from mailstack.testing.platform import DELIVERY_FOLDERS, message

pytestmark = pytest.mark.lab

DRILL_SECONDS = 75
"""Traffic per drill: a failover (ttl 20 s + a loop) and time to see traffic settle after it."""


@pytest.fixture(scope="module")
def clusters(platform) -> Clusters:
    clusters = Clusters(platform)
    clusters.wait_healthy()
    return clusters


@pytest.fixture
def drill_table(platform, clusters):
    """A table of numbered rows owned by the panel's role, written through the panel's path."""
    table = f"ha_drill_{uuid.uuid4().hex[:8]}"
    panel_sql(
        platform, f"CREATE TABLE {table} (n integer PRIMARY KEY, at timestamptz DEFAULT now())"
    )
    yield table
    panel_sql(platform, f"DROP TABLE IF EXISTS {table}")


@pytest.fixture(scope="module")
def mailboxes(platform) -> list:
    """A sender and a recipient; the traffic's inbound triplet has passed greylisting."""
    sender, recipient = platform.new_mailbox(), platform.new_mailbox()
    inbound = message(
        "warm-up", "greylisting", DRILL_SENDER.format(platform.peer_domain), recipient.address
    )
    # A database event just before (the self-restore drill of test_database_backup.py ends every
    # session): each of Dovecot's pooled connections fails its first lookup after it, and the
    # mail waits (450 "Temporary internal error"); a real MTA retries, so does the warm-up.
    deadline = time.monotonic() + 120
    while True:
        try:
            code, reply = platform.send_inbound(inbound, recipient.address)
            break
        except AssertionError as refused:
            if "450" not in str(refused) or time.monotonic() > deadline:
                raise
            time.sleep(3)
    assert code == 250, (code, reply)
    return [sender, recipient]


def rows_on_primary(platform, table: str) -> set[int]:
    return {int(line) for line in panel_sql(platform, f"SELECT n FROM {table}").split()}


def delivered(platform, mailbox, markers: list[str], timeout: float = 240) -> set[str]:
    """The markers found in the mailbox, waiting (and flushing the queues) until all are there."""
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while True:
        with imaplib.IMAP4_SSL(
            platform.access_address, 993, ssl_context=platform.client_tls()
        ) as imap:
            imap.login(mailbox.address, mailbox.password)
            found = set()
            for folder in DELIVERY_FOLDERS:
                if imap.select(folder, readonly=True)[0] != "OK":
                    continue
                _, numbers = imap.search(None, "ALL")
                if numbers[0]:
                    _, data = imap.fetch(
                        b",".join(numbers[0].split()), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
                    )
                    text = b" ".join(p[1] for p in data if isinstance(p, tuple)).decode()
                    found |= {m for m in markers if m in text}
        if found == set(markers) or time.monotonic() > deadline:
            return found
        platform.flush_mx()
        time.sleep(5)


def report(name: str, figures: dict) -> None:
    print(f"\nDRILL {name}: {json.dumps(figures, indent=2)}")


def check_common(platform, traffic: Traffic, table: str, mailbox, figures: dict) -> None:
    acknowledged = traffic.acknowledged_rows()
    present = rows_on_primary(platform, table)
    lost_rows = sorted(set(acknowledged) - present)
    arrived = delivered(platform, mailbox, traffic.accepted)
    lost_mail = sorted(set(traffic.accepted) - arrived)
    figures.update(
        acknowledged_rows=len(acknowledged),
        lost_rows=len(lost_rows),
        accepted_mail=len(traffic.accepted),
        lost_mail=len(lost_mail),
        lookup_failures=[e.detail for e in traffic.failures("lookup")],
        other_failures={
            kind: [[round(e.at - traffic.started, 1), *e.detail] for e in traffic.failures(kind)]
            for kind in ("write", "imap", "submission", "inbound")
        },
    )
    assert lost_rows == [], f"acknowledged rows missing: {lost_rows}"
    assert lost_mail == [], f"accepted mail missing: {lost_mail}"


def test_primary_host_killed_then_back(platform, clusters, faults, drill_table, mailboxes):
    """Drills 1 and 4: kill -9 of the PostgreSQL primary's host, with traffic; then it boots
    again, rejoins both clusters by itself, and a deploy of the db nodes changes nothing."""
    bound = platform.settings.database.failover_bound_seconds
    primary = clusters.primary()
    assert primary, "no primary before the drill"
    with Traffic(platform, drill_table, mailboxes, DRILL_SECONDS) as traffic:
        time.sleep(8)
        killed_at = time.time()
        faults.kill(primary)
    survivors = [h for h in clusters.db if h != primary]
    new_primary = clusters.primary(survivors)
    figures = {
        "killed": primary,
        "new_primary": new_primary,
        **traffic.summary(killed_at),
    }
    write_gap = traffic.first_ok_after("write", killed_at)
    check_common(platform, traffic, drill_table, mailboxes[1], figures)
    faults.start(primary)
    figures["rejoined_after_boot_s"] = round(clusters.wait_healthy(), 1)
    report("primary host killed", figures)

    assert new_primary and new_primary != primary
    assert write_gap is not None and write_gap <= bound, f"first write {write_gap} s after"
    assert figures["lookup"]["failed"] == 0, figures["lookup_failures"]
    assert not traffic.failures("imap"), traffic.failures("imap")
    result = platform.deploy("db")
    assert result.returncode == 0, result.output[-3000:]
    assert result.changed_operations == [], "\n".join(result.changed_operations)


def test_partition_isolating_the_primary(platform, clusters, faults, drill_table, mailboxes):
    """Drill 2: the primary cut off from both other db nodes (still reachable from the rest):
    it stops taking writes, another takes over, no write is acknowledged on the old one after
    that; healed, it rejoins as a replica without a hand on it."""
    primary = clusters.primary()
    others = [h for h in clusters.db if h != primary]
    old_address = str(platform.inventory.host(primary).private_ip)
    with Traffic(platform, drill_table, mailboxes, DRILL_SECONDS) as traffic:
        time.sleep(8)
        cut_at = time.time()
        for other in others:
            faults.partition(primary, other)
    new_primary = clusters.primary(others)
    rows = traffic.acknowledged_rows()
    new_address = str(platform.inventory.host(new_primary).private_ip) if new_primary else None
    first_on_new = min((at for at, server in rows.values() if server == new_address), default=None)
    late_on_old = [
        n for n, (at, server) in rows.items()
        if server == old_address and first_on_new is not None and at >= first_on_new
    ]  # fmt: skip
    old_role = platform.sh(
        primary, "runuser -u postgres -- psql -XtAc 'SELECT pg_is_in_recovery()'"
    )
    figures = {
        "isolated": primary,
        "new_primary": new_primary,
        "old_primary_in_recovery": old_role.strip(),
        "acknowledged_on_old_after_new_took_writes": len(late_on_old),
        "first_write_on_new_primary_s": round(first_on_new - cut_at, 2) if first_on_new else None,
        **traffic.summary(cut_at),
    }
    check_common(platform, traffic, drill_table, mailboxes[1], figures)
    faults.heal()
    healed_at = time.monotonic()
    clusters.wait_healthy()
    figures["rejoined_after_heal_s"] = round(time.monotonic() - healed_at, 1)
    report("primary isolated", figures)

    assert new_primary in others
    assert old_role.strip() == "t", "the isolated node still runs as a primary"
    assert late_on_old == []
    assert figures["lookup"]["failed"] == 0, figures["lookup_failures"]


def test_valkey_primary_host_killed_then_back(platform, clusters, faults, drill_table, mailboxes):
    """Drills 3 and 4: the host of the policy service's Valkey primary killed: decisions go on
    through the new primary; meanwhile inbound mail is accepted or deferred, submission deferred
    (4xx), nothing accepted is lost; the host comes back and rejoins."""
    victim = clusters.valkey_primary("policy")
    filters_primary_before = clusters.valkey_primary("filters")
    if clusters.primary() == victim:
        # This drill is Valkey's: move PostgreSQL's primary away first, by the operators'
        # planned switchover.
        clusters.switchover(away_from=victim)
        clusters.wait_healthy()
    counter = ValkeyCounter(platform)
    with Traffic(platform, drill_table, mailboxes, DRILL_SECONDS) as traffic, counter:
        time.sleep(8)
        killed_at = time.time()
        faults.kill(victim)
    survivors = [h for h in clusters.db if h != victim]
    new_primary = clusters.valkey_primary("policy", survivors)
    submissions = traffic.of("submission")
    refused = [e for e in submissions if not e.ok]
    figures = {
        "killed": victim,
        "new_valkey_primary": new_primary,
        "policy_decisions_again_after_s": round(counter.first_ok_after(killed_at) or -1, 2),
        "valkey_writes_acknowledged_then_lost": counter.lost(),
        "submission_refusals": [e.detail[0] for e in refused],
        **traffic.summary(killed_at),
    }
    check_common(platform, traffic, drill_table, mailboxes[1], figures)
    faults.start(victim)
    figures["rejoined_after_boot_s"] = round(clusters.wait_healthy(), 1)
    figures["filters_primary_moved"] = clusters.valkey_primary("filters") != filters_primary_before
    report("Valkey primary host killed", figures)
    # rspamd writes to whichever node is the filters primary now: learning through the
    # controller (as an operator or a Junk move does) works on every mx at once.
    for mx in platform.hosts("mx"):
        learned = message(
            f"learn after failover {uuid.uuid4().hex}",
            " ".join(uuid.uuid4().hex for _ in range(40)),
            DRILL_SENDER,
            mailboxes[0].address,
        )
        answer = platform.rspamc(mx, "learn_ham", stdin=learned.as_bytes())
        assert "success = true" in answer, (mx, answer)

    assert new_primary != victim
    # Refused submissions are deferrals: the limit is never skipped for lack of its store.
    assert all(e.detail[0].startswith("4") for e in refused), refused
    assert traffic.first_ok_after("submission", killed_at) is not None


class ValkeyCounter:
    """An INCR loop on the policy instance's primary, found through the Sentinels as the policy
    service finds it, from an mx: what Valkey acknowledged and what survived the failover."""

    SCRIPT = r"""
import sys, time, valkey
from valkey.sentinel import Sentinel
sentinels = [(h, 26379) for h in sys.argv[1].split(",")]
key, password, deadline = sys.argv[2], sys.argv[3], time.time() + float(sys.argv[4])
sentinel = Sentinel(sentinels, socket_timeout=0.5, sentinel_kwargs={"socket_timeout": 0.5})
while time.time() < deadline:
    try:
        primary = sentinel.master_for("mailstack-policy", password=password, socket_timeout=0.5)
        value = primary.incr(key)
        print(f"incr 1 {time.time():.3f} {value}", flush=True)
    except Exception as error:
        print(f"incr 0 {time.time():.3f} {type(error).__name__}", flush=True)
        time.sleep(0.1)
    time.sleep(0.05)
try:
    final = Sentinel(sentinels, socket_timeout=2).master_for("mailstack-policy", password=password).get(key)
    print(f"final 1 {time.time():.3f} {int(final)}", flush=True)
except Exception as error:
    print(f"final 0 {time.time():.3f} {type(error).__name__}", flush=True)
"""

    def __init__(self, platform):
        from mailstack.services import valkey

        self.platform = platform
        self.key = f"drill:{uuid.uuid4().hex[:8]}"
        self.args = [
            ",".join(platform.addresses("db")),
            self.key,
            platform.lab_secret(valkey.PASSWORD_SECRET),
            str(DRILL_SECONDS),
        ]
        self.lines: list[tuple[str, bool, float, list[str]]] = []

    def __enter__(self):
        import subprocess

        mx = self.platform.host_name("mx")
        self.process = subprocess.Popen(
            self.platform.lab.ssh_command(
                self.platform.lab.host(mx),
                "/opt/mailstack/venv/bin/python - " + " ".join(self.args),
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.process.stdin.write(self.SCRIPT)
        self.process.stdin.close()
        return self

    def __exit__(self, *_exc):
        out = self.process.stdout.read()
        self.process.wait(timeout=120)
        for line in out.splitlines():
            kind, ok, at, *detail = line.split()
            self.lines.append((kind, ok == "1", float(at), detail))

    def first_ok_after(self, moment: float) -> float | None:
        """Seconds from the kill to the first write the new primary acknowledged."""
        failed = [at for kind, ok, at, _ in self.lines if kind == "incr" and not ok and at > moment]
        if not failed:
            return None
        later = [at for kind, ok, at, _ in self.lines if kind == "incr" and ok and at > failed[0]]
        return later[0] - moment if later else None

    def lost(self) -> int | None:
        """Increments Valkey acknowledged that the final value lacks (asynchronous replication)."""
        acknowledged = [int(d[0]) for kind, ok, _, d in self.lines if kind == "incr" and ok]
        final = [int(d[0]) for kind, ok, _, d in self.lines if kind == "final" and ok]
        if not acknowledged or not final:
            return None
        # After the failover the counter continues from what the new primary had; every value
        # acknowledged before the kill beyond that is lost.
        return max(0, len(acknowledged) - final[0])

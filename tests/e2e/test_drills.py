"""Guaranteed delivery when a node dies: four drills under continuous traffic both ways, every
message the platform answered 250 to checked against where it arrived (mailstack.testing.ledger).

1. The active mailstore node is killed: the other node fences it and takes the mail volume over;
   IMAP answers again within the bound, deliveries wait in the mx queues meanwhile.
2. The active mailstore node's link is cut (it still runs, the volume mounted): it is fenced
   before the other node mounts the volume.
3. An mx node is killed with accepted mail in its queue that it could not deliver yet (the
   mailstore pair was out of its reach): a survivor delivers that queue from its volume.
4. The dead nodes come back: they rejoin, the mx queue volume returns to its node, and a deploy
   finds nothing to change.

All along, no volume is ever mounted on two hosts at once (a watch samples the hosts' mount
tables every 50 ms). Each drill reports accepted, delivered, lost (must be 0), duplicated and the
time to recover; the drills leave every node running and serving.
"""

import json
import re
import time
from dataclasses import dataclass

import pytest

from mailstack.failover import hetzner
from mailstack.services import pacemaker
from mailstack.testing.clusters import Cluster, VolumeWatch, cloud_client, imap_answers
from mailstack.testing.ledger import Ledger, Report
from mailstack.testing.platform import Mailbox, Platform
from mailstack.testing.traffic import Traffic, delivered

pytestmark = pytest.mark.lab

IMAP_BOUND_SECONDS = 30
"""The promise: IMAP answers again within this long after the active mailstore node died."""
SETTLE_SECONDS = 300
"""How long the drill waits for every accepted message to arrive."""
REPORTS: dict[str, str] = {}


@dataclass
class Run:
    platform: Platform
    ledger: Ledger
    traffic: Traffic
    watch: VolumeWatch
    recipients: list[Mailbox]
    senders: list[Mailbox]
    mailstore: Cluster
    mx: Cluster
    cloud: object


@pytest.fixture(scope="module")
def run(platform):
    recipients = [platform.new_mailbox() for _ in range(3)]
    senders = [platform.new_mailbox() for _ in range(4)]
    ledger = Ledger()
    cluster_hosts = platform.hosts("mailstore") + platform.hosts("mx")
    with (
        VolumeWatch(platform.lab, cluster_hosts) as watch,
        Traffic(platform, ledger, recipients, senders) as traffic,
    ):
        yield Run(
            platform, ledger, traffic, watch, recipients, senders,
            Cluster(platform, "mailstore"), Cluster(platform, "mx"), cloud_client(platform),
        )  # fmt: skip
    REPORTS["volume watch"] = (
        f"{watch.samples} samples of every cluster host's mounts, "
        f"{len(watch.overlaps)} with a volume mounted on two hosts"
    )
    print("\n" + "\n".join(REPORTS.values()))
    (platform.lab.state_dir / "drills.json").write_text(json.dumps(REPORTS, indent=2))


def wait_for_imap(platform: Platform, mailbox: Mailbox, since: float, timeout: float) -> float:
    """Seconds from `since` (monotonic) until a client logs in and opens its inbox again."""
    while not imap_answers(platform, mailbox):
        assert time.monotonic() - since < timeout, f"IMAP did not come back within {timeout} s"
        time.sleep(0.5)
    return time.monotonic() - since


def flush_queues(run: Run) -> None:
    """What waited for a node that was away goes now (Postfix would retry at its backoff)."""
    for mx in run.platform.hosts("mx"):
        if run.platform.lab.running(run.platform.lab.host(mx)):
            run.platform.sh(
                mx,
                "postqueue -f; for d in /etc/postfix-*; do postfix -c $d status 2>/dev/null "
                "&& postqueue -c $d -f; done; true",
            )


def settle(run: Run, name: str, since: float, until: float, recovery: float | None) -> Report:
    """Wait until every message accepted in [since, until) arrived (or SETTLE_SECONDS passed),
    then report."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        run.traffic.collect()
        entries = run.ledger.entries(since, until)
        report = Ledger.report(entries, delivered(run.platform, run.recipients))
        if not report.lost or time.monotonic() > deadline:
            break
        flush_queues(run)
        time.sleep(5)
    REPORTS[name] = report.line(name, recovery)
    print("\n" + REPORTS[name])
    return report


def check(run: Run, report: Report) -> None:
    assert report.accepted > 0, "no traffic was accepted during the drill"
    assert not report.lost, f"lost: {report.lost[:10]}"
    assert not run.watch.overlaps, f"a volume was mounted on two hosts: {run.watch.overlaps[:5]}"


def power_on(run: Run, host: str) -> None:
    """An operator powers the fenced server on again; it boots and rejoins its cluster."""
    hetzner.power_on(run.cloud, host, timeout=60)
    lab = run.platform.lab
    lab.wait_ready([lab.host(host)], timeout=lab.state().lab.boot_timeout_seconds)


def other(nodes: list[str], node: str) -> str:
    return next(n for n in nodes if n != node)


def test_1_the_active_mailstore_node_is_killed(run):
    platform, cluster = run.platform, run.mailstore
    (active,) = cluster.running_on("mail")
    survivor = other(cluster.nodes, active)
    since = time.time()
    time.sleep(10)

    killed = time.monotonic()
    platform.lab.faults.kill(active)
    recovery = wait_for_imap(platform, run.recipients[0], killed, IMAP_BOUND_SECONDS + 30)
    assert cluster.running_on("mail") == [survivor]
    assert hetzner.server_status(run.cloud, active)[0].status == "off"
    time.sleep(10)
    until = time.time()

    power_on(run, active)
    cluster.wait("both nodes online", lambda s: len(cluster.online(s)) == 2, 120)
    # The mail group stays with the survivor; the returning node stands by.
    assert cluster.running_on("mail") == [survivor]
    report = settle(run, "1. kill -9 the active mailstore", since, until, recovery)
    check(run, report)
    assert recovery < IMAP_BOUND_SECONDS


def test_2_the_active_mailstore_node_loses_its_link(run):
    platform, cluster = run.platform, run.mailstore
    (active,) = cluster.running_on("mail")
    survivor = other(cluster.nodes, active)
    since = time.time()
    time.sleep(10)

    cut = time.monotonic()
    platform.lab.faults.cut_link(active)
    recovery = wait_for_imap(platform, run.recipients[0], cut, IMAP_BOUND_SECONDS + 30)
    # It was fenced (powered off), not left running with the volume mounted.
    assert hetzner.server_status(run.cloud, active)[0].status == "off"
    assert cluster.running_on("mail") == [survivor]
    platform.lab.faults.clear()
    time.sleep(10)
    until = time.time()
    report = settle(run, "2. cut the active mailstore's link", since, until, recovery)
    check(run, report)
    assert recovery < IMAP_BOUND_SECONDS


def queued(platform: Platform, host: str, config_dir: str | None = None) -> int:
    """Messages in a Postfix instance's queue."""
    option = f"-c {config_dir} " if config_dir else ""
    listing = platform.sh(host, f"postqueue {option}-p")
    found = re.search(r"in (\d+) Requests?\.", listing)
    return int(found[1]) if found else 0


def test_3_an_mx_node_dies_with_mail_in_its_queue(run):
    platform, cluster = run.platform, run.mx
    dead, survivor = cluster.nodes[0], cluster.nodes[1]
    since = time.time()
    # The mailstore pair out of the dead node's reach: what it accepts stays in its queue.
    for node in platform.hosts("mailstore"):
        platform.lab.faults.partition(dead, node)
    deadline = time.monotonic() + 180
    while queued(platform, dead) < 3:
        assert time.monotonic() < deadline, f"{dead} did not accept mail it could not deliver"
        time.sleep(2)
    held = queued(platform, dead)

    killed = time.monotonic()
    platform.lab.faults.kill(dead)
    for node in platform.hosts("mailstore"):
        platform.lab.faults.heal(dead, node)
    takeover = f"takeover-{dead}"
    taken_over = cluster.wait(
        f"{takeover} on {survivor}", lambda s: cluster.running_on(takeover, s) == [survivor], 120
    )
    config_dir = pacemaker.takeover_config_dir(dead)
    while queued(platform, survivor, config_dir):
        assert time.monotonic() - killed < SETTLE_SECONDS, "the dead node's queue was not drained"
        time.sleep(1)
    recovery = time.monotonic() - killed
    print(f"\n{dead} held {held} message(s); taken over after {taken_over:.1f} s")
    time.sleep(10)
    until = time.time()
    report = settle(run, "3. kill -9 an mx with a held queue", since, until, recovery)
    check(run, report)


def test_4_the_dead_nodes_come_back(run):
    platform = run.platform
    since = time.time()
    returned = time.monotonic()
    for host in platform.hosts("mailstore") + platform.hosts("mx"):
        if hetzner.server_status(run.cloud, host)[0].status == "off":
            power_on(run, host)
    for cluster in (run.mailstore, run.mx):
        cluster.wait(
            "every node online", lambda s, c=cluster: len(c.online(s)) == len(c.nodes), 180
        )
    run.mx.wait(
        "every queue at home",
        lambda s: (
            all(run.mx.running_on(f"home-{n}", s) == [n] for n in run.mx.nodes)
            and not any(run.mx.running_on(f"takeover-{n}", s) for n in run.mx.nodes)
        ),
        180,
    )
    assert len(run.mailstore.running_on("mail")) == 1
    recovery = time.monotonic() - returned
    # A deploy converges the returned nodes (and refreshes package lists older than an hour);
    # the second finds nothing to change. Only the drills' nodes: the others did not die.
    for deploy in ("first", "second"):
        result = platform.deploy("mailstore", "mx")
        assert result.returncode == 0, f"{deploy} deploy: {result.output[-3000:]}"
    assert result.changed_operations == [], "\n".join(result.changed_operations)
    time.sleep(10)
    until = time.time()
    report = settle(run, "4. the dead nodes come back", since, until, recovery)
    check(run, report)
    assert run.watch.samples > 1000

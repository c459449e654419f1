"""Failover times, death to service: the mailstore pair and an mx queue takeover, five runs each.

`make bench` (marker `benchmark`), on the deployed test lab; prints its table and writes it to
/var/cache/mailstack/benchmarks/ for docs/benchmarks.md, section "Failover". Each run kills a
node (SIGKILL to every process, as a power loss), times until the service is back, then powers
the node on again and waits until its cluster is whole before the next run.

- mailstore: kill the node running Dovecot; until an IMAP client logs in through the balancer.
- mx: hold one message in mx1's queue (mx1 cut off from the mailstore pair), kill mx1; until
  the survivor's takeover instance runs, and until the held message is in its mailbox. Then
  the handback: mx1 powered on until it serves again from its own queue.
"""

import socket
import statistics
import time
import uuid
from pathlib import Path

import pytest

from mailstack.failover import hetzner
from mailstack.testing.clusters import Cluster, cloud_client, imap_answers
from mailstack.testing.platform import Platform, message

pytestmark = pytest.mark.benchmark

RESULTS = Path("/var/cache/mailstack/benchmarks")
RUNS = 5


def until(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s"
        time.sleep(0.25)
    return time.monotonic() - started


def bring_back(platform: Platform, client, host: str, cluster: Cluster) -> None:
    hetzner.power_on(client, host, timeout=60)
    lab = platform.lab
    lab.wait_ready([lab.host(host)], timeout=lab.state().lab.boot_timeout_seconds)
    cluster.wait("every node online", lambda s: len(cluster.online(s)) == len(cluster.nodes), 180)


def smtp_answers(platform: Platform, host: str) -> bool:
    try:
        with socket.create_connection((str(platform.inventory.host(host).private_ip), 25), 3):
            return True
    except OSError:
        return False


def row(what: str, seconds: list[float]) -> str:
    return (
        f"| {what} | {statistics.median(seconds):.1f} s | {max(seconds):.1f} s | {len(seconds)} |"
    )


def test_failover_times(lab):
    platform = Platform(lab)
    client = cloud_client(platform)
    mailbox = platform.new_mailbox()
    mailstore, mx = Cluster(platform, "mailstore"), Cluster(platform, "mx")

    imap = []
    for _ in range(RUNS):
        (active,) = mailstore.running_on("mail")
        killed = time.monotonic()
        lab.faults.kill(active)
        until(lambda: imap_answers(platform, mailbox), 120, "IMAP")
        imap.append(time.monotonic() - killed)
        print(f"\nmailstore run {len(imap)}: IMAP after {imap[-1]:.1f} s")
        bring_back(platform, client, active, mailstore)

    dead, survivor = mx.nodes
    takeover, delivered, handback = [], [], []
    for _ in range(RUNS):
        for node in platform.hosts("mailstore"):
            lab.faults.partition(dead, node)
        marker = uuid.uuid4().hex
        address = platform.proxied_client_address()
        sender = f"bench@{platform.peer_domain}"
        mail = message("bench", marker, sender, mailbox.address).as_bytes()
        for _attempt in range(2):  # greylisted once per client network
            session = platform.mx_session(dead, address)
            session.mail(sender)
            code, _ = session.rcpt(mailbox.address)
            if code == 250:
                session.data(mail)
                session.quit()
                break
            session.quit()
            time.sleep(platform.settings.mail.greylisting.delay_seconds + 1)
        else:
            raise AssertionError(f"{dead} kept deferring the held message")
        killed = time.monotonic()
        lab.faults.kill(dead)
        for node in platform.hosts("mailstore"):
            lab.faults.heal(dead, node)
        takeover.append(
            mx.wait("takeover", lambda s: mx.running_on(f"takeover-{dead}", s) == [survivor], 180)
        )
        until(lambda m=marker: platform.mailbox_holds(mailbox, m), 300, "the held message")
        delivered.append(time.monotonic() - killed)
        powered = time.monotonic()
        bring_back(platform, client, dead, mx)
        mx.wait("home again", lambda s: mx.running_on(f"home-{dead}", s) == [dead], 180)
        until(lambda: smtp_answers(platform, dead), 60, f"SMTP on {dead}")
        handback.append(time.monotonic() - powered)
        print(
            f"\nmx run {len(handback)}: takeover {takeover[-1]:.1f} s, delivered "
            f"{delivered[-1]:.1f} s, handback {handback[-1]:.1f} s"
        )

    table = "\n".join(
        [
            "| from a node's death (SIGKILL) | median | worst | runs |",
            "|---|---|---|---|",
            row("mailstore: IMAP answers through the balancer again", imap),
            row("mx: the survivor's takeover instance runs", takeover),
            row("mx: a message held in the dead node's queue is in its mailbox", delivered),
            row("mx: from power-on until the node answers SMTP on its own queue again", handback),
        ]
    )
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "failover.md").write_text(table + "\n")

"""Benchmark (not a test): the mail store's off-site backup with 10,000 messages in 100
mailboxes, on the lab (issue 14).

100 new mailboxes get 100 messages each, delivered over LMTP on the serving mailstore node
(the filters are not what is measured): text of 2-6 KiB, every fifth with a 16-48 KiB binary
attachment, so most of it does not compress away. Then, with the timer's own job
(`systemctl start mailstack-backup-mail.service`, restic over SFTP to the lab's storage host):

- the first backup after the fill (every message new to the repository), and how much the
  repository grew;
- ROUNDS incremental backups, each after 1 % more mail (100 messages, one per mailbox);
- ROUNDS restores of one mailbox beside its mail (`restore ADDRESS`: restic restore of that
  Maildir, then `doveadm import`);
- ROUNDS restores of the whole mail store's newest snapshot into a scratch directory on the node
  (`restore-store`, what a rebuild does before Dovecot starts on a new mail volume), removed
  after each.

Reported: seconds (median and range over the rounds) and bytes. Every host shares the machine's
2 cores. `make bench` on the test lab (MAILSTACK_LAB, MAILSTACK_LAB_DEPLOYED=1 for a running
one); results in docs/benchmarks.md, a copy under /var/cache/mailstack/benchmarks/.
"""

import json
import statistics
import time
from pathlib import Path

import pytest

from mailstack.services import backup, dovecot
from mailstack.testing.platform import Platform

pytestmark = pytest.mark.benchmark

MAILBOXES = 100
MESSAGES_EACH = 100
ROUNDS = 3
RESULTS = Path("/var/cache/mailstack/benchmarks")

# Runs on the mailstore node: one LMTP session, one transaction per message.
FILL = r"""
import os, random, smtplib, sys, base64
from email.message import EmailMessage
addresses, each = sys.argv[1].split(","), int(sys.argv[2])
seed, address = int(sys.argv[3]), sys.argv[4]
random.seed(seed)
words = [base64.b32encode(os.urandom(5)).decode().lower() for _ in range(4000)]
with smtplib.LMTP(address, 24) as lmtp:
    for n in range(each):
        for rcpt in addresses:
            message = EmailMessage()
            message["From"] = "bench@peer.test"
            message["To"] = rcpt
            message["Subject"] = f"bench {seed}-{n}"
            message["Message-ID"] = f"<bench-{seed}-{n}-{rcpt}>"
            message.set_content(" ".join(random.choices(words, k=random.randint(250, 750))))
            if n % 5 == 0:
                message.add_attachment(
                    os.urandom(random.randint(16, 48) * 1024),
                    maintype="application", subtype="octet-stream", filename="data.bin",
                )
            lmtp.sendmail("bench@peer.test", [rcpt], message.as_bytes())
"""


def serving_node(platform: Platform) -> str:
    for node in platform.hosts("mailstore"):
        if platform.sh(node, "systemctl is-active dovecot", check=False).strip() == "active":
            return node
    raise AssertionError("Dovecot runs on no mailstore node")


def timed(platform: Platform, node: str, command: str, timeout: float = 3600) -> float:
    started = time.monotonic()
    platform.sh(node, command, timeout=timeout)
    return time.monotonic() - started


def repository_bytes(platform: Platform) -> int:
    path = f"/srv/storage/{platform.lab.name}/mail"
    return int(platform.sh(platform.host_name("internet"), f"du -sb {path}").split()[0])


def fill(platform: Platform, node: str, addresses: list[str], each: int, seed: int) -> float:
    private_ip = platform.inventory.host(node).private_ip
    started = time.monotonic()
    platform.sh(
        node,
        f"python3 - {','.join(addresses)} {each} {seed} {private_ip}",
        stdin=FILL,
        timeout=3600,
    )
    return time.monotonic() - started


def spread(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def test_backup_and_restore_of_10000_messages(lab):
    platform = Platform(lab)
    node = serving_node(platform)
    job = f"systemctl start {backup.UNIT}.service"
    addresses = [platform.new_mailbox().address for _ in range(MAILBOXES)]
    # A run of the timer's job first, so the fill's backup holds only the fill.
    platform.sh(node, job, timeout=3600)
    before = repository_bytes(platform)
    fill_seconds = fill(platform, node, addresses, MESSAGES_EACH, 1)
    stored = int(platform.sh(node, f"du -sb {dovecot.MAIL_ROOT}").split()[0])
    first = timed(platform, node, job)
    after_first = repository_bytes(platform)

    incremental, growth = [], []
    for round_number in range(ROUNDS):
        fill(platform, node, addresses, 1, 100 + round_number)
        size = repository_bytes(platform)
        incremental.append(timed(platform, node, job))
        growth.append(repository_bytes(platform) - size)

    one_mailbox = [
        timed(platform, node, f"{backup.COMMAND} restore {addresses[n]}") for n in range(ROUNDS)
    ]
    everything = []
    scratch = "/var/tmp/mailstack-bench-restore"
    for _ in range(ROUNDS):
        everything.append(
            timed(
                platform,
                node,
                f"rm -rf {scratch} && {backup.COMMAND} restore-store --into {scratch}",
            )
        )
    restored = int(platform.sh(node, f"du -sb {scratch}").split()[0])
    platform.sh(node, f"rm -rf {scratch}")

    results = {
        "messages": MAILBOXES * MESSAGES_EACH,
        "mailboxes": MAILBOXES,
        "fill_seconds": round(fill_seconds, 1),
        "mail_store_bytes": stored,
        "first_backup_seconds": round(first, 1),
        "repository_growth_first_bytes": after_first - before,
        "incremental_seconds": spread(incremental),
        "repository_growth_incremental_bytes": growth,
        "restore_one_mailbox_seconds": spread(one_mailbox),
        "restore_everything_seconds": spread(everything),
        "restored_bytes": restored,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backup.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))

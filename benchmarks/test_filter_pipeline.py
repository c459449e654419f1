"""The whole inbound pipeline against the same Postfix without its milter, in the lab.

`make bench` (marker `benchmark`) on the test lab (`MAILSTACK_LAB`, deployed once per run like
the lab tests; MAILSTACK_LAB_DEPLOYED=1 takes a running lab as it is). Messages go over port 25
straight to one mx, as its balancer hands them over (PROXY protocol), spread over a few
mailboxes. Two rates per slice: *accepted* (all end-of-DATA replies received: what the mx takes
in, where the scan happens) and *delivered* (IMAP shows every message). Each leg runs at every
step of a ladder of client connections, so the table shows where more clients stop adding
throughput (saturation); at each step slices alternate between the legs in the order
bare, full, full, bare, bare, full (ABBA), so that warming up and drift cost both legs alike:

- *full*: postscreen, policy service, rspamd with ClamAV, LMTP into Dovecot, as deployed;
- *bare*: the same, with `smtpd_milters` empty (the scan left out), set with postconf and
  reloaded; main.cf is put back byte for byte afterwards.

Where the time goes: the client's wait for the reply to its end of DATA (the scan happens
there), rspamd's own time per message (its journal), clamd's time for the same message alone
(clamdscan), and Postfix's delays a/b/c/d of each delivery (before the queue manager, in it,
connection set-up, LMTP transmission). Results go to /var/cache/mailstack/benchmarks/ and
docs/benchmarks.md, section "Filter pipeline".
"""

import concurrent.futures
import imaplib
import os
import random
import re
import statistics
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailstack.services import rspamd
from mailstack.testing.platform import DELIVERY_FOLDERS, Platform
from mailstack.testing.proxied import ProxiedSMTP

pytestmark = pytest.mark.benchmark

RESULTS = Path("/var/cache/mailstack/benchmarks")
CONNECTION_LADDER = (4, 16, 48)
"""Concurrent client sessions per step; the last is well past what 2 cores serve."""
MAILBOXES = 8
MESSAGES_PER_SLICE = 96
LEG_ORDER = ("bare", "full", "full", "bare", "bare", "full")
PROSE = (
    "the quarterly figures attached show revenue growth across regions while costs stayed "
    "flat please review the draft before our meeting on thursday and send comments to the team"
)


def bench_message(sender: str, recipient: str, run: str, index: int) -> EmailMessage:
    """About 20 KiB: a text body and a binary attachment, like business mail."""
    chooser = random.Random(f"{run}-{index}")
    words = PROSE.split()
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = recipient
    mail["Subject"] = f"figures {index}"
    mail["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    mail["Message-ID"] = f"<bench-{run}-{index}@peer.test>"
    mail.set_content(" ".join(chooser.choice(words) for _ in range(500)))
    mail.add_attachment(
        chooser.randbytes(12 * 1024), maintype="application", subtype="pdf", filename="q3.pdf"
    )
    return mail


def imap_count(platform: Platform, mailboxes) -> int:
    """Messages delivered to the mailboxes, wherever delivery files them (INBOX or Junk: on a
    lab whose Bayes the suite trained, some of these land in Junk)."""
    total = 0
    for mailbox in mailboxes:
        context = platform.client_tls()
        with imaplib.IMAP4_SSL(platform.access_address, 993, ssl_context=context) as imap:
            imap.login(mailbox.address, mailbox.password)
            for folder in DELIVERY_FOLDERS:
                _, data = imap.status(folder, "(MESSAGES)")
                total += int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))
    return total


def open_sessions(platform, address, client, count: int) -> list[ProxiedSMTP]:
    """`count` SMTP sessions to the mx past its greeting, opened one after another: each is
    relayed by its own SSH session on the balancer host, whose sshd drops handshakes beyond a
    few at once (MaxStartups)."""
    sessions = []
    for _ in range(count):
        smtp = ProxiedSMTP(client, platform.from_balancer("smtp"), timeout=120)
        smtp.connect(address, 25)
        smtp.ehlo("bench.peer.test")
        sessions.append(smtp)
    return sessions


def send_slice(sessions, sender, messages) -> tuple[list[float], float]:
    """Send over the open sessions at once, then close them: each message's wait for its
    end-of-DATA reply, and the seconds from the first MAIL to the last reply."""
    shares = [messages[i :: len(sessions)] for i in range(len(sessions))]

    def session(smtp, share):
        waits = []
        for mail in share:
            smtp.mail(sender)
            code, reply = smtp.rcpt(mail["To"])
            assert code == 250, (code, reply)
            start = time.monotonic()
            code, reply = smtp.data(mail.as_bytes())
            waits.append(time.monotonic() - start)
            assert code == 250, (code, reply)
        smtp.quit()
        return waits

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(sessions)) as pool:
        waits = [w for ws in pool.map(session, sessions, shares) for w in ws]
    return waits, time.monotonic() - start


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def postfix_delays(platform, mx: str, since: str, run: str) -> dict[str, list[float]]:
    """Postfix's delays=a/b/c/d of each delivery of this run's messages."""
    log = platform.sh(mx, f"journalctl -u postfix -o cat --no-pager --since '{since}'")
    queue_ids = set(re.findall(rf"(\w+): message-id=<bench-{run}-", log))
    found: dict[str, list[float]] = {"a": [], "b": [], "c": [], "d": []}
    for line in log.splitlines():
        match = re.search(r"(\w+): to=.* delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)", line)
        if match and match.group(1) in queue_ids and "status=sent" in line:
            for key, value in zip("abcd", match.groups()[1:], strict=True):
                found[key].append(float(value))
    return found


def rspamd_times(platform, mx: str, since: str, run: str) -> list[float]:
    """rspamd's own time per message of this run (milliseconds, from its journal)."""
    log = platform.sh(mx, f"journalctl -u rspamd -o cat --no-pager --since '{since}'")
    return [
        float(t)
        for line in log.splitlines()
        if f"bench-{run}-" in line
        for t in re.findall(r"time: ([\d.]+)ms", line)
    ]


CLAMD_PROBE = """
import subprocess, sys, time
times = []
for _ in range({count}):
    start = time.monotonic()
    subprocess.run(["clamdscan", "--no-summary", "--stream", "{path}"], check=True,
                   stdout=subprocess.DEVNULL)
    times.append((time.monotonic() - start) * 1000)
times.sort()
print(times[len(times) // 2])
"""


def clamd_time(platform, mx: str, mail: EmailMessage) -> float:
    """Median milliseconds for clamdscan to have clamd scan the message (process start included)."""
    path = "/tmp/bench-message.eml"
    platform.sh(mx, f"cat > {path}", stdin=mail.as_bytes())
    out = platform.sh(mx, "python3 -", stdin=CLAMD_PROBE.format(count=15, path=path))
    return float(out.strip())


def set_milter(platform, mx: str, on: bool) -> None:
    value = rspamd.MILTER if on else ""
    platform.sh(mx, f"postconf -e 'smtpd_milters = {value}' && postfix reload")
    # Running smtpd processes keep the old setting until they exit; reload replaces them.
    time.sleep(2)


def test_filter_pipeline_against_bare_postfix(lab):
    platform = Platform(lab)
    mx = platform.mx_hosts()[0]
    address = str(platform.inventory.host(mx).private_ip)
    client = platform.proxied_client_address()
    sender = f"bench-{uuid.uuid4().hex[:6]}@{platform.peer_domain}"
    mailboxes = [platform.new_mailbox() for _ in range(MAILBOXES)]
    run = uuid.uuid4().hex[:8]

    # Past postscreen and greylisting once, so every measured message meets only the pipeline.
    session = platform.mx_session(mx, client)
    session.mail(sender)
    for mailbox in mailboxes:
        session.rcpt(mailbox.address)
    session.quit()
    time.sleep(platform.settings.mail.greylisting.delay_seconds + 1)

    platform.sh(mx, "cp -p /etc/postfix/main.cf /etc/postfix/main.cf.bench")
    since = platform.sh(mx, "date -u '+%Y-%m-%d %H:%M:%S'").strip()
    results = {
        (leg, connections): {"accepted": [], "delivered": [], "waits": []}
        for connections in CONNECTION_LADDER
        for leg in ("full", "bare")
    }
    index = 0
    try:
        for connections in CONNECTION_LADDER:
            for leg in LEG_ORDER:
                set_milter(platform, mx, on=leg == "full")
                messages = [
                    bench_message(
                        sender, mailboxes[i % MAILBOXES].address, f"{run}-{leg}", index + i
                    )
                    for i in range(MESSAGES_PER_SLICE)
                ]
                index += MESSAGES_PER_SLICE
                expected = imap_count(platform, mailboxes) + MESSAGES_PER_SLICE
                result = results[(leg, connections)]
                sessions = open_sessions(platform, address, client, connections)
                start = time.monotonic()
                waits, seconds = send_slice(sessions, sender, messages)
                result["waits"] += waits
                result["accepted"].append(MESSAGES_PER_SLICE / seconds)
                while imap_count(platform, mailboxes) < expected:
                    assert time.monotonic() - start < 600, "deliveries stalled"
                    time.sleep(0.2)
                result["delivered"].append(MESSAGES_PER_SLICE / (time.monotonic() - start))
    finally:
        platform.sh(mx, "mv /etc/postfix/main.cf.bench /etc/postfix/main.cf && postfix reload")

    sample = bench_message(sender, mailboxes[0].address, run, 0)
    scan_ms = rspamd_times(platform, mx, since, f"{run}-full")
    clamd_ms = clamd_time(platform, mx, sample)
    delays = {leg: postfix_delays(platform, mx, since, f"{run}-{leg}") for leg in ("full", "bare")}

    slices = LEG_ORDER.count("full")
    lines = [
        f"{MESSAGES_PER_SLICE} messages of ~{len(sample.as_bytes()) // 1024} KiB per slice to "
        f"{MAILBOXES} mailboxes on {mx}, {slices} slices per leg and step in the order "
        f"{', '.join(LEG_ORDER)}; load average at the end: {os.getloadavg()[0]:.2f} "
        f"({os.cpu_count()} cores)",
        "",
        "| connections | leg | accepted msgs/s median (min-max) | delivered msgs/s median "
        "(min-max) | end-of-DATA wait p50 / p90 ms |",
        "| --- | --- | --- | --- | --- |",
    ]

    def spread(rates: list[float]) -> str:
        return f"{statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f})"

    for (leg, connections), result in results.items():
        waits = [w * 1000 for w in result["waits"]]
        lines.append(
            f"| {connections} | {leg} | {spread(result['accepted'])} | "
            f"{spread(result['delivered'])} | "
            f"{percentile(waits, 0.5):.0f} / {percentile(waits, 0.9):.0f} |"
        )
    lines += ["", "| leg | Postfix delays a / b / c / d ms (median, all steps) |", "| --- | --- |"]
    for leg in ("full", "bare"):
        medians = " / ".join(
            f"{statistics.median(delays[leg][k]) * 1000:.0f}" if delays[leg][k] else "-"
            for k in "abcd"
        )
        lines.append(f"| {leg} | {medians} |")
    lines.append("")
    for connections in CONNECTION_LADDER:
        ratios = [
            statistics.median(results[("full", connections)][kind])
            / statistics.median(results[("bare", connections)][kind])
            for kind in ("accepted", "delivered")
        ]
        lines.append(
            f"{connections} connections: full / bare accepted {ratios[0]:.2f}, "
            f"delivered {ratios[1]:.2f}"
        )
    lines += [
        f"rspamd time per message (its journal), median: "
        f"{statistics.median(scan_ms):.1f} ms over {len(scan_ms)} messages"
        if scan_ms
        else "rspamd time per message: not found in its journal",
        f"clamd scan of one such message alone (clamdscan --stream), median: {clamd_ms:.0f} ms",
    ]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"filters-{stamp}.md").write_text(report)

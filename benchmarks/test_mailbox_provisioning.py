"""Benchmark (not a test): from "create mailbox" to the mailbox's first IMAP login, on the lab.

A domain admin creates a mailbox through the panel's provisioning API (what the panel's form
does, over HTTPS through the HTTP balancer), and a client logs in over IMAPS through the mail
access balancer as soon as the API has answered, retrying every 50 ms until Dovecot lets it in.
Reported per round: the API's answer time and the time from the request to the first login,
with how many logins were refused first; then median, p95 and worst of ROUNDS rounds.
`make bench` on the test lab (MAILSTACK_LAB, MAILSTACK_LAB_DEPLOYED=1 for a running one);
results in docs/benchmarks.md, a copy under /var/cache/mailstack/benchmarks/.
"""

import imaplib
import json
import statistics
import time
import uuid
from pathlib import Path

import pytest
import urllib3

from mailstack.testing.platform import Platform

pytestmark = pytest.mark.benchmark

ROUNDS = 20
RETRY_SECONDS = 0.05
GIVE_UP_SECONDS = 120
RESULTS = Path("/var/cache/mailstack/benchmarks")


def ensure_domain(platform: Platform) -> None:
    if "e2e" not in platform.panel("reseller", "list").split():
        platform.panel("reseller", "add", "e2e", "--brand-name", "End to end")
    domains = platform.panel("domain", "list")
    for domain in platform.settings.environment.mail_domains:
        if domain not in domains:
            platform.panel("domain", "add", domain, "--reseller", "e2e")


def domain_admin_token(platform: Platform) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    platform.panel(
        "admin", "add", name, "--role", "domain", "--reseller", "e2e",
        "--domain", platform.domain, stdin=uuid.uuid4().hex + "-Aa1\n",
    )  # fmt: skip
    return platform.panel("admin", "token", name).strip()


def first_login(platform: Platform, address: str, password: str) -> tuple[float, int]:
    """(monotonic time of the first accepted login, logins refused before it)."""
    refused = 0
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        imap = imaplib.IMAP4_SSL(platform.access_address, 993, ssl_context=platform.client_tls())
        try:
            imap.login(address, password)
            return time.monotonic(), refused
        except imaplib.IMAP4.error:
            refused += 1
        finally:
            imap.shutdown()
        time.sleep(RETRY_SECONDS)
    raise AssertionError(f"{address} could not log in within {GIVE_UP_SECONDS} s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def test_create_mailbox_to_first_imap_login(lab):
    platform = Platform(lab)
    ensure_domain(platform)
    token = domain_admin_token(platform)
    panel_name = platform.settings.environment.hostname("panel")
    api = urllib3.HTTPSConnectionPool(
        platform.balancer("http"),
        443,
        server_hostname=panel_name,
        cert_reqs="CERT_NONE",  # which CA issued it is the certificate tests' concern
    )
    headers = {"Host": panel_name, "Authorization": f"Bearer {token}"}
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    rounds = []
    for _round in range(ROUNDS):
        local_part, password = f"p{uuid.uuid4().hex[:10]}", uuid.uuid4().hex + "-Aa1"
        started = time.monotonic()
        answer = api.request(
            "POST",
            "/api/v1/mailboxes/",
            json={"domain": platform.domain, "local_part": local_part, "password": password},
            headers=headers,
        )
        answered = time.monotonic()
        assert answer.status == 201, answer.data[:500]
        logged_in, refused = first_login(platform, f"{local_part}@{platform.domain}", password)
        rounds.append(
            {
                "api_s": round(answered - started, 3),
                "first_login_s": round(logged_in - started, 3),
                "refused_before": refused,
            }
        )
        print(rounds[-1])
    logins = [r["first_login_s"] for r in rounds]
    summary = {
        "rounds": rounds,
        "first_login_median_s": statistics.median(logins),
        "first_login_p95_s": percentile(logins, 0.95),
        "first_login_worst_s": max(logins),
        "api_median_s": statistics.median(r["api_s"] for r in rounds),
        "refused_before_total": sum(r["refused_before"] for r in rounds),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"mailbox-provisioning-{stamp}.json").write_text(json.dumps(summary, indent=2))

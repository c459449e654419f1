"""Benchmark (not a test): the PostgreSQL primary's host killed five times on the lab.

Per kill: time from the kill to the first row the panel's connection path gets acknowledged
(libpq read-write, on the new primary), and to the first successful Postfix lookup (any node),
while a writer commits a row every 0.2 s and an mx looks a mailbox up every 0.3 s; then the
host boots and the drill waits for both clusters to be whole again before the next kill.
Reported: each kill's figures, median and worst, and every acknowledged row checked present.
`make bench` on the test lab (MAILSTACK_LAB, MAILSTACK_LAB_DEPLOYED=1 for a running one);
results in docs/benchmarks.md, a copy under /var/cache/mailstack/benchmarks/.
"""

import json
import time
import uuid
from pathlib import Path

import pytest

from mailstack.testing.drills import Clusters, Traffic, median_and_worst, panel_sql
from mailstack.testing.platform import Platform

pytestmark = pytest.mark.benchmark

KILLS = 5
SECONDS = 60
RESULTS = Path("/var/cache/mailstack/benchmarks")


def test_primary_killed_five_times(lab):
    platform = Platform(lab)
    clusters = Clusters(platform)
    clusters.wait_healthy()
    mailbox = platform.new_mailbox() if "e2e" in platform.panel("reseller", "list") else None
    if mailbox is None:
        platform.panel("reseller", "add", "e2e", "--brand-name", "End to end")
        for domain in platform.settings.environment.mail_domains:
            platform.panel("domain", "add", domain, "--reseller", "e2e", check=False)
        mailbox = platform.new_mailbox()
    table = f"ha_bench_{uuid.uuid4().hex[:8]}"
    panel_sql(
        platform, f"CREATE TABLE {table} (n integer PRIMARY KEY, at timestamptz DEFAULT now())"
    )
    runs = []
    try:
        for kill in range(1, KILLS + 1):
            primary = clusters.primary()
            with Traffic(platform, table, [mailbox, mailbox], SECONDS, mail=False) as traffic:
                time.sleep(5)
                killed_at = time.time()
                lab.faults.kill(primary)
            lookup = traffic.first_ok_after("lookup", killed_at)
            acknowledged = traffic.acknowledged_rows()
            present = {int(n) for n in panel_sql(platform, f"SELECT n FROM {table}").split()}
            runs.append(
                {
                    "kill": kill,
                    "primary": primary,
                    "new_primary": clusters.primary([h for h in clusters.db if h != primary]),
                    "first_write_s": traffic.first_ok_after("write", killed_at),
                    "first_lookup_s": lookup,
                    "failed_lookups": len(traffic.failures("lookup", killed_at)),
                    "acknowledged_rows_lost": len(set(acknowledged) - present),
                }
            )
            lab.faults.start(primary)
            runs[-1]["whole_again_after_boot_s"] = round(clusters.wait_healthy(), 1)
            print(json.dumps(runs[-1]))
    finally:
        panel_sql(platform, f"DROP TABLE IF EXISTS {table}")
    writes = [r["first_write_s"] for r in runs if r["first_write_s"] is not None]
    lookups = [r["first_lookup_s"] for r in runs if r["first_lookup_s"] is not None]
    summary = {
        "runs": runs,
        "first_write_median_worst_s": median_and_worst(writes),
        "first_lookup_median_worst_s": median_and_worst(lookups),
        "ttl_s": platform.settings.database.ttl_seconds,
        "loop_wait_s": platform.settings.database.loop_wait_seconds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"db-failover-{stamp}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert len(writes) == KILLS and all(r["acknowledged_rows_lost"] == 0 for r in runs)

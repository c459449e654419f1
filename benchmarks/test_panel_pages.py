"""Benchmark (not a test): the panel's pages with 10,000 mailboxes in one domain.

A database of its own in the test cluster holds one reseller with a domain of 10,000
mailboxes and 19 more domains of 1,000 each (29,000 mailboxes, 2,000 forwardings). The pages
a domain admin works with are requested in-process through Django's test client (middleware,
session, permission querysets, templates and the queries over the Unix socket: the panel's
own time, without the reverse proxy), round-robin so machine load falls on every page alike.
Reported: p50 and p95 per page, the queries each page runs and the time spent in them. Run with `make bench`;
docs/benchmarks.md records the figures.
"""

import json
import os
import statistics
import time
from pathlib import Path

import pytest

# The account tests' cluster fixture, imported to be used here.
from panel_postgres import migrated_database, postgres  # noqa: F401

pytestmark = pytest.mark.benchmark

DATABASE = "bench_panel"
BIG_DOMAIN = 10_000
OTHER_DOMAINS, OTHER_SIZE = 19, 1_000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))
RESULTS = Path("/var/cache/mailstack/benchmarks")


def fill(conn) -> None:
    """Domain big.example (id 1) with u0..u9999, domains d2..d20 with 1,000 each."""
    conn.execute(
        "INSERT INTO accounts_reseller (name, brand_name, logo_url, primary_colour, "
        "secondary_colour, enabled, created, logo_content_type) "
        "VALUES ('r', 'R', '', '#000000', '#ffffff', true, now(), '')"
    )
    conn.execute(
        "INSERT INTO accounts_domain (name, reseller_id, enabled, catch_all, created, ownership, "
        "verification_token, ownership_proven) SELECT CASE WHEN i = 1 THEN 'big.example' ELSE "
        "'d' || i || '.example' END, 1, true, '', now(), 'operator', md5(i::text), now() "
        "FROM generate_series(1, %s) i",
        [1 + OTHER_DOMAINS],
    )
    conn.execute(
        "INSERT INTO accounts_mailbox (domain_id, local_part, address, home, storage_id, "
        "password_hash, quota_bytes, enabled, outbound_limit_class, created, password_changed) "
        "SELECT d.id, 'u' || i, 'u' || i || '@' || d.name, d.name || '/u' || i || '.x', "
        "gen_random_uuid(), '{ARGON2ID}x', 1073741824, true, '', now(), now() "
        "FROM accounts_domain d, generate_series(0, %s - 1) i "
        "WHERE d.id = 1 OR i < %s",
        [BIG_DOMAIN, OTHER_SIZE],
    )
    conn.execute(
        "INSERT INTO accounts_mailbox_settings (mailbox_id, vacation_enabled, vacation_subject, "
        "vacation_body, move_spam_to_junk, sieve_script, updated) "
        "SELECT id, false, '', '', true, '', now() FROM accounts_mailbox"
    )
    conn.execute(
        "INSERT INTO accounts_forwarding (domain_id, local_part, address, keep_copy, enabled, "
        "created) SELECT 1 + i % 20, 'f' || i, 'f' || i || '@' || "
        "(SELECT name FROM accounts_domain WHERE id = 1 + i % 20), false, true, now() "
        "FROM generate_series(0, 1999) i"
    )
    conn.execute("ANALYZE")


@pytest.fixture(scope="module")
def panel(postgres):  # noqa: F811
    migrated_database(postgres, DATABASE)
    with postgres.connect(user="mailpanel", dbname=DATABASE) as conn:
        fill(conn)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tenancy.models import Profile

    admin = get_user_model().objects.create_user("bench-admin", password="bench-password-1")
    profile = Profile.objects.create(user=admin, role="domain", reseller_id=1)
    profile.domains.set([1])
    client = Client()
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
    return client


PAGES = {
    "mailbox list, page 1": "/domains/1/mailboxes/",
    "mailbox list, page 100": "/domains/1/mailboxes/?page=100",
    "mailbox list, last page": "/domains/1/mailboxes/?page=200",
    "search 'u77' (111 hits)": "/domains/1/mailboxes/?q=u77",
    "search 'u9999@big' (1 hit)": "/domains/1/mailboxes/?q=u9999%40big",
    "search without a hit": "/domains/1/mailboxes/?q=nobody",
    "forwarding list": "/domains/1/forwardings/",
    "domain list": "/domains/",
    "mailbox edit form": None,  # filled in with a mailbox id
    "API: mailboxes of the domain, searched": "/api/v1/mailboxes/?domain=big.example&q=u50",
}


def test_panel_pages_with_ten_thousand_mailboxes(panel):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from accounts.models import Mailbox

    PAGES["mailbox edit form"] = (
        f"/mailboxes/{Mailbox.objects.get(address='u5000@big.example').pk}/"
    )
    token = Token.objects.create(user=Token._meta.get_field("user").related_model.objects.get(
        username="bench-admin")).key  # fmt: skip
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    samples: dict[str, list[float]] = {name: [] for name in PAGES}
    database: dict[str, list[float]] = {name: [] for name in PAGES}
    queries: dict[str, int] = {}
    for name, url in PAGES.items():  # warm-up; and check each page answers
        extra = headers if url.startswith("/api/") else {}
        with CaptureQueriesContext(connection) as captured:
            response = panel.get(url, **extra)
        assert response.status_code == 200, (name, response.status_code)
        queries[name] = len(captured)
    for _ in range(ROUNDS):
        for name, url in PAGES.items():
            extra = headers if url.startswith("/api/") else {}
            connection.queries_log.clear()  # a full log would make the capture empty
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                panel.get(url, **extra)
                samples[name].append((time.perf_counter() - start) * 1000)
            database[name].append(sum(float(q["time"]) for q in captured) * 1000)

    rows = []
    for name, values in samples.items():
        values.sort()
        rows.append({"page": name, "p50_ms": round(statistics.median(values), 1),
                     "p95_ms": round(values[int(len(values) * 0.95)], 1),
                     "queries": queries[name],
                     "database_p50_ms": round(statistics.median(database[name]), 1)})  # fmt: skip
    load = os.getloadavg()
    lines = [
        "",
        f"panel pages, {ROUNDS} rounds, load average {load[0]:.1f}",
        f"{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8} {'db p50 ms':>10}",
    ]
    lines += [
        f"{r['page']:42} {r['p50_ms']:8} {r['p95_ms']:8} {r['queries']:8} {r['database_p50_ms']:10}"
        for r in rows
    ]
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"panel-pages-{stamp}.json").write_text(
        json.dumps({"rounds": ROUNDS, "load_average": load, "pages": rows}, indent=2)
    )

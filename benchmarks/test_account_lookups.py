"""Benchmark (not a test): mail lookups through the views, small versus provider-sized data.

Two databases in one cluster, migrated alike, hold the same shape of account data at two sizes;
the queries Postfix and Dovecot run (docs/accounts.md) are timed side by side as the lookup
role over loopback TCP. A large/small ratio near 1 means the lookups stay index look-ups as
the data grows. Run with `make bench`; results and method are in docs/accounts.md.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The account tests' cluster fixture, imported to be used here (benchmarks/ has no conftest of
# its own for it).
from panel_postgres import PANEL, postgres  # noqa: F401

pytestmark = pytest.mark.benchmark

SIZES = {"small": (20, 1_000, 200), "large": (2_000, 100_000, 20_000)}  # domains, mailboxes, fwds
ROUNDS = 300
QUERIES = {
    "virtual_mailbox_domains": (
        "SELECT domain FROM mail.virtual_domains WHERE domain = %s",
        ["d7.example", "unknown.example"],
    ),
    "virtual_mailbox_maps": (
        "SELECT maildir FROM mail.virtual_mailboxes WHERE address = %s",
        ["u3@d7.example", "unknown@d7.example"],
    ),
    "virtual_alias_maps": (
        "SELECT targets FROM mail.virtual_aliases WHERE address = %s",
        ["f3@d7.example", "u3@d7.example", "@d10.example", "unknown@d7.example"],
    ),
    "sender_login_maps": (
        "SELECT logins FROM mail.sender_logins WHERE sender = %s",
        ["f3@d7.example", "u3@d7.example"],
    ),
    "dovecot passdb": (
        "SELECT username AS user, password FROM mail.dovecot_users WHERE username = lower(%s)",
        ["u3@d7.example"],
    ),
}


def fill(conn, domains: int, mailboxes: int, forwardings: int) -> None:
    """Domains d1..dN (every tenth with a catch-all), mailboxes u0..@ spread over them (one in
    fifty disabled), forwardings f0..@ each to a local mailbox and an external address."""
    conn.execute(
        "INSERT INTO accounts_reseller (name, brand_name, logo_url, primary_colour, "
        "secondary_colour, enabled, created) VALUES ('r', 'R', '', '#000000', '#ffffff', true, "
        "now())"
    )
    conn.execute(
        "INSERT INTO accounts_domain (name, reseller_id, enabled, catch_all, created) "
        "SELECT 'd' || i || '.example', 1, true, "
        "CASE WHEN i %% 10 = 0 THEN 'u1@d' || i || '.example' ELSE '' END, now() "
        "FROM generate_series(1, %s) i",
        [domains],
    )
    for table, prefix, count, columns, values in (
        ("accounts_mailbox", "u", mailboxes,
         "password_hash, quota_bytes, enabled, outbound_limit_class, password_changed",
         "'{ARGON2ID}x', 1073741824, i %% 50 <> 0, '', now()"),
        ("accounts_forwarding", "f", forwardings, "keep_copy, enabled", "i %% 3 = 0, true"),
    ):  # fmt: skip
        conn.execute(
            f"INSERT INTO {table} (domain_id, local_part, address, created, {columns}) "
            f"SELECT 1 + i %% %(d)s, '{prefix}' || i / %(d)s, "
            f"'{prefix}' || i / %(d)s || '@d' || 1 + i %% %(d)s || '.example', now(), {values} "
            "FROM generate_series(0, %(n)s - 1) i",
            {"d": domains, "n": count},
        )
    conn.execute(
        "INSERT INTO accounts_forwarding_target (forwarding_id, address) "
        "SELECT id, 'u0@d' || domain_id || '.example' FROM accounts_forwarding "
        "UNION ALL SELECT id, 'x' || id || '@peer.example' FROM accounts_forwarding"
    )
    conn.execute("ANALYZE")


def timings(conn, query: str, keys: list[str]) -> list[float]:
    for key in keys:  # warm the plan and the cache
        conn.execute(query, [key]).fetchall()
    samples = []
    for _ in range(ROUNDS):
        for key in keys:
            start = time.perf_counter()
            conn.execute(query, [key]).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
    return sorted(samples)


def test_lookup_latency_small_versus_large(postgres):  # noqa: F811
    results: dict[str, dict[str, list[float]]] = {}
    for size, shape in SIZES.items():
        dbname = f"bench_{size}"
        with postgres.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {dbname}")
            conn.execute(f"CREATE DATABASE {dbname} OWNER mailpanel")
        subprocess.run(
            [sys.executable, Path(PANEL) / "manage.py", "migrate", "--verbosity", "0"],
            env=postgres.panel_env(dbname), check=True,
        )  # fmt: skip
        with postgres.connect(user="mailpanel", dbname=dbname) as conn:
            fill(conn, *shape)
        with postgres.lookup_connect(dbname) as conn:
            results[size] = {name: timings(conn, q, keys) for name, (q, keys) in QUERIES.items()}

    lines = [
        "",
        f"{'lookup':24} {'small p50':>10} {'large p50':>10} {'ratio':>6} {'large p99':>10}",
    ]
    for name in QUERIES:
        small, large = results["small"][name], results["large"][name]
        p50_small, p50_large = statistics.median(small), statistics.median(large)
        p99_large = large[int(len(large) * 0.99)]
        lines.append(
            f"{name:24} {p50_small:8.3f}ms {p50_large:8.3f}ms {p50_large / p50_small:6.2f} "
            f"{p99_large:8.3f}ms"
        )
    print("\n".join(lines))

"""Benchmark (not a test): the message trace's cost (docs/tracing.md).

A database of its own in the test cluster takes the lines of MESSAGES messages, as the mx and
mailstore nodes log them (11 lines each, panel_traces.inbound_chain: postscreen, smtpd, the
policy service, cleanup, rspamd, qmgr, LMTP, Dovecot), 24 hours of traffic at a steady rate,
through the ingester's own loop (mailstack.tracing.ingest.serve: the omprog protocol, parsing, one INSERT per line over TCP as
the trace role). Side by side in one run: parsing alone, and parsing with storing, in ROUNDS
rounds each (the spread). Then searches as the panel makes them (tracing.search.search), as an
operator and as a domain admin: by recipient, sender, Message-ID and queue id, p50 and p95.
Reported: lines per second, search latency, the table's and its indexes' size per million
messages, and the ingester's peak Python memory. Run with `make bench`.
"""

import io
import json
import os
import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

# The account tests' cluster fixture (postgres), imported to be used here.
from panel_postgres import migrated_database, postgres  # noqa: F401
from panel_traces import inbound_chain, trace_dsn

from mailstack.tracing import ingest
from mailstack.tracing.lines import parse

pytestmark = pytest.mark.benchmark

DATABASE = "bench_tracing"
MESSAGES = int(os.environ.get("BENCH_TRACE_MESSAGES", "20000"))
ROUNDS = 3
SEARCHES = 200
DOMAINS = 50
RESULTS = Path("/var/cache/mailstack/benchmarks")
_CONSONANTS = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxy"


def queue_id(n: int) -> str:
    digits = []
    while True:
        n, r = divmod(n, len(_CONSONANTS))
        digits.append(_CONSONANTS[r])
        if not n:
            break
    return "4fM2" + "".join(reversed(digits)).rjust(6, "0") + "z5vB"


def day_of_lines(count: int, start: datetime) -> list[str]:
    """`count` messages' lines, evenly over 24 hours from `start`, as rsyslog's template hands
    them over (panel_traces.inbound_chain: 11 lines each)."""
    lines = []
    step = timedelta(days=1) / count
    for n in range(count):
        lines += inbound_chain(
            start + n * step,
            sender=f"s{n % 5000}@peer{n % 97}.example",
            recipient=f"u{n % 2000}@d{n % DOMAINS}.example",
            qid=queue_id(n),
            msgid=f"{n}.bench@peer.example",
            client=f"192.0.2.{n % 250 + 1}",
            port=40000 + n % 20000,
        )
    return lines


@pytest.fixture(scope="module")
def tracing_db(postgres):  # noqa: F811
    migrated_database(postgres, DATABASE)
    return postgres


def test_tracing_ingest_and_search(tracing_db):
    from django.db import connection

    from tracing.search import Criteria, search

    dsn = trace_dsn(tracing_db, DATABASE)
    per_round = MESSAGES // ROUNDS
    start = datetime(2026, 12, 1, tzinfo=UTC)
    rounds = [day_of_lines(per_round, start + timedelta(days=r)) for r in range(ROUNDS)]
    parse_rates, store_rates, peaks = [], [], []
    for lines in rounds:
        began = time.perf_counter()
        for text in lines:
            record = json.loads(text)
            parse(
                datetime.fromisoformat(record["time"]),
                record["host"],
                record["tag"],
                record["message"],
            )
        parse_rates.append(len(lines) / (time.perf_counter() - began))

        out, feed = io.StringIO(), io.StringIO("\n".join(lines) + "\n")
        # The ingester's own allocations: its input is rsyslog's pipe, not counted.
        tracemalloc.start()
        began = time.perf_counter()
        ingest.serve(ingest.Store(dsn), feed, out)
        store_rates.append(len(lines) / (time.perf_counter() - began))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert out.getvalue().count("OK") == len(lines) + 1

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tracing_event")
        cursor.execute(
            "SELECT count(*), pg_table_size('tracing_event'), pg_indexes_size('tracing_event') "
            "FROM tracing_event"
        )
        rows, table_bytes, index_bytes = cursor.fetchone()
    messages = per_round * ROUNDS

    rng = random.Random(7)
    since = start - timedelta(days=1)
    kinds = {
        "recipient": lambda n: Criteria(
            recipient=f"u{n % 2000}@d{n % DOMAINS}.example", since=since
        ),
        "sender": lambda n: Criteria(sender=f"s{n % 5000}@peer{n % 97}.example", since=since),
        "message_id": lambda n: Criteria(message_id=f"{n}.bench@peer.example", since=since),
        "queue_id": lambda n: Criteria(queue_id=queue_id(n), since=since),
    }
    latencies: dict[str, list[float]] = {}
    for scope, domains in (("operator", None), ("domain admin", ["d7.example"])):
        for kind, criteria in kinds.items():
            samples = []
            for _ in range(SEARCHES):
                n = rng.randrange(per_round)
                if domains:
                    n = n - n % DOMAINS + 7  # a message of the admin's domain
                began = time.perf_counter()
                found = search(criteria(n), domains)
                samples.append((time.perf_counter() - began) * 1000)
                assert found, (scope, kind, n)
            latencies[f"{scope}: {kind}"] = samples

    # Every query of each kind of search reads indexes, none the whole table.
    from django.test.utils import CaptureQueriesContext

    plans = {}
    for name, criteria in kinds.items():
        with CaptureQueriesContext(connection) as queries:
            search(criteria(7), ["d7.example"])
        with connection.cursor() as cursor:
            for query in queries.captured_queries:
                cursor.execute("EXPLAIN " + query["sql"])
                plan = "\n".join(row[0] for row in cursor.fetchall())
                plans.setdefault(name, []).append(plan)
                assert "Seq Scan on tracing_event" not in plan, (name, query["sql"], plan)

    def spread(values):
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    def percentiles(values):
        ordered = sorted(values)
        return {"p50": statistics.median(ordered), "p95": ordered[int(len(ordered) * 0.95) - 1]}

    result = {
        "at": datetime.now(UTC).isoformat(),
        "load_average": os.getloadavg(),
        "messages": messages,
        "lines": rows,
        "parse_lines_per_second": spread(parse_rates),
        "store_lines_per_second": spread(store_rates),
        "ingester_peak_python_bytes": max(peaks),
        "table_bytes_per_million_messages": table_bytes * 1_000_000 // messages,
        "index_bytes_per_million_messages": index_bytes * 1_000_000 // messages,
        "search_ms": {name: percentiles(samples) for name, samples in latencies.items()},
        "plans": plans,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"tracing-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))

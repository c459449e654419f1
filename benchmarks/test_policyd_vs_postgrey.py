"""Benchmark, not a test: the policy service against postgrey 1.37, side by side in one run.

Both answer the same greylisting requests from the same closed-loop load generator
(benchmarks/loadgen.py) on loopback: all new triplets, and a mix where half the requests repeat
an earlier triplet; 1, 8 and 32 connections; each cell measured in slices that alternate
between the two servers. The policy service keeps its state in a real Valkey
(as on the mx nodes), postgrey in its Berkeley DB. Results: printed and written to
/var/cache/mailstack/benchmarks/; docs/benchmarks.md records them with the method.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from loadgen import Result, Workload, run

from mailstack.testing.processes import free_port, start_policyd, stop, wait_for_port
from mailstack.testing.valkey import ValkeyServer

pytestmark = pytest.mark.benchmark

CONNECTIONS = (1, 8, 32)
WORKLOADS = (("new triplets", 0.0), ("mix, half repeats", 0.5))
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
"""Measured seconds per server and cell, in ROUNDS alternating slices."""
ROUNDS = 3
RESULTS = Path("/var/cache/mailstack/benchmarks")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def policyd(tmp_path_factory):
    log = tmp_path_factory.mktemp("policyd") / "policyd.log"
    with ValkeyServer() as valkey, open(log, "w") as log_file:
        process, port = start_policyd(valkey.url, stderr=log_file)
        try:
            yield port, process.pid
        finally:
            stop(process)


@pytest.fixture(scope="module")
def postgrey():
    if not shutil.which("postgrey"):
        pytest.skip("postgrey is not installed (make bench installs it)")
    # postgrey drops to its own user, which cannot enter pytest's private temporary dirs.
    dbdir = Path(tempfile.mkdtemp(prefix="postgrey-bench-"))
    shutil.chown(dbdir, "postgrey", "postgrey")
    port = free_port()
    with open(dbdir / "postgrey.log", "w") as log_file:
        process = subprocess.Popen(
            [
                "postgrey",
                f"--inet=127.0.0.1:{port}",
                f"--dbdir={dbdir}",
                f"--pidfile={dbdir}/postgrey.pid",
                "--delay=300",
                "--user=postgrey",
                "--group=postgrey",
            ],
            stdout=log_file,
            stderr=log_file,
        )
        try:
            wait_for_port(port, process)
            yield port, process.pid
        finally:
            stop(process)
            shutil.rmtree(dbdir, ignore_errors=True)


def test_policy_service_against_postgrey(policyd, postgrey):
    servers = {"mailstack policyd": policyd, "postgrey 1.37": postgrey}
    rows = []
    for workload_name, repeat_share in WORKLOADS:
        for connections in CONNECTIONS:
            totals = {name: Result(0, 0.0, [], 0) for name in servers}
            cpu = dict.fromkeys(servers, 0.0)
            workloads = {
                name: Workload(workload_name, repeat_share, seed=connections) for name in servers
            }
            for port, _ in servers.values():
                # Warm up (connections, caches) with a short run that is not counted.
                run("127.0.0.1", port, connections, Workload("warm-up", repeat_share, 7), 0.5)
            # Rounds alternate between the servers, so a change in the machine's other load
            # during the run falls on both alike.
            for _ in range(ROUNDS):
                for name, (port, pid) in servers.items():
                    cpu_before = _cpu_seconds(pid)
                    result = run("127.0.0.1", port, connections, workloads[name], SECONDS / ROUNDS)
                    cpu[name] += _cpu_seconds(pid) - cpu_before
                    assert result.errors == 0
                    total = totals[name]
                    total.requests += result.requests
                    total.seconds += result.seconds
                    total.latencies += result.latencies
            for name, total in totals.items():
                rows.append(
                    {
                        "server": name,
                        "workload": workload_name,
                        "connections": connections,
                        "requests_per_second": round(total.rate),
                        "p50_ms": round(total.percentile(50) * 1000, 2),
                        "p99_ms": round(total.percentile(99) * 1000, 2),
                        "server_cpu_us_per_request": round(cpu[name] / total.requests * 1e6),
                    }
                )
    report = _report(rows)
    print("\n" + report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"policyd-{stamp}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / f"policyd-{stamp}.md").write_text(report)


def _report(rows: list[dict]) -> str:
    lines = [
        f"load average at the end: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)",
        "",
        "| workload | conns | server | req/s | p50 ms | p99 ms | server CPU µs/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['workload']} | {row['connections']} | {row['server']} | "
            f"{row['requests_per_second']} | {row['p50_ms']} | {row['p99_ms']} | "
            f"{row['server_cpu_us_per_request']} |"
        )
    lines.append("")
    for workload_name, _ in WORKLOADS:
        for connections in CONNECTIONS:
            ours, theirs = (
                next(
                    r
                    for r in rows
                    if r["server"] == server
                    and r["workload"] == workload_name
                    and r["connections"] == connections
                )
                for server in ("mailstack policyd", "postgrey 1.37")
            )
            ratio = ours["requests_per_second"] / max(1, theirs["requests_per_second"])
            lines.append(
                f"{workload_name}, {connections} connections: {ratio:.1f}x postgrey's "
                f"throughput, p99 {ours['p99_ms']} ms"
            )
    return "\n".join(lines) + "\n"

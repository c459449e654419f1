"""Lab start-up: `lab up` cold (no cached image) and warm, host boot to SSH-ready, idle memory.

`make bench` (marker `benchmark`); prints its table and writes it to
/var/cache/mailstack/benchmarks/ for docs/benchmarks.md, section "Lab". The cold
run builds the image into a scratch cache so the shared one (under labs that may be running) is
never touched.
"""

import os
import statistics
import time
from pathlib import Path

import pytest

from mailstack.lab import rootfs
from mailstack.lab.lab import Lab

pytestmark = pytest.mark.benchmark

BENCH_LAB = "labbench"
RESULTS = Path("/var/cache/mailstack/benchmarks")
IDLE_SECONDS = 30
RESTARTS = 5


def memory_stat(lab: Lab, host) -> dict[str, int]:
    """rss and page cache of one host (v1 memory controller on hybrid machines, else v2)."""
    group = lab.cgroup(host)
    for path, keys in (
        (Path("/sys/fs/cgroup/memory") / group.relative, ("total_rss", "total_cache")),
        (group.v2, ("anon", "file")),
    ):
        stat = path / "memory.stat"
        if stat.exists():
            values = dict(line.split() for line in stat.read_text().splitlines())
            return {"rss": int(values[keys[0]]), "cache": int(values[keys[1]])}
    return {}


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def test_lab_startup(tmp_path, monkeypatch):
    lab = Lab(BENCH_LAB)
    lab.down()
    rows = []

    with monkeypatch.context() as scratch:
        scratch.setattr(rootfs, "CACHE", tmp_path / "rootfs")
        rows.append(("lab up, cold (image built by mmdebstrap)", timed(lab.up)))
        lab.down()
    rows.append(("lab up, warm (image cached), first time", timed(lab.up)))
    lab.down()
    warm = [timed(lab.up)]
    lab.down()
    warm.append(timed(lab.up))
    rows.append(("lab up, warm, again (median of 2)", statistics.median(warm)))
    rows.append(("lab up with every host running (no-op)", timed(lab.up)))

    hosts = lab.hosts()
    restarts = [timed(lambda: lab.faults.restart("mx1")) for _ in range(RESTARTS)]
    rows.append(
        (f"one host: kill + boot to SSH-ready (median of {RESTARTS})", statistics.median(restarts))
    )

    time.sleep(IDLE_SECONDS)
    memory = {host.name: memory_stat(lab, host) for host in hosts}
    rows.append(("lab down", timed(lab.down)))

    lines = [
        f"{len(hosts)} hosts; load average at the end: {os.getloadavg()[0]:.2f} "
        f"({os.cpu_count()} cores)",
        "",
        "| what | time |",
        "| --- | --- |",
    ]
    lines += [f"| {label} | {seconds:.1f} s |" for label, seconds in rows]
    lines += ["", "| idle host | resident | page cache |", "| --- | --- | --- |"]
    lines += [
        f"| {name} | {stat['rss'] / 2**20:.0f} MiB | {stat['cache'] / 2**20:.0f} MiB |"
        for name, stat in memory.items()
    ]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS / f"lab-{stamp}.md").write_text(report)

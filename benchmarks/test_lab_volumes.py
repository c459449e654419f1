"""Lab volumes and the lab's cloud API: attach, detach, a move through the API, a fence.

`make bench` (marker `benchmark`), on the test lab (up, not necessarily deployed); prints its
table and writes it to /var/cache/mailstack/benchmarks/ for docs/benchmarks.md, section "Lab
volumes and cloud API". Leaves the mail volume on the first mailstore host and every host running.
"""

import statistics
import time
from pathlib import Path

import pytest

from mailstack.failover import hetzner
from mailstack.testing.clusters import clusters_aside

pytestmark = pytest.mark.benchmark

RESULTS = Path("/var/cache/mailstack/benchmarks")
MAIL = "lab-mail"
MOVES = 20
FENCES = 5
MOUNT = "/mnt/volume-bench"


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def row(what: str, seconds: list[float]) -> tuple[str, str]:
    median, worst = statistics.median(seconds), max(seconds)
    return what, f"{median * 1000:.0f} ms (max {worst * 1000:.0f} ms, n={len(seconds)})"


def test_lab_volumes(lab_hosts):
    with clusters_aside(lab_hosts):
        measure(lab_hosts)


def measure(lab):
    client = hetzner.connect(hetzner.CloudConfig.load(lab.cloud_env_file))
    pair = [lab.host("mailstore1"), lab.host("mailstore2")]
    hetzner.move_volume(client, MAIL, pair[0].name, allow_running_source=True)
    attach, detach, api_move, fence, power_on = [], [], [], [], []
    for number in range(MOVES):
        source, target = pair[number % 2], pair[(number + 1) % 2]
        detach.append(timed(lambda s=source: lab.volumes.detach(MAIL, s)))
        attach.append(timed(lambda t=target: lab.volumes.attach(MAIL, t)))
    for number in range(MOVES // 2):
        target = pair[(number + 1) % 2]
        api_move.append(hetzner.move_volume(client, MAIL, target.name, allow_running_source=True))
    device = lab.volumes.get(MAIL).linux_device
    for _ in range(FENCES):
        holder = lab.host(hetzner.volume_status(client, MAIL)[0].server)
        mounted = lab.ssh(holder, f"mkdir -p {MOUNT} && mount {device} {MOUNT} && sync")
        assert mounted.returncode == 0, mounted.stderr
        fence.append(hetzner.fence(client, holder.name))
        power_on.append(hetzner.power_on(client, holder.name))
        lab.wait_ready([holder], timeout=lab.state().lab.boot_timeout_seconds)
    hetzner.move_volume(client, MAIL, pair[0].name, allow_running_source=True)

    rows = [
        row("attach (loop device, devices cgroup, node in the running host)", attach),
        row("detach (node, devices cgroup, loop device)", detach),
        row("move through the API: detach + attach, polled by the failover client", api_move),
        row("fence through the API: ext4 shut down, host killed, verified off", fence),
        row("power on through the API (host started, volumes handed in)", power_on),
    ]
    width = max(len(what) for what, _ in rows)
    table = "\n".join(f"{what:<{width}}  {value}" for what, value in rows)
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lab-volumes.txt").write_text(table + "\n")

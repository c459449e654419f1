"""What the lab's hosts are doing, and what of a lab is left on the machine."""

import contextlib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailstack.lab import network
from mailstack.lab.hosts import LabHost
from mailstack.lab.system import Cgroup


def status(lab) -> list[dict]:
    """Per host: running, frozen, link state, systemd's state and memory in use."""

    def one(host: LabHost) -> dict:
        running = lab.running(host)
        frozen = running and lab.cgroup(host).frozen()
        system = "stopped"
        if frozen:
            system = "frozen"
        elif running:
            try:
                result = lab.ssh(host, "systemctl is-system-running", timeout=8)
                system = result.stdout.strip() or "unreachable"
            except subprocess.TimeoutExpired:
                system = "unreachable"
        memory = lab.cgroup(host).memory_bytes() if running else None
        return {
            "host": host.name,
            "roles": ",".join(host.roles),
            "addresses": " ".join(str(a) for a in host.addresses),
            "link": host.link if network.link_is_up(host.link) else f"{host.link} (down)",
            "system": system,
            "memory_mib": round(memory / 2**20) if memory else None,
        }

    hosts = lab.hosts()
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(one, hosts))


def leftovers(lab) -> list[str]:
    """Anything of this lab still on the machine (empty after `down`)."""
    found = []
    if network.link_exists(lab.bridge):
        found.append(f"link {lab.bridge}")
    found += [f"nft table {t}" for t in network.tables_exist(lab.name)]
    found += [f"cgroup {p}" for p in Cgroup(lab.name).paths() if p.exists()]
    found += lab.volumes.leftovers()
    found += [
        f"mount {line.split()[1]}"
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(f"{lab.runtime}/")
    ]
    for path in (lab.runtime, lab.state_dir):
        if path.exists():
            found.append(f"directory {path}")
    # Host supervisors, apt-cacher-ng and the cloud API name a path of the lab's runtime
    # directory.
    marker = f"{lab.runtime}/"
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            cmdline = proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if marker in cmdline:
                found.append(f"process {proc.parent.name}: {cmdline.strip()}")
    return found

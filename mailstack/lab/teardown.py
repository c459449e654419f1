"""What `Lab.down()` removes from the machine: everything a lab made there, found from whatever
is left of it (not its state directory, which `down` removes afterwards)."""

import json
import shutil
from pathlib import Path

from mailstack.lab import aptcache, cloudservice, network
from mailstack.lab.hosts import machine_name
from mailstack.lab.system import NSPAWN_RUNTIME, Cgroup, release_nspawn_runtime, unmount


def remove_from_machine(lab) -> None:
    """Processes, mounts, disks, links, nft tables and cgroups of `lab` (a mailstack.lab.Lab)."""
    machines = lab_machines(lab)
    cloudservice.stop(lab.name, lab.runtime)
    lab_group = Cgroup(lab.name)
    for group in sorted(lab_group.v2.glob("*")) if lab_group.v2.exists() else []:
        if group.is_dir() and (group / "cgroup.freeze").exists():
            (group / "cgroup.freeze").write_text("0")
    lab_group.kill()
    aptcache.stop(lab.name)
    mounts = [
        Path(line.split()[1])
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(f"{lab.runtime}/")
    ]
    for mount in sorted(mounts, key=lambda p: -len(p.parts)):
        unmount(mount)
    lab.volumes.release()
    shutil.rmtree(lab.runtime, ignore_errors=True)
    for machine in machines:
        network.delete_link(f"vb-{machine}")
        for leftover in NSPAWN_RUNTIME.glob(f"*/{machine}*"):
            shutil.rmtree(leftover, ignore_errors=True)
    network.delete_link(lab.bridge)
    network.delete_tables(lab.name)
    lab_group.remove()
    release_nspawn_runtime()


def lab_machines(lab) -> list[str]:
    """The machine names of the lab's hosts, [] without state. A lab left by an older version,
    whose settings this one no longer accepts, is found by the host names its inventory file
    lists, so `down` still removes it."""
    if not (lab.exists() and lab.settings_file.exists()):
        return []
    try:
        return [host.machine for host in lab.hosts()]
    except ValueError:
        if not lab.inventory_file.exists():
            return []
        names = json.loads(lab.inventory_file.read_text()).get("hosts", [])
        return [machine_name(lab.name, host["name"]) for host in names]

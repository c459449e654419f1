"""`mailstack status`: the db nodes' clusters (Patroni and PostgreSQL, etcd, Valkey and Sentinel)
in one view, read on the first db node that answers SSH."""

import subprocess

from mailstack.inventory import Inventory
from mailstack.services import patroni


def ssh_command(inventory: Inventory, host, command: str) -> list[str]:
    """ssh to an inventory host as pyinfra reaches it (the lab's key, or the SSH agent)."""
    from mailstack.lab.access import SSH_OPTIONS

    options = ["-o", "ConnectTimeout=5"]
    if inventory.ssh_key_file:
        options += [*SSH_OPTIONS, "-i", inventory.ssh_key_file]
    return ["ssh", *options, f"{inventory.ssh_user}@{host.ssh_address}", command]


def first_answer(
    inventory: Inventory, role: str, command: str, answers: tuple[int, ...], timeout: float
) -> tuple[int, str]:
    """(exit code, report) of `command` on the first host of `role` that answers it with an
    exit code in `answers` and some output; 2 with what each host said when none does."""
    unreachable = []
    for host in inventory.with_role(role):
        result = subprocess.run(
            ssh_command(inventory, host, command), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode in answers and result.stdout:
            return result.returncode, f"(as seen from {host.name})\n{result.stdout}"
        said = (result.stderr or result.stdout).strip()[-300:]
        unreachable.append(f"{host.name}: {said or result.returncode}")
    return 2, f"no {role} node answered:\n" + "\n".join(unreachable) + "\n"


def cluster_status(inventory: Inventory) -> tuple[int, str]:
    """(exit code, report): 0 when both clusters have their primary and every member, 1 when
    not, 2 when no db node answers. The single profile has no clusters to report."""
    settings = inventory.settings()
    if settings.topology.profile == "single":
        return 0, "profile 'single': PostgreSQL and Valkey run alone on one host, no clusters\n"
    return first_answer(inventory, "db", patroni.STATUS_COMMAND, (0, 1), timeout=120)

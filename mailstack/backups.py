"""`mailstack backup`: from the operator's machine, the age of each kind of backup as its
repository shows it, and the public key the backup account must accept."""

import subprocess

from mailstack.inventory import Inventory
from mailstack.secrets import secret_store
from mailstack.services import backup
from mailstack.status import ssh_command


def backup_status(inventory: Inventory) -> tuple[int, str]:
    """(exit code, report) from the first mailstore node that answers: 0 when the newest
    snapshot is within two backup intervals, 1 when older, 2 when there is none, no target
    is set or no node answers."""
    if inventory.settings().backups.target is None:
        return 2, "no backups: backups.target is not set in the settings\n"
    unreachable = []
    for host in inventory.with_role("mailstore"):
        result = subprocess.run(
            ssh_command(inventory, host, f"{backup.COMMAND} status"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode in (0, 1, 2) and result.stdout:
            return result.returncode, f"(as seen from {host.name})\n{result.stdout}"
        unreachable.append(f"{host.name}: {(result.stderr or result.stdout).strip()[-300:]}")
    return 2, "no mailstore node answered:\n" + "\n".join(unreachable) + "\n"


def public_key(stack: str, lab_file: str | None, environment: str) -> str:
    """The line to install on the backup account of an environment (the key is generated on
    first use, like every secret, so it can be installed before the first deploy)."""
    return backup.ssh_public_key(secret_store(stack, lab_file), environment)

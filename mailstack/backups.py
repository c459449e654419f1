"""`mailstack backup`: from the operator's machine, the age of each kind of backup as its
repository shows it, and the public key the backup account must accept."""

from mailstack.inventory import Inventory
from mailstack.secrets import secret_store
from mailstack.services import backup
from mailstack.status import first_answer


def backup_status(inventory: Inventory) -> tuple[int, str]:
    """(exit code, report) from the first mailstore node that answers: 0 when the newest
    snapshot is within two backup intervals, 1 when older, 2 when there is none, no target
    is set or no node answers."""
    if inventory.settings().backups.target is None:
        return 2, "no backups: backups.target is not set in the settings\n"
    return first_answer(inventory, "mailstore", f"{backup.COMMAND} status", (0, 1, 2), 300)


def public_key(stack: str, lab_file: str | None, environment: str) -> str:
    """The line to install on the backup account of an environment (the key is generated on
    first use, like every secret, so it can be installed before the first deploy)."""
    return backup.ssh_public_key(secret_store(stack, lab_file), environment)

"""`mailstack backup`: from the operator's machine, the age of each kind of backup (the mail
store's, Valkey's, the account data's) as its repository shows it, and the public key the
backup account must accept."""

from mailstack.inventory import Inventory
from mailstack.secrets import secret_store
from mailstack.services import backup, pgbackrest, valkeybackup
from mailstack.status import first_answer


def backup_status(inventory: Inventory) -> tuple[int, str]:
    """(exit code, report) of each kind of backup, each from the first node of its role that
    answers (the mail store's from a mailstore node, Valkey's and the account data's, in a
    cluster, from a db node): 0 when each newest backup is within two of its intervals, 1 when
    one is older, 2 when one has none, no target is set or no node answers."""
    settings = inventory.settings()
    if settings.backups.target is None:
        return 2, "no backups: backups.target is not set in the settings\n"
    answers = [
        first_answer(inventory, "mailstore", f"{backup.COMMAND} status", (0, 1, 2), 300),
        first_answer(inventory, "db", f"{valkeybackup.COMMAND} status", (0, 1, 2), 300),
    ]
    if settings.topology.profile != "single":
        answers.append(
            first_answer(inventory, "db", f"{pgbackrest.COMMAND} status", (0, 1, 2), 300)
        )
    return max(code for code, _ in answers), "".join(report for _, report in answers)


def public_key(stack: str, lab_file: str | None, environment: str) -> str:
    """The line to install on the backup account of an environment (the key is generated on
    first use, like every secret, so it can be installed before the first deploy)."""
    return backup.ssh_public_key(secret_store(stack, lab_file), environment)

"""The one way to start pyinfra on an environment: `mailstack deploy`, `mailstack lab up
--deploy` and the tests all come through `run`.

pyinfra reads the inventory contract from a JSON file (inventory/contract.py), so whatever
produced the contract (the lab, a Pulumi stack, a test's variant of the settings) deploys the
same way.
"""

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailstack.deploy.deployment import REPOSITORY

INVENTORY_SCRIPT = REPOSITORY / "inventory" / "contract.py"
INVENTORY_VARIABLE = "MAILSTACK_INVENTORY"
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class DeployResult:
    returncode: int
    output: str
    """What pyinfra printed (stdout and stderr), without colours; empty unless captured."""

    @property
    def changed_operations(self) -> list[str]:
        """The result lines of operations that changed something on some host."""
        if "--> Results:" not in self.output:
            return []
        results = self.output[self.output.index("--> Results:") :]
        return [
            line.strip()
            for line in results.splitlines()
            if "|" in line and len(line.split()) >= 3 and line.split()[-3] != "-"
        ]


def run(
    inventory_file: str | Path,
    limit: Sequence[str] = (),
    capture: bool = False,
    timeout: float | None = None,
    deploy_file: str | Path = "deploy.py",
    environment: dict[str, str] | None = None,
) -> DeployResult:
    """Deploy every role (deploy.py, or another deploy file) to the hosts of an inventory
    contract (a JSON file), or to the groups and hosts in `limit` only. With `capture`, pyinfra's
    output is returned instead of printed. `environment` adds variables to pyinfra's (secrets
    the roles read, such as the failover API token of a Hetzner stack)."""
    pyinfra = Path(sys.executable).with_name("pyinfra")
    command = [str(pyinfra), "-y", str(INVENTORY_SCRIPT), str(deploy_file)]
    for item in limit:
        command += ["--limit", item]
    result = subprocess.run(
        command,
        cwd=REPOSITORY,
        env={**os.environ, **(environment or {}), INVENTORY_VARIABLE: str(inventory_file)},
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
        timeout=timeout,
    )
    output = _COLOURS.sub("", result.stdout or "")
    if result.returncode == 0 and not limit and Path(deploy_file).name == "deploy.py":
        from mailstack.secretcopy import SecretCopyError

        try:
            said, code = copy_secrets_off_site(inventory_file) or "", 0
        except SecretCopyError as error:
            said, code = f"the secrets' off-site copy failed: {error}\n", 1
        if said and not capture:
            print(said.rstrip(), file=sys.stderr if code else sys.stdout)
        return DeployResult(code, output + said)
    return DeployResult(result.returncode, output)


def copy_secrets_off_site(inventory_file: str | Path) -> str | None:
    """After a deploy of the whole environment: its secrets' encrypted copy on the backup
    target, when they changed (mailstack.secretcopy). Raises SecretCopyError when the target
    cannot take it: `run` then fails the deploy."""
    from mailstack.inventory import Inventory
    from mailstack.secretcopy import lab_address, push
    from mailstack.secrets import secret_store

    inventory = Inventory.read(inventory_file)
    store = secret_store(inventory.stack, inventory.lab_file)
    return push(inventory.settings(), store, lab_address(inventory))

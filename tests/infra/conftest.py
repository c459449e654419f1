"""testinfra checks of deployed hosts, by role.

In the suite they run against the test lab. Against a real environment:
`MAILSTACK_STACK=production pytest tests/infra` (or MAILSTACK_INVENTORY=saved-output.json).
"""

import os

import pytest
import testinfra

from mailstack.inventory import Inventory, from_pulumi_stack


@pytest.fixture(scope="session")
def inventory(request) -> Inventory:
    if os.environ.get("MAILSTACK_INVENTORY"):
        return Inventory.read(os.environ["MAILSTACK_INVENTORY"])
    if os.environ.get("MAILSTACK_STACK"):
        return from_pulumi_stack(os.environ["MAILSTACK_STACK"])
    lab = request.getfixturevalue("lab")
    return Inventory.read(lab.inventory_file)


@pytest.fixture(scope="session")
def hosts(inventory):
    """Function: role -> [(inventory host, testinfra host)] for every host with that role."""

    def with_role(role: str):
        found = []
        for member in inventory.with_role(role):
            options = (
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
            )
            connection = testinfra.get_host(
                f"ssh://{inventory.ssh_user}@{member.ssh_address}",
                ssh_identity_file=inventory.ssh_key_file,
                ssh_extra_args=options if inventory.ssh_key_file else None,
            )
            found.append((member, connection))
        assert found, f"no host with role {role}"
        return found

    return with_role


def listening(connection) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket on the host."""
    result = set()
    for line in connection.check_output("ss -Hltn").splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        result.add((address.strip("[]"), int(port)))
    return result

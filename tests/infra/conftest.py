"""testinfra hosts of one environment, from the inventory contract.

MAILSTACK_STACK=<env> (or MAILSTACK_INVENTORY=<saved inventory JSON>) checks a Hetzner
environment; without either, the lab (see tests/conftest.py) is brought up and checked.
"""

import os

import pytest
import testinfra

from mailstack.inventory import Inventory, from_pulumi_stack
from mailstack.lab.access import SSH_OPTIONS
from mailstack.lab.lab import REPOSITORY


@pytest.fixture(scope="session")
def inventory(request) -> Inventory:
    if os.environ.get("MAILSTACK_INVENTORY"):
        return Inventory.read(os.environ["MAILSTACK_INVENTORY"])
    if os.environ.get("MAILSTACK_STACK"):
        return from_pulumi_stack(os.environ["MAILSTACK_STACK"], cwd=REPOSITORY)
    return request.getfixturevalue("lab").inventory()


@pytest.fixture(scope="session")
def hosts(inventory):
    """role -> [(inventory host, testinfra host)]"""

    def connect(host):
        return testinfra.get_host(
            f"ssh://{inventory.ssh_user}@{host.ssh_address}",
            ssh_identity_file=inventory.ssh_key_file,
            ssh_extra_args=" ".join(SSH_OPTIONS) if inventory.ssh_key_file else None,
            # One connection per host for all its checks. Labs on one machine share environment
            # and host names: the address keeps another lab's connection from being reused.
            controlpath=f"/tmp/mailstack-testinfra-{host.name}-{host.ssh_address}",
        )

    connected = {host.name: connect(host) for host in inventory.hosts}
    return {
        role: [(host, connected[host.name]) for host in inventory.with_role(role)]
        for role in ("mx", "mailstore", "web", "db")
    }


def pytest_collection_modifyitems(items):
    # Against the lab, these checks need it like the lab tests (`-m "not lab"` skips both).
    if os.environ.get("MAILSTACK_STACK") or os.environ.get("MAILSTACK_INVENTORY"):
        return
    infra = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(infra):
            item.add_marker(pytest.mark.lab)

"""Fixtures every part of the suite may use: a real Valkey, and the lab.

The lab that tests/lab, tests/e2e and tests/infra (without a stack) run against is brought up
and deployed once per test run. It is `labtest` unless MAILSTACK_LAB names another, never the
user's `make lab` lab. It is removed afterwards unless MAILSTACK_KEEP_LAB=1 (a later run then
starts warm and deploys again, which changes nothing on an up-to-date lab);
MAILSTACK_LAB_DEPLOYED=1 uses the running lab as it is, when it was just deployed from this tree.
"""

import itertools
import os

import pytest

from mailstack.testing.valkey import ValkeyServer

TEST_LAB = "labtest"


@pytest.fixture(scope="session")
def valkey():
    """One real Valkey for the session; tests keep apart by key prefix."""
    with ValkeyServer() as server:
        yield server


_prefixes = itertools.count()


@pytest.fixture
def key_prefix() -> str:
    return f"test{next(_prefixes)}:"


@pytest.fixture
def own_valkey():
    """A Valkey of the test's own, for tests that kill or freeze it."""
    with ValkeyServer() as server:
        yield server


@pytest.fixture(scope="session")
def lab():
    from mailstack.lab.cli import deploy
    from mailstack.lab.lab import Lab

    lab = Lab(os.environ.get("MAILSTACK_LAB") or TEST_LAB, log=print)
    if os.environ.get("MAILSTACK_LAB_DEPLOYED") == "1":
        lab.state()
    else:
        # `up` rewrites files a deploy extends (/etc/hosts), so a deploy always follows it.
        lab.up()
        deploy(lab)
    yield lab
    if not os.environ.get("MAILSTACK_KEEP_LAB") and not os.environ.get("MAILSTACK_LAB_DEPLOYED"):
        lab.down()


def pytest_collection_modifyitems(items):
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)

"""pytest fixtures for tests that need lab hosts (registered in tests/conftest.py).

`lab` brings the test lab up and deploys every role once per run; tests/lab, tests/e2e and
tests/infra (without a stack) share it, and every test using it gets the marker `lab`. The lab is
`labtest` unless MAILSTACK_LAB names another (at most 7 characters: tests derive further labs
from it), never the user's `make lab` lab; lab names are machine-wide, so a second checkout
testing on the same machine picks another. The lab is removed afterwards unless
MAILSTACK_KEEP_LAB=1 (a later run then starts warm and deploys again, which changes nothing on an
up-to-date lab); MAILSTACK_LAB_DEPLOYED=1 uses the running lab as it is, when it was just
deployed from this tree.
"""

import os

import pytest

from mailstack.lab.cli import deploy
from mailstack.lab.lab import Lab

TEST_LAB = os.environ.get("MAILSTACK_LAB") or "labtest"


def lab_name_for_tests(suffix: str = "") -> str:
    """A lab name of the test run's own: the test lab's name plus a suffix."""
    return TEST_LAB + suffix


@pytest.fixture(scope="session")
def lab():
    """The deployed test lab, up for the whole run."""
    lab = Lab(lab_name_for_tests(), log=print)
    deployed = os.environ.get("MAILSTACK_LAB_DEPLOYED") == "1"
    if deployed:
        lab.state()
    else:
        # `up` rewrites files a deploy extends (/etc/hosts), so a deploy always follows it.
        lab.up()
        deploy(lab)
    yield lab
    if not os.environ.get("MAILSTACK_KEEP_LAB") and not deployed:
        lab.down()


@pytest.fixture
def faults(lab):
    """The test lab's fault primitives; every fault is lifted and every host running afterwards."""
    yield lab.faults
    lab.faults.clear()
    stopped = [host for host in lab.hosts() if not lab.running(host)]
    for host in stopped:
        lab.start_host(host)
    lab.wait_ready(lab.hosts(), timeout=lab.state().lab.boot_timeout_seconds)


def pytest_collection_modifyitems(items):
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)

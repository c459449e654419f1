"""pytest fixtures for tests that need lab hosts (marker `lab`).

`lab` brings the test lab up once per run and deploys every role on it; end-to-end tests share it.
It is named `labtest`, never the default `mailstack` that `make lab` leaves running for the user;
lab names are machine-wide, so a second checkout testing on the same machine sets
MAILSTACK_TEST_LAB to another name of at most 7 characters (tests derive further labs from it).
Set MAILSTACK_KEEP_LAB=1 to leave it running after the run (the next run then starts warm).
"""

import os

import pytest

from mailstack.lab.cli import deploy
from mailstack.lab.lab import Lab

TEST_LAB = os.environ.get("MAILSTACK_TEST_LAB", "labtest")


def lab_name_for_tests(suffix: str = "") -> str:
    """A lab name of the test run's own: the test lab's name plus a suffix."""
    return TEST_LAB + suffix


@pytest.fixture(scope="session")
def lab():
    """The deployed test lab, up for the whole run."""
    lab = Lab(lab_name_for_tests(), log=print)
    lab.up()
    deploy(lab)
    yield lab
    if not os.environ.get("MAILSTACK_KEEP_LAB"):
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

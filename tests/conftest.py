"""The lab that tests/lab (and tests/infra without a stack) run against: brought up and deployed
once per test run.

MAILSTACK_LAB names the lab (default: the lab stack's default name). The lab is left running
afterwards (`mailstack lab --name NAME down` removes it); a later run reuses it and deploys
again, which changes nothing on an up-to-date lab. MAILSTACK_LAB_DEPLOYED=1 uses the running lab
as it is, when it was just deployed from this tree.
"""

import os

import pytest

from mailstack.lab.cli import deploy
from mailstack.lab.lab import DEFAULT_STACK_FILE, Lab
from mailstack.lab.settings import load_lab_settings


def lab_name() -> str:
    return os.environ.get("MAILSTACK_LAB") or load_lab_settings(DEFAULT_STACK_FILE).default_name


@pytest.fixture(scope="session")
def lab() -> Lab:
    lab = Lab(lab_name())
    if os.environ.get("MAILSTACK_LAB_DEPLOYED") == "1":
        lab.state()
    else:
        # `up` rewrites files a deploy extends (/etc/hosts), so a deploy always follows it.
        lab.up()
        deploy(lab)
    return lab


def pytest_collection_modifyitems(items):
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)

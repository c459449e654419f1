"""Fixtures every part of the suite may use: a real Valkey, and the lab.

The lab's fixtures (`lab`, the deployed test lab, up once per run, and `faults`) and the
environment variables that steer them are in mailstack/lab/pytest_plugin.py.
"""

import itertools

import pytest

from mailstack.testing.valkey import ValkeyServer

pytest_plugins = ["mailstack.lab.pytest_plugin"]


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

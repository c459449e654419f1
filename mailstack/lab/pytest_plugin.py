"""pytest fixtures for tests that need lab hosts (registered in tests/conftest.py).

`lab` brings the test lab up and deploys every role once per run; tests/lab, tests/e2e and
tests/infra (without a stack) share it, and every test using it gets the marker `lab`.
`lab_hosts` is the same lab, up but deployed only if the run also uses `lab`: for tests of the
lab's own machinery (volumes, cloud API), which leave it as they found it. The lab is
`labtest` unless MAILSTACK_LAB names another (at most 7 characters: tests derive further labs
from it), never the user's `make lab` lab; lab names are machine-wide, so a second checkout
testing on the same machine picks another. The lab is removed afterwards unless
MAILSTACK_KEEP_LAB=1 (a later run then starts warm and deploys again, which changes nothing on an
up-to-date lab); MAILSTACK_LAB_DEPLOYED=1 uses the running lab as it is, when it was just
deployed from this tree.

The lab comes up (and is deployed) in a child process started as soon as the run's tests are
known, while the tests that need no lab run first: bringing it up is mostly waiting on
package installs and boots, so the run takes about that much less.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

from mailstack.lab.cli import deploy
from mailstack.lab.lab import Lab

TEST_LAB = os.environ.get("MAILSTACK_LAB") or "labtest"


def lab_name_for_tests(suffix: str = "") -> str:
    """A lab name of the test run's own: the test lab's name plus a suffix."""
    return TEST_LAB + suffix


def _deployed_already() -> bool:
    return os.environ.get("MAILSTACK_LAB_DEPLOYED") == "1"


def _keep_lab() -> bool:
    return bool(os.environ.get("MAILSTACK_KEEP_LAB")) or _deployed_already()


class _BringUp:
    """The child process bringing the test lab up (and deploying it), and its log."""

    def __init__(self, with_deploy: bool):
        # Kept open for the child's lifetime; closed (and so removed) by stop().
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="mailstack-lab-up-", suffix=".log"
        )
        command = [sys.executable, "-m", __name__, lab_name_for_tests()]
        if with_deploy:
            command.append("--deploy")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.used = False
        self.failure: str | None = None
        """The log's error lines and its end, when the bring-up failed (the run's summary)."""

    def wait(self) -> Lab:
        """The lab, once the child is done; its whole log goes to the waiting test's output."""
        self.used = True
        returncode = self.process.wait()
        with open(self.log.name, encoding="utf-8", errors="replace") as log:
            text = log.read()
        print(text)
        if returncode != 0:
            self.failure = _what_failed(text)
            pytest.fail(f"bringing up lab {lab_name_for_tests()} failed (exit {returncode})")
        lab = Lab(lab_name_for_tests(), log=print)
        lab.state()
        return lab

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        self.log.close()


_bring_up: _BringUp | None = None


def _what_failed(log: str, errors: int = 40, tail: int = 30) -> str:
    """A failed bring-up's log in short: its lines that report an error, then its last lines
    (pyinfra reports a host's failed operation mid-run, and its summary at the end)."""
    lines = log.splitlines()
    marked = [line for line in lines if re.search(r"error|failed|traceback", line, re.IGNORECASE)]
    return "\n".join([*marked[-errors:], "[...]", *lines[-tail:]])


def pytest_collection_modifyitems(items):
    for item in items:
        if {"lab", "lab_hosts"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)
    # Tests without the lab first (the lab comes up meanwhile); the journal check reads what
    # every other test made the services log: it runs last.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("journal") is not None,
            item.get_closest_marker("lab") is not None,
        )
    )


def pytest_collection_finish(session):
    global _bring_up
    if session.config.option.collectonly or _deployed_already():
        return
    fixtures = set().union(*(getattr(item, "fixturenames", ()) for item in session.items))
    if "lab_hosts" in fixtures:
        _bring_up = _BringUp(with_deploy="lab" in fixtures)


def pytest_sessionfinish(session):
    """A lab brought up for tests that never ran (stopped early, or failing first) goes too."""
    if _bring_up is None or _bring_up.used:
        return
    _bring_up.stop()
    if not _keep_lab():
        Lab(lab_name_for_tests(), log=print).down()


def pytest_unconfigure(config):
    """A failed bring-up's cause after everything else pytest prints (the short summary and the
    final counts come after pytest_terminal_summary), where a CI log cut to its tail shows it."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or _bring_up is None or not _bring_up.failure:
        return
    reporter.write_sep("=", f"bringing up lab {lab_name_for_tests()} failed")
    reporter.write_line(_bring_up.failure)


@pytest.fixture(scope="session")
def lab_hosts():
    """The test lab with every host running, deployed or not, up for the whole run: for tests
    of the lab itself (its volumes, its cloud API). A run that also uses `lab` has one lab."""
    if _bring_up is not None:
        lab = _bring_up.wait()
    else:
        lab = Lab(lab_name_for_tests(), log=print)
        if _deployed_already():
            lab.state()
        else:
            lab.up()
    yield lab
    if _bring_up is not None:
        _bring_up.stop()
    if not _keep_lab():
        lab.down()


@pytest.fixture(scope="session")
def lab(lab_hosts):
    """The deployed test lab, up for the whole run."""
    if _bring_up is None and not _deployed_already():
        # `up` rewrites files a deploy extends (/etc/hosts), so a deploy always follows it.
        deploy(lab_hosts)
    # What the services log from here on is the suite's doing (tests/e2e/test_journal.py).
    lab_hosts.tests_started = int(time.time())
    return lab_hosts


@pytest.fixture
def faults(lab):
    """The test lab's fault primitives; every fault is lifted and every host running afterwards."""
    yield lab.faults
    lab.faults.clear()
    stopped = [host for host in lab.hosts() if not lab.running(host)]
    for host in stopped:
        lab.start_host(host)
    lab.wait_ready(lab.hosts(), timeout=lab.state().lab.boot_timeout_seconds)


def _bring_up_main(argv: list[str]) -> int:
    """`python -m mailstack.lab.pytest_plugin NAME [--deploy]`: what _BringUp runs."""
    lab = Lab(argv[0], log=print)
    lab.up()
    if "--deploy" in argv[1:]:
        deploy(lab)
    return 0


if __name__ == "__main__":
    sys.exit(_bring_up_main(sys.argv[1:]))

"""The test lab's pytest plugin (mailstack.lab.pytest_plugin) when the lab cannot come up: the
cause ends the run's output, where a CI log cut to its tail still shows it."""

import re

import pytest

from mailstack.lab import pytest_plugin

pytest_plugins = ["pytester"]


def test_a_failed_bring_up_ends_the_output_with_its_cause(pytester, monkeypatch):
    # Refused by the child before it touches anything (lab names are lower-case, short).
    monkeypatch.setenv("MAILSTACK_LAB", "Not-A-Lab")
    monkeypatch.delenv("MAILSTACK_LAB_DEPLOYED", raising=False)
    pytester.makepyfile("def test_uses_the_lab(lab_hosts):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "mailstack.lab.pytest_plugin")
    result.assert_outcomes(errors=1)
    output = result.stdout.lines
    summary = output.index(
        next(line for line in output if "bringing up lab Not-A-Lab failed" in line and "=" in line)
    )
    assert any("Not-A-Lab" in line and "name" in line.lower() for line in output[summary:])
    # After pytest's own last lines (the short summary and the counts), not before them.
    counts = max(i for i, line in enumerate(output) if re.search(r"=+ .*\berrors? in ", line))
    assert summary > counts


@pytest.mark.parametrize("noise", [0, 500])
def test_the_cause_keeps_error_lines_and_the_end(noise):
    log = "\n".join(
        ["--> Starting operation: Configure the lab-mx cluster"]
        + [f"    [lab-mx1] line {i}" for i in range(noise)]
        + ["    [lab-mx1] mailstack cib: cibadmin --patch failed: Update was older"]
        + ["    [lab-mx1] Error: executed 0/1 commands"]
        + [f"--> Results line {i}" for i in range(100)]
    )
    cause = pytest_plugin._what_failed(log)
    assert "cibadmin --patch failed" in cause
    assert "Error: executed 0/1" in cause
    assert cause.splitlines()[-1] == "--> Results line 99"
    assert len(cause.splitlines()) < 80

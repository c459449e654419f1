"""Deploys converge: a second pyinfra run on the deployed lab changes nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def test_second_deploy_reports_no_changes(lab):
    pyinfra = Path(sys.executable).with_name("pyinfra")
    result = subprocess.run(
        [str(pyinfra), "-y", "inventory/lab.py", "deploy.py"],
        cwd=ROOT,
        env={**os.environ, "MAILSTACK_LAB": lab.name},
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output[-3000:]
    changed = [
        line.strip()
        for line in output[output.index("--> Results:") :].splitlines()
        if "|" in line and line.split()[-3] != "-"
    ]
    assert changed == [], "operations that changed something:\n" + "\n".join(changed)

"""The off-site copy of the environment's secrets: the lab's deploy put it on the storage
account, and the operator's own key (the lab's admin key) fetches it and reads it back, without
any secret it holds."""

import json
import subprocess
import sys

import pytest

from mailstack.services import backup

pytestmark = pytest.mark.lab


def test_the_secrets_come_back_from_the_off_site_copy_with_the_operators_key(platform, tmp_path):
    output = tmp_path / "secrets.json"
    fetched = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailstack.cli",
            "backup",
            "secrets",
            "fetch",
            "--lab",
            platform.lab.name,
            "--identity",
            str(platform.lab.ssh_key),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fetched.returncode == 0, fetched.stderr
    assert output.stat().st_mode & 0o077 == 0
    copy = json.loads(output.read_text())
    current = json.loads((platform.lab.state_dir / "secrets.json").read_text())
    # What a rebuild needs is there, as the hosts use it (a test may have made a secret since).
    for name in (
        backup.REPOSITORY_PASSWORD_SECRET,
        backup.SSH_KEY_SECRET,
        "dkim/mailstack.test/mailstack",
    ):
        assert copy[name] == current[name], name
    assert all(current[name] == value for name, value in copy.items())

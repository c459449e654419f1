"""Dovecot 2.4 itself authenticates and looks up users through the shipped auth-sql template.

Debian 13's dovecot-core and dovecot-pgsql run from a copy-on-write view of the suite's Debian
13 tree (mailstack.testing.trixie), chrooted, sharing this machine's network, so they reach the test cluster on
loopback as the lookup role. `doveadm auth test`, `doveadm user` and `doveadm quota get` then
show what Dovecot makes of the rows: password verification, login canonicalisation, home and
per-user quota.
"""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from panel_postgres import home_of

from mailstack.deploy.configfile import ConfigFile
from mailstack.testing import trixie

pytestmark = pytest.mark.postgres

BASE_DIR = "/run/dovecot-accounts-test"
# The parts of a mailstore's configuration the lookups need; the Dovecot role owns the rest.
DOVECOT_CONF = f"""\
dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
protocols =
base_dir = {BASE_DIR}
log_path = /dev/stderr
mail_driver = maildir
mail_path = ~/Maildir
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
mail_plugins {{
  quota = yes
}}
quota "User quota" {{
  driver = count
}}
!include /etc/dovecot/auth-sql.conf.ext
"""


class Dovecot:
    def __init__(self, root: Path):
        self.root = root

    def doveadm(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["chroot", self.root, "doveadm", "-c", "/etc/dovecot/test.conf", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip


@pytest.fixture(scope="session")
def dovecot(postgres) -> Iterator[Dovecot]:
    with trixie.overlay("mailstack-dovecot-") as root:
        auth_sql = ConfigFile.template(
            "dovecot",
            "/etc/dovecot/conf.d/auth-sql.conf.ext",
            mail_root="/srv/mail",
            **postgres.lookup_settings(),
        )
        (root / "etc/dovecot/auth-sql.conf.ext").write_text(auth_sql.render())
        (root / "etc/dovecot/test.conf").write_text(DOVECOT_CONF)
        (root / "srv/mail").mkdir(parents=True)
        subprocess.run(["chroot", root, "chown", "dovecot:dovecot", "/srv/mail"], check=True)
        checked = subprocess.run(
            ["chroot", root, "doveconf", "-n", "-c", "/etc/dovecot/test.conf"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        server = subprocess.Popen(
            ["chroot", root, "dovecot", "-F", "-c", "/etc/dovecot/test.conf"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            socket = root / BASE_DIR.lstrip("/") / "auth-client"
            deadline = time.monotonic() + 30
            while not socket.exists():
                assert server.poll() is None, "dovecot exited"
                assert time.monotonic() < deadline, "dovecot's auth socket did not appear"
                time.sleep(0.1)
            yield Dovecot(root)
        finally:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def fields(output: str) -> dict[str, str]:
    """doveadm user's `field<TAB>value` lines."""
    return dict(line.split("\t", 1) for line in output.splitlines()[1:] if "\t" in line)


def test_dovecot_authenticates_with_the_stored_hash(example_org, manage, dovecot):
    ok = dovecot.doveadm("auth", "test", "-x", "service=imap", "Alice@Example.org",
                         "alice-password-1")  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "auth succeeded" in ok.stdout
    assert "user=alice@example.org" in ok.stdout  # the canonical login

    wrong = dovecot.doveadm("auth", "test", "-x", "service=imap", "alice@example.org",
                            "alice-password-2")  # fmt: skip
    assert wrong.returncode != 0 and "auth failed" in wrong.stdout

    manage("mailbox", "change", "alice@example.org", "--disable")
    disabled = dovecot.doveadm("auth", "test", "-x", "service=imap", "alice@example.org",
                               "alice-password-1")  # fmt: skip
    assert disabled.returncode != 0 and "auth failed" in disabled.stdout


def test_dovecot_user_home_and_quota(example_org, manage, dovecot):
    manage("mailbox", "change", "alice@example.org", "--quota-mib", "100")
    manage("mailbox", "change", "bob@example.org", "--quota-mib", "0")

    alice = dovecot.doveadm("user", "alice@example.org")
    assert alice.returncode == 0, alice.stderr
    assert fields(alice.stdout)["home"] == "/srv/mail/" + home_of("alice@example.org")
    quota = dovecot.doveadm("quota", "get", "-u", "alice@example.org")
    assert quota.returncode == 0, quota.stderr
    storage = next(line.split() for line in quota.stdout.splitlines() if "STORAGE" in line)
    assert storage[-2] == str(100 * 1024)  # KiB

    bob = dovecot.doveadm("quota", "get", "-u", "bob@example.org")
    storage = next(line.split() for line in bob.stdout.splitlines() if "STORAGE" in line)
    assert storage[-2] == "-"  # no limit

    unknown = dovecot.doveadm("user", "nobody@example.org")
    assert unknown.returncode == 67 and "doesn't exist" in unknown.stdout

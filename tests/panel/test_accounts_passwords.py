"""Stored password hashes are verified by Dovecot itself (`doveadm pw -t`)."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.postgres


def dovecot_verifies(stored: str, password: str) -> bool:
    doveadm = shutil.which("doveadm")
    assert doveadm, "doveadm is missing (make host-packages installs dovecot-core)"
    # -O: no configuration needed, only the password scheme code runs.
    result = subprocess.run(
        [doveadm, "-O", "pw", "-t", stored, "-p", password], capture_output=True, text=True
    )
    if result.returncode == 0:
        assert "(verified)" in result.stdout
    return result.returncode == 0


def stored_password(lookup, address: str) -> str:
    row = lookup.execute(
        "SELECT password FROM mail.dovecot_users WHERE username = %s", [address]
    ).fetchone()
    return row[0]


def test_a_password_from_stdin_verifies_with_dovecot(example_org, lookup):
    stored = stored_password(lookup, "alice@example.org")
    assert stored.startswith("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$")
    assert dovecot_verifies(stored, "alice-password-1")
    assert not dovecot_verifies(stored, "alice-password-2")
    assert not dovecot_verifies(stored, "bob-password-22")


def test_a_generated_password_verifies_and_replaces_the_old_one(example_org, manage, lookup):
    old = stored_password(lookup, "bob@example.org")
    generated = manage("mailbox", "change", "bob@example.org", "--generate-password").stdout
    new = stored_password(lookup, "bob@example.org")
    assert dovecot_verifies(new, generated.strip())
    assert not dovecot_verifies(new, "bob-password-22")
    assert new != old


def test_unicode_and_long_passwords_verify(example_org, manage, lookup):
    password = "Grüße aus Köln — " + "x" * 200
    manage("mailbox", "change", "alice@example.org", "--password-stdin", stdin=password + "\r\n")
    stored = stored_password(lookup, "alice@example.org")
    assert dovecot_verifies(stored, password)
    assert not dovecot_verifies(stored, password[:-1])

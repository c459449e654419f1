"""A mailbox user's settings as Sieve: the scripts `mail.sieve_scripts` hands Dovecot are run
by Pigeonhole's own `sieve-test` (Debian's dovecot-sieve) on real messages."""

import datetime
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

SPAM = (
    "From: bank@peer.example\r\nTo: alice@example.org\r\nSubject: win\r\nX-Spam: Yes\r\n\r\nx\r\n"
)
HAM = "From: bob@peer.example\r\nTo: alice@example.org\r\nSubject: hello\r\n\r\nhi\r\n"


@pytest.fixture
def tmp_path():
    """A directory sieve-test can read after dropping to `nobody` (pytest's own are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="sieve-test-"))
    path.chmod(0o755)
    shutil.chown(path, "nobody", "nogroup")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_sieve(tmp_path, script: str, message: str) -> str:
    """The actions Pigeonhole performs for `message` (sieve-test's report)."""
    binary = shutil.which("sieve-test")
    assert binary, "sieve-test is missing (make host-packages installs dovecot-sieve)"
    (tmp_path / "script.sieve").write_text(script)
    (tmp_path / "message.eml").write_text(message)
    result = subprocess.run(
        [binary, "-o", "mail_uid=nobody", "-o", "mail_gid=nogroup",
         "-o", f"mail_location=maildir:{tmp_path}/Maildir",
         "-a", "alice@example.org", "-r", "alice@example.org",
         str(tmp_path / "script.sieve"), str(tmp_path / "message.eml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def script_of(lookup, address: str) -> tuple[str, str] | None:
    row = lookup.execute(
        "SELECT script_id, script FROM mail.sieve_scripts "
        "WHERE username = %s AND name = 'mailstack-settings'",
        [address],
    ).fetchone()
    return tuple(row) if row else None


def settings_of(address: str):
    from accounts.usersettings import MailboxSettings

    return MailboxSettings.objects.get(mailbox__address=address)


def test_spam_goes_to_junk_by_default_and_gets_no_auto_reply(example_org, lookup, tmp_path):
    settings = settings_of("alice@example.org")
    settings.vacation_enabled, settings.vacation_body = True, "Away."
    settings.save()
    _, script = script_of(lookup, "alice@example.org")
    spam = run_sieve(tmp_path, script, SPAM)
    assert "store message in folder: Junk" in spam and "vacation" not in spam
    ham = run_sieve(tmp_path, script, HAM)
    assert "send vacation message" in ham and "store message in folder: INBOX" in ham


def test_vacation_texts_are_quoted_and_dates_bound_it(example_org, lookup, tmp_path):
    settings = settings_of("alice@example.org")
    today = datetime.date.today()
    settings.move_spam_to_junk = False
    settings.vacation_enabled = True
    settings.vacation_subject = 'Away "until" \\ Monday'
    settings.vacation_body = 'Back on Monday.\n"Quotes" and \\backslashes\\ stay;\n}\nstop;'
    settings.vacation_start, settings.vacation_end = today, today + datetime.timedelta(days=3)
    settings.full_clean()
    settings.save()
    script_id, script = script_of(lookup, "alice@example.org")
    report = run_sieve(tmp_path, script, HAM)
    assert 'subject : Away "until" \\ Monday' in report
    assert 'Back on Monday.\n"Quotes" and \\backslashes\\ stay;\n}\nstop;' in report

    settings.vacation_start = today + datetime.timedelta(days=1)
    settings.save()
    new_id, script = script_of(lookup, "alice@example.org")
    assert new_id != script_id
    assert "vacation" not in run_sieve(tmp_path, script, HAM)

    settings.vacation_start, settings.vacation_end = None, today - datetime.timedelta(days=1)
    settings.save()
    assert "vacation" not in run_sieve(tmp_path, script_of(lookup, "alice@example.org")[1], HAM)


def test_nothing_to_do_means_no_script(example_org, lookup):
    settings = settings_of("bob@example.org")
    assert script_of(lookup, "bob@example.org") is not None  # the Junk rule, on by default
    settings.move_spam_to_junk = False
    settings.save()
    assert script_of(lookup, "bob@example.org") is None


def test_settings_refuse_what_would_break_the_reply(example_org):
    from django.core.exceptions import ValidationError

    settings = settings_of("alice@example.org")
    settings.vacation_enabled = True
    settings.vacation_subject = "two\nlines"
    settings.vacation_start = datetime.date(2026, 12, 24)
    settings.vacation_end = datetime.date(2026, 12, 1)
    with pytest.raises(ValidationError) as raised:
        settings.full_clean()
    assert set(raised.value.message_dict) == {"vacation_subject", "vacation_body", "vacation_end"}

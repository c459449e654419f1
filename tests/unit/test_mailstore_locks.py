"""mailstack.mailstore.locks: the dot-locks a dead node left on the mail volume go before
Dovecot starts; messages, folders and links named like locks stay."""

import os
from pathlib import Path

from mailstack.mailstore.locks import main, stale_dotlocks

HOME = "example.test/alice.0f1e"


def make(root, relative, content=""):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def test_the_locks_dovecot_leaves_are_found_where_it_keeps_them(tmp_path):
    locks = [
        make(tmp_path, f"{HOME}/Maildir/dovecot-uidlist.lock"),
        make(tmp_path, f"{HOME}/Maildir/.Sent/dovecot-uidlist.lock"),
        make(tmp_path, f"{HOME}/Maildir/dovecot-keywords.lock"),
        make(tmp_path, f"{HOME}/Maildir/subscriptions.lock"),
        make(tmp_path, f"{HOME}/.dovecot.lda-dupes.lock"),
        make(tmp_path, f"{HOME}/sieve/tmp.lock"),
        make(tmp_path, f"{HOME}/.sieve-bin/mailstack-settings.svbin.lock"),
    ]
    assert stale_dotlocks(tmp_path) == sorted(locks)


def test_messages_folders_and_links_named_like_locks_stay(tmp_path):
    make(tmp_path, f"{HOME}/Maildir/cur/1700000000.M1P2.host,S=10:2,S.lock", "a message")
    make(tmp_path, f"{HOME}/Maildir/new/x.lock", "a message")
    make(tmp_path, f"{HOME}/Maildir/.Archive.lock/dovecot-uidlist", "a folder named *.lock")
    target = make(tmp_path, "elsewhere/precious")
    os.symlink(target, tmp_path / f"{HOME}/Maildir/dovecot-uidlist.lock")
    make(tmp_path, "example.test/stray.lock")  # not a home: not Dovecot's
    assert stale_dotlocks(tmp_path) == []


def test_the_command_removes_them_and_reports_each(tmp_path, caplog):
    caplog.set_level("INFO")
    lock = make(tmp_path, f"{HOME}/Maildir/dovecot-uidlist.lock")
    index = make(tmp_path, f"{HOME}/Maildir/dovecot-uidlist", "3 V1 N2\n")
    assert main(["--mail-root", str(tmp_path)]) == 0
    assert not lock.exists() and index.exists()
    assert f"removed stale lock {lock}" in caplog.text
    assert main(["--mail-root", str(tmp_path)]) == 0


def test_a_lock_that_cannot_be_removed_is_reported_and_fails_the_run(tmp_path, caplog, monkeypatch):
    stuck = make(tmp_path, f"{HOME}/Maildir/dovecot-uidlist.lock")
    other = make(tmp_path, f"{HOME}/Maildir/.Sent/dovecot-uidlist.lock")
    unlink = Path.unlink

    def refuse(path, *args, **kwargs):
        if path == stuck:
            raise PermissionError(13, "Permission denied")
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert main(["--mail-root", str(tmp_path)]) == 1
    assert stuck.exists() and not other.exists()
    assert f"could not remove {stuck}: [Errno 13] Permission denied" in caplog.text

"""Removes the dot-lock files Dovecot left on the mail volume when its node died, before Dovecot
starts on the node that now holds the volume.

    python -m mailstack.mailstore.locks --mail-root /srv/mail

Dovecot guards some files with dot-locks, files beside them named `<file>.lock`: the Maildir
index of messages (`dovecot-uidlist.lock`, taken by every delivery and every session that
finds new mail), keywords, subscriptions, the duplicate database of Sieve's vacation and
redirect (`.dovecot.lda-dupes.lock`). A process killed while holding one leaves the file; a
Dovecot elsewhere cannot tell whether its owner (another host) still lives, so it waits until
the file is two minutes unchanged, and every session and delivery of that mailbox waits with it
(seen in the mailstore drills: IMAP sessions and LMTP deliveries stalled for two minutes after a
takeover under traffic). Before Dovecot starts on a node no Dovecot process anywhere holds the
volume's locks (the cluster fenced the other node before the volume moved; a restart stopped the
old processes first), so every such file is stale.

Only where Dovecot keeps them: each home (`<domain>/<name>/`), its Maildir and the Maildir's
folders (`Maildir/.<folder>/`), its Sieve scripts and their compiled forms; never inside a
folder's `cur/`, `new/` or `tmp/` (messages), so the run costs a few directory reads per mailbox
whatever the mail volume holds. Regular files only: a link or a directory named `*.lock` (a
folder may have that name) is left alone.

Exit status: 0 when every stale lock found is gone, 1 when one could not be removed (the unit
runs it as `ExecStartPre=-`: Dovecot starts anyway and waits for that lock as before).
"""

import argparse
import glob
import logging
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

LOCK_DIRECTORIES = ("*/*", "*/*/Maildir", "*/*/Maildir/.*", "*/*/sieve", "*/*/.sieve-bin")
"""Where under the mail root Dovecot keeps dot-locks: homes, Maildirs and their folders, Sieve."""

log = logging.getLogger("mailstack.locks")


def stale_dotlocks(mail_root: Path) -> list[Path]:
    """Regular files named `*.lock` in the directories of LOCK_DIRECTORIES below `mail_root`."""
    found = set()
    for directory in LOCK_DIRECTORIES:
        pattern = f"{directory}/*.lock"
        for relative in glob.glob(pattern, root_dir=mail_root, include_hidden=True):
            path = mail_root / relative
            if stat.S_ISREG(path.lstat().st_mode):
                found.add(path)
    return sorted(found)


def remove_stale_dotlocks(mail_root: Path) -> bool:
    """Remove every stale dot-lock, logging each with when it was last changed; whether all
    went."""
    all_gone = True
    for path in stale_dotlocks(mail_root):
        try:
            changed = datetime.fromtimestamp(path.lstat().st_mtime, UTC)
            path.unlink()
            log.info("removed stale lock %s (last changed %s)", path, changed.isoformat())
        except FileNotFoundError:
            continue
        except OSError as error:
            all_gone = False
            log.error("could not remove %s: %s", path, error)
    return all_gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mail-root", type=Path, required=True, help="where the mail volume is")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    return 0 if remove_stale_dotlocks(args.mail_root) else 1


if __name__ == "__main__":
    sys.exit(main())

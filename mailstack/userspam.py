"""Users' own spam thresholds, as an rspamd settings map.

A mailbox user may set the scores from which their mail gets the spam header and from which it
is refused (the account data's view `mail.spam_thresholds`). rspamd applies them at the scan
before the 250, through a settings map (docs: rspamd "user settings"), which this module renders
from the view and which a timer on every mx refreshes (`python -m mailstack.userspam`); rspamd
reloads a changed map within `map_watch_interval`.

A message is scanned once for all its recipients, so one set of thresholds applies to it: of
the recipients that have their own, the strictest (lowest refusal score) wins, which keeps the
promise to refuse before the 250 what one of them would refuse. Recipients without thresholds
of their own get the platform's (`mail.spam`).
"""

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

QUERY = "SELECT address, add_header_score, reject_score FROM mail.spam_thresholds"
BASE_PRIORITY = 10
"""Above rspamd's named priorities (high is 3), so a user's own thresholds come first."""


@dataclass(frozen=True)
class Thresholds:
    address: str
    add_header: float
    reject: float


def render(thresholds: list[Thresholds]) -> str:
    """The settings map: one entry per address, the strictest with the highest priority.

    Shape (JSON, as rspamd's settings maps take it):
    `{"user_<n>": {"priority": int, "rcpt": address, "apply": {"actions": {"reject": float,
    "add header": float}}}}`.
    """
    ordered = sorted(thresholds, key=lambda t: (-t.reject, -t.add_header, t.address))
    entries = {
        f"user_{number}": {
            "priority": BASE_PRIORITY + number,
            "rcpt": entry.address,
            "apply": {"actions": {"reject": entry.reject, "add header": entry.add_header}},
        }
        for number, entry in enumerate(ordered)
    }
    return json.dumps(entries, indent=1, sort_keys=True) + "\n"


def write_if_changed(path: Path, content: str) -> bool:
    """Replace the file whole (rspamd never reads half of it); False when nothing changed."""
    if path.exists() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return True


def read_thresholds(dsn: str) -> list[Thresholds]:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as connection:
        rows = connection.execute(QUERY).fetchall()
    return [Thresholds(address, float(add), float(reject)) for address, add, reject in rows]


def main(argv: list[str] | None = None) -> int:
    from mailstack.policyd.config import load_config
    from mailstack.settings.stackfile import SettingsError

    parser = argparse.ArgumentParser(prog="python -m mailstack.userspam", description=__doc__)
    parser.add_argument(
        "--policyd-config", required=True, help="the policy service's configuration (its DSN)"
    )
    parser.add_argument("--output", required=True, help="the settings map rspamd reads")
    args = parser.parse_args(argv)
    try:
        dsn = load_config(args.policyd_config).accounts_dsn
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    if not dsn:
        print("the policy service's configuration names no account data", file=sys.stderr)
        return 2
    try:
        thresholds = read_thresholds(dsn)
    except Exception as error:
        print(f"account data unavailable ({error}); the map in force stays", file=sys.stderr)
        return 1
    changed = write_if_changed(Path(args.output), render(thresholds))
    print(f"{len(thresholds)} users' thresholds; map {'rewritten' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

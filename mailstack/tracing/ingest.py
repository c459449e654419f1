"""The ingester rsyslog's omprog runs on each mx and mailstore node: it reads the mail services'
log lines from stdin and stores each one that tells something about a message in the account
database's `tracing_event` table (docs/tracing.md).

The protocol is omprog's with `confirmMessages="on"` (rsyslog's omprog documentation): the
program writes `OK` once it is ready, then one line per message, `OK` when the line is stored
(or deliberately dropped), anything else when it could not be stored. rsyslog keeps a message it
was not told OK for in its action queue (on disk) and hands it over again later, so a database
failover or outage delays the trace and loses nothing; a line stored twice is kept once (its
fingerprint is unique).

Each input line is one JSON object made by the rsyslog template in
templates/tracing/etc/rsyslog.d/: {"time": RFC 3339, "host": str, "tag": str, "message": str}.
"""

import contextlib
import json
import logging
import logging.handlers
import os
import pwd
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

import psycopg

from mailstack.tracing.lines import TraceLine, parse

log = logging.getLogger("mailstack.tracing")

COLUMNS = (
    "logged_at", "host", "program", "pid", "queue_id", "next_queue_id", "message_id",
    "client_address", "sender", "sender_domain", "recipient", "recipient_domain", "status", "dsn",
    "score", "text", "fingerprint",
)  # fmt: skip
INSERT = (
    f"INSERT INTO tracing_event ({', '.join(COLUMNS)}) VALUES"
    f" ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT DO NOTHING"
)
RECONNECT_WAIT_SECONDS = 1.0


def row(line: TraceLine) -> tuple:
    return tuple(getattr(line, column) for column in COLUMNS)


def read_record(text: str) -> TraceLine | None:
    """The TraceLine of one input line; None for a line of no interest. Raises ValueError for
    input that is not the template's JSON."""
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    logged_at = datetime.fromisoformat(str(record["time"]))
    if logged_at.tzinfo is None:
        raise ValueError(f"time {record['time']!r} has no UTC offset")
    return parse(logged_at, str(record["host"]), str(record["tag"]), str(record["message"]))


class Store:
    """The connection to the account database's primary, made again after it broke.

    The trace is a record of what happened, not mail: its writes do not wait for a standby
    (synchronous_commit off), so a node's log lines cost the primary little.
    """

    def __init__(self, dsn: str, connect: Callable[..., psycopg.Connection] = psycopg.connect):
        self.dsn = dsn
        self._connect = connect
        self.connection: psycopg.Connection | None = None

    def open(self) -> None:
        if self.connection is None or self.connection.closed:
            self.connection = self._connect(self.dsn, autocommit=True)
            self.connection.execute("SET synchronous_commit = off")

    def insert(self, line: TraceLine) -> None:
        """Store the line; raises psycopg.Error when it could not be (after one reconnection,
        for a connection a failover broke)."""
        for attempt in (1, 2):
            try:
                self.open()
                self.connection.execute(INSERT, row(line))
                return
            except psycopg.OperationalError:
                self.close()
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):
                self.connection.close()
            self.connection = None


def serve(store: Store, stdin: TextIO, stdout: TextIO) -> int:
    """omprog's loop: 'OK' when ready, then one answer per line until stdin ends. Returns the
    exit status (0)."""
    while True:
        try:
            store.open()
            break
        except psycopg.Error as error:
            log.warning(
                "tracing: the account database takes no writes yet (%s); waiting", first_line(error)
            )
            time.sleep(RECONNECT_WAIT_SECONDS)
    stdout.write("OK\n")
    stdout.flush()
    for text in stdin:
        stdout.write(answer(store, text) + "\n")
        stdout.flush()
    store.close()
    return 0


def answer(store: Store, text: str) -> str:
    """What omprog is told about one input line: OK (stored, or of no interest, or malformed:
    a line that can never be stored is not retried forever), else the reason to retry."""
    try:
        line = read_record(text)
    except (ValueError, KeyError, TypeError) as error:
        log.warning("tracing: dropped a line that is not rsyslog's JSON (%s): %.200r", error, text)
        return "OK"
    if line is None:
        return "OK"
    try:
        store.insert(line)
    except psycopg.Error as error:
        # rsyslog keeps the line and hands it over again (action.resumeInterval).
        log.warning(
            "tracing: the line waits: the account database took no write (%s)", first_line(error)
        )
        return f"ERROR {type(error).__name__}"
    return "OK"


def first_line(error: Exception) -> str:
    """An error's first line (libpq's lists every host it tried on lines of their own)."""
    return next(iter(str(error).strip().splitlines()), type(error).__name__)


def drop_privileges(user: str = "nobody") -> None:
    """Go on as `user` once the configuration (root's) is read: rsyslog starts the program as
    root (templates/tracing/ lets its unit change users), and the program needs no more than its
    network connection. Raises PermissionError where the process may not change users."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    # libpq looks for a client certificate below the home directory: root's is closed to
    # nobody (an error, where a missing one is not).
    os.environ["HOME"] = entry.pw_dir


def log_to_syslog() -> None:
    """Its own warnings go to the journal under its own name (which rsyslog does not hand back
    to it)."""
    handler = logging.handlers.SysLogHandler(address="/dev/log")
    handler.ident = "mailstack-tracing: "
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def main_loop(dsn: str) -> int:
    return serve(Store(dsn), sys.stdin, sys.stdout)

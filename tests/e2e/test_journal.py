"""After the suite: what the platform's services logged as a warning or worse, on every host.

Tests break things on purpose (scanners stopped, stores killed, hostile clients), and the
services say so; every such line is expected by an entry of ALLOWED, which gives its reason.
Anything else is a fault the tests did not look for, and fails here.
"""

import json
import re
from dataclasses import dataclass

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.journal]

UNITS = {
    "mx": ("postfix", "rspamd", "clamav-daemon", "mailstack-policyd", "rsyslog"),
    "mailstore": ("dovecot", "mailstack-backup-mail", "rsyslog"),
    "db": (
        "patroni",
        "etcd",
        "valkey-server@policy",
        "valkey-server@filters",
        "valkey-sentinel",
        "mailstack-backup-database",
        "mailstack-backup-valkey",
    ),
    "web": ("mailstack-hold-notices",),
}
FAILOVER = "the db drills (tests/e2e/test_db_drills.py) kill, cut off and restart db nodes"


@dataclass(frozen=True)
class Expected:
    unit: str
    message: str
    """A regular expression the whole line must match."""
    why: str


ALLOWED = [
    Expected(
        "mailstack-backup-mail",
        r"some files changed while read \(next run takes them\): .*",
        "Dovecot renames Maildir files (new/ to cur/, flags) while a backup reads them",
    ),
    Expected(
        "dovecot",
        r"master: Warning: SIGHUP received - reloading configuration",
        "a certificate renewal or a deploy reloads Dovecot",
    ),
    Expected(
        "dovecot",
        r"master: Warning: Killed with signal 15 \(by pid=\d+ uid=0 code=kill\)",
        "a deploy restarts Dovecot",
    ),
    Expected(
        "dovecot",
        r"(anvil|stats|auth|log\(\d+\)): Warning: Killed with signal 15 "
        r"\(by pid=\d+ uid=0 code=kill\)",
        "the mailstore cluster stops Dovecot when the clusters stand aside for the lab's volume "
        "tests (tests/lab/test_lab_volumes.py)",
    ),
    Expected(
        "dovecot",
        r"log\(\d+\): Warning: Shutting down logging for '(auth|anvil|stats|imap): ' with \d+ "
        r"clients",
        "the mailstore cluster stops Dovecot (as above)",
    ),
    Expected(
        "postfix",
        r"fatal: update queue file (active|deferred|incoming)/\w+: Input/output error",
        "the lab's volume tests (tests/lab/test_lab_volumes.py) restart an mx with its queue "
        "volume and move it while the clusters stand aside: a delivery agent still writing its "
        "queue file dies, the message stays queued",
    ),
    Expected(
        "postfix",
        r"warning: unknown\[[0-9.]+\]: SASL (PLAIN|LOGIN) authentication failed: .*",
        "tests log in with wrong passwords and as removed mailboxes; the drills kill or cut off "
        "the mailstore node that answers SASL, and submission waits (4xx) until the other node "
        "has taken over (tests/e2e/test_drills.py)",
    ),
    Expected(
        "postfix",
        r"warning: SASL: Connect to Dovecot auth socket 'inet:mailstore\.private:\d+' failed: "
        r"(Connection (refused|timed out)|No route to host)",
        "the drills: a mailstore node is dead or stands by (as above)",
    ),
    Expected(
        "postfix",
        r"(fatal: no SASL authentication mechanisms|"
        r"warning: process /usr/lib/postfix/sbin/smtpd pid \d+ exit status 1|"
        r"warning: /usr/lib/postfix/sbin/smtpd: bad command startup -- throttling)",
        "the drills: while neither mailstore node answers SASL, the submission smtpd cannot start "
        "and Postfix's master retries it at its throttle interval (clients are not answered)",
    ),
    Expected(
        "postfix",
        r"warning: (problem talking to server|connect to) mailstore\.private:\d+: "
        r"(Connection timed out|No route to host|Operation now in progress)",
        "the drills: the quota check (Dovecot's quota-status) is away with its mailstore node; "
        "the mail waits (4xx)",
    ),
    Expected(
        "postfix",
        r"warning: (connect to Milter service inet:127\.0\.0\.1:\d+: Connection refused|"
        r"milter inet:127\.0\.0\.1:\d+: (read error in initial handshake|"
        r"can't read SMFIC_OPTNEG reply packet header: Connection (timed out|reset by peer)))",
        "the scanner-down test stops rspamd (tests/e2e/test_filters.py): mail waits (4xx)",
    ),
    Expected(
        "postfix",
        r"warning: TLS library problem: error:0A000(102|0C1):SSL routines::"
        r"(unsupported protocol|no shared cipher):\S+",
        "the certificate tests offer old protocol versions and weak ciphers the servers must "
        "refuse (tests/lab/test_certificates.py)",
    ),
    Expected(
        "postfix",
        r"warning: Illegal address syntax from unknown\[[0-9.]+\] in RCPT command: <@\S+>",
        "the hostile-client tests send malformed addresses",
    ),
    Expected(
        "dovecot",
        r"auth: Error: conn unix:anvil-auth-penalty \(pid=\d+,uid=0\): "
        r"net_connect_unix\(anvil-auth-penalty\) failed: Permission denied",
        "the mailstore cluster stops Dovecot (as above): its auth process asks anvil, which "
        "has just been stopped",
    ),
    Expected(
        "dovecot",
        r"master: Warning: (service\((stats|auth)\): Sent SIGTERM to \d+ \w+ processes|"
        r"Processes aren't dying after reload, sent SIGTERM to \d+ processes\.)",
        "a deploy reloads Dovecot while clients are connected",
    ),
    Expected(
        "dovecot",
        r"lmtp\(\S+\)<\d+><\S+>: Error: sieve: binary /srv/mail/\S+\.svbin: read: file is "
        r"not large enough to contain the header",
        "the drills kill the active mailstore node as it writes a user's compiled Sieve script: the "
        "node that takes over finds it cut short and compiles the script again",
    ),
    Expected(
        "init.scope",
        r"rspamd\.service: (State 'stop-sigterm' timed out\. Killing\.|"
        r"Main process exited, code=killed, status=9/KILL|Failed with result 'timeout'\.)",
        "rspamd 3.12's main process waits for its helper forever when stopped "
        "(rspamd/rspamd#5689): systemd kills it after the stop timeout the role sets (the "
        "scanner-down test in tests/e2e/test_filters.py and deploys stop it)",
    ),
    Expected(
        "mailstack-policyd",
        r"WARNING (outbound limit|greylist): Valkey unavailable .*",
        "the db drills kill the Valkey primary: the policy service follows its settings "
        "(on_store_failure) until Sentinel has promoted a replica",
    ),
    # PostgreSQL (under Patroni) turning clients away while a node stops, starts or is demoted.
    Expected(
        "patroni",
        r".*FATAL: +(the database system is (shutting down|starting up)|"
        r"terminating (connection|walreceiver process) due to administrator command|"
        r"could not (connect to|receive data from|send end-of-streaming message to) the "
        r"primary.*|no pg_hba.conf entry.*)",
        FAILOVER,
    ),
    # PostgreSQL's continuation lines of a multi-line message, numbered, some of them empty.
    Expected("patroni", r"\[\d+-\d+\](\s.*)?", FAILOVER),
    # Patroni losing the etcd member it used, until it picks another.
    Expected("patroni", r".*(ERROR|WARNING): .*", FAILOVER),
    Expected("etcd", r".*", "an etcd member loses a peer in the drills and logs each attempt"),
    Expected("valkey-sentinel", r".*", "Sentinel logs each failover of the drills"),
    Expected("valkey-server@policy", r".*", "replicas lose their primary in the drills"),
    Expected("valkey-server@filters", r".*", "replicas lose their primary in the drills"),
    # Clients of a db node that died or was demoted, until they use another.
    Expected("postfix", r"warning: (pgsql query failed|connect to pgsql server)\b.*", FAILOVER),
    Expected(
        "postfix",
        r"warning: (proxy:pgsql:/etc/postfix/sql/\w+\.cf lookup error for \".*\"|"
        r"\w+: \w+_maps map lookup problem for \S+ -- message not accepted, try again later|"
        r"virtual_alias_domains lookup failure|"
        r"virtual_alias_domains: proxy:pgsql:/etc/postfix/sql/\w+\.cf: table lookup problem)",
        "the database drill of test_database_backup.py stops every db node: Postfix's lookups "
        "fail until the cluster is back from the repository, and mail waits (4xx) meanwhile",
    ),
    Expected("dovecot", r"auth: (Error|Warning): (pgsql|sqlpool)\(.*", FAILOVER),
    Expected(
        "dovecot",
        r"(dict\(\d+\)|lmtp\(\S+\)<\d+><\S+>|lmtp\(\d+\)|quota-status\(\S+\)(<\d+><\S*>)?|"
        r"auth\(\S+\)(<\S+>)?): (Error|Warning): .*(Not connected to database|Connect failed|"
        r"Query failed, (retrying|aborting)|Failed to access 'before' script sequence|"
        r"Auth USER lookup failed|Internal error occurred|"
        r"terminating connection due to administrator command).*",
        FAILOVER + ", and the database drill of test_database_backup.py stops every db node: "
        "Sieve's settings, quota and user lookups fail over with it (delivery waits)",
    ),
    Expected(
        "dovecot",
        r"lmtp\(\S+\)<\d+><\S+>: Warning: sieve: storage mailstack-settings: dict: "
        r"dict\(proxy\): conn unix:/run/dovecot/dict \(pid=\d+,uid=0\): (dict lookup took "
        r"\d{1,2}\.\d+ secs .*|Dict server timeout: No input for \d{1,2}\.\d+ secs .* - reconnected)",
        FAILOVER + ": the dict server's connection to the node that was cut off or killed waits "
        "for its timeout and the pool's reconnection to another node; the delivery waits (under "
        "100 s, well within Postfix's LMTP timeouts), a longer wait still fails here",
    ),
    Expected(
        "mailstack-policyd",
        r"WARNING accounts: account data unavailable \(\w+: [^)]*\); user=\S+ gets class \S+.*",
        FAILOVER + ": a user seen meanwhile gets the class last read, or the default",
    ),
    Expected(
        "mailstack-policyd",
        r"WARNING sending hold: HOLD user=u[0-9a-f]{10}@\S+ reason=(scan|limit) count=\d+ "
        r"threshold=\d+; .*",
        "test_abuse_holds.py makes the outbound scan refuse a test mailbox's mail, and another "
        "one's burst hit the recipient limit, until the service holds them",
    ),
    Expected(
        "mailstack-policyd",
        r"WARNING outbound limit: REPORT user=u[0-9a-f]{10}@\S+ hit the limit in \d+ "
        r"transactions within \d+ s; the account may be compromised",
        "test_abuse_holds.py's burst hits the recipient limit again and again, as a hijacked "
        "account does",
    ),
    Expected(
        "rspamd",
        r"<\w+>; map; rspamd_map_dns_callback: cannot resolve "
        r"(maps\.rspamd\.com|sa-update\.surbl\.org): "
        r"(no records with this name|server fail|query timed out)",
        "the lab has no internet (its DNS answers NXDOMAIN, and once in CI did not answer in "
        "rspamd's time): rspamd's stock maps from the rspamd project and SURBL cannot be "
        "fetched, and rspamd retries them",
    ),
    Expected(
        "rspamd",
        r".*(lua_redis|redis|fuzzy_redis|bayes|neural|history_redis|replies|common|dkim_signing)"
        r".*(timeout|No route to host|Connection timed out|READONLY|refused|error|"
        r"Server closed the connection|cannot make request).*",
        FAILOVER + "; the mx hosts' Valkey proxy closes rspamd's sessions to a demoted primary",
    ),
    Expected(
        "rsyslog",
        r"tracing: (the line waits: the account database took no write|the account database "
        r"takes no writes yet) \(.*",
        FAILOVER + ", and the database drill of test_database_backup.py stops every db node: "
        "the trace lines wait in rsyslog's queue and are handed over again (docs/tracing.md)",
    ),
    Expected(
        "rsyslog",
        r"(imklog: cannot open kernel log \(/proc/kmsg\): Operation not permitted\.|"
        r"activation of module imklog failed .*)",
        "the lab's hosts are containers without the kernel's log (a Hetzner server has it): "
        "Debian's rsyslog.conf loads imklog at every start (the drills restart nodes)",
    ),
    Expected(
        "rsyslog",
        r"cannot create '/var/spool/postfix/dev/log': No such file or directory .*",
        "Debian's postfix package adds a log socket in Postfix's chroot "
        "(/etc/rsyslog.d/postfix.conf); the mx's queue volume, mounted there, has no dev/: "
        "Postfix logs to the journal's socket, opened before its daemons chroot",
    ),
    Expected(
        "rsyslog",
        r"action 'mailstack-trace' (suspended|resumed) \(module 'omprog'\).*",
        "rsyslog's own words for the trace lines waiting and going on (as above)",
    ),
    Expected(
        "rspamd",
        r"<\w+>; lua; clamav\.lua:\d+: clamav: failed to scan, maximum retransmits exceed",
        "the scanner-down test stops clamd (tests/e2e/test_filters.py): mail waits (4xx) meanwhile",
    ),
]


def logged(platform, host: str, since: int, units: tuple[str, ...]) -> list[tuple[str, str]]:
    """(unit, message) of every line of priority warning or worse since a time (epoch)."""
    selected = " ".join(f"-u {unit}" for unit in units)
    output = platform.sh(
        host, f"journalctl --no-pager -o json -p warning --since @{since} {selected}"
    )
    lines = []
    for line in output.splitlines():
        entry = json.loads(line)
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # not UTF-8: the journal keeps the bytes
            message = bytes(message).decode(errors="replace")
        unit = entry.get("_SYSTEMD_UNIT", "").removesuffix(".service")
        lines.append((unit, message or ""))
    return lines


def test_services_logged_only_what_the_tests_caused(platform):
    since = platform.lab.tests_started
    unexpected = []
    for role, units in UNITS.items():
        for host in platform.hosts(role):
            for unit, message in logged(platform, host, since, units):
                if not any(
                    unit == entry.unit and re.fullmatch(entry.message, message) for entry in ALLOWED
                ):
                    unexpected.append(f"{host} {unit}: {message}")
    assert not unexpected, "unexpected warnings and errors:\n" + "\n".join(sorted(set(unexpected)))

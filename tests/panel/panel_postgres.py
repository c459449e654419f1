"""A real PostgreSQL for the account-data tests and benchmarks: a throw-away cluster.

The cluster is initdb'ed in a temporary directory as the `postgres` OS user (PostgreSQL refuses
to run as root), listens on a Unix socket in that directory and on a free loopback port (with
passwords, as the mail services connect), and is stopped by its PID.
The roles are those of a deployment: `mailpanel` owns the database and migrates it,
`mail_lookup` is the read-only role Postfix and Dovecot log in as, `mail_trace` the role the
tracing ingesters store lines as.
"""

import glob
import io
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
PANEL = REPO / "panel"
PANEL_ROLE = "mailpanel"
LOOKUP_ROLE = "mail_lookup"
LOOKUP_PASSWORD = "lookup-secret"
TRACE_ROLE = "mail_trace"
TRACE_PASSWORD = "trace-secret"
DATABASE = "mailstack"
# The views the mail services read: a contract (docs/accounts.md).
MAIL_VIEWS = [
    "dovecot_users", "expired_storage", "outbound_limit_classes", "sender_logins",
    "sending_holds", "sieve_scripts", "spam_thresholds", "virtual_aliases", "virtual_domains",
    "virtual_mailboxes",
]  # fmt: skip


def _bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed (make host-packages installs it)")
    return Path(found[-1]).parent


@dataclass
class PostgresCluster:
    """A running cluster: on a Unix socket in `socket_dir` and on 127.0.0.1, both at `port`."""

    socket_dir: Path
    port: int
    pid: int

    def connect(self, user: str = "postgres", dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=user, dbname=dbname, autocommit=True
        )

    def lookup_settings(self) -> dict:
        """How the mail services reach the views: the values their config templates take."""
        return {
            "db_hosts": ["127.0.0.1"],
            "db_port": self.port,
            "db_name": DATABASE,
            "db_user": LOOKUP_ROLE,
            "db_password": LOOKUP_PASSWORD,
            "connect_timeout": 2,
            "tcp_user_timeout": 5000,
            # Postfix's map files take libpq URIs (mailstack.services.postgresql.reader_uris);
            # the test cluster listens without TLS.
            "db_uris": [
                f"postgresql://{LOOKUP_ROLE}:{LOOKUP_PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"
                "?connect_timeout=2"
            ],
        }

    def lookup_connect(self, dbname: str = DATABASE) -> psycopg.Connection:
        """A connection as the mail services make it: the lookup role over TCP."""
        values = self.lookup_settings()
        return psycopg.connect(
            host=values["db_hosts"][0], port=values["db_port"], user=values["db_user"],
            password=values["db_password"], dbname=dbname, autocommit=True,
        )  # fmt: skip

    def panel_env(self, dbname: str = DATABASE) -> dict[str, str]:
        """Environment for `panel/manage.py` against database `dbname`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPANEL_")}
        env.update(
            MAILPANEL_DB_HOST=str(self.socket_dir),
            MAILPANEL_DB_PORT=str(self.port),
            MAILPANEL_DB_NAME=dbname,
            MAILPANEL_DB_USER=PANEL_ROLE,
            MAILPANEL_LOOKUP_ROLE=LOOKUP_ROLE,
            MAILPANEL_TRACE_ROLE=TRACE_ROLE,
            MAILPANEL_SECRET_KEY="test-only-secret-key-not-for-production-use",
            MAILPANEL_ALLOWED_HOSTS="localhost,127.0.0.1,testserver,panel.mailstack.test",
            MAILPANEL_HTTPS="false",
            MAILPANEL_PROXY_COUNT="0",
            DJANGO_SETTINGS_MODULE="mailpanel.settings",
        )
        return env


def _start_cluster(root: Path) -> tuple[subprocess.Popen, PostgresCluster]:
    bindir = _bindir()
    as_postgres = os.geteuid() == 0
    owner = pwd.getpwnam("postgres") if as_postgres else pwd.getpwuid(os.geteuid())
    os.chown(root, owner.pw_uid, owner.pw_gid)
    user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if as_postgres else {}
    data = root / "data"
    subprocess.run(
        [bindir / "initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True, cwd=root, **user,
    )  # fmt: skip
    # Loopback TCP (with passwords) as the mail services connect; a port nobody else uses.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(root / "server.log", "wb")  # noqa: SIM115 - the server writes it until stopped
    server = subprocess.Popen(
        [bindir / "postgres", "-D", data, "-k", root, "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off"],
        stdout=subprocess.DEVNULL, stderr=log, cwd=root, **user,
    )  # fmt: skip
    cluster = PostgresCluster(socket_dir=root, port=port, pid=server.pid)
    deadline = time.monotonic() + 30
    while True:
        try:
            cluster.connect().close()
            return server, cluster
        except psycopg.OperationalError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(
                    "PostgreSQL did not start:\n" + (root / "server.log").read_text()
                ) from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    root = Path(tempfile.mkdtemp(prefix="mailstack-pg-"))
    server, cluster = _start_cluster(root)
    try:
        with cluster.connect() as conn:
            conn.execute(f"CREATE ROLE {PANEL_ROLE} LOGIN")
            conn.execute(f"CREATE ROLE {LOOKUP_ROLE} LOGIN PASSWORD '{LOOKUP_PASSWORD}'")
            conn.execute(f"CREATE ROLE {TRACE_ROLE} LOGIN PASSWORD '{TRACE_PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {PANEL_ROLE}")
        yield cluster
    finally:
        os.kill(server.pid, signal.SIGINT)  # fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def migrated_database(postgres: PostgresCluster, dbname: str) -> None:
    """A database `dbname` of its own (made anew) in the test cluster, Django configured for it
    and migrated: for a benchmark's data, apart from the tests'."""
    with postgres.connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {dbname} OWNER {PANEL_ROLE}")
    os.environ.update(postgres.panel_env(dbname))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


@pytest.fixture(scope="session")
def panel_django(postgres: PostgresCluster) -> None:
    """Django configured for the test cluster, the database migrated."""
    os.environ.update(postgres.panel_env())
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


@pytest.fixture
def accounts(panel_django: None) -> Iterator[None]:
    """An empty account database for one test."""
    yield
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE accounts_forwarding_target, accounts_forwarding, accounts_mailbox, "
            "accounts_domain, accounts_reseller, accounts_removed_mailbox, accounts_audit_entry, "
            "auth_user, axes_accessattempt, axes_accesslog, django_session "
            "RESTART IDENTITY CASCADE"
        )


@pytest.fixture
def lookup(postgres: PostgresCluster, accounts: None) -> Iterator[psycopg.Connection]:
    """A connection as the mail services' read-only role, over TCP with its password."""
    with postgres.lookup_connect() as conn:
        yield conn


def home_of(address: str) -> str:
    """A mailbox's home below the mail root, as stored (`<domain>/<local_part>.<storage_id>`)."""
    from accounts.models import Mailbox

    return Mailbox.objects.get(address=address).home


@dataclass
class Output:
    stdout: str
    stderr: str


def _manage(*args: str, stdin: str | None = None) -> Output:
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(*args, stdout=out, stderr=err, **extra)
    return Output(out.getvalue(), err.getvalue())


@pytest.fixture
def manage(accounts: None) -> Callable[..., Output]:
    """Run `manage.py ARGS...` in this process (CommandError propagates), on an empty database."""
    return _manage


@pytest.fixture
def example_org(manage) -> None:
    """Reseller acme with domain example.org and mailboxes alice@ and bob@."""
    manage("reseller", "add", "acme", "--brand-name", "Acme Mail")
    manage("domain", "add", "example.org", "--reseller", "acme")
    manage("mailbox", "add", "alice@example.org", "--password-stdin", stdin="alice-password-1\n")
    manage("mailbox", "add", "bob@example.org", "--password-stdin", stdin="bob-password-22\n")


@pytest.fixture
def manage_py(
    postgres: PostgresCluster, accounts: None
) -> Callable[..., subprocess.CompletedProcess]:
    """Run `panel/manage.py ARGS...` as a separate process, the way operators do."""

    def run(
        *args: str, stdin: str = "", dbname: str = DATABASE, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, PANEL / "manage.py", *args],
            input=stdin, capture_output=True, text=True,
            env={**postgres.panel_env(dbname), **(env or {})}, timeout=120,
        )  # fmt: skip

    return run

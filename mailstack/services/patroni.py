"""Patroni 4 on the db nodes: PostgreSQL 17 as one primary and synchronous replicas, failed over
through a leader lock in etcd (mailstack.services.etcd).

Patroni starts, stops, promotes and demotes PostgreSQL and writes its postgresql.conf and
pg_hba.conf itself, from this one file. Settings that must be the same on every node (timing,
synchronous mode, max_connections) live in etcd (Patroni's "dynamic configuration"): the file
holds them for the cluster's first start only, and the role applies later changes with
`patronictl edit-config`.
"""

import json
import shlex

from mailstack.deploy.configfile import ConfigFile
from mailstack.deploy.deployment import APP_SOURCE, APP_VENV
from mailstack.services import etcd, pgbackrest, postgresql, valkey

UNIT = "patroni"
# python3-etcd: Patroni's etcd3 store is built on it (the package lists it as one of several
# alternatives, so it is not installed by itself).
PACKAGES = ["patroni", "python3-etcd", f"postgresql-{postgresql.VERSION}", "ssl-cert", "curl"]
CONFIG = "/etc/patroni/config.yml"
# The running Patroni holds its own ports: the check reads the file, it does not start a second.
CHECK = f"patroni --validate-config --ignore-listen-port {CONFIG}"
CTL = f"patronictl -c {CONFIG}"
SCOPE = "mailstack"
BOOTSTRAP_MODULE = "mailstack.database.bootstrap"
REST_PORT = 8008
REST_USER = "patroni"
REST_PASSWORD_SECRET = "patroni_rest_password"
SUPERUSER_PASSWORD_SECRET = "db_superuser_password"
REPLICATION_USER = "replicator"
REPLICATION_PASSWORD_SECRET = "db_replication_password"
REWIND_USER = "rewinder"
REWIND_PASSWORD_SECRET = "db_rewind_password"
ACCOUNTS_SQL = "/etc/patroni/mailstack-accounts.sql"
"""The account roles (SCRAM verifiers, no passwords) and database, as psql input."""
POST_BOOTSTRAP = "/etc/patroni/mailstack-post-bootstrap"
"""Run by Patroni once, on the node that creates the cluster: makes the account data."""
STATUS_COMMAND = "/usr/local/sbin/mailstack-cluster-status"
"""Prints both clusters' state on a db node (`mailstack status` runs it)."""
INITDB_OPTIONS = ("--encoding=UTF8", "--locale=C.UTF-8", "--data-checksums")
"""How a new cluster's data directory is made (Patroni's initdb, or the restore bootstrap's
when the repository holds no backup)."""
RESTORE_METHOD = "mailstack_restore"
"""Patroni's name for the bootstrap that starts a new cluster from its newest backup."""
CREATE_CLUSTER_CONF = "/etc/postgresql-common/createcluster.conf"
"""Debian's postgresql-common reads it when the server package is installed: no cluster of its
own (Patroni creates and runs the only one)."""


def dynamic_config(settings) -> dict:
    """What Patroni keeps in etcd for the whole cluster, as GET /config shows it."""
    database = settings.database
    return {
        "ttl": database.ttl_seconds,
        "loop_wait": database.loop_wait_seconds,
        "retry_timeout": database.retry_timeout_seconds,
        "maximum_lag_on_failover": database.maximum_lag_on_failover_bytes,
        # A commit is acknowledged once one standby has it; only such a standby is promoted.
        "synchronous_mode": True,
        "synchronous_mode_strict": database.synchronous_strict,
        "synchronous_node_count": 1,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "max_connections": database.max_connections,
                "wal_level": "replica",
                "hot_standby": "on",
                "wal_log_hints": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                **pgbackrest.archive_parameters(settings),
            },
        },
    }


def differences(current: dict | None, wanted: dict) -> dict[str, str]:
    """`patronictl edit-config` arguments for every wanted value that etcd holds otherwise:
    {'--set ttl': '20', '--pg max_connections': '200', ...} as KEY=VALUE pairs."""
    current = current or {}
    changes: dict[str, str] = {}
    for key, value in wanted.items():
        if key == "postgresql":
            continue
        if current.get(key) != value:
            changes[key] = json.dumps(value) if isinstance(value, bool) else str(value)
    parameters = current.get("postgresql", {}).get("parameters", {})
    for key, value in wanted["postgresql"]["parameters"].items():
        if _setting(parameters.get(key)) != _setting(value):
            changes[f"postgresql.parameters.{key}"] = str(value)
    for key in ("use_pg_rewind", "use_slots"):
        if current.get("postgresql", {}).get(key) != wanted["postgresql"][key]:
            changes[f"postgresql.{key}"] = json.dumps(wanted["postgresql"][key])
    return changes


def _setting(value) -> str:
    """A PostgreSQL setting as text, its booleans in one spelling: a value set with
    `patronictl edit-config` is read as YAML (on -> true), one from the bootstrap is not."""
    text = ("on" if value else "off") if isinstance(value, bool) else str(value)
    return {"true": "on", "yes": "on", "false": "off", "no": "off"}.get(text.lower(), text)


def edit_config_command(changes: dict[str, str]) -> str:
    arguments = " ".join(
        f"--set {shlex.quote(f'{key}={value}')}" for key, value in sorted(changes.items())
    )
    return f"{CTL} edit-config {SCOPE} --force --quiet {arguments}"


def restart_pending_command(settings) -> str:
    """A shell command that waits until every member has noticed the changed cluster-wide
    settings (each on its own loop) and flagged the restart some of them need, then restarts
    the flagged members (all at once: writes pause for their restart). Without a flag after
    three loops (the change needed only a reload) it restarts nothing."""
    loops = 3 * settings.database.loop_wait_seconds
    all_flagged = (
        "import json, sys; members = json.load(sys.stdin); "
        "sys.exit(0 if members and all(m.get('Pending restart') for m in members) else 1)"
    )
    return (
        f"for i in $(seq {loops}); do {CTL} list {SCOPE} -f json | python3 -c "
        f"{shlex.quote(all_flagged)} && break; sleep 1; done; "
        f"{CTL} restart {SCOPE} --pending --force"
    )


def hba_entries(deployment) -> list[dict]:
    """pg_hba.conf as Patroni writes it: each role from its own hosts only, over TLS."""
    db_nodes = deployment.addresses("db")
    entries = [
        {"database": "replication", "user": REPLICATION_USER, "address": a} for a in db_nodes
    ]
    # pg_rewind reads the new primary's files through the postgres database.
    entries += [{"database": "postgres", "user": REWIND_USER, "address": a} for a in db_nodes]
    return entries + postgresql.clients(deployment)


def config_files(deployment, host) -> list[ConfigFile]:
    secrets = deployment.secrets
    settings = deployment.settings
    return [
        ConfigFile.template(
            "patroni",
            CREATE_CLUSTER_CONF,
            effect="none",
        ),
        ConfigFile.template(
            "patroni",
            CONFIG,
            effect="reload",
            user="postgres",
            group="postgres",
            mode="600",
            scope=SCOPE,
            name=host.name,
            private_ip=str(host.private_ip),
            rest_port=REST_PORT,
            rest_user=REST_USER,
            rest_password=secrets.get(REST_PASSWORD_SECRET),
            etcd_hosts=[f"{a}:{etcd.CLIENT_PORT}" for a in deployment.addresses("db")],
            dynamic=json.dumps(dynamic_config(settings)),
            port=postgresql.PORT,
            data_dir=postgresql.DATA_DIR,
            bin_dir=postgresql.BIN_DIR,
            socket_dir=postgresql.SOCKET_DIR,
            superuser_password=secrets.get(SUPERUSER_PASSWORD_SECRET),
            replication_user=REPLICATION_USER,
            replication_password=secrets.get(REPLICATION_PASSWORD_SECRET),
            rewind_user=REWIND_USER,
            rewind_password=secrets.get(REWIND_PASSWORD_SECRET),
            hba=hba_entries(deployment),
            post_bootstrap=POST_BOOTSTRAP,
            initdb_options=[option.removeprefix("--") for option in INITDB_OPTIONS],
            restore_method=RESTORE_METHOD,
            restore=restore_bootstrap(settings),
        ),
        ConfigFile.literal(
            ACCOUNTS_SQL,
            postgresql.accounts_sql(deployment),
            effect="none",
            user="postgres",
            group="postgres",
            mode="600",
        ),
        ConfigFile.template(
            "patroni",
            POST_BOOTSTRAP,
            effect="none",
            user="postgres",
            group="postgres",
            mode="700",
            accounts_sql=ACCOUNTS_SQL,
        ),
        ConfigFile.template(
            "patroni",
            STATUS_COMMAND,
            effect="none",
            mode="700",
            scope=SCOPE,
            patroni_config=CONFIG,
            db_count=len(deployment.hosts("db")),
            etcd_endpoints=",".join(etcd.client_urls(deployment)),
            sentinel_port=valkey.SENTINEL_PORT,
            master_names=json.dumps([valkey.MASTER_NAMES[use] for use in valkey.USES]),
        ),
    ]


def restore_bootstrap(settings) -> dict | None:
    """Patroni's custom bootstrap while a backup target is set: a new cluster (a rebuild after
    every db node was lost) starts from the repository's newest backup and the archived WAL,
    or empty when there is none (mailstack.database.bootstrap). Patroni passes the keys other
    than its own as --key=value."""
    if settings.backups.target is None:
        return None
    return {
        "command": f"env PYTHONPATH={APP_SOURCE} {APP_VENV}/bin/python -m {BOOTSTRAP_MODULE}",
        # pgBackRest writes the recovery settings (restore_command, recovery.signal).
        "keep_existing_recovery_conf": True,
        "stanza": pgbackrest.STANZA,
        "bindir": postgresql.BIN_DIR,
        "initdb_options": " ".join(INITDB_OPTIONS),
    }


def wait_for_primary(deployment, timeout_seconds: int = 300) -> str:
    """A shell command that waits until some db node is a writable primary (the cluster's
    first start: bootstrap and the first standby), and fails after `timeout_seconds`."""
    anyone = " || ".join(
        f"curl -sf -o /dev/null --max-time 2 http://{a}:{REST_PORT}/read-write"
        for a in deployment.addresses("db")
    )
    return (
        f"for i in $(seq {timeout_seconds // 3}); do {{ {anyone}; }} && exit 0; sleep 3; done;"
        f" echo 'no primary in the cluster after {timeout_seconds} s' >&2; exit 1"
    )


def is_primary(host) -> str:
    """A shell condition: true only where this host is the cluster's primary."""
    return f"curl -sf -o /dev/null --max-time 5 http://{host.private_ip}:{REST_PORT}/primary"

"""PostgreSQL 17 for the account data, and the names its clients share (Postfix, Dovecot, the
panel, the policy service): database, roles, their secrets, the port."""

from mailstack.deploy.configfile import ConfigFile

DATABASE = "mailstack"
PANEL_USER = "mailpanel"
"""Owns the schema; the panel's migrations run as this role."""
LOOKUP_USER = "mail_lookup"
"""Reads only the views in schema `mail` (Postfix, Dovecot, the policy service)."""
TRACE_USER = "mail_trace"
"""Inserts trace lines into tracing_event and does nothing else (the mx and mailstore nodes'
ingesters, mailstack.tracing)."""
WEBMAIL_DATABASE = "roundcube"
WEBMAIL_USER = "roundcube"
"""Owns Roundcube's database (its sessions, users' preferences, address books) and nothing else."""
PANEL_PASSWORD_SECRET = "db_panel_password"
LOOKUP_PASSWORD_SECRET = "db_lookup_password"
TRACE_PASSWORD_SECRET = "db_trace_password"
WEBMAIL_PASSWORD_SECRET = "db_webmail_password"
PORT = 5432
CONNECT_TIMEOUT = 2
"""Seconds a client (Postfix, Dovecot, the policy service, the panel) waits for a node that does
not answer (a dead host sends no refusal) before it tries the next."""
TCP_USER_TIMEOUT_MS = 5000
"""Milliseconds a client's open connection may wait for the node to acknowledge what it sent
(libpq's tcp_user_timeout): a connection to a node that died mid-query fails then, and the client
opens one to another node, instead of waiting out TCP's retransmissions (minutes)."""
VERSION = 17
UNIT = f"postgresql@{VERSION}-main"
CONFIG_DIR = f"/etc/postgresql/{VERSION}/main"
DATA_DIR = f"/var/lib/postgresql/{VERSION}/main"
BIN_DIR = f"/usr/lib/postgresql/{VERSION}/bin"
SOCKET_DIR = "/var/run/postgresql"
# The server parses its configuration files (-C prints one setting, after reading them all and
# failing on any error); pg_hba_file_rules reads pg_hba.conf as it is on disk, not as loaded.
CONFIG_CHECK = (
    f"runuser -u postgres -- /usr/lib/postgresql/{VERSION}/bin/postgres "
    f"--config-file={CONFIG_DIR}/postgresql.conf -C listen_addresses >/dev/null"
)
HBA_CHECK = (
    "! runuser -u postgres -- psql -tA -c 'SELECT line_number, error FROM pg_hba_file_rules"
    " WHERE error IS NOT NULL' | grep ."
)
"""Asks the running server, which reads pg_hba.conf as it is on disk; prints the bad lines."""
CHECK = f"{CONFIG_CHECK} && {HBA_CHECK}"


def reader_uris(client) -> list[str]:
    """One libpq URI per db node for a reader's client (Postfix's `hosts`): TLS, and a connect
    timeout, so a dead node costs a lookup seconds, not TCP's minutes."""
    from urllib.parse import quote

    return [
        f"postgresql://{quote(client.user, safe='')}:{quote(client.password, safe='')}@{host}:"
        f"{client.port}/{client.name}?sslmode=require&connect_timeout={CONNECT_TIMEOUT}"
        f"&tcp_user_timeout={TCP_USER_TIMEOUT_MS}"
        for host in client.hosts
    ]


def client_dsn(client, target_session_attrs: str | None = None, connect_timeout: int = 0) -> str:
    """A client's libpq connection string (`client`: a deployment.DatabaseClient): every db
    node, TLS, the timeouts above; `target_session_attrs` overrides the client's ('read-write':
    the primary; 'any': any node, chosen at random so a dead first node costs only the
    connections that try it first); `connect_timeout` overrides CONNECT_TIMEOUT."""
    from psycopg.conninfo import make_conninfo

    attrs = target_session_attrs or client.target_session_attrs
    return make_conninfo(
        host=libpq_hosts(client.hosts),
        port=client.port,
        dbname=client.name,
        user=client.user,
        password=client.password,
        # pg_hba.conf admits the platform's clients over TLS only.
        sslmode="require",
        connect_timeout=connect_timeout or CONNECT_TIMEOUT,
        tcp_user_timeout=TCP_USER_TIMEOUT_MS,
        target_session_attrs=attrs,
        load_balance_hosts="random" if attrs == "any" else "disable",
    )


def libpq_hosts(hosts) -> str:
    """A libpq multi-host list (`host=a,b`), in which clients try the hosts in turn."""
    return ",".join(hosts)


def scram_matches(verifier: str, password: str) -> bool:
    """Whether `password` is the one behind a PostgreSQL SCRAM-SHA-256 verifier.

    The verifier (pg_authid.rolpassword) is `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:
    <ServerKey>`; recomputing StoredKey (RFC 5802) tells without logging in, so a deploy sets a
    password only when it differs.
    """
    import base64
    import hashlib
    import hmac

    try:
        scheme, iterations_salt, keys = verifier.strip().split("$")
        iterations, salt = iterations_salt.split(":")
        stored_key = keys.split(":")[0]
    except ValueError:
        return False
    if scheme != "SCRAM-SHA-256":
        return False
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(
        base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key
    )


def scram_verifier(role: str, password: str, iterations: int = 4096) -> str:
    """A PostgreSQL SCRAM-SHA-256 verifier of `password` (RFC 5802/7677, as PostgreSQL stores
    it), so that a role's password is set without the password itself in a file or on a command
    line. The salt is derived from the password and the role, so the same password gives the
    same file (a deploy that changes nothing writes nothing)."""
    import base64
    import hashlib
    import hmac

    salt = hmac.new(password.encode(), f"mailstack-scram-salt:{role}".encode(), "sha256").digest()
    salt = salt[:16]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    encode = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{encode(salt).decode()}$"
        f"{encode(hashlib.sha256(client_key).digest()).decode()}:{encode(server_key).decode()}"
    )


DATABASE_OWNERS = {DATABASE: PANEL_USER, WEBMAIL_DATABASE: WEBMAIL_USER}
"""Each database the platform keeps and the role that owns it."""


def account_roles(deployment) -> dict[str, str]:
    """The login roles of the account data, of tracing and of webmail, and their passwords
    (from the secrets)."""
    return {
        PANEL_USER: deployment.secrets.get(PANEL_PASSWORD_SECRET),
        LOOKUP_USER: deployment.secrets.get(LOOKUP_PASSWORD_SECRET),
        TRACE_USER: deployment.secrets.get(TRACE_PASSWORD_SECRET),
        WEBMAIL_USER: deployment.secrets.get(WEBMAIL_PASSWORD_SECRET),
    }


def accounts_missing(deployment, found: dict[str, str]) -> list[str]:
    """What the database lacks, from the PostgresAccounts fact: roles missing or with another
    password, the database missing or owned by another role."""
    missing = [
        f"role:{role}"
        for role, password in account_roles(deployment).items()
        if not scram_matches(found.get(f"role:{role}", ""), password)
    ]
    missing += [
        f"database:{database}"
        for database, owner in DATABASE_OWNERS.items()
        if found.get(f"database:{database}") != owner
    ]
    return missing


def accounts_sql(deployment) -> str:
    """psql input that creates or fixes the roles and the database (run on the primary: by
    Patroni's post_bootstrap when the cluster is made, by the deploy when one differs). Commits
    only locally: at bootstrap no synchronous standby exists yet to wait for."""
    lines = ["SET synchronous_commit = local;"]
    for role, password in account_roles(deployment).items():
        lines += [
            f"SELECT 'CREATE ROLE {role} LOGIN' WHERE NOT EXISTS"
            f" (SELECT FROM pg_roles WHERE rolname = '{role}') \\gexec",
            f"ALTER ROLE {role} LOGIN PASSWORD '{scram_verifier(role, password)}';",
        ]
    for database, owner in DATABASE_OWNERS.items():
        lines += [
            f"SELECT 'CREATE DATABASE {database} OWNER {owner} ENCODING ''UTF8''' WHERE NOT"
            f" EXISTS (SELECT FROM pg_database WHERE datname = '{database}') \\gexec",
            f"ALTER DATABASE {database} OWNER TO {owner};",
        ]
    return "\n".join(lines) + "\n"


def clients(deployment) -> list[dict]:
    """pg_hba.conf's entries: each client role from its own hosts only."""
    lookup = deployment.hosts("mx") + deployment.hosts("mailstore")
    web = deployment.hosts("web")
    return (
        [{"database": DATABASE, "user": LOOKUP_USER, "address": str(h.private_ip)} for h in lookup]
        # The ingesters of message tracing run where the mail services log.
        + [{"database": DATABASE, "user": TRACE_USER, "address": str(h.private_ip)} for h in lookup]
        + [{"database": DATABASE, "user": PANEL_USER, "address": str(h.private_ip)} for h in web]
        + [
            {"database": WEBMAIL_DATABASE, "user": WEBMAIL_USER, "address": str(h.private_ip)}
            for h in web
        ]
    )


def config_files(deployment, host) -> list[ConfigFile]:
    return [
        # listen_addresses takes a restart.
        ConfigFile.template(
            "postgresql",
            f"{CONFIG_DIR}/conf.d/mailstack.conf",
            private_ip=str(host.private_ip),
            max_connections=deployment.settings.database.max_connections,
        ),
        ConfigFile.template(
            "postgresql",
            f"{CONFIG_DIR}/pg_hba.conf",
            effect="reload",
            user="postgres",
            group="postgres",
            mode="640",
            clients=clients(deployment),
        ),
    ]

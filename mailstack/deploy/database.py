"""The account data's roles and database, made on the primary by whichever role runs PostgreSQL
(roles/patroni.py on a cluster, roles/postgresql.py on the single profile's one host)."""

import shlex

from pyinfra import host
from pyinfra.operations import server

from mailstack.facts import PostgresAccounts
from mailstack.services import postgresql


def ensure_accounts(
    deployment,
    wait: str | None = None,
    primary_check: str | None = None,
    sql_file: str | None = None,
) -> None:
    """Create the panel's, the lookup and webmail's roles (with their passwords) and the
    databases (postgresql.DATABASE_OWNERS) where the local PostgreSQL, primary or replica, shows
    any of them missing or different.

    `sql_file`: the statements as installed on the host (else they go on the command line).
    `wait` is a shell command that returns once there is a primary and fails if none comes;
    `primary_check` a shell condition true only on the primary (None for both: this host is the
    only node). Elsewhere the work is left to the primary. Passwords reach the server as SCRAM
    verifiers, never in clear on a command line.
    """
    roles = tuple(postgresql.account_roles(deployment))
    databases = tuple(postgresql.DATABASE_OWNERS)
    found = host.get_fact(PostgresAccounts, roles=roles, databases=databases)
    missing = postgresql.accounts_missing(deployment, found)
    if not missing:
        return
    psql = "runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -q"
    if sql_file:
        command = f"{psql} -f {sql_file}"
    else:
        command = f"printf '%s' {shlex.quote(postgresql.accounts_sql(deployment))} | {psql}"
    if primary_check:
        command = f"if {primary_check}; then {command}; fi"
    if wait:
        command = f"{wait} && {command}"
    server.shell(name=f"Create or fix the account data: {', '.join(missing)}", commands=[command])

"""PostgreSQL 17 under Patroni on the db nodes of a cluster: one primary, synchronous replicas,
automatic failover through etcd (mailstack.services.patroni, docs/architecture.md).

The single profile runs PostgreSQL on its own instead (roles/postgresql.py).
"""

from pyinfra import host
from pyinfra.operations import server

from mailstack.deploy.database import ensure_accounts
from mailstack.deploy.kit import configure, install, packages, target
from mailstack.facts import PatroniDynamicConfig
from mailstack.services import patroni, pgbackrest

deployment, me = target()

if deployment.db_clustered:
    create_cluster, config, accounts, post_bootstrap, status_command = patroni.config_files(
        deployment, me
    )
    # Before the server package: Debian must not create and start a cluster of its own.
    install(create_cluster, "Debian's PostgreSQL clusters")
    packages("PostgreSQL 17 and Patroni", patroni.PACKAGES)
    # Before Patroni first runs: its bootstrap makes the account data with them.
    install(accounts, "the account data")
    install(post_bootstrap, "the account data")
    patroni_config = configure(patroni.UNIT, [config], check=patroni.CHECK)
    install(status_command, "the clusters' state")

    # Cluster-wide settings live in etcd: changed settings are written there once, from the
    # first node; Patroni applies them on every node (a changed max_connections restarts them).
    if me.name == deployment.first("db").name:
        current = host.get_fact(
            PatroniDynamicConfig, address=str(me.private_ip), port=patroni.REST_PORT
        )
        changes = patroni.differences(current, patroni.dynamic_config(deployment.settings))
        if current is not None and changes:
            server.shell(
                name="Apply the cluster-wide settings: " + ", ".join(sorted(changes)),
                commands=[patroni.edit_config_command(changes)],
            )
            if any(key.startswith("postgresql.parameters.") for key in changes):
                server.shell(
                    name="Restart the members whose settings wait for a restart",
                    commands=[patroni.restart_pending_command(deployment.settings)],
                )
    # Made by the bootstrap; fixed here where a password changed since (or the bootstrap failed).
    ensure_accounts(
        deployment,
        wait=f"( {patroni.wait_for_primary(deployment)} )",
        primary_check=patroni.is_primary(me),
        sql_file=patroni.ACCOUNTS_SQL,
    )
    if pgbackrest.config_files(deployment, me):
        # The backup job's timer started before the cluster existed (its first run found no
        # primary, the next is minutes away): a new cluster gets its stanza and first full
        # backup now, from whichever node is its primary (the job does nothing elsewhere).
        server.shell(
            name="Back up the new cluster's account data",
            commands=[
                f"( {patroni.wait_for_primary(deployment)} )",
                f"systemctl start {pgbackrest.UNIT}.service",
            ],
            _if=lambda: any(operation.did_change() for operation in patroni_config),
        )

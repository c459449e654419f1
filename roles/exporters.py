"""The exporters Prometheus scrapes on each host, on its private address only
(mailstack.services.exporters): node exporter everywhere, with this host's certificate expiry in
its textfile directory; the Postfix exporter on the mx hosts; the PostgreSQL and Valkey
exporters on the db hosts. Runs after the services it reports on."""

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from mailstack.deploy.kit import configure, install, packages, target
from mailstack.services import exporters, patroni

deployment, me = target()
roles = set(me.roles)


def exporter(unit: str, files) -> None:
    # Debian's recommendations would add collectors with timers of their own (smartmon, apt).
    packages(unit, [unit], no_recommends=True)
    configure(unit, files, check=exporters.check(unit))


exporter(exporters.NODE_UNIT, exporters.node_files(deployment, me))

certificate_files = exporters.certificate_files(deployment, me)
if certificate_files:
    script, *units = certificate_files
    installed = install(script, "certificate expiry report")
    configure(
        exporters.CERTIFICATE_TIMER,
        units,
        check=f"systemd-analyze verify {' '.join(f.path for f in units)}",
        watch=[installed],
    )
    # Reported now, not only at the timer's next round.
    server.shell(
        name="Report when the certificate expires",
        commands=[f"systemctl start {exporters.CERTIFICATE_METRICS}.service"],
        _if=any_changed(installed),
    )

if "mx" in roles:
    files.file(
        name="Postfix's log file, which its exporter reads, before rsyslog's first mail line",
        path=exporters.POSTFIX_LOG,
        user="root",
        group="adm",
        mode="640",
    )
    exporter(exporters.POSTFIX_UNIT, exporters.postfix_files(deployment, me))

if "db" in roles:
    # The exporter's role: peer authentication as the exporter's system user, pg_monitor's
    # rights. Every node reads whether it exists (standbys see it by replication); only the
    # primary creates it, once there is one. Read before the deploy ran, the state is `unknown`
    # where PostgreSQL is not installed or not answering yet (a first deploy): those create it
    # too, or a fresh platform would have no PostgreSQL metrics until its second deploy.
    role = exporters.POSTGRES_ROLE
    state = host.get_fact(
        Command,
        "psql -tAc \"SELECT CASE WHEN count(*) = 1 THEN 'ok' ELSE 'missing' END FROM pg_roles"
        f" WHERE rolname = '{role}' AND pg_has_role(oid, 'pg_monitor', 'member')\""
        " 2>/dev/null || echo unknown",
        _su_user="postgres",
    )
    if state != "ok":
        create = (
            "psql -v ON_ERROR_STOP=1 -c"
            f" \"DO \\$\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}')"
            f' THEN CREATE ROLE {role} LOGIN; END IF; END \\$\\$; GRANT pg_monitor TO {role}"'
        )
        if deployment.db_clustered:
            create = (
                f"( {patroni.wait_for_primary(deployment)} ) && if {patroni.is_primary(me)};"
                f" then {create}; fi"
            )
        server.shell(
            name=f"Create the database role {role} in pg_monitor",
            commands=[create],
            _su_user="postgres",
        )
    exporter(exporters.POSTGRES_UNIT, exporters.postgres_files(deployment, me))
    exporter(exporters.VALKEY_UNIT, exporters.valkey_files(deployment, me))

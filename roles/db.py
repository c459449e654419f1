"""PostgreSQL 17 for the account data, reachable on the private network only.

The panel's role owns the database and runs the migrations (from the web hosts); the lookup
role reads the mail views and nothing else (the migrations grant it). Passwords are generated
on the deploying machine (mailstack.secrets) and never stored in git.
"""

from pyinfra import host, inventory
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, postgres, systemd

from mailstack.database import DATABASE, LOOKUP_USER, PANEL_USER, scram_matches
from mailstack.deploying import group_hosts, secrets

lookup_clients = group_hosts(inventory, "mx") + group_hosts(inventory, "mailstore")
panel_clients = group_hosts(inventory, "web")
clients = [
    {"database": DATABASE, "user": LOOKUP_USER, "address": member["private_ip"]}
    for member in lookup_clients
] + [
    {"database": DATABASE, "user": PANEL_USER, "address": member["private_ip"]}
    for member in panel_clients
]


def password_to_set(role: str, secret: str) -> str | None:
    """The role's password if PostgreSQL does not have it yet (pyinfra would set it every run)."""
    password = secrets(host).get(secret)
    verifier = host.get_fact(
        Command,
        f"psql -tAc \"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'\" 2>/dev/null || true",
        _su_user="postgres",
    )
    return None if verifier and scram_matches(verifier, password) else password


apt.packages(
    name="Install PostgreSQL 17",
    packages=["postgresql-17", "ssl-cert"],
    update=True,
    cache_time=3600,
)

server_config = files.template(
    name="Configure PostgreSQL",
    src="templates/db/etc/postgresql/17/main/conf.d/mailstack.conf.j2",
    dest="/etc/postgresql/17/main/conf.d/mailstack.conf",
    mode="644",
    private_ip=host.data.private_ip,
)
access_config = files.template(
    name="Allow each client role from its own hosts",
    src="templates/db/etc/postgresql/17/main/pg_hba.conf.j2",
    dest="/etc/postgresql/17/main/pg_hba.conf",
    user="postgres",
    group="postgres",
    mode="640",
    clients=clients,
)

systemd.service(
    name="Run PostgreSQL",
    service="postgresql@17-main",
    running=True,
    enabled=True,
    # listen_addresses takes a restart; pg_hba.conf a reload.
    restarted=server_config.changed,
    reloaded=access_config.changed,
)

postgres.role(
    name="Create the panel's database role",
    role=PANEL_USER,
    password=password_to_set(PANEL_USER, "db_panel_password"),
    login=True,
    _su_user="postgres",
)
postgres.role(
    name="Create the mail lookup role",
    role=LOOKUP_USER,
    password=password_to_set(LOOKUP_USER, "db_lookup_password"),
    login=True,
    _su_user="postgres",
)
postgres.database(
    name="Create the account database",
    database=DATABASE,
    owner=PANEL_USER,
    encoding="UTF8",
    _su_user="postgres",
)

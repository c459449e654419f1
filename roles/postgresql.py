"""PostgreSQL 17 on its own, for the `single` profile's one host (a cluster's db nodes run it
under Patroni: roles/patroni.py). Reachable on the private network only.

The panel's role owns the account database and runs the migrations (from the web hosts); the
lookup role reads the mail views and nothing else (the migrations grant it); Roundcube's role
owns its own database and may connect to nothing else (pg_hba.conf). Passwords are generated on
the deploying machine (mailstack.secrets) and never stored in git.
"""

from mailstack.deploy.database import ensure_accounts
from mailstack.deploy.kit import configure, packages, target
from mailstack.services import postgresql

deployment, me = target()

if not deployment.db_clustered:
    packages("PostgreSQL 17", [f"postgresql-{postgresql.VERSION}", "ssl-cert"])
    configure(postgresql.UNIT, postgresql.config_files(deployment, me), check=postgresql.CHECK)
    ensure_accounts(deployment)

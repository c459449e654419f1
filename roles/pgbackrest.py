"""Off-site backups of the account data on the db nodes of a cluster: pgBackRest over SFTP,
WAL archived by the primary, base backups by a timer that acts only on the primary
(mailstack.services.pgbackrest). Without backups.target in the settings nothing is installed;
the single profile's database is not backed up this way."""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import pgbackrest

deployment, me = target()

config_files = pgbackrest.config_files(deployment, me)
if deployment.db_clustered and config_files:
    packages("pgBackRest", pgbackrest.PACKAGES)
    configure(f"{pgbackrest.UNIT}.timer", config_files, check=pgbackrest.CHECK)

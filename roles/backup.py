"""Off-site backups of the mail store on the mailstore pair: restic over SFTP, run by a timer
on both nodes, backing up only where Dovecot serves (mailstack.services.backup). Without
backups.target in the settings nothing is installed."""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import backup

deployment, me = target()

config_files = backup.config_files(deployment, me)
if config_files:
    packages("restic", backup.PACKAGES)
    configure(f"{backup.UNIT}.timer", config_files, check=backup.CHECK)

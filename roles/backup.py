"""Off-site backups with restic over SFTP: the mail store on the mailstore pair, backed up only
where Dovecot serves (mailstack.services.backup), and Valkey's data on the db nodes, backed up
only where each use's primary runs (mailstack.services.valkeybackup); each job by a timer on
every node of its role. Without backups.target in the settings nothing is installed."""

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import backup, valkeybackup

deployment, me = target()

if deployment.settings.backups.target is not None:
    packages("restic", backup.PACKAGES)
    if "mailstore" in me.roles:
        configure(f"{backup.UNIT}.timer", backup.config_files(deployment, me), check=backup.CHECK)
    if "db" in me.roles:
        configure(
            f"{valkeybackup.UNIT}.timer",
            valkeybackup.config_files(deployment, me),
            check=valkeybackup.CHECK,
        )

"""Dovecot 2.4 on the mailstore pair: IMAP, POP3, ManageSieve, LMTP and SASL for Postfix, the
users' settings scripts from the account data, doveadm's HTTP API for the panel, and the
clean-up job of removed mailboxes' mail (mailstack.services.dovecot). Its mail lives on the mail
volume (roles/volumes.py keeps it from starting anywhere the volume is not mounted); the job's
code and venv come from roles/venv.py."""

from pyinfra.operations import files, server

from mailstack.deploy.kit import configure, name_hosts, packages, target
from mailstack.services import dovecot

deployment, me = target()

clustered = deployment.clustered("mailstore")
# On the pair only the cluster starts Dovecot, where the mail volume is mounted.
packages("Dovecot", dovecot.PACKAGES, held=[dovecot.UNIT] if clustered else [])
server.group(
    name="Create the vmail group", group=dovecot.VMAIL_USER, system=True, gid=dovecot.VMAIL_UID
)
server.user(
    name="Create the vmail user that owns all mail",
    user=dovecot.VMAIL_USER,
    uid=dovecot.VMAIL_UID,
    group=dovecot.VMAIL_USER,
    home=dovecot.MAIL_ROOT,
    shell="/usr/sbin/nologin",
    system=True,
    create_home=False,
)
files.directory(
    name="Create the mail root",
    path=dovecot.MAIL_ROOT,
    user=dovecot.VMAIL_USER,
    group=dovecot.VMAIL_USER,
    mode="750",
)

mx_name = name_hosts(dovecot.MX_NAME, deployment.addresses("mx"), "the mx hosts for Sieve's mail")

# On the pair, the cluster runs Dovecot on the node that holds the mail volume
# (roles/pacemaker.py); a change reaches it there. The single profile's host runs it itself.
configure(
    dovecot.UNIT,
    dovecot.service_files(deployment, me) + dovecot.stale_lock_files(),
    check=dovecot.CHECK,
    running=None if clustered else True,
    watch=[mx_name],
)
# On both nodes: the job itself runs only where Dovecot is active, so it follows a failover.
configure(
    f"{dovecot.PURGE_UNIT}.timer", dovecot.purge_files(deployment, me), check=dovecot.PURGE_CHECK
)

"""The lab's internet (lab only): authoritative DNS for every lab zone (NSD), a foreign peer MTA
(Postfix), Pebble, the ACME test server standing in for Let's Encrypt, and the backups' SFTP
account standing in for a Storage Box (mailstack.services.internet)."""

from pyinfra.operations import files, server

from mailstack.deploy.kit import configure, packages, target
from mailstack.lab.hosts import STORAGE_ACCOUNT
from mailstack.services import internet

deployment, me = target()

packages("DNS server, MTA (with a DKIM verifier) and ACME test server", internet.PACKAGES)
configure("nsd", internet.nsd_files(deployment, me), check=internet.nsd_check(deployment))

# 2700: the directory inherits /var/mail's setgid bit, which chmod 700 keeps.
files.directory(
    name="Peer mailbox", path=internet.PEER_MAILDIR, user="mail", group="mail", mode="2700"
)
configure("postfix", internet.peer_mta_files(deployment, me), check=internet.PEER_POSTFIX_CHECK)
configure("pebble", internet.pebble_files(deployment, me), check=internet.PEBBLE_CHECK)

# The backup target: an SFTP account locked in its home, as a Storage Box is.
server.user(
    name="Create the storage account",
    user=STORAGE_ACCOUNT,
    home=internet.STORAGE_HOME,
    shell="/usr/sbin/nologin",
    system=True,
    create_home=False,
    # Its home is sshd's chroot, which must stay root's (below): pyinfra would give it to the user.
    ensure_home=False,
)
# sshd's chroot must belong to root; the account writes below it.
files.directory(name="Storage account's root", path=internet.STORAGE_HOME, user="root", mode="755")
files.directory(
    name="Storage account's directory for the lab's environment",
    path=f"{internet.STORAGE_HOME}/{deployment.lab_state.name}",
    user=STORAGE_ACCOUNT,
    group=STORAGE_ACCOUNT,
    mode="700",
)
configure("ssh", internet.storage_files(deployment, me), check=internet.SSHD_CHECK)

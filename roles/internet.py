"""The lab's internet (lab only): authoritative DNS for every lab zone (NSD), a foreign peer MTA
(Postfix) and Pebble, the ACME test server standing in for Let's Encrypt
(mailstack.services.internet)."""

from pyinfra.operations import files

from mailstack.deploy.kit import configure, packages, target
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

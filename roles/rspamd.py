"""rspamd on the mx hosts: Postfix's milter, scanning every message before it is accepted
(mailstack.services.rspamd). It signs with keys from the shared Valkey, where this role writes
the operator's own domains' keys (the panel writes customer domains')."""

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from mailstack.deploy.kit import configure, packages, target
from mailstack.services import rspamd

deployment, me = target()

# Not its recommended local Valkey (rspamd's is on the db nodes); valkey-cli writes the
# operator's signing keys.
packages("rspamd", ["rspamd", "valkey-tools"], no_recommends=True)
files.directory(
    name="DKIM key directory", path=rspamd.DKIM_KEY_DIR, user="_rspamd", group="_rspamd", mode="700"
)
# Users' thresholds: the map must exist before rspamd reads its configuration.
configure(rspamd.USER_SPAM_UNIT, rspamd.user_spam_files(deployment, me), check=None)
server.shell(
    name="Write users' spam thresholds for rspamd",
    commands=["systemctl start mailstack-user-spam.service"],
    _if=lambda: not host.get_fact(File, path=rspamd.USER_SETTINGS_MAP),
)
configure(rspamd.UNIT, rspamd.scanner_files(deployment, me), check=rspamd.CHECK)

# The operator's domains sign with the keys from the secrets: written into the signing hashes
# where they differ from the key files (every mx writes the same; the panel never touches them).
stale = (host.get_fact(Command, rspamd.signing_key_check(deployment)) or "").split()
if stale:
    server.shell(
        name=f"Sign {', '.join(stale)} with the deploy's keys (Valkey's signing hashes)",
        commands=rspamd.signing_key_writes(deployment, set(stale)),
    )

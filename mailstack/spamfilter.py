"""Names shared by the rspamd and ClamAV roles, Postfix and the tests: ports, paths and the
rules generated from the spam settings."""

import re
from dataclasses import dataclass

MILTER_PORT = 11332
SCANNER_PORT = 11333
CONTROLLER_PORT = 11334
FUZZY_PORT = 11335
MILTER = f"inet:127.0.0.1:{MILTER_PORT}"
DKIM_KEY_DIR = "/var/lib/rspamd/dkim"
CLAMD_SOCKET = "/run/clamav/clamd.ctl"
TEST_SIGNATURES = "/var/lib/clamav/mailstack-test.ndb"


@dataclass(frozen=True)
class BlocklistRule:
    kind: str
    """'ip' (the client and Received addresses) or 'uri' (domains of links and addresses)."""
    zone: str
    score: float

    @property
    def symbol(self) -> str:
        return f"MAILSTACK_{self.kind.upper()}_" + re.sub(r"[^A-Z0-9]", "_", self.zone.upper())

    @property
    def description(self) -> str:
        what = "Sending address" if self.kind == "ip" else "Linked domain"
        return f"{what} listed in {self.zone}"


def blocklist_rules(spam) -> list[BlocklistRule]:
    """One rule per list in the spam settings, IP lists first."""
    return [BlocklistRule("ip", e.zone, e.score) for e in spam.ip_blocklists] + [
        BlocklistRule("uri", e.zone, e.score) for e in spam.uri_blocklists
    ]

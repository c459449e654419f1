"""Ending a mailbox's open sessions on the mail store as soon as its password changes or it
stops taking logins (disabled or removed, or its domain or reseller disabled).

Dovecot keeps IMAP, POP3 and ManageSieve connections open for as long as their clients like,
so without this a changed password or a disabled mailbox would go on working in them. Once the
change is committed, the panel asks the active mailstore node through Dovecot's doveadm HTTP API
(`MAILPANEL_DOVEADM_URL`, authenticated with `MAILPANEL_DOVEADM_API_KEY`) to `kick` their
connections. New logins see the change at once: the mailstores keep no auth cache
(templates/dovecot: a cache hit still verifies the Argon2id hash, so it saved only an indexed
lookup, and Debian 13's Dovecot 2.4.1 panics on `authCacheFlush` over the HTTP API, upstream
commit cb7d6d1174). Webmail logs in to IMAP on each request with the password it keeps, so a
webmail session ends at its next request (Roundcube's `mailstack` plugin logs the user out when
the mail store refuses that password).

Source: Dovecot's doveadm HTTP API (`POST /doveadm/v1`, a JSON list of
`[command, parameters, tag]`; `Authorization: X-Dovecot-API <base64 key>`; `GET` lists the
commands), command `kick` with `mask` (user masks, `*` matching any part).
"""

import base64
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from accounts.models import Domain, Mailbox, Reseller

TIMEOUT_SECONDS = 5
log = logging.getLogger(__name__)


class MailStoreError(Exception):
    """The mail store did not end the sessions (unreachable, refusing, or an error reply)."""


def masks_to_end(old, new) -> list[str]:
    """The user masks whose sessions must end when `old` (as stored) becomes `new`: a mailbox's
    address when its password changed or it was disabled; `*@<domain>` for each domain that was
    disabled, alone or with its reseller. Nothing for new objects or other changes."""
    if old is None:
        return []
    if isinstance(new, Mailbox):
        changed = old.password_hash != new.password_hash
        return [new.address] if changed or (old.enabled and not new.enabled) else []
    if isinstance(new, Domain):
        return [f"*@{new.name}"] if old.enabled and not new.enabled else []
    if isinstance(new, Reseller) and old.enabled and not new.enabled:
        return [f"*@{name}" for name in new.domains.values_list("name", flat=True)]
    return []


def end_after_commit(masks: Iterable[str]) -> None:
    """End the sessions of these user masks once the current transaction commits (a change
    that is rolled back ends nothing); a failure is logged, the change stands."""
    masks = list(dict.fromkeys(masks))
    if not masks or not settings.MAILPANEL_DOVEADM_URL:
        return

    def end() -> None:
        try:
            end_sessions(masks)
        except MailStoreError as error:
            log.error("the sessions of %s go on until they log in again: %s",
                      ", ".join(masks), error)  # fmt: skip

    transaction.on_commit(end)


def end_sessions(masks: list[str]) -> None:
    """Kick the connections of these user masks (IMAP, POP3, ManageSieve). Raises
    MailStoreError."""
    _call([["kick", {"mask": masks}, "kick"]])


def _call(commands: list) -> list:
    key = base64.b64encode(settings.MAILPANEL_DOVEADM_API_KEY.encode()).decode()
    request = urllib.request.Request(
        settings.MAILPANEL_DOVEADM_URL,
        data=json.dumps(commands).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"X-Dovecot-API {key}"},
        method="POST",
    )
    try:
        # The name lists both mailstore nodes; only the active one listens, so the connection
        # lands there (the passive one refuses at once).
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            replies = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise MailStoreError(f"doveadm at {settings.MAILPANEL_DOVEADM_URL}: {error}") from None
    failed = [reply for reply in replies if reply[0] == "error"]
    if failed:
        raise MailStoreError(f"doveadm answered {failed}")
    return replies

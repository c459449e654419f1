"""Where rspamd finds customer domains' DKIM keys: two hashes in Valkey (the platform's shared
store on the db nodes), written by the panel, read by rspamd's dkim_signing module with
`use_redis = true; key_prefix = "<KEYS_HASH>"; selector_prefix = "<SELECTORS_HASH>";`.

Contract (docs/accounts.md, "DKIM keys in Valkey"):

- `HGET mailstack:dkim:selectors <domain>` -> the selector to sign `<domain>`'s mail with;
- `HGET mailstack:dkim:keys <selector>.<domain>` -> the private key, PKCS#8 PEM.

A domain is in both hashes, or in neither. The account data holds every key (DomainKey), so
`mailstack-panel dkim sync` rewrites both hashes from it after Valkey lost them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import valkey
from django.conf import settings
from valkey.sentinel import Sentinel

from mailstack.dkim import SIGNING_KEYS_HASH as KEYS_HASH
from mailstack.dkim import SIGNING_SELECTORS_HASH as SELECTORS_HASH

TIMEOUT_SECONDS = 3


class SigningStoreError(Exception):
    """The signing store cannot be written: not configured, unreachable or refusing."""


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    private_pem: str


def configured() -> bool:
    return bool(settings.MAILPANEL_VALKEY_URL)


def _client() -> valkey.Valkey:
    if not configured():
        raise SigningStoreError("MAILPANEL_VALKEY_URL is not set: rspamd cannot get the key")
    timeouts = {"socket_timeout": TIMEOUT_SECONDS, "socket_connect_timeout": TIMEOUT_SECONDS}
    if not settings.MAILPANEL_VALKEY_SENTINELS:
        return valkey.Valkey.from_url(settings.MAILPANEL_VALKEY_URL, **timeouts)
    # The primary the Sentinels name now (it moves on a failover); the URL gives the password.
    url = urlsplit(settings.MAILPANEL_VALKEY_URL)
    sentinels = [
        (address.rsplit(":", 1)[0], int(address.rsplit(":", 1)[1]))
        for address in settings.MAILPANEL_VALKEY_SENTINELS
    ]
    return Sentinel(sentinels, sentinel_kwargs=timeouts).master_for(
        settings.MAILPANEL_VALKEY_MASTER,
        password=unquote(url.password or "") or None,
        db=int(url.path.strip("/") or 0),
        **timeouts,
    )


def _run(operation):
    try:
        with _client() as client:
            return operation(client)
    except valkey.ValkeyError as error:
        raise SigningStoreError(f"the signing key store (Valkey) failed: {error}") from None


def publish(key: SigningKey) -> None:
    """Make rspamd sign `key.domain`'s mail with this key from its next message on."""

    def write(client) -> None:
        with client.pipeline(transaction=True) as pipe:
            pipe.hset(KEYS_HASH, f"{key.selector}.{key.domain}", key.private_pem)
            pipe.hset(SELECTORS_HASH, key.domain, key.selector)
            pipe.execute()

    _run(write)


def withdraw(domain: str, selectors: Iterable[str]) -> None:
    """Stop signing `domain`'s mail and forget its keys."""

    def delete(client) -> None:
        with client.pipeline(transaction=True) as pipe:
            pipe.hdel(SELECTORS_HASH, domain)
            for selector in selectors:
                pipe.hdel(KEYS_HASH, f"{selector}.{domain}")
            pipe.execute()

    _run(delete)


def published(domain: str) -> str | None:
    """The selector rspamd signs `domain` with, None if it signs none."""
    value = _run(lambda client: client.hget(SELECTORS_HASH, domain))
    return value.decode() if value is not None else None


def published_count() -> int:
    """How many domains rspamd has a key for."""
    return _run(lambda client: client.hlen(SELECTORS_HASH))


def sync(keys: Iterable[SigningKey], keep_domains: Iterable[str] = ()) -> tuple[int, int]:
    """Make both hashes hold exactly `keys` (one per domain), leaving alone the entries of
    `keep_domains` (the operator's own domains, whose keys the deploy manages); returns the
    numbers of domains written and removed."""
    wanted = {k.domain: k for k in keys}
    kept = set(keep_domains)

    def rewrite(client) -> tuple[int, int]:
        known = {d.decode() for d in client.hkeys(SELECTORS_HASH)}
        stale_domains = known - wanted.keys() - kept
        fields = {f"{k.selector}.{k.domain}" for k in wanted.values()}
        stale_fields = {
            f
            for f in (f.decode() for f in client.hkeys(KEYS_HASH))
            if f not in fields and f.partition(".")[2] not in kept
        }
        with client.pipeline(transaction=True) as pipe:
            for key in wanted.values():
                pipe.hset(KEYS_HASH, f"{key.selector}.{key.domain}", key.private_pem)
                pipe.hset(SELECTORS_HASH, key.domain, key.selector)
            if stale_domains:
                pipe.hdel(SELECTORS_HASH, *stale_domains)
            if stale_fields:
                pipe.hdel(KEYS_HASH, *stale_fields)
            pipe.execute()
        return len(wanted), len(stale_domains)

    return _run(rewrite)

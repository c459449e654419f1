"""DNS look-ups for the panel: ownership proofs and the check of what a domain publishes.

Answers come from real resolvers (`MAILPANEL_DNS_RESOLVERS`, or the host's resolv.conf), asked
with dnspython; a look-up that fails (timeout, SERVFAIL) is reported as such, never as
'missing'.
"""

from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver
from django.conf import settings

CHALLENGE_LABEL = "_mailstack-challenge"
TIMEOUT_SECONDS = 5.0


class LookupFailed(Exception):
    """The resolvers gave no usable answer (as opposed to: the name or record does not exist)."""


def resolver() -> dns.resolver.Resolver:
    configured = settings.MAILPANEL_DNS_RESOLVERS
    result = dns.resolver.Resolver(configure=not configured)
    if configured:
        result.nameservers = []
        result.nameserver_ports = {}
        for entry in configured:
            host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            result.nameservers.append(host)
            if port:
                result.nameserver_ports[host] = int(port)
    result.lifetime = TIMEOUT_SECONDS
    result.cache = None
    return result


def lookup(name: str, rdtype: str) -> list[str]:
    """The values of `name`'s `rdtype` records in presentation form; [] if none exist.

    TXT values are the joined strings of each record, unquoted.
    """
    try:
        answer = resolver().resolve(name, rdtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as e:
        raise LookupFailed(f"{name} {rdtype}: {e}") from None
    if answer.rdtype == dns.rdatatype.TXT:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [r.to_text() for r in answer]


def challenge_name(domain: str) -> str:
    return f"{CHALLENGE_LABEL}.{domain}"


@dataclass(frozen=True)
class Finding:
    """One expected record and what DNS says about it."""

    name: str
    type: str
    expected: str
    found: list[str]
    state: str
    """'ok', 'missing', 'different' or 'failed' (look-up failed)."""

    @property
    def message(self) -> str:
        what = f"{self.type} record {self.name}"
        if self.state == "ok":
            return f"{what} is published"
        if self.state == "failed":
            return f"{what} could not be looked up; try again later"
        if self.state == "missing":
            return f"{what} missing, publish: {self.expected}"
        return f"{what} is {' | '.join(self.found)}, publish: {self.expected}"


def _normal(value: str) -> str:
    return " ".join(value.lower().rstrip(".").split())


def check(name: str, rdtype: str, expected: str, *, prefix: str | None = None) -> Finding:
    """Is `expected` published at `name`? With `prefix` (e.g. 'v=spf1') only records starting
    with it are compared, so other TXT records at the name do not count as different."""
    try:
        found = lookup(name, rdtype)
    except LookupFailed:
        return Finding(name, rdtype, expected, [], "failed")
    relevant = [v for v in found if prefix is None or v.lower().startswith(prefix.lower())]
    if any(_normal(v) == _normal(expected) for v in relevant):
        state = "ok"
    else:
        state = "different" if relevant else "missing"
    return Finding(name, rdtype, expected, relevant, state)

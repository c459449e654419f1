"""Normalising what identifies a greylisting triplet: the client network, sender and recipient.

Senders that tag their envelope address per message (BATV, SRS, VERP, sub-addresses, numeric
bounce ids) would make every retry look new; normalising strips those tags so the retry of a
message finds its first attempt.
"""

import re
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

# BATV: prvs=KEY-DAY-HASH=local, msprvs1=TAG=local, btv1==TAG==local.
_BATV = re.compile(r"^(?:prvs|msprvs\d*)=[0-9a-z]+=|^btv1==[0-9a-z]+==")
# SRS0=HASH=TT=original-domain=original-local (the forwarder's domain after the @).
_SRS0 = re.compile(r"^srs0[=+-][^=]+=[^=]+=([^=]+)=(.+)$")
# SRS1=HASH=first-forwarder==HASH=TT=original-domain=original-local.
_SRS1 = re.compile(r"^srs1[=+-][^=]+=[^=]+==[^=]+=[^=]+=([^=]+)=(.+)$")
# Per-message numbers (VERP bounce ids) and long random tokens with digits in them.
_NUMBER = re.compile(r"\b\d+\b")
_TOKEN = re.compile(r"\b(?=[0-9a-z_]*\d)[0-9a-z_]{16,}\b")


def _strip_tags_once(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    srs = _SRS1.match(local) or _SRS0.match(local)
    if srs:
        domain, local = srs.group(1), srs.group(2)
    local = _BATV.sub("", local)
    local = local.split("+", 1)[0] or local
    local = _TOKEN.sub("#", _NUMBER.sub("#", local))
    return f"{local}@{domain}"


def normalise_sender(sender: str) -> str:
    """The sender as greylisting keys it: lower case, per-message tags removed, '<>' if null."""
    address = sender.strip().lower()
    if not address:
        return "<>"
    # Each pass only shortens the address or turns digits into '#', so this ends, and a
    # normalised address is its own normal form.
    while (stripped := _strip_tags_once(address)) != address:
        address = stripped
    return address


def normalise_recipient(recipient: str) -> str:
    return recipient.strip().lower()


def client_network(address: str, ipv4_prefix: int, ipv6_prefix: int) -> str | None:
    """The client's network (e.g. 192.0.2.0/24) that greylisting groups it in; None if invalid."""
    try:
        parsed = ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    prefix = ipv4_prefix if isinstance(parsed, IPv4Address) else ipv6_prefix
    return str(ip_network(f"{parsed}/{prefix}", strict=False))


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]

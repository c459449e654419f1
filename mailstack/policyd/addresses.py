"""Normalising what identifies a greylisting triplet: the client network, sender and recipient.

Senders that tag their envelope address per message (BATV, SRS, VERP, sub-addresses, numeric
bounce ids) would make every retry look new; normalising strips those tags so the retry of a
message finds its first attempt.
"""

import re
import socket
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network

# BATV: prvs=KEY-DAY-HASH=local, msprvs1=TAG=local, btv1==TAG==local.
_BATV = re.compile(r"^(?:(?:prvs|msprvs\d*)=[0-9a-z]+=|btv1==[0-9a-z]+==)+")
# SRS0=HASH=TT=original-domain=original-local (the forwarder's domain after the @).
_SRS0 = re.compile(r"^srs0[=+-][^=]+=[^=]+=([^=]+)=(.+)$")
# SRS1=HASH=first-forwarder==HASH=TT=original-domain=original-local.
_SRS1 = re.compile(r"^srs1[=+-][^=]+=[^=]+==[^=]+=[^=]+=([^=]+)=(.+)$")
# Per-message numbers (VERP bounce ids) and long random tokens with digits in them.
_NUMBER = re.compile(r"\b\d+\b")
_TOKEN = re.compile(r"\b(?=[0-9a-z_]*\d)[0-9a-z_]{16,}\b")
_DIGIT = re.compile(r"\d")


def _strip_tags_once(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    if "=" in local:
        srs = _SRS1.match(local) or _SRS0.match(local)
        if srs:
            domain, local = srs.group(1), srs.group(2)
        local = _BATV.sub("", local)
    if "+" in local:
        local = local.split("+", 1)[0] or local
    if _DIGIT.search(local):
        local = _TOKEN.sub("#", _NUMBER.sub("#", local))
    return f"{local}@{domain}"


def normalise_sender(sender: str) -> str:
    """The sender as greylisting keys it: lower case, per-message tags removed, '<>' if null."""
    address = sender.strip().lower()
    if not address:
        return "<>"
    # Each pass only shortens the address or turns digits into '#' (which a second pass would
    # not change), so this ends, and a normalised address is its own normal form. Only SRS and
    # BATV ('=') and sub-addresses ('+') can hide further tags.
    while True:
        stripped = _strip_tags_once(address)
        if stripped == address or ("=" not in stripped and "+" not in stripped):
            return stripped
        address = stripped


def normalise_recipient(recipient: str) -> str:
    return recipient.strip().lower()


_FAMILY_BITS = {socket.AF_INET: 32, socket.AF_INET6: 128}
_MAPPED_V4 = 0xFFFF << 32


def parse_address(text: str) -> tuple[int, int] | None:
    """An IP address as (address family, integer); IPv4-mapped IPv6 counts as IPv4; None if
    it is not an address (Postfix may say 'unknown')."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            value = int.from_bytes(socket.inet_pton(family, text), "big")
        except OSError:
            continue
        if family == socket.AF_INET6 and value >> 32 == 0xFFFF:
            return socket.AF_INET, value & 0xFFFFFFFF
        return family, value
    return None


def _mask(family: int, prefix: int) -> int:
    bits = _FAMILY_BITS[family]
    return ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)


class NetworkSet:
    """Networks to test addresses from `parse_address` against, without building objects."""

    def __init__(self, networks: Iterable[IPv4Network | IPv6Network]):
        self.entries = [
            (
                socket.AF_INET if net.version == 4 else socket.AF_INET6,
                int(net.network_address),
                _mask(socket.AF_INET if net.version == 4 else socket.AF_INET6, net.prefixlen),
            )
            for net in networks
        ]

    def __contains__(self, address: tuple[int, int] | None) -> bool:
        if address is None:
            return False
        family, value = address
        return any(f == family and value & mask == net for f, net, mask in self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)


def client_network(address: tuple[int, int], ipv4_prefix: int, ipv6_prefix: int) -> str:
    """The network (e.g. 192.0.2.0/24) that greylisting groups a parsed client address in."""
    family, value = address
    prefix = ipv4_prefix if family == socket.AF_INET else ipv6_prefix
    network = value & _mask(family, prefix)
    packed = network.to_bytes(_FAMILY_BITS[family] // 8, "big")
    return f"{socket.inet_ntop(family, packed)}/{prefix}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]

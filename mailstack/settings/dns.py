"""DNS records the platform needs and whether it publishes them itself."""

from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import Field

from mailstack.settings.base import Model


class ResolverSettings(Model):
    """The DNS resolver on each mx (unbound), which Postfix's postscreen and rspamd ask."""

    forwarders: list[IPv4Address | IPv6Address] = Field(
        default_factory=list,
        description="Resolvers to ask instead of resolving from the root servers; empty (the "
        "default) resolves itself, as the public blocklists require: they refuse queries that "
        "come through shared public resolvers.",
        examples=[["10.20.1.250"]],
    )
    dnssec: bool = Field(
        True,
        description="Validate DNSSEC. Off only where the zones asked cannot be validated from "
        "the root (a lab's private zones).",
    )
    forwarded_special_zones: list[str] = Field(
        default_factory=list,
        description="Zones unbound answers itself by default (RFC 6761 special-use names, the "
        "reverse zones of private ranges) that the forwarders serve instead, by their exact "
        "default name.",
        examples=[["test", "10.in-addr.arpa"]],
    )


class DnsSettings(Model):
    """Mail-related DNS policy."""

    managed_zone: bool = Field(
        False,
        description="The mail domains' zones are hosted at Hetzner DNS and the Pulumi program "
        "manages the records; otherwise the records are exported for the operator to publish.",
    )
    ttl_seconds: int = Field(3600, ge=60, description="TTL of the managed records.")
    spf_all: Literal["-all", "~all"] = Field(
        "-all", description="SPF qualifier for addresses not listed (hard or soft fail)."
    )
    dmarc_policy: Literal["none", "quarantine", "reject"] = Field(
        "reject", description="DMARC policy published for the mail domains."
    )
    dmarc_report_address: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Where aggregate DMARC reports go (default: dmarc-reports@<domain>).",
    )
    tls_report_address: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Where SMTP TLS reports (TLS-RPT) go (default: tls-reports@<domain>).",
    )
    mta_sts_mode: Literal["none", "testing", "enforce"] = Field(
        "enforce", description="MTA-STS policy mode published for the mail domains."
    )
    resolver: ResolverSettings = Field(
        ResolverSettings(), description="The resolver each mx asks (blocklists, SPF, DKIM)."
    )

"""The `mail` section: what the platform accepts, scans and limits (sizes, quotas, postscreen's
DNSBLs), with the policy service's and the filters' settings below it."""

from typing import Literal

from pydantic import Field, model_validator

from mailstack.settings.base import FQDN, Model
from mailstack.settings.filters import AntivirusSettings, DkimSettings, SpamSettings
from mailstack.settings.policyd import (
    GreylistingSettings,
    OutboundLimitSettings,
    PolicyServiceSettings,
)


class Dnsbl(Model):
    """One DNS blocklist consulted by postscreen, with its weight."""

    zone: FQDN = Field(description="The DNSBL zone queried with the reversed client address.")
    weight: int = Field(
        description="Points added when the client is listed (negative for allow lists)."
    )
    reply_filter: str | None = Field(
        None,
        description="Only these reply addresses count, as a postscreen filter; empty means any "
        "reply.",
        examples=["127.0.0.[2..11]", "127.0.0.2"],
    )


def _default_dnsbls() -> list[Dnsbl]:
    return [
        Dnsbl(zone="zen.spamhaus.org", weight=3, reply_filter="127.0.0.[2..11]"),
        Dnsbl(zone="b.barracudacentral.org", weight=2, reply_filter="127.0.0.2"),
        Dnsbl(zone="bl.spamcop.net", weight=1, reply_filter="127.0.0.2"),
        Dnsbl(zone="list.dnswl.org", weight=-2, reply_filter="127.0.[0..255].[1..3]"),
    ]


class MailPolicySettings(Model):
    """What the platform accepts, scans and limits."""

    greylisting: GreylistingSettings = Field(
        GreylistingSettings(), description="Greylisting of inbound mail."
    )
    outbound_limit: OutboundLimitSettings = Field(
        OutboundLimitSettings(), description="Outbound recipient limit per user."
    )
    policy_service: PolicyServiceSettings = Field(
        PolicyServiceSettings(),
        description="The policy service that enforces greylisting and the outbound limit.",
    )
    spam: SpamSettings = Field(SpamSettings(), description="The spam scan before the queue.")
    antivirus: AntivirusSettings = Field(
        AntivirusSettings(), description="The virus scan before the queue."
    )
    dkim: DkimSettings = Field(DkimSettings(), description="DKIM signing of outbound mail.")
    dnsbls: list[Dnsbl] = Field(
        default_factory=_default_dnsbls, description="DNS blocklists weighted by postscreen."
    )
    dnsbl_threshold: int = Field(
        3, ge=1, description="Postscreen refuses a client whose DNSBL weights add up to this."
    )
    message_size_limit_bytes: int = Field(
        50 * 1024 * 1024, ge=1024 * 1024, description="Largest message accepted, in bytes."
    )
    default_quota_mib: int = Field(
        5120, ge=0, description="Mailbox quota for new mailboxes in MiB (0 means no quota)."
    )
    quota_exceeded: Literal["defer", "reject"] = Field(
        "defer",
        description="Delivery to a full mailbox: 'defer' keeps the mail queued and retries, "
        "'reject' bounces it.",
    )

    @model_validator(mode="after")
    def _unique_dnsbls(self) -> "MailPolicySettings":
        zones = [d.zone for d in self.dnsbls]
        if len(zones) != len(set(zones)):
            raise ValueError("dnsbls lists a zone twice")
        return self

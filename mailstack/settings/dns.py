"""DNS records the platform needs and whether it publishes them itself."""

from typing import Literal

from pydantic import Field

from mailstack.settings.base import Model


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

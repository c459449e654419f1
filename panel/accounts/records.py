"""The DNS records a hosted domain publishes, and what DNS actually says about them."""

from django.conf import settings

from accounts import dnscheck
from accounts.models import Domain, Ownership
from mailstack.dkim import DkimKey
from mailstack.dnsrecords import HostedDomainRecord, hosted_domain_records

_TXT_PREFIXES = ("v=spf1", "v=DMARC1", "v=DKIM1")


def signing_key(domain: Domain) -> DkimKey | None:
    """The domain's current DKIM key (the newest), None for the operator's own domains."""
    key = domain.keys.order_by("-created").first()
    return DkimKey(domain.name, key.selector, key.private_pem) if key else None


def expected_records(domain: Domain) -> list[HostedDomainRecord]:
    """Ownership proof (while pending), then MX, SPF, DMARC, SRV and DKIM.

    Without the platform's settings (MAILPANEL_PLATFORM_SETTINGS) only the records the panel
    knows itself are listed: the proof and the DKIM key.
    """
    records = []
    if domain.ownership == Ownership.PENDING:
        records.append(
            HostedDomainRecord(
                dnscheck.challenge_name(domain.name),
                "TXT",
                domain.verification_token,
                "ownership proof: the domain takes mail once this is checked",
            )
        )
    key = signing_key(domain)
    platform = settings.MAILPANEL_PLATFORM
    if platform is not None:
        records += hosted_domain_records(platform, domain.name, key)
    elif key is not None:
        records.append(
            HostedDomainRecord(key.record_name, "TXT", key.record_text, "DKIM: the signing key")
        )
    return records


def check_records(records: list[HostedDomainRecord]) -> list[dnscheck.Finding]:
    findings = []
    for record in records:
        prefix = next((p for p in _TXT_PREFIXES if record.value.startswith(p)), None)
        findings.append(dnscheck.check(record.fqdn, record.type, record.value, prefix=prefix))
    return findings

"""The DNS records a mail platform needs, computed from settings and public addresses.

The Pulumi program publishes them into Hetzner DNS zones (when the zones are managed there) and
exports them as a table; the lab's DNS server serves the same records with lab addresses.
Which records exist depends only on settings; their values also depend on the addresses, so
each record carries a function from addresses to values.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailstack.dkim import DkimKey
from mailstack.settings.topology import Role

MTA_STS_MAX_AGE_SECONDS = 7 * 86400
SRV_RECORDS = (
    # (service label, port, host name service) as RFC 6186 and RFC 8314 recommend.
    ("_submissions._tcp", 465, "submission"),
    ("_submission._tcp", 587, "submission"),
    ("_imaps._tcp", 993, "mail"),
    ("_imap._tcp", 143, "mail"),
    ("_pop3s._tcp", 995, "mail"),
    ("_pop3._tcp", 110, "mail"),
)


@dataclass(frozen=True)
class AddressPair:
    ipv4: str | None = None
    ipv6: str | None = None


@dataclass(frozen=True)
class PublicAddresses:
    """Public addresses of hosts (by host name) and load balancers (by purpose)."""

    hosts: dict[str, AddressPair] = field(default_factory=dict)
    load_balancers: dict[str, AddressPair] = field(default_factory=dict)
    sending_hosts: tuple[str, ...] = ()
    """Hosts whose addresses send mail to the internet (the mx nodes)."""


@dataclass(frozen=True)
class RecordSpec:
    """One resource record set: a name and type in a zone, with values from the addresses."""

    zone: str | None
    """The mail domain zone holding the record, None when the name lies outside every one."""
    fqdn: str
    type: str
    ttl: int
    values: Callable[[PublicAddresses], list[str]]

    @property
    def name(self) -> str:
        """Name relative to the zone ('@' for the apex), as Hetzner's API wants it."""
        if self.zone is None or self.fqdn == self.zone:
            return "@" if self.zone else self.fqdn
        return self.fqdn.removesuffix("." + self.zone)


def txt(text: str) -> str:
    """A TXT value in presentation format: quoted, split into strings of at most 255 bytes."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


def mta_sts_policy(settings) -> str:
    """The MTA-STS policy file served at https://mta-sts.<domain>/.well-known/mta-sts.txt."""
    return (
        "version: STSv1\n"
        f"mode: {settings.dns.mta_sts_mode}\n"
        f"mx: {settings.environment.hostname('mx')}\n"
        f"max_age: {MTA_STS_MAX_AGE_SECONDS}\n"
    )


def _zone_of(fqdn: str, zones: list[str]) -> str | None:
    matching = [zone for zone in zones if fqdn == zone or fqdn.endswith("." + zone)]
    return max(matching, key=len) if matching else None


def _address_values(kind: str, host: str | None = None, balancer: str | None = None):
    def values(addresses: PublicAddresses) -> list[str]:
        pair = addresses.hosts.get(host) if host else addresses.load_balancers.get(balancer)
        value = getattr(pair, kind, None) if pair else None
        return [value] if value else []

    return values


def spf_text(settings, addresses: PublicAddresses) -> str:
    mechanisms = ["v=spf1"]
    for host in addresses.sending_hosts:
        pair = addresses.hosts[host]
        if pair.ipv4:
            mechanisms.append(f"ip4:{pair.ipv4}")
        if pair.ipv6:
            mechanisms.append(f"ip6:{pair.ipv6}")
    mechanisms.append(settings.dns.spf_all)
    return " ".join(mechanisms)


def plan_records(
    settings, host_roles: dict[str, tuple[Role, ...]], dkim_keys: Sequence[DkimKey] = ()
) -> list[RecordSpec]:
    """Every record the platform needs, for the hosts given as {host name: roles} and the
    mail domains' DKIM keys (`mailstack.dkim.domain_keys`)."""
    env = settings.environment
    dns = settings.dns
    zones = list(env.mail_domains)
    primary = env.primary_domain
    ttl = dns.ttl_seconds
    specs: list[RecordSpec] = []

    def add(fqdn: str, rtype: str, values: Callable[[PublicAddresses], list[str]]) -> None:
        specs.append(RecordSpec(_zone_of(fqdn, zones), fqdn, rtype, ttl, values))

    def add_address(fqdn: str, host: str | None = None, balancer: str | None = None) -> None:
        add(fqdn, "A", _address_values("ipv4", host=host, balancer=balancer))
        add(fqdn, "AAAA", _address_values("ipv6", host=host, balancer=balancer))

    service_balancer = {
        "mx": "smtp",
        "submission": "smtp",
        "mail": "mailaccess",
        "panel": "http",
        "webmail": "http",
    }
    for service, balancer in service_balancer.items():
        add_address(env.hostname(service), balancer=balancer)
    for host in host_roles:
        add_address(env.host_fqdn(host), host=host)

    mx_name = env.hostname("mx")
    dmarc_rua = dns.dmarc_report_address or f"dmarc-reports@{primary}"
    tls_rua = dns.tls_report_address or f"tls-reports@{primary}"
    sts_id = hashlib.sha256(mta_sts_policy(settings).encode()).hexdigest()[:20]
    for domain in zones:
        add(domain, "MX", lambda _a: [f"10 {mx_name}."])
        add(domain, "TXT", lambda a: [txt(spf_text(settings, a))])
        add(
            f"_dmarc.{domain}",
            "TXT",
            lambda _a: [txt(f"v=DMARC1; p={dns.dmarc_policy}; rua=mailto:{dmarc_rua}")],
        )
        report_domain = dmarc_rua.rsplit("@", 1)[1]
        if report_domain != domain:
            # RFC 7489 7.1: the report domain must agree to receive another domain's reports.
            add(f"{domain}._report._dmarc.{report_domain}", "TXT", lambda _a: [txt("v=DMARC1")])
        add(f"_mta-sts.{domain}", "TXT", lambda _a: [txt(f"v=STSv1; id={sts_id}")])
        add_address(f"mta-sts.{domain}", balancer="http")
        add(f"_smtp._tls.{domain}", "TXT", lambda _a: [txt(f"v=TLSRPTv1; rua=mailto:{tls_rua}")])
        for label, port, service in SRV_RECORDS:
            target = env.hostname(service)
            add(f"{label}.{domain}", "SRV", lambda _a, p=port, t=target: [f"0 1 {p} {t}."])
    for key in dkim_keys:
        value = txt(key.record_text)
        add(key.record_name, "TXT", lambda _a, v=value: [v])
    return specs


def https_hostnames(settings) -> list[str]:
    """Names the HTTPS load balancer's certificate must cover."""
    env = settings.environment
    names = [env.hostname("panel"), env.hostname("webmail")]
    names += [f"mta-sts.{domain}" for domain in env.mail_domains]
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class HostedDomainRecord:
    """A record a hosted (customer) domain publishes in its own zone; `value` unquoted."""

    fqdn: str
    type: str
    value: str
    purpose: str


def hosted_domain_records(
    settings, domain: str, dkim_key: DkimKey | None = None
) -> list[HostedDomainRecord]:
    """What a domain hosted on the platform but not in its settings (a customer's domain)
    publishes to receive and send mail here: MX, SPF, DMARC, RFC 6186 SRV, and its DKIM key.

    SPF includes the primary domain's record, which lists exactly the sending hosts, so the
    customer's record stays right when mx hosts change. DMARC asks for no reports: reports to
    the operator's address need an authorisation record in the operator's zone per domain.
    """
    env = settings.environment
    records = [
        HostedDomainRecord(domain, "MX", f"10 {env.hostname('mx')}.", "receiving mail"),
        HostedDomainRecord(
            domain,
            "TXT",
            f"v=spf1 include:{env.primary_domain} {settings.dns.spf_all}",
            "SPF: the platform's hosts may send for the domain",
        ),
        HostedDomainRecord(
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p={settings.dns.dmarc_policy}",
            "DMARC: what receivers do with mail failing SPF and DKIM",
        ),
    ]
    for label, port, service in SRV_RECORDS:
        records.append(
            HostedDomainRecord(
                f"{label}.{domain}",
                "SRV",
                f"0 1 {port} {env.hostname(service)}.",
                "mail client set-up (RFC 6186)",
            )
        )
    if dkim_key is not None:
        records.append(
            HostedDomainRecord(
                dkim_key.record_name, "TXT", dkim_key.record_text, "DKIM: the signing key"
            )
        )
    return records

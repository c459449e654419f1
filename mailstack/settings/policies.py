"""Mail policies: greylisting, outbound limits, spam thresholds, DNSBLs, sizes and quotas."""

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import Field, model_validator

from mailstack.settings.base import FQDN, Model, Slug


class GreylistingSettings(Model):
    """Greylisting of unauthenticated inbound mail at RCPT time, shared by every MX node."""

    enabled: bool = Field(True, description="Greylist first attempts from unknown senders.")
    delay_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="How long a new (client network, sender, recipient) triplet must wait "
        "before its retry is accepted.",
    )
    retry_window_seconds: int = Field(
        2 * 86400,
        ge=600,
        description="How long after the first attempt a retry is still accepted; a later "
        "retry starts over.",
    )
    expiry_seconds: int = Field(
        35 * 86400,
        ge=86400,
        description="How long a passed triplet or an auto-allowed client network stays known "
        "without being seen again.",
    )
    auto_allow_after: int = Field(
        5,
        ge=0,
        description="After this many successful retries from a client network it is no longer "
        "greylisted (0 turns auto-allowing off).",
    )
    ipv4_prefix: int = Field(
        24,
        ge=8,
        le=32,
        description="Prefix length that groups IPv4 clients into one network, so senders "
        "retrying from another address of their pool pass.",
    )
    ipv6_prefix: int = Field(
        64, ge=16, le=128, description="Prefix length that groups IPv6 clients into one network."
    )
    allow_client_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list, description="Client addresses and networks never greylisted."
    )
    allow_client_hostname_suffixes: list[FQDN] = Field(
        default_factory=list,
        description="Clients whose verified reverse host name ends in one of these domains are "
        "never greylisted.",
    )
    allow_sender_domains: list[FQDN] = Field(
        default_factory=list, description="Envelope sender domains never greylisted."
    )
    allow_recipients: list[str] = Field(
        default_factory=list,
        description="Recipients (full addresses, or '@domain') that receive mail ungreylisted, "
        "e.g. postmaster and abuse.",
    )
    use_shipped_allowlist: bool = Field(
        True,
        description="Also allow the shipped list of big senders' pools that retry from other "
        "addresses than the first attempt.",
    )


class RecipientLimit(Model):
    """A number of recipients allowed in a sliding time window."""

    recipients: int = Field(ge=1, description="Recipients allowed per window.")
    window_seconds: int = Field(ge=1, le=86400, description="Length of the sliding window.")


class OutboundLimitSettings(Model):
    """Limit on recipients that an authenticated user may send to, across the whole cluster."""

    enabled: bool = Field(True, description="Enforce the limit on authenticated submission.")
    default: RecipientLimit = Field(
        RecipientLimit(recipients=60, window_seconds=300),
        description="The limit for every user without a class.",
    )
    classes: dict[Slug, RecipientLimit] = Field(
        default_factory=lambda: {
            "newsletter": RecipientLimit(recipients=5000, window_seconds=3600)
        },
        description="Named limit classes (e.g. for newsletter senders); a mailbox's class is set "
        "in the account data.",
    )
    on_store_failure: Literal["defer", "allow"] = Field(
        "defer",
        description="What to answer when the shared state (Valkey) is unreachable: 'defer' makes "
        "the client retry later, 'allow' lets mail out unlimited.",
    )
    report_after_hits: int = Field(
        3,
        ge=1,
        description="Report a user (log line and metric) whose messages hit the limit this many "
        "times within one window, a sign of a compromised account.",
    )
    hold_seconds: int = Field(
        120,
        ge=10,
        le=86400,
        description="How long a recipient accepted at RCPT stays reserved while its message has "
        "not ended. A transaction that never reaches the end of its message (aborted, refused "
        "at DATA) has its recipients released after this time and never charged; a message "
        "that ends later is charged when it ends.",
    )


class PolicyServiceSettings(Model):
    """The policy service on every mx node: where it listens and how it guards itself."""

    port: int = Field(
        10040, ge=1, le=65535, description="TCP port Postfix's check_policy_service connects to."
    )
    metrics_port: int = Field(
        9740, ge=1, le=65535, description="TCP port of the Prometheus metrics endpoint."
    )
    store_timeout_ms: int = Field(
        500,
        ge=10,
        le=10000,
        description="Longest wait for Valkey (and for the account data) per request; after it "
        "the fault behaviour applies. Must stay well below Postfix's "
        "smtpd_policy_service_timeout (100 s).",
    )
    store_retry_ms: int = Field(
        1000,
        ge=0,
        le=60000,
        description="After a Valkey (or account data) failure, requests answer at once by the "
        "fault behaviour for this long before it is tried again, so a dead store does not slow "
        "every request.",
    )
    max_line_bytes: int = Field(
        4096,
        ge=256,
        le=65536,
        description="Longest attribute line accepted; a longer one closes the connection.",
    )
    max_attributes: int = Field(
        200,
        ge=20,
        le=10000,
        description="Most attributes accepted in one request; more close the connection.",
    )
    request_timeout_seconds: float = Field(
        10,
        gt=0,
        le=100,
        description="Time a client has from the first byte of a request to its blank line.",
    )
    account_cache_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="How long a user's limit class read from the account data is reused "
        "before it is read again; a class changed in the panel applies after at most this long.",
    )
    idle_timeout_seconds: float = Field(
        330,
        gt=0,
        description="An idle connection is closed after this long; above Postfix's "
        "smtpd_policy_service_max_idle (300 s) so Postfix closes first.",
    )


class ScoredList(Model):
    """One DNS list rspamd consults, and the points a listing adds."""

    zone: FQDN = Field(description="The list's DNS zone.")
    score: float = Field(
        gt=0, le=100, description="Penalty points a listed address or domain adds."
    )


def _default_ip_blocklists() -> list[ScoredList]:
    return [ScoredList(zone="zen.spamhaus.org", score=4.0)]


def _default_uri_blocklists() -> list[ScoredList]:
    return [
        ScoredList(zone="dbl.spamhaus.org", score=6.5),
        ScoredList(zone="multi.surbl.org", score=5.5),
    ]


class SpamSettings(Model):
    """The before-queue spam scan (rspamd): thresholds, lists and what it learns from."""

    add_header_score: float = Field(
        6.0, description="From this score on, a message is delivered with a spam header."
    )
    reject_score: float = Field(15.0, description="From this score on, a message is refused.")
    ip_blocklists: list[ScoredList] = Field(
        default_factory=_default_ip_blocklists,
        description="DNS blocklists of sending addresses, checked for the client and the "
        "addresses in Received headers (unauthenticated mail only).",
    )
    uri_blocklists: list[ScoredList] = Field(
        default_factory=_default_uri_blocklists,
        description="DNS blocklists of domains, checked for the links and addresses in a "
        "message, inbound and outbound (a compromised account sending spam links is caught).",
    )
    bayes_min_learns: int = Field(
        200,
        ge=1,
        description="Spam and ham messages the statistical classifier must have learned each "
        "before its verdict counts.",
    )
    bayes_autolearn: bool = Field(
        True,
        description="Learn rejected messages as spam and clearly clean ones as ham, so the "
        "classifier keeps up without manual training.",
    )
    public_fuzzy: bool = Field(
        True,
        description="Also ask rspamd.com's public fuzzy storage about known spam (needs "
        "outbound UDP 11335); the platform's own fuzzy storage is always asked.",
    )
    fuzzy_expire_days: int = Field(
        90, ge=1, description="How long a learned fuzzy hash is kept without being seen again."
    )
    phishing_feeds: bool = Field(
        True,
        description="Check links against the public PhishTank feed as well as comparing "
        "displayed and real link targets (needs HTTPS to the feed).",
    )
    scan_timeout_seconds: int = Field(
        60,
        ge=5,
        le=300,
        description="Longest scan of one message; after it the sender is told to retry (4xx), "
        "never accepted unscanned.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "SpamSettings":
        if self.reject_score <= self.add_header_score:
            raise ValueError("reject_score must be greater than add_header_score")
        for name in ("ip_blocklists", "uri_blocklists"):
            zones = [entry.zone for entry in getattr(self, name)]
            if len(zones) != len(set(zones)):
                raise ValueError(f"{name} lists a zone twice")
        return self


class AntivirusSettings(Model):
    """ClamAV, asked by rspamd for every message and attachment."""

    signature_updates: bool = Field(
        True,
        description="Keep ClamAV's signature databases current with freshclam (needs HTTPS to "
        "ClamAV's mirrors). Off, clamd runs only the platform's test signature (EICAR): for "
        "labs without internet, never for production.",
    )
    max_scan_mib: int = Field(
        50,
        ge=1,
        le=1024,
        description="Largest message or attachment clamd scans in MiB; parts above it are "
        "passed unscanned by ClamAV, so keep it at least the message size limit.",
    )


class DkimSettings(Model):
    """DKIM signing of outbound mail for the operator's mail domains."""

    selector: str = Field(
        "mailstack",
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="Selector of the signing keys (the DNS name <selector>._domainkey). A new "
        "selector generates new keys: the way to rotate them.",
    )
    key_bits: Literal[2048, 3072, 4096] = Field(
        2048, description="RSA key size of keys generated from now on (existing keys stay)."
    )


class Dnsbl(Model):
    """One DNS blocklist consulted by postscreen, with its weight."""

    zone: FQDN = Field(description="The DNSBL zone queried with the reversed client address.")
    weight: int = Field(
        description="Points added when the client is listed (negative for allow lists)."
    )
    reply_filter: str | None = Field(
        None,
        description="Only these reply addresses count, as a postscreen filter such as "
        "'127.0.0.[2..11]'; empty means any reply.",
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

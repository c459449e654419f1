"""Settings of the policy service: greylisting, the outbound recipient limit, the service."""

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import Field

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
        default_factory=list,
        description="Client addresses and networks never greylisted.",
        examples=[["192.0.2.0/24", "2001:db8::/32"]],
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
        examples=[["postmaster@example.net", "@abuse.example.net"]],
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


class SendingHoldSettings(Model):
    """Automatic holds on a user's sending, the sign of a hijacked account: submission refused
    (receiving and reading go on) until an admin releases it in the panel (docs/policyd.md)."""

    enabled: bool = Field(
        True, description="Put users on hold at the thresholds below (while the limit is enabled)."
    )
    after_limit_hits: int = Field(
        10,
        ge=1,
        description="Hold a user whose messages hit the recipient limit this many times within "
        "one window of their limit.",
    )
    after_scan_refusals: int = Field(
        3,
        ge=1,
        description="Hold a user the outbound scan (rspamd: spam or a virus) refused this many "
        "messages of within `scan_window_seconds`.",
    )
    scan_window_seconds: int = Field(
        3600, ge=60, le=604800, description="The window scan refusals are counted in."
    )


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
        examples=[{"newsletter": {"recipients": 5000, "window_seconds": 3600}}],
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
    sending_hold: SendingHoldSettings = Field(
        SendingHoldSettings(),
        description="Automatic holds on users who keep hitting the limit or sending what the "
        "outbound scan refuses.",
    )


class PolicyServiceSettings(Model):
    """The policy service on every mx node: where it listens and how it guards itself."""

    port: int = Field(
        10040, ge=1, le=65535, description="TCP port Postfix's check_policy_service connects to."
    )
    metrics_port: int = Field(
        9740, ge=1, le=65535, description="TCP port of the Prometheus metrics endpoint."
    )
    scan_reports_port: int = Field(
        9741,
        ge=1,
        le=65535,
        description="TCP port on loopback where rspamd on the same mx host reports the messages "
        "of authenticated users its scan refused (for sending holds).",
    )
    metrics_max_users: int = Field(
        1000,
        ge=1,
        le=100000,
        description="Most users whose own series each per-user metric keeps on one mx node "
        "(sent and refused recipients, limit reports); past it, the user counted longest ago "
        'is folded into user="_other", so sums stay exact and the series bounded.',
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

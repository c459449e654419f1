"""Settings of the filters before the queue: the spam scan (rspamd), the virus scan (ClamAV)
and DKIM signing."""

from ipaddress import IPv4Network
from typing import Literal

from pydantic import Field, model_validator

from mailstack.settings.base import FQDN, Model


class ScoredList(Model):
    """One DNS list rspamd consults, and the points a listing adds."""

    zone: FQDN = Field(description="The list's DNS zone.")
    score: float = Field(
        gt=0, le=100, description="Penalty points a listed address or domain adds."
    )
    listed_replies: list[IPv4Network] = Field(
        default_factory=lambda: [IPv4Network("127.0.0.0/8")],
        min_length=1,
        description="Answers that mean 'listed'; any other answer is not a listing.",
        examples=[["127.0.1.0/24"]],
    )
    error_replies: list[IPv4Network] = Field(
        default_factory=lambda: [IPv4Network("127.255.255.0/24")],
        description="Answers that mean the list refused the query (Spamhaus: 127.255.255.x for "
        "queries through public resolvers or over the free limit). They count as nothing and "
        "are marked, so an operator sees a list that stopped answering; they are taken out of "
        "listed_replies.",
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

"""Where an environment runs, which domains it serves and who administers it."""

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mailstack.settings.base import FQDN, Model, Slug

HetznerLocation = Literal["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
NetworkZone = Literal["eu-central", "us-east", "us-west", "ap-southeast"]

_ZONE_OF_LOCATION: dict[str, str] = {
    "fsn1": "eu-central",
    "nbg1": "eu-central",
    "hel1": "eu-central",
    "ash": "us-east",
    "hil": "us-west",
    "sin": "ap-southeast",
}


Service = Literal["mx", "mail", "submission", "panel", "webmail"]
_DEFAULT_LABEL: dict[str, str] = {
    "mx": "mx",
    "mail": "mail",
    "submission": "smtp",
    "panel": "panel",
    "webmail": "webmail",
}


class Hostnames(Model):
    """Public host names of the platform's services; empty ones derive from the first domain."""

    mx: FQDN | None = Field(None, description="MX host name (default: mx.<first mail domain>).")
    mail: FQDN | None = Field(
        None, description="IMAP and POP3 host name (default: mail.<first mail domain>)."
    )
    submission: FQDN | None = Field(
        None,
        description="Submission (587, 465) host name, served by the SMTP load balancer "
        "(default: smtp.<first mail domain>).",
    )
    panel: FQDN | None = Field(
        None, description="Control panel host name (default: panel.<first mail domain>)."
    )
    webmail: FQDN | None = Field(
        None, description="Webmail host name (default: webmail.<first mail domain>)."
    )


class EnvironmentSettings(Model):
    """One deployment of the platform: production, staging, the lab."""

    name: Slug = Field(description="Environment name, used in host names and resource labels.")
    location: HetznerLocation = Field(
        "fsn1",
        description="Hetzner location of every host. One location, because a Hetzner volume "
        "attaches only to servers in its own location, and the mail and queue volumes must be "
        "able to move to a surviving peer.",
    )
    network_zone: NetworkZone = Field(
        "eu-central", description="Hetzner network zone holding every location."
    )
    mail_domains: list[FQDN] = Field(
        min_length=1,
        description="The operator's own mail domains; the first names the platform's hosts.",
        examples=[["example.net", "example.org"]],
    )
    hostnames: Hostnames = Field(Hostnames(), description="Public host names of the services.")
    admin_ssh_keys: list[str] = Field(
        min_length=1,
        description="SSH public keys allowed to log in as root on every host.",
        examples=[["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... ops@example.net"]],
    )
    admin_cidrs: list[IPv4Network | IPv6Network] = Field(
        min_length=1,
        description="Networks from which SSH to the hosts is allowed.",
        examples=[["203.0.113.0/24", "2001:db8:10::/48"]],
    )

    @field_validator("admin_ssh_keys")
    @classmethod
    def _public_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            parts = key.split()
            if len(parts) < 2 or not (parts[0].startswith("ssh-") or parts[0].startswith("ecdsa-")):
                raise ValueError(f"not an SSH public key: {key[:40]!r}")
        return keys

    @field_validator("admin_cidrs")
    @classmethod
    def _no_open_ssh(cls, cidrs: list[IPv4Network | IPv6Network]) -> list:
        for cidr in cidrs:
            if cidr.prefixlen == 0:
                raise ValueError(f"{cidr} would open SSH to the whole internet")
        return cidrs

    @model_validator(mode="after")
    def _zone_matches_locations(self) -> "EnvironmentSettings":
        if _ZONE_OF_LOCATION[self.location] != self.network_zone:
            raise ValueError(f"location {self.location} is not in network zone {self.network_zone}")
        if len(set(self.mail_domains)) != len(self.mail_domains):
            raise ValueError("mail_domains lists a domain twice")
        return self

    @property
    def primary_domain(self) -> str:
        return self.mail_domains[0]

    def hostname(self, service: Service) -> str:
        """The public host name of a service, derived from the primary domain when unset."""
        return (
            getattr(self.hostnames, service) or f"{_DEFAULT_LABEL[service]}.{self.primary_domain}"
        )

    def host_fqdn(self, host_name: str) -> str:
        """The public name of one host, e.g. production-mx1.example.net (its PTR and HELO)."""
        return f"{host_name}.{self.primary_domain}"

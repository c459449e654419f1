"""Lab-only settings: what the lab adds around the platform's own settings.

They live in the lab's stack file beside `mailstack:settings`, under the config key
`mailstack:lab`, and describe only what Hetzner and the internet provide in production:
the bridge's address range, the load-balancer and "internet" hosts, the foreign zones.
"""

import re
from ipaddress import IPv4Network
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from mailstack.settings.base import FQDN, Model
from mailstack.settings.stackfile import SettingsError

LAB_CONFIG_KEY = "mailstack:lab"

LAB_NAME_PATTERN = r"^[a-z][a-z0-9]{0,10}$"
"""A lab's name: it names the bridge, msl-<name>, within an interface name's 15 characters."""

BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "netbase",
    "ca-certificates",
    "procps",
    "curl",
)
"""Packages of the hosts' shared base image (on top of mmdebstrap's minbase): what boots a host
and what every pyinfra role and test needs on each host anyway, so deploys start faster."""


class LabSettings(Model):
    """The lab's own pieces around the platform: addresses, extra hosts, foreign zones."""

    default_name: str = Field(
        "mailstack",
        pattern=LAB_NAME_PATTERN,
        description="The lab that uses the stack's own subnet (network.subnet) as it is; labs "
        "with other names get a /24 of their own from address_pool.",
    )
    address_pool: IPv4Network = Field(
        IPv4Network("10.77.0.0/16"),
        description="Range from which labs other than default_name take a free /24, so several "
        "labs coexist; the platform's settings are re-based to it (same offsets).",
    )
    suite: str = Field("trixie", description="Debian release of every lab host.")
    base_packages: list[str] = Field(
        list(BASE_PACKAGES),
        min_length=1,
        description="Packages of the cached base image every host starts from (minbase plus "
        "these); the cache is keyed by this list.",
    )
    loadbalancer_host: str = Field(
        "lb1",
        pattern=r"^[a-z][a-z0-9-]{0,20}$",
        description="Name (after '<environment>-') of the host that plays Hetzner's load "
        "balancers with HAProxy, on the load balancers' private addresses.",
    )
    internet_host: str = Field(
        "internet",
        pattern=r"^[a-z][a-z0-9-]{0,20}$",
        description="Name (after '<environment>-') of the host that plays the internet: "
        "authoritative DNS, a foreign peer MTA and the Pebble ACME server.",
    )
    internet_offset: int = Field(
        250, ge=2, le=253, description="Offset in the subnet of the internet host's address."
    )
    listed_offset: int = Field(
        251,
        ge=2,
        le=253,
        description="Offset of the internet host's second address, the one the test DNSBL lists "
        "(a spam source for tests).",
    )
    peer_domain: FQDN = Field(
        "peer.test", description="Mail domain of the foreign provider the peer MTA plays."
    )
    dnsbl_zone: FQDN = Field("dnsbl.test", description="Zone of the lab's test DNS blacklist.")
    listed_link_domain: FQDN = Field(
        "mailstack-listed-link.com",
        description="A domain the lab's DNS blacklist lists, for links in spam test messages. It "
        "needs a public top-level domain (rspamd ignores links under .test) and must not be on "
        "rspamd's list of domains never looked up (the reserved example domains are); nothing "
        "outside the lab is ever asked about it.",
    )
    services_domain: FQDN = Field(
        "internet.test",
        description="Zone naming the internet's services: ns.<zone> (DNS), acme.<zone> (Pebble).",
    )
    reseller_zone: FQDN = Field(
        "resellers.test",
        description="A zone in which every name points at the HTTP load balancer, as a "
        "reseller points its own panel and webmail host names at the platform: resellers in "
        "the lab take their white-label host names from it.",
    )
    apt_cache_port: int = Field(
        3142, ge=1024, le=65535, description="Port of the lab's apt-cacher-ng on the bridge."
    )
    cloud_api_port: int = Field(
        8480,
        ge=1024,
        le=65535,
        description="Port of the lab's Hetzner Cloud API (the subset failover uses) on the "
        "bridge address; clients take http://<bridge address>:<port>/v1 as their endpoint.",
    )
    alert_webhook_port: int = Field(
        8481,
        ge=1024,
        le=65535,
        description="Port on the bridge address where the lab's alert tests receive "
        "Alertmanager's webhook: the lab's settings send monitoring.notifications.webhook_urls "
        "there (nothing listens between tests; Alertmanager retries).",
    )
    boot_timeout_seconds: int = Field(
        90, ge=5, le=900, description="How long a host may take from start to SSH-ready."
    )

    @model_validator(mode="after")
    def _addresses_differ(self) -> "LabSettings":
        if self.internet_offset == self.listed_offset:
            raise ValueError("internet_offset and listed_offset must differ")
        ports = (self.apt_cache_port, self.cloud_api_port, self.alert_webhook_port)
        if len(set(ports)) != len(ports):
            raise ValueError("apt_cache_port, cloud_api_port and alert_webhook_port must differ")
        if not self.address_pool.is_private or self.address_pool.prefixlen > 24:
            raise ValueError(f"address_pool {self.address_pool} must be a private range of /24s")
        return self


def load_lab_settings(path: str | Path) -> LabSettings:
    """Read `config: mailstack:lab:` from a stack file (absent: every default)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise SettingsError(str(path), [("file", error.strerror or str(error))]) from None
    section = (document.get("config") or {}).get(LAB_CONFIG_KEY) or {}
    try:
        return LabSettings.model_validate(section)
    except ValidationError as error:
        problems = [
            (
                LAB_CONFIG_KEY + "".join(f".{part}" for part in item["loc"]),
                item["msg"].removeprefix("Value error, "),
            )
            for item in error.errors()
        ]
        raise SettingsError(str(path), problems) from None


def validate_name(name: str) -> str:
    if not re.fullmatch(LAB_NAME_PATTERN, name):
        from mailstack.lab.system import LabError

        raise LabError(
            f"lab name {name!r}: 1-11 lower-case letters and digits, starting with a letter "
            "(it names the bridge, msl-<name>)"
        )
    return name

"""The private network, the deterministic addresses of hosts in it, and who else may reach
them through the hosts' firewalls."""

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mailstack.settings.base import Model
from mailstack.settings.topology import Role


class HostOffsets(Model):
    """Where each role's hosts start in the subnet: host N of a role gets subnet base + offset + N."""

    mx: int = Field(10, ge=2, le=250, description="Offset of the first mx host.")
    mailstore: int = Field(30, ge=2, le=250, description="Offset of the first mailstore host.")
    db: int = Field(50, ge=2, le=250, description="Offset of the first db host.")
    web: int = Field(70, ge=2, le=250, description="Offset of the first web host.")
    load_balancers: int = Field(
        2, ge=2, le=250, description="Offset of the first load balancer's private address."
    )


class FirewallAllowance(Model):
    """One port of a role's hosts opened to clients outside the platform."""

    role: Role = Field(description="The role whose hosts open the port.")
    port: int = Field(ge=1, le=65535, description="The port.")
    protocol: Literal["tcp", "udp"] = Field("tcp", description="The transport protocol.")
    sources: list[IPv4Network | IPv6Network] = Field(
        min_length=1, description="The clients' addresses or networks."
    )
    description: str = Field(
        min_length=1,
        max_length=80,
        pattern=r'^[^"\\]*$',
        description="Who the clients are and why they need the port; the rule in the host's "
        "ruleset carries it as its comment.",
    )

    @field_validator("sources")
    @classmethod
    def _not_everyone(cls, sources: list[IPv4Network | IPv6Network]) -> list:
        for network in sources:
            if network.prefixlen == 0:
                raise ValueError(f"{network} would open the port to every address")
        return sources

    @model_validator(mode="after")
    def _ssh_has_its_own_setting(self) -> "FirewallAllowance":
        if self.port == 22 and self.protocol == "tcp":
            raise ValueError("SSH is opened to environment.admin_cidrs; list networks there")
        return self


class FirewallSettings(Model):
    """Clients outside the platform that the hosts' firewalls (nftables) let in.

    Each host's firewall opens a service's port to the platform's own clients of it (the load
    balancer that forwards it, the hosts of the roles that use it) and SSH to
    `environment.admin_cidrs`, all derived from the inventory; everything else is refused
    unless listed here (mailstack.services.firewall)."""

    allow: list[FirewallAllowance] = Field(
        default_factory=list,
        description="Clients outside the platform and the ports they may reach, e.g. a "
        "monitoring server scraping the policy service's metrics port on the mx hosts.",
        examples=[
            [
                {
                    "role": "mx",
                    "port": 9740,
                    "sources": ["10.20.2.5/32"],
                    "description": "Prometheus scrapes the policy service",
                }
            ]
        ],
    )


class NetworkSettings(Model):
    """Private network connecting every host and load balancer."""

    ip_range: IPv4Network = Field(
        IPv4Network("10.20.0.0/16"), description="The private network's whole range."
    )
    subnet: IPv4Network = Field(
        IPv4Network("10.20.1.0/24"), description="The subnet hosts and load balancers live in."
    )
    offsets: HostOffsets = Field(HostOffsets(), description="Address offsets per role.")
    firewall: FirewallSettings = Field(
        FirewallSettings(), description="Who outside the platform may reach its hosts."
    )

    @model_validator(mode="after")
    def _subnet_in_range(self) -> "NetworkSettings":
        if not self.ip_range.is_private:
            raise ValueError(f"ip_range {self.ip_range} is not a private range")
        if not self.subnet.subnet_of(self.ip_range):
            raise ValueError(f"subnet {self.subnet} is not inside ip_range {self.ip_range}")
        if self.subnet.prefixlen > 28:
            raise ValueError(f"subnet {self.subnet} is too small (at most /28)")
        return self

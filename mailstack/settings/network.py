"""The private network and the deterministic addresses of hosts in it."""

from ipaddress import IPv4Network

from pydantic import Field, model_validator

from mailstack.settings.base import Model


class HostOffsets(Model):
    """Where each role's hosts start in the subnet: host N of a role gets subnet base + offset + N."""

    mx: int = Field(10, ge=2, le=250, description="Offset of the first mx host.")
    mailstore: int = Field(30, ge=2, le=250, description="Offset of the first mailstore host.")
    db: int = Field(50, ge=2, le=250, description="Offset of the first db host.")
    web: int = Field(70, ge=2, le=250, description="Offset of the first web host.")
    load_balancers: int = Field(
        2, ge=2, le=250, description="Offset of the first load balancer's private address."
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

    @model_validator(mode="after")
    def _subnet_in_range(self) -> "NetworkSettings":
        if not self.ip_range.is_private:
            raise ValueError(f"ip_range {self.ip_range} is not a private range")
        if not self.subnet.subnet_of(self.ip_range):
            raise ValueError(f"subnet {self.subnet} is not inside ip_range {self.ip_range}")
        if self.subnet.prefixlen > 28:
            raise ValueError(f"subnet {self.subnet} is too small (at most /28)")
        return self

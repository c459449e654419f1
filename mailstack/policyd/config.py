"""The service's runtime configuration: the policy settings plus where to listen and connect.

The pyinfra role renders it from the stack settings as JSON; `mailstack policyd` reads it
with `--config`, or builds it from a stack file and flags.
"""

import json
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from mailstack.settings.base import Model
from mailstack.settings.policies import (
    GreylistingSettings,
    OutboundLimitSettings,
    PolicyServiceSettings,
)
from mailstack.settings.stackfile import SettingsError


def _check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return value


class PolicydConfig(Model):
    """Everything one policy service process needs."""

    listen: str = Field(
        "127.0.0.1:10040", description="HOST:PORT the policy protocol is served on."
    )
    metrics_listen: str | None = Field(
        None, description="HOST:PORT of the Prometheus metrics endpoint; None serves none."
    )
    valkey_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="The shared Valkey, as a redis:// URL (password and database number). "
        "With `valkey_sentinels`, its host and port are only where to start: the primary is "
        "the one the Sentinels name.",
    )
    valkey_sentinels: list[str] = Field(
        default_factory=list,
        description="HOST:PORT of each Valkey Sentinel; the service asks them for the current "
        "primary of `valkey_service` whenever it (re)connects. Empty: `valkey_url` as it is.",
    )
    valkey_service: str = Field(
        "mailstack-policy", description="The name the Sentinels monitor the primary by."
    )
    valkey_sentinel_password: str | None = Field(
        None, description="The Sentinels' password (their requirepass); None when they have none."
    )
    accounts_dsn: str | None = Field(
        None,
        description="libpq connection string to the account data as the read-only lookup role, "
        "for users' outbound limit classes; None gives every user the default limit.",
    )
    holds_dsn: str | None = Field(
        None,
        description="libpq connection string to the primary as the lookup role, for putting "
        "users' sending on hold (mail.hold_sending); None holds no one.",
    )
    scan_reports_listen: str | None = Field(
        None,
        description="HOST:PORT where rspamd reports (HTTP POST, its metadata exporter's JSON) "
        "the messages of authenticated users its scan refused; None takes no reports.",
    )
    key_prefix: str = Field(
        "policyd:", description="Prefix of every Valkey key the service writes."
    )
    trusted_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")],
        description="Clients in these networks (the platform's own hosts) are never greylisted.",
    )
    greylisting: GreylistingSettings = Field(
        GreylistingSettings(), description="Greylisting of unauthenticated inbound mail."
    )
    outbound_limit: OutboundLimitSettings = Field(
        OutboundLimitSettings(), description="The recipient limit of authenticated users."
    )
    service: PolicyServiceSettings = Field(
        PolicyServiceSettings(), description="Timeouts and input limits."
    )

    @field_validator("listen", "metrics_listen", "scan_reports_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        return None if value is None else _check_host_port(value)

    @field_validator("valkey_sentinels")
    @classmethod
    def _sentinels(cls, value: list[str]) -> list[str]:
        return [_check_host_port(item) for item in value]


def load_config(path: str | Path) -> PolicydConfig:
    """Read a JSON configuration file; errors name the field."""
    path = Path(path)
    try:
        return PolicydConfig.model_validate_json(path.read_text())
    except OSError as error:
        raise SettingsError(str(path), [("file", error.strerror or str(error))]) from None
    except ValidationError as error:
        problems = [
            (".".join(str(p) for p in item["loc"]) or "file", item["msg"])
            for item in error.errors()
        ]
        raise SettingsError(str(path), problems) from None


def dump_config(config: PolicydConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), indent=2) + "\n"

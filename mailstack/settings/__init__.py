"""The typed settings of the whole platform: the single source of truth for every environment.

`Settings` is the root. Per-environment values live in `stacks/Pulumi.<env>.yaml` under the
config key `mailstack:settings`; `load_stack_file` reads and validates one.
"""

from pydantic import Field, model_validator

from mailstack.settings.backups import AGE_RECIPIENT, BackupSettings
from mailstack.settings.base import Model
from mailstack.settings.clusters import DatabaseSettings, ValkeySettings
from mailstack.settings.dns import DnsSettings
from mailstack.settings.environment import EnvironmentSettings
from mailstack.settings.failover import FailoverSettings
from mailstack.settings.monitoring import MonitoringSettings
from mailstack.settings.network import NetworkSettings
from mailstack.settings.plan import plan_hosts, plan_load_balancers
from mailstack.settings.policies import MailPolicySettings
from mailstack.settings.services import MailstoreSettings, WebSettings
from mailstack.settings.tls import TlsSettings
from mailstack.settings.topology import TopologySettings
from mailstack.settings.tracing import TracingSettings


class Settings(Model):
    """Everything that describes one environment of the platform."""

    environment: EnvironmentSettings = Field(description="Name, location, domains and admins.")
    topology: TopologySettings = Field(
        TopologySettings(), description="Hosts per role and their sizes."
    )
    network: NetworkSettings = Field(NetworkSettings(), description="The private network.")
    mail: MailPolicySettings = Field(
        MailPolicySettings(), description="Greylisting, limits, spam and size policies."
    )
    tls: TlsSettings = Field(description="Certificates for every TLS endpoint.")
    dns: DnsSettings = Field(DnsSettings(), description="DNS records and policies.")
    mailstore: MailstoreSettings = Field(
        MailstoreSettings(), description="Dovecot on the mailstore pair."
    )
    database: DatabaseSettings = Field(
        DatabaseSettings(), description="PostgreSQL on the db nodes, under Patroni with etcd."
    )
    valkey: ValkeySettings = Field(
        ValkeySettings(), description="Valkey on the db nodes, followed through Sentinel."
    )
    monitoring: MonitoringSettings = Field(
        MonitoringSettings(), description="Prometheus, Alertmanager and the alert rules."
    )
    failover: FailoverSettings = Field(
        FailoverSettings(),
        description="The failover clusters of the mailstore pair and the mx nodes.",
    )
    web: WebSettings = Field(WebSettings(), description="The web nodes: control panel and webmail.")
    backups: BackupSettings = Field(
        BackupSettings(), description="Off-site backups: where they go and how often."
    )
    tracing: TracingSettings = Field(
        TracingSettings(), description="Message tracing: what is kept, and for how long."
    )

    @model_validator(mode="after")
    def _addresses_fit(self) -> "Settings":
        subnet = self.network.subnet
        seen: dict[str, str] = {}
        things = [(h.name, h.private_ip) for h in plan_hosts(self)]
        things += [(lb.name, lb.private_ip) for lb in plan_load_balancers(self)]
        for name, address in things:
            # The first address is the network's, the next one Hetzner's gateway, the last broadcast.
            if address not in subnet or address in (
                subnet.network_address,
                subnet.network_address + 1,
                subnet.broadcast_address,
            ):
                raise ValueError(
                    f"network.offsets put {name} at {address}, outside the usable part of "
                    f"subnet {subnet}"
                )
            if str(address) in seen:
                raise ValueError(
                    f"network.offsets give {name} and {seen[str(address)]} the same address "
                    f"{address}"
                )
            seen[str(address)] = name
        return self

    @model_validator(mode="after")
    def _secrets_readable_off_site(self) -> "Settings":
        if (
            self.backups.target is not None
            and not self.backups.secrets_recipients
            and not any(AGE_RECIPIENT.match(key) for key in self.environment.admin_ssh_keys)
        ):
            raise ValueError(
                "backups.secrets_recipients is empty and environment.admin_ssh_keys has no "
                "Ed25519 or RSA key to encrypt the secrets' off-site copy for: name one"
            )
        return self

    @model_validator(mode="after")
    def _backups_run_within_their_alert(self) -> "Settings":
        # A backup scheduled less often than the alert allows would alert between every two.
        limit = self.monitoring.alerts.backup.max_age_hours * 60
        intervals = {
            "backups.mail.interval_minutes": self.backups.mail.interval_minutes,
            "backups.valkey.interval_minutes": self.backups.valkey.interval_minutes,
            "backups.database.backup_interval_hours": self.backups.database.backup_interval_hours
            * 60,
        }
        for name, minutes in intervals.items():
            if self.backups.target is not None and minutes >= limit:
                raise ValueError(
                    f"{name} ({minutes} min) must be below monitoring.alerts.backup."
                    f"max_age_hours ({limit // 60} h): BackupTooOld would fire between backups"
                )
        return self

    @model_validator(mode="after")
    def _sentinel_quorum_fits(self) -> "Settings":
        nodes = self.topology.db.count
        if self.topology.profile != "single" and self.valkey.sentinel.quorum > nodes:
            raise ValueError(
                f"valkey.sentinel.quorum ({self.valkey.sentinel.quorum}) is more than the "
                f"{nodes} db nodes that run a Sentinel: no failover could ever start"
            )
        return self

    @model_validator(mode="after")
    def _certificate_alert_after_renewal(self) -> "Settings":
        # Alerting within the renewal window would alert on every certificate before certbot
        # even tries; below it, the alert means renewals kept failing.
        days = self.monitoring.alerts.certificates.days_before_expiry
        if self.tls.mode == "acme" and days >= self.tls.acme.renew_days_before_expiry:
            raise ValueError(
                f"monitoring.alerts.certificates.days_before_expiry ({days}) must be below "
                f"tls.acme.renew_days_before_expiry ({self.tls.acme.renew_days_before_expiry})"
            )
        return self


from mailstack.settings.stackfile import SettingsError, load_stack_file  # noqa: E402

__all__ = ["Settings", "SettingsError", "load_stack_file"]

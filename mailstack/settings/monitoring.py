"""Monitoring: what Prometheus keeps, when each alert fires, and where alerts are sent.

Every threshold and duration of the alert rules is here (mailstack.services.monitoring renders
the rules from them), so the lab can fire alerts within seconds while production waits minutes.
"""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, HttpUrl, model_validator

from mailstack.settings.base import Model, _check_fqdn


def _check_address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not re.fullmatch(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+", local):
        raise ValueError(f"{value!r} is not a mail address (local-part@domain)")
    return f"{local}@{_check_fqdn(domain)}"


MailAddress = Annotated[str, AfterValidator(_check_address)]
"""A plain mail address, its domain lower-cased."""


class Duration(Model):
    """How long a condition must hold before its alert fires (Prometheus' `for`)."""

    for_seconds: int = Field(
        300, ge=0, le=86400, description="How long the condition must hold before it alerts."
    )


class ServiceDownAlert(Duration):
    """A service that does not answer on a node (its scrape fails, its exporter reports it down,
    or its systemd unit is not active); Dovecot, which runs on one mailstore node at a time,
    when no mailstore node serves it."""

    for_seconds: int = Field(
        120, ge=0, le=86400, description="How long the service must be down before it alerts."
    )


class MailQueueAlert(Duration):
    """An mx host's mail queue grows, or mail waits in it too long."""

    messages: int = Field(
        1000, ge=1, description="Alert when an mx host's queue holds more messages than this."
    )
    deferred_older_than_seconds: Literal[10, 100, 1000, 10000, 100000] = Field(
        10000,
        description="Age (seconds) from which a deferred message counts as old. The Postfix "
        "exporter reports queue ages as a histogram with these bounds only, so it can tell "
        "nothing finer.",
    )
    deferred_messages: int = Field(
        10,
        ge=0,
        description="Alert when more deferred messages than this are older than "
        "deferred_older_than_seconds on an mx host.",
    )


class ReplicationAlert(Duration):
    """The database's standbys: how far behind they may be, and that none is missing."""

    lag_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1,
        description="Alert when a standby has replayed this many bytes of WAL less than its "
        "primary (seen on the primary).",
    )
    lag_seconds: int = Field(
        60,
        ge=1,
        description="Alert when a standby's last replayed transaction is this old while it has "
        "WAL still to replay (seen on the standby).",
    )


class DiskAlert(Duration):
    """Free space on every file system of every host."""

    warning_free_percent: float = Field(
        15, gt=0, lt=100, description="Warn when a file system has less free space than this."
    )
    critical_free_percent: float = Field(
        5, gt=0, lt=100, description="Critical when a file system has less free space than this."
    )

    @model_validator(mode="after")
    def _critical_below_warning(self) -> "DiskAlert":
        if self.critical_free_percent >= self.warning_free_percent:
            raise ValueError("critical_free_percent must be below warning_free_percent")
        return self


class MailVolumeAlert(Duration):
    """The mail volume on the mailstore node that holds it: time to grow it."""

    free_percent: float = Field(
        20, gt=0, lt=100, description="Alert when the mail volume has less free space than this."
    )
    full_in_days: int = Field(
        7,
        ge=1,
        le=365,
        description="Alert when the growth of the last six hours would fill the mail volume "
        "within this many days.",
    )


class ValkeyMemoryAlert(Duration):
    """Each Valkey instance's memory against its limit (valkey.policy.maxmemory_mib,
    valkey.filters.maxmemory_mib)."""

    used_percent: float = Field(
        90,
        gt=0,
        le=100,
        description="Alert when a Valkey instance uses more than this share of its maxmemory; "
        "past it, with maxmemory_policy noeviction, writes fail.",
    )


class CertificateAlert(Duration):
    """The TLS certificate each host serves."""

    days_before_expiry: int = Field(
        14,
        ge=1,
        le=89,
        description="Alert when a host's certificate expires within this many days. With ACME "
        "it must be below tls.acme.renew_days_before_expiry: it means renewals kept failing.",
    )


class BackupAlert(Duration):
    """The last successful backup, as the backup jobs report it (metric
    mailstack_backup_last_success_timestamp_seconds)."""

    max_age_hours: int = Field(
        26,
        ge=1,
        le=24 * 60,
        description="Alert when a backup's last success is older than this (a daily backup "
        "with two hours of slack by default).",
    )


class OutboundAlert(Duration):
    """Recipients the policy service refused to authenticated senders (the recipient limit,
    or a limit it could not check), across the platform and per mailbox."""

    for_seconds: int = Field(
        0,
        ge=0,
        le=86400,
        description="How long the count must stay above its threshold before it alerts (the "
        "window already spans time).",
    )
    window_seconds: int = Field(
        600,
        ge=10,
        le=86400,
        description="The window refusals are counted in (at least four scrape intervals).",
    )
    platform_refused: int = Field(
        200,
        ge=0,
        description="Alert when the platform refused more recipients than this within the window.",
    )
    mailbox_refused: int = Field(
        20,
        ge=0,
        description="Alert when one mailbox was refused more recipients than this within the "
        "window: a sign of a hijacked account.",
    )


class AlertSettings(Model):
    """When each alert fires; every alert has a runbook entry in docs/operations.md."""

    service_down: ServiceDownAlert = Field(ServiceDownAlert(), description="ServiceDown.")
    mail_queue: MailQueueAlert = Field(
        MailQueueAlert(), description="MailQueueLarge and DeferredMailOld."
    )
    replication: ReplicationAlert = Field(
        ReplicationAlert(), description="PostgreSQLReplicationLag and PostgreSQLStandbyMissing."
    )
    disk: DiskAlert = Field(DiskAlert(), description="DiskSpaceLow and DiskSpaceCritical.")
    mail_volume: MailVolumeAlert = Field(MailVolumeAlert(), description="MailVolumeFilling.")
    valkey_memory: ValkeyMemoryAlert = Field(ValkeyMemoryAlert(), description="ValkeyMemoryHigh.")
    certificates: CertificateAlert = Field(
        CertificateAlert(), description="CertificateExpiresSoon."
    )
    backup: BackupAlert = Field(BackupAlert(), description="BackupTooOld.")
    outbound: OutboundAlert = Field(
        OutboundAlert(), description="OutboundRefusalsSpike and MailboxOutboundRefusals."
    )


class NotificationSettings(Model):
    """Where Alertmanager sends alerts, and how it groups and repeats them."""

    email_to: list[MailAddress] = Field(
        default_factory=list,
        description="Operators' addresses that get each alert by mail, sent through the "
        "platform's own mx hosts (their listener for the platform's own mail).",
        examples=[["ops@example.net"]],
    )
    email_from: MailAddress | None = Field(
        None,
        description="The alerts' sender (envelope and From); default alerts@<first mail "
        "domain>. Mail to it (bounces) arrives only if a mailbox or forwarding takes it.",
    )
    webhook_urls: list[HttpUrl] = Field(
        default_factory=list,
        description="URLs that get each alert as Alertmanager's webhook JSON (POST), e.g. a "
        "chat or paging bridge. The deploy keeps them in a file only root and Alertmanager "
        "read, but they are in the stack file: a URL with a token belongs in a private one.",
        examples=[["https://hooks.example.net/alertmanager"]],
    )
    group_wait_seconds: int = Field(
        30,
        ge=0,
        le=3600,
        description="How long Alertmanager waits for more alerts of a new group before the "
        "first notification.",
    )
    group_interval_seconds: int = Field(
        300,
        ge=1,
        le=86400,
        description="How long it waits before notifying about alerts added to a group already "
        "notified.",
    )
    repeat_interval_seconds: int = Field(
        4 * 3600,
        ge=60,
        le=7 * 86400,
        description="How long before an alert still firing is sent again.",
    )
    send_resolved: bool = Field(True, description="Also notify when an alert resolves.")


class MonitoringSettings(Model):
    """Prometheus and Alertmanager on the web nodes, scraping every service's exporter over
    the private network."""

    scrape_interval_seconds: int = Field(
        30, ge=1, le=300, description="How often Prometheus scrapes every exporter."
    )
    evaluation_interval_seconds: int = Field(
        30, ge=1, le=300, description="How often Prometheus evaluates the alert rules."
    )
    retention_days: int = Field(30, ge=1, le=3650, description="How long Prometheus keeps samples.")
    retention_gib: int = Field(
        10,
        ge=1,
        le=10240,
        description="Most disk Prometheus' samples may take on each web node (GiB); the oldest "
        "go first when they would take more.",
    )
    alerts: AlertSettings = Field(AlertSettings(), description="When each alert fires.")
    notifications: NotificationSettings = Field(
        NotificationSettings(), description="Where alerts are sent."
    )

    @model_validator(mode="after")
    def _windows_hold_samples(self) -> "MonitoringSettings":
        # rate() and friends need at least two samples in a window; four leave room for a
        # missed scrape.
        window = self.alerts.outbound.window_seconds
        if window < 4 * self.scrape_interval_seconds:
            raise ValueError(
                f"alerts.outbound.window_seconds ({window}) must be at least four "
                f"scrape_interval_seconds ({self.scrape_interval_seconds})"
            )
        return self


def alert_sender(settings) -> str:
    """The address alerts are sent from: `monitoring.notifications.email_from`, else
    alerts@<first mail domain>."""
    return settings.monitoring.notifications.email_from or (
        f"alerts@{settings.environment.primary_domain}"
    )

"""The alert rules Prometheus evaluates, from the thresholds in settings `monitoring.alerts`.

Each alert has a runbook entry under its own name in docs/operations.md (#alert-<name> in lower
case), which its `runbook` annotation links; tests/unit/test_alert_rules.py checks every rule
with `promtool test rules` and that every alert has its entry, tests/e2e/test_alerts.py fires
each in the lab and sees it delivered.
"""

from dataclasses import dataclass

from mailstack.jobs import BACKUP_METRIC
from mailstack.services import dovecot

RUNBOOK = "docs/operations.md#alert-{anchor}"

MAIL_ROOT = dovecot.MAIL_ROOT
CERTIFICATE_METRIC = "mailstack_tls_certificate_not_after_seconds"
"""When the certificate a host serves expires (Unix time), by mailstack.services.exporters."""


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_seconds: int
    severity: str
    summary: str
    """A Go template Alertmanager fills in ($labels, $value)."""

    def rule(self) -> dict:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": f"{self.for_seconds}s",
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "runbook": RUNBOOK.format(anchor=self.name.lower()),
            },
        }


def _grown(expression: str, window: int) -> str:
    """How much counters grew over the last `window` seconds, a series born within the window
    counting from zero (increase() would miss what its first sample already holds: a user's
    first burst). `expression` has `{offset}` where a selector takes the offset modifier."""
    now, then = expression.format(offset=""), expression.format(offset=f" offset {window}s")
    return f"({now} - ({then} or {now} * 0))"


def alerts(settings) -> list[Alert]:
    thresholds = settings.monitoring.alerts
    queue = thresholds.mail_queue
    replication = thresholds.replication
    disk = thresholds.disk
    volume = thresholds.mail_volume
    outbound = thresholds.outbound
    window = outbound.window_seconds
    filesystems = '{fstype!~"squashfs|iso9660|erofs|ramfs"}'
    writable = f"node_filesystem_avail_bytes{filesystems} / node_filesystem_size_bytes * 100"
    mail = f'{{mountpoint="{MAIL_ROOT}"}}'
    per_mx_refused = "sum by (instance) (policyd_refused_total{offset})"
    limit_refused = 'policyd_refused_total{{reason="limit",user!="_other"}}{offset}'
    return [
        Alert(
            "ServiceDown",
            # The scrape fails (host, exporter or a service's own endpoint down), an exporter
            # reports its service down, a unit that runs on every host of its role is not
            # active; Dovecot runs on one mailstore node at a time, so only none counts.
            'up{job!="dovecot"} == 0'
            ' or postfix_up{path=~".*showq"} == 0'
            " or pg_up == 0"
            " or redis_up == 0"
            ' or node_systemd_unit_state{state="active"} == 0'
            ' or sum by (job) (up{job="dovecot"}) == 0',
            thresholds.service_down.for_seconds,
            "critical",
            "{{ with $labels.name }}unit {{ . }}{{ else }}{{ $labels.job }}{{ end }} is down"
            "{{ with $labels.instance }} on {{ . }}{{ else }} on every node{{ end }}",
        ),
        Alert(
            "MailQueueLarge",
            f"sum by (instance) (postfix_showq_message_age_seconds_count) > {queue.messages}",
            queue.for_seconds,
            "warning",
            "{{ $labels.instance }} holds {{ $value }} messages in its queue",
        ),
        Alert(
            "DeferredMailOld",
            'sum by (instance) (postfix_showq_message_age_seconds_count{queue="deferred"}'
            " - ignoring(le) postfix_showq_message_age_seconds_bucket"
            f'{{queue="deferred",le="{queue.deferred_older_than_seconds}"}})'
            f" > {queue.deferred_messages}",
            queue.for_seconds,
            "warning",
            "{{ $labels.instance }} has {{ $value }} deferred messages older than "
            f"{queue.deferred_older_than_seconds} s",
        ),
        Alert(
            "PostgreSQLReplicationLag",
            # On a primary, per standby: WAL not yet replayed there. On a standby: the age of
            # its last replayed transaction while it has WAL to replay (0 when caught up).
            f"pg_stat_replication_pg_wal_lsn_diff > {replication.lag_bytes}"
            f" or pg_replication_lag_seconds > {replication.lag_seconds}",
            replication.for_seconds,
            "warning",
            "a standby of {{ $labels.instance }} is behind by {{ $value | humanize }}"
            " (bytes seen on the primary, seconds on the standby)",
        ),
        Alert(
            "PostgreSQLStandbyMissing",
            # A replication slot on the primary no standby uses (a standby gone; its WAL piles
            # up), or fewer standbys streaming than db nodes besides the primary (Patroni drops
            # a dead member's slot, the count still misses it). A single database expects none.
            # Patroni keeps the other members' slots on every standby too, unused until a
            # failover: only the primary's count.
            "(pg_replication_slot_slot_is_active == 0"
            " and on(instance) pg_replication_is_replica == 0)"
            " or ((count(pg_stat_replication_pg_wal_lsn_diff) or vector(0))"
            ' < (count(up{job="postgresql"}) - 1))',
            replication.for_seconds,
            "critical",
            "{{ with $labels.slot_name }}replication slot {{ . }} on {{ $labels.instance }}"
            " is unused{{ else }}only {{ $value }} standbys stream from the primary{{ end }}",
        ),
        Alert(
            "DiskSpaceLow",
            f"{writable} < {disk.warning_free_percent} and node_filesystem_readonly == 0",
            disk.for_seconds,
            "warning",
            "{{ $labels.mountpoint }} on {{ $labels.instance }} has {{ $value | humanize }}% free",
        ),
        Alert(
            "DiskSpaceCritical",
            f"{writable} < {disk.critical_free_percent} and node_filesystem_readonly == 0",
            disk.for_seconds,
            "critical",
            "{{ $labels.mountpoint }} on {{ $labels.instance }} has {{ $value | humanize }}% free",
        ),
        Alert(
            "MailVolumeFilling",
            f"node_filesystem_avail_bytes{mail} / node_filesystem_size_bytes{mail} * 100"
            f" < {volume.free_percent}"
            f" or predict_linear(node_filesystem_avail_bytes{mail}[6h],"
            f" {volume.full_in_days * 86400}) < 0",
            volume.for_seconds,
            "warning",
            "the mail volume on {{ $labels.instance }} is filling up",
        ),
        Alert(
            "ValkeyMemoryHigh",
            "redis_memory_used_bytes / redis_memory_max_bytes * 100"
            f" > {thresholds.valkey_memory.used_percent} and redis_memory_max_bytes > 0",
            thresholds.valkey_memory.for_seconds,
            "warning",
            "Valkey {{ $labels.valkey }} on {{ $labels.instance }} uses {{ $value | humanize }}%"
            " of its maxmemory",
        ),
        Alert(
            "CertificateExpiresSoon",
            f"{CERTIFICATE_METRIC} - time() < {thresholds.certificates.days_before_expiry * 86400}",
            thresholds.certificates.for_seconds,
            "critical",
            "the certificate of {{ $labels.instance }} expires in {{ $value | humanizeDuration }}",
        ),
        Alert(
            "BackupTooOld",
            f"time() - {BACKUP_METRIC} > {thresholds.backup.max_age_hours * 3600}",
            thresholds.backup.for_seconds,
            "critical",
            "backup {{ $labels.backup }} last succeeded {{ $value | humanizeDuration }} ago",
        ),
        Alert(
            "OutboundRefusalsSpike",
            # Sums per mx first: a sum over users keeps rising when users are folded into
            # user="_other", a single user's series does not.
            f"sum({_grown(per_mx_refused, window)}) > {outbound.platform_refused}",
            outbound.for_seconds,
            "warning",
            f"{{{{ $value }}}} recipients of users refused in the last {window} s",
        ),
        Alert(
            "MailboxOutboundRefusals",
            f"sum by (user) ({_grown(limit_refused, window)}) > {outbound.mailbox_refused}",
            outbound.for_seconds,
            "warning",
            "{{ $labels.user }} was refused {{ $value }} recipients by the recipient limit"
            f" in the last {window} s",
        ),
    ]


def rule_groups(settings) -> dict:
    return {"groups": [{"name": "mailstack", "rules": [a.rule() for a in alerts(settings)]}]}


def inhibit_rules() -> list[dict]:
    """A full disk need not also be reported as low on space."""
    return [
        {
            "source_matchers": ['alertname="DiskSpaceCritical"'],
            "target_matchers": ['alertname="DiskSpaceLow"'],
            "equal": ["instance", "mountpoint"],
        }
    ]

"""The alert rules' cases for disks, mailbox volumes, Valkey memory, certificates, backups and
outbound refusals (the rest, and the helpers, in alert_rule_cases.py)."""

from alert_rule_cases import DAY, alert, case, series

from mailstack.services import alert_rules

CAPACITY_AND_ABUSE = [
    {
        "interval": "1m",
        "input_series": [
            *(
                series(
                    name,
                    values,
                    instance="mx1",
                    mountpoint=mountpoint,
                    fstype="ext4",
                    device=device,
                )
                for mountpoint, device, avail in (
                    ("/", "sda1", 10),
                    ("/var", "sda2", 2),
                    ("/srv", "sda3", 50),
                )
                for name, values in (
                    ("node_filesystem_avail_bytes", f"{avail}x10"),
                    ("node_filesystem_size_bytes", "100x10"),
                    ("node_filesystem_readonly", "0x10"),
                )
            ),
            # A read-only file system is full by design.
            series(
                "node_filesystem_avail_bytes",
                "0x10",
                instance="mx1",
                mountpoint="/ro",
                fstype="ext4",
                device="sr0",
            ),
            series(
                "node_filesystem_size_bytes",
                "100x10",
                instance="mx1",
                mountpoint="/ro",
                fstype="ext4",
                device="sr0",
            ),
            series(
                "node_filesystem_readonly",
                "1x10",
                instance="mx1",
                mountpoint="/ro",
                fstype="ext4",
                device="sr0",
            ),
        ],
        "alert_rule_test": [
            case(
                "6m",
                "DiskSpaceLow",
                *(
                    alert(
                        "DiskSpaceLow",
                        f"{mountpoint} on mx1 has {free}% free",
                        instance="mx1",
                        mountpoint=mountpoint,
                        fstype="ext4",
                        device=device,
                    )
                    for mountpoint, device, free in (("/", "sda1", 10), ("/var", "sda2", 2))
                ),
            ),
            case(
                "6m",
                "DiskSpaceCritical",
                alert(
                    "DiskSpaceCritical",
                    "/var on mx1 has 2% free",
                    instance="mx1",
                    mountpoint="/var",
                    fstype="ext4",
                    device="sda2",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # Over 30 % free, but losing a unit a minute: full in about ten hours at that pace.
            series(
                "node_filesystem_avail_bytes", "1000-1x420", instance="ms1", mountpoint="/srv/mail"
            ),
            series(
                "node_filesystem_size_bytes", "2000x420", instance="ms1", mountpoint="/srv/mail"
            ),
            series(
                "node_filesystem_avail_bytes", "300x420", instance="ms2", mountpoint="/srv/mail"
            ),
            series(
                "node_filesystem_size_bytes", "2000x420", instance="ms2", mountpoint="/srv/mail"
            ),
        ],
        "alert_rule_test": [
            case(
                "6h10m",
                "MailVolumeFilling",
                alert(
                    "MailVolumeFilling",
                    "the mail volume on ms1 is filling up",
                    instance="ms1",
                    mountpoint="/srv/mail",
                ),
                alert(
                    "MailVolumeFilling",
                    "the mail volume on ms2 is filling up",
                    instance="ms2",
                    mountpoint="/srv/mail",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            series("redis_memory_used_bytes", "95x10", instance="db1", valkey="policy"),
            series("redis_memory_max_bytes", "100x10", instance="db1", valkey="policy"),
            series("redis_memory_used_bytes", "50x10", instance="db1", valkey="filters"),
            series("redis_memory_max_bytes", "100x10", instance="db1", valkey="filters"),
            # No limit set (Sentinel): nothing to compare with.
            series("redis_memory_used_bytes", "95x10", instance="db1", valkey="sentinel"),
            series("redis_memory_max_bytes", "0x10", instance="db1", valkey="sentinel"),
        ],
        "alert_rule_test": [
            case(
                "6m",
                "ValkeyMemoryHigh",
                alert(
                    "ValkeyMemoryHigh",
                    "Valkey policy on db1 uses 95% of its maxmemory",
                    instance="db1",
                    valkey="policy",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            series(alert_rules.CERTIFICATE_METRIC, f"{5 * DAY}x10", instance="mx1"),
            series(alert_rules.CERTIFICATE_METRIC, f"{40 * DAY}x10", instance="mx2"),
        ],
        "alert_rule_test": [
            case(
                "10m",
                "CertificateExpiresSoon",
                alert(
                    "CertificateExpiresSoon",
                    "the certificate of mx1 expires in 4d 23h 50m 0s",
                    instance="mx1",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # Last success at 0 and at 20 h.
            series(alert_rules.BACKUP_METRIC, "0x1700", instance="db1", backup="postgresql"),
            series(alert_rules.BACKUP_METRIC, "72000x1700", instance="db1", backup="mail"),
        ],
        "alert_rule_test": [
            case("25h", "BackupTooOld"),
            case(
                "27h",
                "BackupTooOld",
                alert(
                    "BackupTooOld",
                    "backup postgresql last succeeded 1d 3h 0m 0s ago",
                    instance="db1",
                    backup="postgresql",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # A user refused a little at a time, under every threshold.
            series(
                "policyd_refused_total",
                "0+1x40",
                instance="mx1",
                user="a@example.net",
                reason="limit",
            ),
            # A new user whose first scrape already holds a burst: counted from zero.
            series(
                "policyd_refused_total",
                "_x20 150x20",
                instance="mx1",
                user="b@example.net",
                reason="limit",
            ),
            # Another mx, another burst; together over the platform's threshold.
            series(
                "policyd_refused_total",
                "_x20 80x20",
                instance="mx2",
                user="c@example.net",
                reason="unchecked",
            ),
            # A user evicted (its series ends) while user="_other" takes its count: no refusal.
            series(
                "policyd_refused_total",
                "400x19 stale",
                instance="mx2",
                user="d@example.net",
                reason="limit",
            ),
            series(
                "policyd_refused_total",
                "0x19 400x20",
                instance="mx2",
                user="_other",
                reason="limit",
            ),
        ],
        "alert_rule_test": [
            case(
                "25m",
                "OutboundRefusalsSpike",
                alert("OutboundRefusalsSpike", "240 recipients of users refused in the last 600 s"),
            ),
            case(
                "25m",
                "MailboxOutboundRefusals",
                alert(
                    "MailboxOutboundRefusals",
                    "b@example.net was refused 150 recipients by the recipient limit in the last"
                    " 600 s",
                    user="b@example.net",
                ),
            ),
            # The window has passed: nothing new.
            case("35m", "OutboundRefusalsSpike"),
            case("35m", "MailboxOutboundRefusals"),
        ],
    },
]

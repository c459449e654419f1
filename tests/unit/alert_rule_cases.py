"""The cases the alert rules are tested with (tests/unit/test_alert_rules.py): for each alert,
input series and what `promtool test rules` must see fire at which time, for the production
thresholds (the defaults). Services, mail queues and the database here; capacity, certificates,
backups and outbound abuse in alert_rule_cases_capacity.py."""

from mailstack.deploy.deployment import REPOSITORY
from mailstack.services import alert_rules
from mailstack.settings import load_stack_file

SETTINGS = load_stack_file(REPOSITORY / "stacks/Pulumi.production.yaml")
DAY = 86400


def series(metric: str, values: str, **labels) -> dict:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{metric}{{{selector}}}", "values": values}


def alert(alertname: str, summary: str, **labels) -> dict:
    severity = next(a.severity for a in alert_rules.alerts(SETTINGS) if a.name == alertname)
    return {
        "exp_labels": {"severity": severity, **labels},
        "exp_annotations": {
            "summary": summary,
            "runbook": alert_rules.RUNBOOK.format(anchor=alertname.lower()),
        },
    }


def case(eval_time: str, name: str, *alerts: dict) -> dict:
    return {"eval_time": eval_time, "alertname": name, "exp_alerts": list(alerts)}


SERVICES_AND_DATABASE = [
    {
        "interval": "1m",
        "input_series": [
            series("up", "1 0x10", job="policyd", instance="mx1"),
            series("up", "1x10", job="postfix", instance="mx1"),
            series(
                "postfix_up",
                "0x10",
                job="postfix",
                instance="mx1",
                path="/var/spool/postfix/public/showq",
            ),
            # The log source's postfix_up says nothing about Postfix.
            series("postfix_up", "0x10", job="postfix", instance="mx2", path="/var/log/mail.log"),
            series("pg_up", "0x10", job="postgresql", instance="db1"),
            series(
                "node_systemd_unit_state",
                "0x10",
                job="node",
                instance="mx2",
                name="clamav-daemon.service",
                state="active",
                type="notify",
            ),
            # One mailstore node serves Dovecot: the passive one being down is not an alert.
            series("up", "1x10", job="dovecot", instance="ms1"),
            series("up", "0x10", job="dovecot", instance="ms2"),
        ],
        "alert_rule_test": [
            # Not yet: the scrape failed for less than two minutes.
            case("1m", "ServiceDown"),
            case(
                "5m",
                "ServiceDown",
                alert("ServiceDown", "policyd is down on mx1", job="policyd", instance="mx1"),
                alert(
                    "ServiceDown",
                    "postfix is down on mx1",
                    job="postfix",
                    instance="mx1",
                    path="/var/spool/postfix/public/showq",
                ),
                alert("ServiceDown", "postgresql is down on db1", job="postgresql", instance="db1"),
                alert(
                    "ServiceDown",
                    "unit clamav-daemon.service is down on mx2",
                    job="node",
                    instance="mx2",
                    name="clamav-daemon.service",
                    state="active",
                    type="notify",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            series("up", "1 0x10", job="dovecot", instance="ms1"),
            series("up", "0x10", job="dovecot", instance="ms2"),
        ],
        "alert_rule_test": [
            case(
                "5m",
                "ServiceDown",
                alert("ServiceDown", "dovecot is down on every node", job="dovecot"),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            series(
                "postfix_showq_message_age_seconds_count", "500x10", instance="mx1", queue="active"
            ),
            series(
                "postfix_showq_message_age_seconds_count",
                "600x10",
                instance="mx1",
                queue="deferred",
            ),
            series(
                "postfix_showq_message_age_seconds_bucket",
                "585x10",
                instance="mx1",
                queue="deferred",
                le="10000",
            ),
            series(
                "postfix_showq_message_age_seconds_count", "900x10", instance="mx2", queue="active"
            ),
            series(
                "postfix_showq_message_age_seconds_count", "15x10", instance="mx2", queue="deferred"
            ),
            series(
                "postfix_showq_message_age_seconds_bucket",
                "14x10",
                instance="mx2",
                queue="deferred",
                le="10000",
            ),
        ],
        "alert_rule_test": [
            case(
                "6m",
                "MailQueueLarge",
                alert("MailQueueLarge", "mx1 holds 1100 messages in its queue", instance="mx1"),
            ),
            case(
                "6m",
                "DeferredMailOld",
                alert(
                    "DeferredMailOld",
                    "mx1 has 15 deferred messages older than 10000 s",
                    instance="mx1",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # Seen on the primary, per standby; and on a standby with WAL still to replay.
            series(
                "pg_stat_replication_pg_wal_lsn_diff",
                "100000000x10",
                instance="db1",
                application_name="db2",
            ),
            series(
                "pg_stat_replication_pg_wal_lsn_diff",
                "1000x10",
                instance="db1",
                application_name="db3",
            ),
            series("pg_replication_lag_seconds", "120x10", instance="db3"),
            series("up", "1x10", job="postgresql", instance="db1"),
            series("up", "1x10", job="postgresql", instance="db2"),
            series("up", "0x10", job="postgresql", instance="db3"),
        ],
        "alert_rule_test": [
            case(
                "6m",
                "PostgreSQLReplicationLag",
                alert(
                    "PostgreSQLReplicationLag",
                    "a standby of db1 is behind by 100M (bytes seen on the primary, seconds on"
                    " the standby)",
                    instance="db1",
                    application_name="db2",
                ),
                alert(
                    "PostgreSQLReplicationLag",
                    "a standby of db3 is behind by 120 (bytes seen on the primary, seconds on"
                    " the standby)",
                    instance="db3",
                ),
            ),
            # Two standbys stream, as three db nodes want.
            case("6m", "PostgreSQLStandbyMissing"),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # Patroni's three members, one standby gone: its slot is dropped, the count
            # misses it.
            series(
                "pg_stat_replication_pg_wal_lsn_diff",
                "0x10",
                instance="db1",
                application_name="db2",
            ),
            series("up", "1x10", job="postgresql", instance="db1"),
            series("up", "1x10", job="postgresql", instance="db2"),
            series("up", "0x10", job="postgresql", instance="db3"),
            # A slot no standby uses.
            series(
                "pg_replication_slot_slot_is_active",
                "0x10",
                instance="db1",
                slot_name="db3",
                slot_type="physical",
            ),
            series("pg_replication_is_replica", "0x10", instance="db1"),
            # Patroni's slot for the primary on a standby, unused until a failover.
            series(
                "pg_replication_slot_slot_is_active",
                "0x10",
                instance="db2",
                slot_name="db1",
                slot_type="physical",
            ),
            series("pg_replication_is_replica", "1x10", instance="db2"),
        ],
        "alert_rule_test": [
            case(
                "6m",
                "PostgreSQLStandbyMissing",
                alert(
                    "PostgreSQLStandbyMissing",
                    "replication slot db3 on db1 is unused",
                    instance="db1",
                    slot_name="db3",
                    slot_type="physical",
                ),
                alert("PostgreSQLStandbyMissing", "only 1 standbys stream from the primary"),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            # A single database: no standby expected, none missing.
            series("up", "1x10", job="postgresql", instance="db1"),
        ],
        "alert_rule_test": [case("6m", "PostgreSQLStandbyMissing")],
    },
]

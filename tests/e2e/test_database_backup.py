"""Off-site backups of the account data: the primary archives its WAL and its job takes a full
backup into the lab's storage account (the internet host, standing in for a Storage Box), the
replicas back up nothing; the database comes back as it was at a moment between two commits,
beside the running cluster, and `mailstack backup status` reports both kinds of backup; a
cluster that lost every node's data comes back from the repository by itself."""

import re
import shlex
import subprocess
import sys
import time
import uuid

import pytest

from mailstack.jobs import BACKUP_METRIC
from mailstack.services import patroni, pgbackrest, postgresql
from mailstack.testing.drills import Clusters, panel_sql

pytestmark = pytest.mark.lab


def run_job(platform, node: str) -> None:
    """A run of the timer's job that begins now, waited for (as tests/e2e/test_backups.py)."""
    unit = f"{pgbackrest.UNIT}.service"
    platform.sh(node, f"systemctl start {unit} && systemctl start {unit}", timeout=600)


def exists(platform, node: str, path: str) -> bool:
    return platform.sh(node, f"test -e {path} && echo yes || echo no").strip() == "yes"


def as_postgres(platform, node: str, sql: str) -> str:
    return platform.sh(
        node, f"runuser -u postgres -- psql -X -At -d postgres -c {shlex.quote(sql)}"
    ).strip()


def wait_archived(platform, primary: str, timeout: float = 120) -> None:
    """Complete the WAL segment being written and wait until the primary has archived it."""
    segment = as_postgres(platform, primary, "SELECT pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + timeout
    while True:
        archived = as_postgres(
            platform, primary, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"
        )
        if archived[:24] >= segment:
            return
        assert time.monotonic() < deadline, f"{segment} not archived (last: {archived!r})"
        time.sleep(1)


def test_the_account_data_comes_back_as_it_was_at_a_moment(platform):
    clusters = Clusters(platform)
    clusters.wait_healthy()
    primary = clusters.primary()
    replicas = [node for node in platform.hosts("db") if node != primary]
    started = time.time()
    # The timer's job backs up when one is due (the first run of the deploy took a full one):
    # one now, as an operator takes it, and the job reports it.
    taken = platform.sh(primary, f"{pgbackrest.COMMAND} backup --type incr", timeout=600)
    assert taken.startswith("incr backup"), taken
    run_job(platform, primary)
    report = platform.sh(primary, f"cat {pgbackrest.REPORT}")
    reported = float(re.search(rf'^{BACKUP_METRIC}{{backup="database"}} (\S+)$', report, re.M)[1])
    assert started - 5 <= reported <= time.time() + 5, report
    # A replica backs up nothing and reports nothing.
    run_job(platform, replicas[0])
    assert not exists(platform, replicas[0], pgbackrest.REPORT)

    table = f"pitr_{uuid.uuid4().hex[:8]}"
    restored = f"/var/tmp/mailstack-test-{table}"
    panel_sql(platform, f"CREATE TABLE {table} (marker text)")
    try:
        panel_sql(platform, f"INSERT INTO {table} VALUES ('before')")
        time.sleep(0.5)
        moment = panel_sql(
            platform,
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')',
        ).strip()
        time.sleep(0.5)
        panel_sql(platform, f"INSERT INTO {table} VALUES ('after')")
        wait_archived(platform, primary)

        said = platform.sh(
            replicas[-1],
            f"{pgbackrest.COMMAND} restore --at {moment} --into {restored}",
            timeout=600,
        )
        assert "running" in said, said
        rows = platform.sh(
            replicas[-1],
            f"runuser -u postgres -- psql -X -At -h {restored} -p {pgbackrest.RESTORE_PORT} "
            f"-d mailstack -c 'SELECT marker FROM {table}'",
        )
        assert rows.split() == ["before"]
        # The copy archives nothing of its own into the cluster's repository.
        assert (
            platform.sh(
                replicas[-1],
                f"runuser -u postgres -- psql -X -At -h {restored} -p {pgbackrest.RESTORE_PORT} "
                "-d mailstack -c 'SHOW archive_mode'",
            ).strip()
            == "off"
        )
    finally:
        platform.sh(replicas[-1], f"{pgbackrest.COMMAND} discard {restored}", check=False)
        panel_sql(platform, f"DROP TABLE IF EXISTS {table}")
    assert not exists(platform, replicas[-1], restored)

    status = subprocess.run(
        [sys.executable, "-m", "mailstack.cli", "backup", "status", "--lab", platform.lab.name],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "database: newest backup" in status.stdout, status.stdout + status.stderr


def test_a_cluster_that_lost_every_node_comes_back_from_the_repository(platform):
    """The database part of a rebuild: every db node loses its data and the cluster its record
    in etcd; Patroni bootstraps a new cluster, which restores the newest backup and replays the
    archived WAL (mailstack.database.bootstrap), and the other nodes follow it as replicas."""
    clusters = Clusters(platform)
    clusters.wait_healthy()
    primary = clusters.primary()
    nodes = platform.hosts("db")
    taken = platform.sh(primary, f"{pgbackrest.COMMAND} backup --type full", timeout=600)
    assert taken.startswith("full backup"), taken
    table = f"rebuild_{uuid.uuid4().hex[:8]}"
    # Committed after the backup: only the archived WAL holds it.
    panel_sql(platform, f"CREATE TABLE {table} (marker text)")
    try:
        panel_sql(platform, f"INSERT INTO {table} VALUES ('after the backup')")
        wait_archived(platform, primary)

        for node in nodes:
            platform.sh(node, "systemctl stop patroni", timeout=120)
        for node in nodes:
            platform.sh(node, f"rm -rf {postgresql.DATA_DIR}")
        # As the docs' runbook does: the cluster's record goes, so the next start bootstraps.
        platform.sh(
            nodes[0],
            f"{patroni.CTL} remove {patroni.SCOPE}",
            stdin=f"{patroni.SCOPE}\nYes I am aware\n",
        )
        lost = time.monotonic()
        for node in nodes:
            platform.sh(node, "systemctl start patroni")
        clusters.wait_healthy(timeout=600)
        back = time.monotonic() - lost

        assert panel_sql(platform, f"SELECT marker FROM {table}").split("\n")[0] == (
            "after the backup"
        )
        restored_on = clusters.primary()
        said = platform.sh(restored_on, "journalctl -u patroni --no-pager -o cat --since '-15 min'")
        assert "restored from backup" in said, said[-3000:]
        # The new timeline archives into the same stanza, and the replicas stream from it.
        wait_archived(platform, restored_on)
        timeline = as_postgres(
            platform, restored_on, "SELECT timeline_id FROM pg_control_checkpoint()"
        )
        assert int(timeline) >= 2
        print(f"the cluster answered {back:.0f} s after every node lost its data")
    finally:
        panel_sql(platform, f"DROP TABLE IF EXISTS {table}")

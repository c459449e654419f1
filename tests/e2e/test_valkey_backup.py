"""Off-site backups of Valkey's data: the node of each use's primary backs it up and reports it,
the replicas' nodes back up nothing; keys lost since come back from the backup with their
expiry, into the running primary, without touching keys made since."""

import re
import shlex
import time
import uuid

import pytest

from mailstack.jobs import BACKUP_METRIC
from mailstack.services import valkey, valkeybackup
from mailstack.services.textfile import TEXTFILE_DIR
from mailstack.testing.drills import Clusters

pytestmark = pytest.mark.lab

USE = "filters"


def valkey_cli(platform, node: str, *command: str) -> str:
    password = platform.lab_secret(valkey.PASSWORD_SECRET)
    return platform.sh(
        node,
        f"REDISCLI_AUTH={shlex.quote(password)} valkey-cli -p {valkey.PORTS[USE]} "
        + " ".join(shlex.quote(part) for part in command),
    ).strip()


def run_job(platform, node: str) -> None:
    """A run of the timer's job that begins now, waited for (as tests/e2e/test_backups.py)."""
    unit = f"{valkeybackup.UNIT}.service"
    platform.sh(node, f"systemctl start {unit} && systemctl start {unit}", timeout=300)


def test_learned_data_comes_back_from_the_backup_into_the_running_primary(platform):
    clusters = Clusters(platform)
    primary = clusters.valkey_primary(USE)
    replicas = [node for node in platform.hosts("db") if node != primary]
    marker = f"mailstack-test-{uuid.uuid4().hex[:8]}"
    kept, expiring, later = f"{marker}:kept", f"{marker}:expiring", f"{marker}:later"
    valkey_cli(platform, primary, "HSET", kept, "spam", "7", "ham", "3")
    valkey_cli(platform, primary, "SET", expiring, "v", "EX", "3600")
    try:
        started = time.time()
        run_job(platform, primary)
        report = platform.sh(primary, f"cat {TEXTFILE_DIR}/mailstack_backup_valkey_{USE}.prom")
        reported = float(
            re.search(rf'^{BACKUP_METRIC}{{backup="valkey-{USE}"}} (\S+)$', report, re.M)[1]
        )
        assert started - 5 <= reported <= time.time() + 5, report
        run_job(platform, replicas[0])
        assert "nothing to back up" in platform.sh(
            replicas[0], f"journalctl -u {valkeybackup.UNIT} -n 5 --no-pager"
        )

        # Lost: one key deleted, one changed; another made since the backup.
        valkey_cli(platform, primary, "DEL", expiring)
        valkey_cli(platform, primary, "HSET", kept, "spam", "0")
        valkey_cli(platform, primary, "SET", later, "new")
        said = platform.sh(primary, f"{valkeybackup.COMMAND} restore {USE}", timeout=300)
        assert f"{USE}: " in said and "keys written" in said, said

        assert valkey_cli(platform, primary, "HGET", kept, "spam") == "7"
        assert valkey_cli(platform, primary, "GET", expiring) == "v"
        assert 3500 < int(valkey_cli(platform, primary, "TTL", expiring)) <= 3600
        assert valkey_cli(platform, primary, "GET", later) == "new"
        # The replicas have it too (the restore went through the primary).
        deadline = time.monotonic() + 30
        while valkey_cli(platform, replicas[0], "HGET", kept, "spam") != "7":
            assert time.monotonic() < deadline, "the restored key did not reach a replica"
            time.sleep(0.5)
        # A restore where the primary does not run is refused.
        refused = platform.sh(
            replicas[0], f"{valkeybackup.COMMAND} restore {USE}; echo exit=$?", timeout=120
        )
        assert "exit=1" in refused
    finally:
        valkey_cli(platform, primary, "DEL", kept, expiring, later)

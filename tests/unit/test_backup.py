"""The backup settings, the job's configuration as the deploy writes it and as the job reads it,
and the times a restore is asked for."""

import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from mailstack.deploy.deployment import REPOSITORY, Deployment
from mailstack.mailstore.backup import BackupConfig, main
from mailstack.restic import parse_time
from mailstack.secrets import SecretStore
from mailstack.services import backup
from mailstack.settings import load_stack_file
from mailstack.settings.backups import BackupTarget

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOo1FE4ca4wkgP+fv/KATw7Sk6mjirN983/zOwVw7ml0"


def production(tmp_path) -> Deployment:
    settings = load_stack_file(REPOSITORY / "stacks/Pulumi.production.yaml")
    return Deployment.planned(settings, SecretStore(tmp_path / "secrets.json"), "production")


def test_the_job_reads_what_the_deploy_writes(tmp_path):
    deployment = production(tmp_path)
    path = tmp_path / "mail.json"
    path.write_text(json.dumps(backup.job_config(deployment)))
    config = BackupConfig.read(path)
    target = deployment.settings.backups.target
    assert config.repository.address == f"sftp:{target.user}@{target.host}:mailstack/mail"
    assert config.repository.ssh_command[1:3] == ["-p", "23"]
    assert f"UserKnownHostsFile={backup.KNOWN_HOSTS}" in config.repository.ssh_command
    assert "StrictHostKeyChecking=yes" in config.repository.ssh_command
    assert config.keep == {"hourly": 48, "daily": 14, "weekly": 8, "monthly": 12}
    assert main(["--config", str(path), "check-config"]) == 0


def test_the_pinned_host_key_and_the_hosts_key_are_installed(tmp_path):
    deployment = production(tmp_path)
    host = deployment.hosts("mailstore")[0]
    files = {f.path: f for f in backup.config_files(deployment, host)}
    target = deployment.settings.backups.target
    assert files[backup.KNOWN_HOSTS].render() == f"[{target.host}]:23 {target.host_key}\n"
    # The installed key is an Ed25519 key in OpenSSH's format, the pair of the printed one.
    installed = serialization.load_ssh_private_key(files[backup.SSH_KEY].render().encode(), None)
    assert isinstance(installed, ed25519.Ed25519PrivateKey)
    installed_public = installed.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert {files[p].mode for p in (backup.SSH_KEY, backup.PASSWORD_FILE, backup.CONFIG)} == {"600"}
    public = backup.ssh_public_key(deployment.secrets, "production")
    assert public == f"{installed_public.decode()} mailstack-production"
    # The same key on every call: it is a secret, generated once.
    assert backup.ssh_public_key(deployment.secrets, "production") == public


def test_a_target_on_port_22_is_pinned_under_its_bare_name():
    target = BackupTarget(host="storage.internet.test", port=22, user="s", host_key=HOST_KEY)
    assert backup.known_hosts_line(target) == f"storage.internet.test {HOST_KEY}\n"


def test_without_a_target_nothing_is_installed(tmp_path):
    settings = load_stack_file(REPOSITORY / "stacks/Pulumi.staging.yaml")
    deployment = Deployment.planned(settings, SecretStore(tmp_path / "s.json"), "staging")
    assert backup.config_files(deployment, deployment.hosts("mailstore")[0]) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("host_key", "AAAAC3NzaC1lZDI1NTE5AAAA", "public host key"),
        ("host_key", f"u1.your-storagebox.de {HOST_KEY}", "public host key"),
        ("path", "/home/mailstack", "relative path"),
        ("path", "mailstack/../other", "without '..'"),
        ("host", "storagebox", "fully qualified"),
        ("user", "root; rm", "pattern"),
    ],
)
def test_a_bad_target_is_refused_naming_the_field(field, value, message):
    values = {"host": "u1.your-storagebox.de", "user": "u1", "host_key": HOST_KEY, field: value}
    with pytest.raises(ValidationError, match=message) as error:
        BackupTarget.model_validate(values)
    assert error.value.errors()[0]["loc"][0] == field


def test_a_config_without_a_retention_is_refused(tmp_path):
    deployment = production(tmp_path)
    values = backup.job_config(deployment)
    values["keep"] = dict.fromkeys(values["keep"], 0)
    path = tmp_path / "mail.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match="keep"):
        BackupConfig.read(path)
    assert main(["--config", str(path), "check-config"]) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # restic's own form: nanoseconds and an offset.
        ("2026-11-30T23:50:01.123456789+01:00", datetime(2026, 11, 30, 22, 50, 1, 123456, UTC)),
        ("2026-11-30T23:50:01Z", datetime(2026, 11, 30, 23, 50, 1, tzinfo=UTC)),
        # An operator's time without an offset is UTC.
        ("2026-11-30 23:50", datetime(2026, 11, 30, 23, 50, tzinfo=UTC)),
    ],
)
def test_times_are_read_as_restic_and_operators_write_them(text, expected):
    assert parse_time(text) == expected


def test_under_systemd_each_line_carries_its_priority():
    import logging

    from mailstack.jobs import JournalFormatter

    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "restic failed\nFatal: %s", ("no",), None
    )
    assert JournalFormatter().format(record) == "<3>restic failed\n<3>Fatal: no"
    record.levelno = logging.INFO
    assert JournalFormatter().format(record).startswith("<6>")


def test_the_valkey_job_reads_what_the_deploy_writes(tmp_path):
    from mailstack.database.valkey_backup import ValkeyBackupConfig
    from mailstack.database.valkey_backup import main as valkey_main
    from mailstack.services import valkey, valkeybackup

    deployment = production(tmp_path)
    path = tmp_path / "valkey.json"
    path.write_text(json.dumps(valkeybackup.job_config(deployment)))
    config = ValkeyBackupConfig.read(path)
    target = deployment.settings.backups.target
    assert config.repository.address == f"sftp:{target.user}@{target.host}:mailstack/valkey"
    assert config.uses == valkey.PORTS
    assert config.keep == {"hourly": 24, "daily": 14, "weekly": 8}
    assert valkey_main(["--config", str(path), "check-config"]) == 0
    path.write_text(json.dumps({**json.loads(path.read_text()), "uses": {}}))
    assert valkey_main(["--config", str(path), "check-config"]) == 2
    # The Valkey password goes to root alone, beside the repository's credentials.
    db_node = deployment.hosts("db")[0]
    files = {f.path: f for f in valkeybackup.config_files(deployment, db_node)}
    assert files[valkeybackup.VALKEY_PASSWORD_FILE].mode == "600"
    assert {backup.SSH_KEY, backup.PASSWORD_FILE, backup.KNOWN_HOSTS} <= set(files)


def test_a_backup_is_fresh_for_two_intervals_and_five_minutes():
    from mailstack.jobs import freshness

    assert freshness(2 * 900 + 300, 900) == (0, "")
    assert freshness(2 * 900 + 301, 900) == (1, " (OLDER THAN TWO INTERVALS)")


def test_a_report_is_written_where_node_exporter_is_not_installed_yet(tmp_path):
    from mailstack.jobs import BACKUP_METRIC, write_backup_report

    report = tmp_path / "prometheus" / "node-exporter" / "backup-database.prom"
    write_backup_report(report, "database", 1700000000.0, 4096, 12.5)
    assert f'{BACKUP_METRIC}{{backup="database"}} 1700000000.0' in report.read_text()
    assert oct(report.stat().st_mode & 0o777) == "0o644"

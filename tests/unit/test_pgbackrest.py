"""The account data's backups: pgBackRest's configuration as the deploy writes it, PostgreSQL's
archiving in Patroni's cluster-wide settings, and the job's choice of what backup is due."""

import json
import subprocess
from dataclasses import replace

import pytest
import yaml

from mailstack.database import backup as job
from mailstack.database import bootstrap
from mailstack.deploy.deployment import REPOSITORY, Deployment
from mailstack.secrets import SecretStore
from mailstack.services import backup, patroni, pgbackrest
from mailstack.settings import load_stack_file

DAY = 86400


def production(tmp_path, **backups) -> Deployment:
    settings = load_stack_file(REPOSITORY / "stacks/Pulumi.production.yaml")
    if backups:
        data = settings.model_dump(mode="json")
        data["backups"].update(backups)
        settings = type(settings).model_validate(data)
    return Deployment.planned(settings, SecretStore(tmp_path / "secrets.json"), "production")


def test_the_repository_is_encrypted_below_the_target_and_pins_its_host_key(tmp_path):
    deployment = production(tmp_path)
    host = deployment.hosts("db")[0]
    files = {f.path: f for f in pgbackrest.config_files(deployment, host)}
    conf = dict(
        line.split("=", 1)
        for line in files[pgbackrest.CONFIG].render().splitlines()
        if "=" in line and not line.startswith("#")
    )
    target = deployment.settings.backups.target
    # A Storage Box shows its home as /home; pgBackRest needs the absolute path.
    assert conf["repo1-path"] == "/home/mailstack/database"
    assert conf["repo1-sftp-host"] == target.host
    assert conf["repo1-sftp-host-port"] == "23"
    assert conf["repo1-sftp-host-key-check-type"] == "strict"
    assert conf["repo1-cipher-type"] == "aes-256-cbc"
    assert conf["repo1-cipher-pass"] == deployment.secrets.get(backup.REPOSITORY_PASSWORD_SECRET)
    assert conf["repo1-retention-full"] == "2"
    assert files[pgbackrest.KNOWN_HOSTS].render() == f"[{target.host}]:23 {target.host_key}\n"
    # The same key as the mail's backups: one account, one key to install on it.
    assert files[pgbackrest.SSH_KEY].render() == backup.ssh_private_key(deployment.secrets)
    secret_files = (pgbackrest.CONFIG, pgbackrest.SSH_KEY, pgbackrest.KNOWN_HOSTS)
    assert {(files[p].user, files[p].mode) for p in secret_files} == {("postgres", "600")}


def test_a_locked_in_account_shows_its_home_as_root(tmp_path):
    deployment = production(tmp_path)
    data = deployment.settings.backups.target.model_dump(mode="json")
    lab_target = type(deployment.settings.backups.target).model_validate(
        {**data, "home": "/", "path": "labtest"}
    )
    assert pgbackrest.repository_path(lab_target) == "/labtest/database"


@pytest.mark.parametrize("home", ["home", "/home/../etc"])
def test_a_relative_home_is_refused(tmp_path, home):
    deployment = production(tmp_path)
    data = deployment.settings.backups.target.model_dump(mode="json")
    with pytest.raises(ValueError, match="home"):
        type(deployment.settings.backups.target).model_validate({**data, "home": home})


def test_postgresql_archives_into_the_repository_only_while_a_target_is_set(tmp_path):
    with_target = patroni.dynamic_config(production(tmp_path).settings)["postgresql"]
    assert with_target["parameters"]["archive_mode"] == "on"
    assert with_target["parameters"]["archive_command"] == pgbackrest.ARCHIVE_COMMAND
    assert with_target["parameters"]["archive_timeout"] == 60
    without = production(tmp_path, target=None)
    parameters = patroni.dynamic_config(without.settings)["postgresql"]["parameters"]
    assert (parameters["archive_mode"], parameters["archive_command"]) == ("off", "")
    assert pgbackrest.config_files(without, without.hosts("db")[0]) == []
    # A cluster made before backups were set gets archiving by edit-config and a restart.
    changes = patroni.differences(
        patroni.dynamic_config(without.settings),
        patroni.dynamic_config(production(tmp_path).settings),
    )
    assert changes["postgresql.parameters.archive_mode"] == "on"


def test_the_job_reads_what_the_deploy_writes(tmp_path):
    deployment = production(tmp_path)
    path = tmp_path / "database.json"
    path.write_text(json.dumps(pgbackrest.job_config(deployment, deployment.hosts("db")[0])))
    config = job.DatabaseBackupConfig.read(path)
    assert (config.stanza, config.backup_interval_hours, config.full_interval_days) == (
        pgbackrest.STANZA,
        24,
        7,
    )
    assert job.main(["--config", str(path), "check-config"]) == 0
    path.write_text(json.dumps({**json.loads(path.read_text()), "backup_interval_hours": 0}))
    assert job.main(["--config", str(path), "check-config"]) == 2


def taken(kind: str, stop: float) -> dict:
    return {"type": kind, "label": f"{stop:.0f}", "timestamp": {"start": stop - 60, "stop": stop}}


@pytest.fixture
def config(tmp_path):
    return job.DatabaseBackupConfig(
        stanza="mailstack",
        report=tmp_path / "report.prom",
        backup_interval_hours=24,
        full_interval_days=7,
        bin_dir=tmp_path,
        restore_port=5439,
        database="mailstack",
    )


@pytest.mark.parametrize(
    "backups, expected",
    [
        ([], "full"),
        ([taken("full", 0)], None),
        ([taken("full", -DAY)], "diff"),
        ([taken("full", -7 * DAY), taken("diff", -1)], "full"),
        ([taken("full", -3 * DAY), taken("diff", -DAY + 60)], None),
        ([taken("full", -3 * DAY), taken("diff", -DAY - 60)], "diff"),
        # Only differential ones since an expired full one: a full one is due.
        ([taken("diff", -60)], "full"),
    ],
)
def test_the_backup_due_follows_the_newest_ones(config, backups, expected):
    now = 100 * DAY
    shifted = [taken(b["type"], now + b["timestamp"]["stop"]) for b in backups]
    assert job.due({"backup": shifted}, config, now) == expected


def test_a_shorter_full_interval_makes_a_full_backup_due_sooner(config):
    now = 100 * DAY
    newest = [taken("full", now - 2 * DAY), taken("diff", now - 60)]
    assert job.due({"backup": newest}, config, now) is None
    assert job.due({"backup": newest}, replace(config, full_interval_days=1), now) == "full"


def test_status_says_how_old_the_newest_backup_is(config, monkeypatch):
    import time

    now = time.time()
    stanza = {
        "status": {"code": 0, "message": "ok"},
        "archive": [{"max": "000000010000000000000007"}],
    }
    monkeypatch.setattr(job, "info", lambda _: {**stanza, "backup": [taken("full", now - 3600)]})
    code, line = job.status(config)
    assert code == 0 and "1.0 h ago" in line and "000000010000000000000007" in line
    monkeypatch.setattr(job, "info", lambda _: {**stanza, "backup": [taken("full", now - 3 * DAY)]})
    code, line = job.status(config)
    assert code == 1 and "OLDER THAN TWO INTERVALS" in line
    monkeypatch.setattr(
        job, "info", lambda _: {"status": {"code": 2, "message": "no valid backups"}}
    )
    assert job.status(config) == (2, "database: no backup (no valid backups)")


def test_a_replica_withdraws_its_report_and_backs_up_nothing(config, monkeypatch):
    config.report.write_text("old\n")
    monkeypatch.setattr(job, "is_primary", lambda: False)
    monkeypatch.setattr(job, "pgbackrest", lambda *a: pytest.fail("pgbackrest ran on a replica"))
    assert job.run(config) == "not the primary: nothing to back up here"
    assert not config.report.exists()


def test_a_setting_with_spaces_reaches_patronictl_as_one_argument(tmp_path):
    import shlex

    changes = patroni.differences({}, patroni.dynamic_config(production(tmp_path).settings))
    arguments = shlex.split(patroni.edit_config_command(changes))
    archive = f"postgresql.parameters.archive_command={pgbackrest.ARCHIVE_COMMAND}"
    assert arguments[arguments.index(archive) - 1] == "--set"


def test_a_boolean_setting_patronictl_stored_as_yaml_is_no_change(tmp_path):
    wanted = patroni.dynamic_config(production(tmp_path).settings)
    stored = json.loads(json.dumps(wanted))
    stored["postgresql"]["parameters"]["archive_mode"] = True  # `--set ...archive_mode=on`
    assert patroni.differences(stored, wanted) == {}
    stored["postgresql"]["parameters"]["archive_mode"] = False
    assert patroni.differences(stored, wanted) == {"postgresql.parameters.archive_mode": "on"}


def test_a_backup_interval_beyond_the_backup_alert_is_refused_naming_both(tmp_path):
    with pytest.raises(ValueError, match=r"backups.database.backup_interval_hours .*max_age_hours"):
        production(tmp_path, database={"backup_interval_hours": 48})


def test_a_new_cluster_starts_from_the_newest_backup_while_a_target_is_set(tmp_path):
    deployment = production(tmp_path)
    node = deployment.hosts("db")[0]
    config = yaml.safe_load(patroni.config_files(deployment, node)[1].render())["bootstrap"]
    assert config["method"] == patroni.RESTORE_METHOD
    method = config[patroni.RESTORE_METHOD]
    assert method["command"].endswith(f"-m {bootstrap.__name__}")
    assert method["keep_existing_recovery_conf"] is True
    assert method["stanza"] == pgbackrest.STANZA
    # The same initdb as Patroni's own when the repository holds no backup.
    assert method["initdb_options"].split() == list(patroni.INITDB_OPTIONS)
    assert config["initdb"] == [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"]
    without = production(tmp_path, target=None)
    plain = yaml.safe_load(patroni.config_files(without, node)[1].render())["bootstrap"]
    assert "method" not in plain and patroni.RESTORE_METHOD not in plain
    assert plain["initdb"] == config["initdb"]


def info(code: int, message: str, *labels: str) -> str:
    backups = [{"label": label, "timestamp": {"stop": i}} for i, label in enumerate(labels)]
    return json.dumps([{"status": {"code": code, "message": message}, "backup": backups}])


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        (info(0, "ok", "20261201-010000F", "20261201-020000F_20261201-030000I"), "restore"),
        (info(1, "missing stanza path"), "initdb"),
        (info(2, "no valid backups"), "initdb"),
        ("[]", "initdb"),
    ],
)
def test_the_bootstrap_restores_the_newest_backup_or_makes_a_new_cluster(
    tmp_path, monkeypatch, repository, expected
):
    commands = []

    def run(command):
        commands.append(command)
        if command[-2:] == ["info", "--output=json"]:
            return subprocess.CompletedProcess(command, 0, repository, "")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bootstrap, "_run", run)
    data_dir = tmp_path / "17" / "main"
    options = ["--scope=mailstack", f"--datadir={data_dir}", "--stanza=mailstack"]
    options += ["--bindir=/usr/lib/postgresql/17/bin", "--initdb_options=--encoding=UTF8 -k"]
    assert bootstrap.main(options) == 0
    assert data_dir.is_dir() and data_dir.stat().st_mode & 0o777 == 0o700
    made = commands[-1]
    if expected == "restore":
        assert made == ["pgbackrest", "--stanza=mailstack", f"--pg1-path={data_dir}", "restore"]
    else:
        assert made == ["/usr/lib/postgresql/17/bin/initdb", f"--pgdata={data_dir}",
                        "--encoding=UTF8", "-k"]  # fmt: skip


@pytest.mark.parametrize(
    "repository",
    [
        subprocess.CompletedProcess([], 82, "", "ERROR: [082]: unable to connect to sftp"),
        subprocess.CompletedProcess([], 0, info(99, "other"), ""),
    ],
)
def test_an_unreadable_repository_makes_no_cluster(tmp_path, monkeypatch, repository):
    """A rebuild whose target is briefly unreachable must not start an empty cluster: Patroni
    runs the bootstrap again."""
    commands = []
    monkeypatch.setattr(bootstrap, "_run", lambda c: commands.append(c) or repository)
    data_dir = tmp_path / "main"
    assert bootstrap.main([f"--datadir={data_dir}", "--scope=s", "--stanza=s", "--bindir=/b"]) == 1
    assert len(commands) == 1 and not data_dir.exists()

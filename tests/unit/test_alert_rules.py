"""The alert rules, by Prometheus' own rule tester (`promtool test rules`, Debian 13's, in the
suite's trixie tree), for the production thresholds (the defaults): each alert fires on what it
is for, with its labels and summary, and stays quiet on what it is not for. Every alert has its
runbook entry in docs/operations.md."""

import re
import subprocess

import pytest
import yaml
from alert_rule_cases import SERVICES_AND_DATABASE, SETTINGS
from alert_rule_cases_capacity import CAPACITY_AND_ABUSE

from mailstack.deploy.deployment import REPOSITORY
from mailstack.services import alert_rules, monitoring
from mailstack.settings import load_stack_file
from mailstack.testing import trixie

RULES = alert_rules.rule_groups(SETTINGS)
TESTS = SERVICES_AND_DATABASE + CAPACITY_AND_ABUSE


def promtool(root, *args: str) -> subprocess.CompletedProcess:
    return trixie.chroot(root, "promtool", *args)


@pytest.fixture(scope="module")
def tree():
    with trixie.overlay("mailstack-alert-rules-") as root:
        (root / "rules").mkdir()
        yield root


def write(root, name: str, document: dict) -> str:
    (root / "rules" / name).write_text(yaml.safe_dump(document, sort_keys=False))
    return f"/rules/{name}"


@pytest.mark.parametrize("stack", ["production", "staging", "lab"])
def test_the_rules_of_every_stack_are_valid(tree, stack):
    settings = load_stack_file(REPOSITORY / f"stacks/Pulumi.{stack}.yaml")
    path = write(tree, f"{stack}.yml", alert_rules.rule_groups(settings))
    result = promtool(tree, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_what_it_is_for_and_only_then(tree):
    write(tree, "mailstack.yml", RULES)
    tests = write(
        tree,
        "tests.yml",
        {"rule_files": ["mailstack.yml"], "evaluation_interval": "1m", "tests": TESTS},
    )
    result = promtool(tree, "test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_here():
    tested = {
        c["alertname"] for group in TESTS for c in group["alert_rule_test"] if c["exp_alerts"]
    }
    assert tested == {a.name for a in alert_rules.alerts(SETTINGS)}


def test_every_alert_has_a_runbook_entry():
    headings = re.findall(
        r"^### Alert: (\w+)$", (REPOSITORY / "docs/operations.md").read_text(), re.M
    )
    assert sorted(headings) == sorted(a.name for a in alert_rules.alerts(SETTINGS))


def test_alertmanager_inhibits_low_by_critical_disk_alerts():
    (rule,) = alert_rules.inhibit_rules()
    assert rule["source_matchers"] == ['alertname="DiskSpaceCritical"']
    assert rule["target_matchers"] == ['alertname="DiskSpaceLow"']


def test_prometheus_sends_to_every_alertmanager(tmp_path):
    from mailstack.deploy.deployment import Deployment
    from mailstack.secrets import SecretStore

    deployment = Deployment.planned(SETTINGS, SecretStore(tmp_path / "secrets.json"), "production")
    config = monitoring.prometheus_config(deployment)
    (targets,) = config["alerting"]["alertmanagers"][0]["static_configs"]
    assert targets["targets"] == [f"{a}:9093" for a in deployment.addresses("web")]

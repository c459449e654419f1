"""Settings: every example stack validates; each kind of invalid input names its field."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mailstack.settings import Settings, SettingsError, load_stack_file
from mailstack.settings.docs import render
from mailstack.settings.plan import plan_hosts
from mailstack.settings.stackfile import settings_from_mapping

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))


def production() -> dict:
    document = yaml.safe_load((ROOT / "stacks/Pulumi.production.yaml").read_text())
    return document["config"]["mailstack:settings"]


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_example_stacks_validate(path):
    settings = load_stack_file(path)
    assert plan_hosts(settings)


def with_change(path: str, value) -> dict:
    data = copy.deepcopy(production())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()

INVALID = [
    # (what is changed, new value, field path named in the error, words in the message)
    ("environment.name", "Prod_1", "environment.name", "lower-case"),
    ("environment.mail_domains", ["localhost"], "environment.mail_domains[0]", "fully qualified"),
    ("environment.mail_domains", [], "environment.mail_domains", "at least 1"),
    ("environment.admin_cidrs", ["0.0.0.0/0"], "environment.admin_cidrs", "whole internet"),
    ("environment.admin_ssh_keys", ["hunter2"], "environment.admin_ssh_keys", "SSH public key"),
    ("environment.location", "ams1", "environment.location", "fsn1"),
    ("environment.network_zone", "us-east", "environment", "not in network zone"),
    ("topology.db", {"count": 2}, "topology", "db.count must be odd"),
    ("topology.mailstore", {"count": 3}, "topology", "mailstore.count must be 2"),
    ("topology.mx", {"count": 1}, "topology", "mx.count must be at least 2"),
    ("topology.web", {"count": -1}, "topology.web.count", "greater than or equal to 0"),
    ("topology.mx", {"count": 2, "server_type": "big"}, "topology.mx.server_type", "pattern"),
    ("network.subnet", "10.99.1.0/24", "network", "not inside ip_range"),
    ("network.ip_range", "8.8.0.0/16", "network", "not a private range"),
    ("network.offsets", {"mx": 30}, "mailstack:settings", "same address"),
    ("mail.spam", {"reject_score": 5}, "mail.spam", "greater than add_header_score"),
    # Patroni: a primary must not demote itself while a retry is under way.
    (
        "database",
        {"ttl_seconds": 20, "loop_wait_seconds": 10, "retry_timeout_seconds": 10},
        "database",
        "at least loop_wait_seconds + 2 * retry_timeout_seconds (30)",
    ),
    ("database", {"ttl_seconds": 10}, "database.ttl_seconds", "greater than or equal to 20"),
    (
        "database",
        {"ttl_seconds": 30, "failover_bound_seconds": 35},
        "database",
        "exceed failover_bound_seconds",
    ),
    ("valkey.sentinel", {"quorum": 4}, "mailstack:settings", "more than the 3 db nodes"),
    (
        "valkey.sentinel",
        {"down_after_ms": 20000, "failover_timeout_ms": 30000},
        "valkey.sentinel",
        "at least twice down_after_ms",
    ),
    (
        "valkey.policy",
        {"maxmemory_policy": "allkeys-lru"},
        "valkey.policy.maxmemory_policy",
        "noeviction",
    ),
    (
        "mail.spam",
        {"uri_blocklists": [{"zone": "a.example", "score": 1}, {"zone": "a.example", "score": 2}]},
        "mail.spam",
        "uri_blocklists lists a zone twice",
    ),
    (
        "mail.spam",
        {"ip_blocklists": [{"zone": "a.example", "score": 0}]},
        "mail.spam.ip_blocklists[0].score",
        "greater than 0",
    ),
    ("mail.dkim", {"selector": "Bad_Selector"}, "mail.dkim.selector", "pattern"),
    ("mail.antivirus", {"max_scan_mib": 0}, "mail.antivirus.max_scan_mib", "greater than or"),
    ("mail.greylisting", {"ipv4_prefix": 40}, "mail.greylisting.ipv4_prefix", "less than"),
    (
        "mail.outbound_limit",
        {"default": {"recipients": 0, "window_seconds": 300}},
        "mail.outbound_limit.default.recipients",
        "greater than or equal to 1",
    ),
    (
        "mail.dnsbls",
        [{"zone": "a.example", "weight": 1}, {"zone": "a.example", "weight": 2}],
        "mail",
        "dnsbls lists a zone twice",
    ),
    ("tls", {"mode": "provided"}, "tls", "needs the provided section"),
    ("tls.acme", {"contact_email": "nobody"}, "tls.acme.contact_email", "pattern"),
    ("dns.dmarc_policy", "maybe", "dns.dmarc_policy", "reject"),
    ("dns.surprise", True, "dns.surprise", "Extra inputs are not permitted"),
    ("tls", DELETE, "tls", "Field required"),
]


@pytest.mark.parametrize(
    ("change", "value", "field", "words"), INVALID, ids=[i[0] for i in INVALID]
)
def test_invalid_settings_name_the_field(change, value, field, words):
    with pytest.raises(SettingsError) as caught:
        settings_from_mapping(with_change(change, value), "test")
    problems = caught.value.problems
    expected = (
        "mailstack:settings" if field == "mailstack:settings" else f"mailstack:settings.{field}"
    )
    assert any(path == expected and words in message for path, message in problems), problems


def test_every_error_is_reported_at_once():
    data = with_change("environment.name", "X")
    data["topology"]["db"] = {"count": -5}
    data["dns"]["dmarc_policy"] = "maybe"
    with pytest.raises(SettingsError) as caught:
        settings_from_mapping(data, "test")
    paths = {path for path, _ in caught.value.problems}
    assert {
        "mailstack:settings.environment.name",
        "mailstack:settings.topology.db.count",
        "mailstack:settings.dns.dmarc_policy",
    } <= paths


def test_single_profile_puts_every_role_on_one_host():
    settings = load_stack_file(ROOT / "stacks/Pulumi.staging.yaml")
    (host,) = plan_hosts(settings)
    assert set(host.roles) == {"mx", "mailstore", "db", "web"}


def test_defaults_are_the_production_policies():
    settings = settings_from_mapping(production())
    limit = settings.mail.outbound_limit
    assert (limit.default.recipients, limit.default.window_seconds) == (60, 300)
    assert settings.mail.greylisting.enabled and settings.mail.greylisting.ipv4_prefix == 24
    assert settings.dns.spf_all == "-all"
    # Production scans with current signatures and every public source.
    assert settings.mail.antivirus.signature_updates
    assert settings.mail.spam.public_fuzzy and settings.mail.spam.phishing_feeds
    assert settings.mail.antivirus.max_scan_mib * 1024 * 1024 >= (
        settings.mail.message_size_limit_bytes
    )


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "mailstack.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_cli_check_prints_the_effective_settings():
    result = run_cli("settings", "check", "stacks/Pulumi.production.yaml")
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["mail"]["outbound_limit"]["default"] == {
        "recipients": 60,
        "window_seconds": 300,
    }
    Settings.model_validate(effective)


def test_cli_check_names_every_bad_field_and_fails(tmp_path):
    data = with_change("environment.name", "X")
    data["topology"]["db"] = {"count": 2}
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(yaml.safe_dump({"config": {"mailstack:settings": data}}))
    result = run_cli("settings", "check", str(bad))
    assert result.returncode == 1
    assert "mailstack:settings.environment.name" in result.stderr
    assert "db.count must be odd" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "words"),
    [("config: [1", "not valid YAML"), ("config: {}", "no config.mailstack:settings")],
)
def test_cli_check_rejects_unreadable_files(tmp_path, content, words):
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(content)
    result = run_cli("settings", "check", str(bad))
    assert result.returncode == 1 and words in result.stderr


def test_settings_reference_is_current():
    assert (ROOT / "docs/settings.md").read_text() == render(Settings), "run `make docs`"


def test_every_field_has_a_description():
    missing = []
    queue = [Settings]
    seen = set()
    while queue:
        model = queue.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
                for inner in [arg, *getattr(arg, "__args__", ())]:
                    if isinstance(inner, type) and issubclass(inner, Settings.__mro__[1]):
                        queue.append(inner)
    assert missing == []

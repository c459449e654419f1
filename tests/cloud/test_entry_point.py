"""`pulumi up`'s entry point: settings from the stack's config, DKIM keys from the secrets."""

import json
from pathlib import Path

import pulumi
import pytest
import yaml
from mocks import MockHetzner

from mailstack.cloud.program import FAILOVER_TOKEN_KEY, run
from mailstack.dkim import DkimKey
from mailstack.settings.stackfile import CONFIG_KEY

ROOT = Path(__file__).resolve().parents[2]
STACK = "production"  # its zones are managed, so the program publishes the DKIM records


TOKEN_KEY = f"mailstack:{FAILOVER_TOKEN_KEY}"


def run_under_mocks(config: dict, failover_token: str | None = "token") -> MockHetzner:
    mocks = MockHetzner()
    pulumi.runtime.set_mocks(mocks, project="mailstack", stack=STACK, preview=False)
    values = {CONFIG_KEY: json.dumps(config[CONFIG_KEY])}
    if failover_token is not None:
        values[TOKEN_KEY] = failover_token
    pulumi.runtime.set_all_config(values, secret_keys=[TOKEN_KEY])
    try:
        pulumi.runtime.test(run)()
    finally:
        pulumi.runtime.set_all_config({})
    return mocks


def test_run_publishes_dkim_keys_it_generates_once(tmp_path, monkeypatch):
    secrets_file = tmp_path / f"{STACK}.json"
    monkeypatch.setenv("MAILSTACK_SECRETS_FILE", str(secrets_file))
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{STACK}.yaml").read_text())["config"]
    settings = config[CONFIG_KEY]
    selector = settings.get("mail", {}).get("dkim", {}).get("selector", "mailstack")

    mocks = run_under_mocks(config)
    stored = json.loads(secrets_file.read_text())
    for domain in settings["environment"]["mail_domains"]:
        key = DkimKey(domain, selector, stored[f"dkim/{domain}/{selector}"])
        (rrset,) = [
            r
            for r in mocks.of_type("ZoneRrset")
            if r.inputs["zone"] == domain and r.inputs["name"] == f"{selector}._domainkey"
        ]
        published = "".join(
            part.strip('"') for part in rrset.inputs["records"][0]["value"].split('" "')
        )
        assert published == key.record_text

    run_under_mocks(config)
    assert json.loads(secrets_file.read_text()) == stored


def test_run_stops_without_the_failover_token_naming_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILSTACK_SECRETS_FILE", str(tmp_path / f"{STACK}.json"))
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{STACK}.yaml").read_text())["config"]
    with pytest.raises(pulumi.RunError, match=TOKEN_KEY):
        run_under_mocks(config, failover_token=None)

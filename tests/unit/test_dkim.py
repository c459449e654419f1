"""DKIM keys: generated once per domain and selector, kept, and published as they are."""

import base64
from ipaddress import IPv4Network

from cryptography.hazmat.primitives import serialization

from mailstack.dkim import domain_keys
from mailstack.dnsrecords import plan_records
from mailstack.lab.lab import DEFAULT_STACK_FILE
from mailstack.lab.settings import LabSettings
from mailstack.lab.state import LabState
from mailstack.lab.zones import lab_zones
from mailstack.secrets import SecretStore
from mailstack.settings import load_stack_file
from mailstack.settings.stackfile import settings_from_mapping


def lab_settings(selector: str | None = None):
    settings = load_stack_file(DEFAULT_STACK_FILE)
    if selector is None:
        return settings
    data = settings.model_dump(mode="json")
    data["mail"]["dkim"]["selector"] = selector
    return settings_from_mapping(data)


def test_keys_are_generated_once_and_kept(tmp_path):
    settings = lab_settings()
    store = SecretStore(tmp_path / "secrets.json")
    first = domain_keys(settings, store)
    assert [k.domain for k in first] == settings.environment.mail_domains
    assert len({k.private_pem for k in first}) == len(first)
    assert domain_keys(settings, SecretStore(tmp_path / "secrets.json")) == first
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_a_new_selector_makes_new_keys_and_keeps_the_old(tmp_path):
    store = SecretStore(tmp_path / "secrets.json")
    old = domain_keys(lab_settings(), store)
    new = domain_keys(lab_settings("rotated"), store)
    assert {k.selector for k in new} == {"rotated"}
    assert not {k.private_pem for k in old} & {k.private_pem for k in new}
    assert domain_keys(lab_settings(), store) == old


def test_published_key_is_the_signing_keys_public_half(tmp_path):
    settings = lab_settings()
    (key, *_) = domain_keys(settings, SecretStore(tmp_path / "secrets.json"))
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    assert private.key_size == settings.mail.dkim.key_bits
    published = serialization.load_der_public_key(base64.b64decode(key.public_key))
    assert published.public_numbers() == private.public_key().public_numbers()
    records = [
        spec
        for spec in plan_records(settings, {}, [key])
        if spec.fqdn == f"{settings.mail.dkim.selector}._domainkey.{key.domain}"
    ]
    assert [spec.type for spec in records] == ["TXT"]


def test_lab_dns_serves_the_dkim_keys(tmp_path):
    settings = lab_settings()
    keys = domain_keys(settings, SecretStore(tmp_path / "secrets.json"))
    state = LabState(
        name="t",
        stack_file="x",
        subnet=IPv4Network("10.77.1.0/24"),
        bridge="msl-t",
        lab=LabSettings(),
    )
    served = {
        (record.name, record.type): record.value
        for zone in lab_zones(settings, state, keys)
        for record in zone.records
    }
    for key in keys:
        value = served[(key.record_name, "TXT")]
        assert "".join(part.strip('"') for part in value.split('" "')) == key.record_text

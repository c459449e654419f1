"""The off-site copy of the environment's secrets: who can read it, that it is put again only
when something changed, and that it reads back with the operator's key alone."""

import json
import subprocess

import pytest
from pydantic import ValidationError

from mailstack import secretcopy
from mailstack.deploy.deployment import REPOSITORY
from mailstack.secrets import SecretStore
from mailstack.settings import Settings, load_stack_file


def operator_key(tmp_path, kind="ed25519") -> tuple:
    key = tmp_path / f"operator_{kind}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "ops@example.net", "-f", str(key)],
        check=True,
    )
    return key, key.with_suffix(".pub").read_text().strip()


def settings_with(**changes) -> Settings:
    data = load_stack_file(REPOSITORY / "stacks/Pulumi.production.yaml").model_dump(mode="json")
    for path, value in changes.items():
        section, field = path.split(".")
        data[section][field] = value
    return Settings.model_validate(data)


def test_the_copy_reads_back_with_any_one_of_the_operators_keys(tmp_path):
    (first, first_public), (second, second_public) = (
        operator_key(tmp_path / "a"),
        operator_key(tmp_path / "b"),
    )
    ciphertext = secretcopy.encrypt(b'{"dkim": "k"}', [first_public, second_public])
    assert ciphertext.startswith(b"age-encryption.org/v1")
    assert secretcopy.decrypt(ciphertext, first) == b'{"dkim": "k"}'
    assert secretcopy.decrypt(ciphertext, second) == b'{"dkim": "k"}'
    stranger, _ = operator_key(tmp_path / "c")
    with pytest.raises(secretcopy.SecretCopyError, match="cannot read"):
        secretcopy.decrypt(ciphertext, stranger)


@pytest.fixture(autouse=True)
def _directories(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()


def test_without_recipients_the_admin_keys_age_can_use_read_it(tmp_path):
    _, ed25519 = operator_key(tmp_path / "a")
    _, ecdsa = operator_key(tmp_path / "b", "ecdsa")
    settings = settings_with(**{"environment.admin_ssh_keys": [ecdsa, ed25519]})
    assert secretcopy.recipients(settings) == [ed25519]
    with pytest.raises(ValidationError, match="no Ed25519 or RSA key"):
        settings_with(**{"environment.admin_ssh_keys": [ecdsa]})
    with pytest.raises(ValidationError, match="not an age recipient"):
        settings_with(**{"backups.secrets_recipients": [ecdsa]})


def test_the_copy_is_put_only_when_the_secrets_changed(tmp_path, monkeypatch):
    key, public = operator_key(tmp_path / "a")
    settings = settings_with(**{"backups.secrets_recipients": [public]})
    store = SecretStore(tmp_path / "secrets.json")
    store.get("dkim_key")
    remote = tmp_path / "remote"
    remote.mkdir()
    batches = []

    def fake_sftp(target, login_key, batch, workdir, address=None):
        """Does what the batch's put commands do, on a local directory."""
        batches.append(batch)
        for line in batch:
            if line.startswith("put "):
                _, source, destination = line.split()
                (remote / destination.replace("/", "_")).write_bytes(
                    (workdir / source.rsplit("/", 1)[1]).read_bytes()
                )

    monkeypatch.setattr(secretcopy, "sftp", fake_sftp)
    said = secretcopy.push(settings, store)
    assert "mailstack/secrets/production.json.age" in said
    assert secretcopy.push(settings, store) is None  # unchanged: nothing put
    store.get("another_secret")
    assert secretcopy.push(settings, store) is not None
    assert len(batches) == 2
    newest = remote / "mailstack_secrets_production.json.age"
    assert json.loads(secretcopy.decrypt(newest.read_bytes(), key)) == json.loads(
        store.path.read_text()
    )
    # Each version is kept under its own name beside the newest.
    assert len(list(remote.glob("mailstack_secrets_production-*.json.age"))) == 2


def test_without_a_target_nothing_is_copied(tmp_path):
    settings = settings_with(**{"backups.target": None})
    assert secretcopy.push(settings, SecretStore(tmp_path / "secrets.json")) is None


def test_fetch_refuses_to_overwrite_a_file(tmp_path):
    key, _ = operator_key(tmp_path / "a")
    existing = tmp_path / "secrets.json"
    existing.write_text("{}")
    with pytest.raises(secretcopy.SecretCopyError, match="exists"):
        secretcopy.fetch(settings_with(), key, key, existing)

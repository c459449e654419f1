"""The controller's password hashes are rspamd's own: checked against `rspamadm pw`."""

import shutil
import subprocess

import pytest

from mailstack.services.rspamd import _ZBASE32, password_hash

pytestmark = pytest.mark.skipif(not shutil.which("rspamadm"), reason="needs rspamd's rspamadm")


def decode(text: str) -> bytes:
    value = sum(_ZBASE32.index(c) << (5 * i) for i, c in enumerate(text))
    return value.to_bytes(len(text) * 5 // 8, "little")


@pytest.mark.parametrize("password", ["test", "0f3a9c7d5e1b2a4c6d8e0f1a2b3c4d5e", "ünï cödé"])
def test_the_hash_is_what_rspamadm_makes_from_the_same_salt(password):
    made = subprocess.run(
        ["rspamadm", "pw", "-t", "pbkdf2", "-p", password],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _, kind, salt, _ = made.split("$")
    assert kind == "1"
    assert password_hash(password, decode(salt)) == made


def test_a_password_hashes_the_same_at_every_deploy_and_unlike_another():
    assert password_hash("secret-one") == password_hash("secret-one")
    assert password_hash("secret-one") != password_hash("secret-two")
    assert password_hash("secret-one").split("$")[2] != password_hash("secret-two").split("$")[2]


def test_a_password_longer_than_rspamd_keys_is_refused():
    with pytest.raises(ValueError, match="64 bytes"):
        password_hash("x" * 65)

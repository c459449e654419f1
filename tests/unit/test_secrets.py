import stat

from mailstack.secrets import SecretStore


def test_a_secret_is_generated_once_and_kept_private(tmp_path):
    store = SecretStore(tmp_path / "env" / "secrets.json")
    first = store.get("db_lookup_password")
    assert len(first) >= 40
    assert SecretStore(tmp_path / "env" / "secrets.json").get("db_lookup_password") == first
    assert store.get("db_panel_password") != first
    assert stat.S_IMODE((tmp_path / "env" / "secrets.json").stat().st_mode) == 0o600

"""The archive of the platform's code that deploys copy (roles/venv.py): the same files give the
same bytes (a converged host reports no change), and it holds what the hosts run."""

import io
import tarfile

from mailstack.deploy import deployment
from mailstack.deploy.deployment import code_archive


def members(archive: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        return opened.getmembers()


def test_the_same_files_give_the_same_bytes():
    assert code_archive.__wrapped__() == code_archive.__wrapped__()
    assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in members(code_archive()))


def test_it_holds_every_source_file_and_no_caches():
    names = {m.name for m in members(code_archive())}
    assert "mailstack/services/policyd.py" in names
    assert "panel/manage.py" in names
    assert "mailstack/policyd/lua/greylist.lua" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_a_changed_file_changes_the_version(tmp_path, monkeypatch):
    for package in deployment.CODE_PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "module.py").write_text("A = 1\n")
    monkeypatch.setattr(deployment, "REPOSITORY", tmp_path)
    deployment.code_archive.cache_clear()
    try:
        before = deployment.code_version()
        (tmp_path / "panel" / "module.py").write_text("A = 2\n")
        deployment.code_archive.cache_clear()
        assert deployment.code_version() != before
    finally:
        deployment.code_archive.cache_clear()

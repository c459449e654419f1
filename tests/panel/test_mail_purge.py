"""The mail store's clean-up job (mailstack.mailstore.purge) against the account data's view
mail.expired_storage, read as the lookup role: removed mailboxes' homes go once their retention
is over, and only theirs."""

import json
from pathlib import Path

import pytest
from django.test import override_settings
from panel_postgres import home_of

from mailstack.mailstore import purge

pytestmark = pytest.mark.postgres


def lookup_dsn(postgres) -> str:
    values = postgres.lookup_settings()
    return (
        f"host={values['db_hosts'][0]} port={values['db_port']} dbname={values['db_name']} "
        f"user={values['db_user']} password={values['db_password']}"
    )


def make_home(root: Path, home: str) -> Path:
    path = root / home / "Maildir" / "cur"
    path.mkdir(parents=True)
    (path / "1.msg").write_text("Subject: kept until the deadline\n\nbody\n")
    return root / home


def run(postgres, root: Path, tmp_path: Path) -> int:
    config = tmp_path / "purge.json"
    config.write_text(json.dumps({"accounts_dsn": lookup_dsn(postgres), "mail_root": str(root)}))
    return purge.main(["--config", str(config)])


def test_homes_past_their_deadline_are_deleted_and_no_others(example_org, postgres, tmp_path):
    from accounts import operations
    from accounts.audit import COMMAND_LINE
    from accounts.models import Mailbox

    root = tmp_path / "mail"
    alice, bob = home_of("alice@example.org"), home_of("bob@example.org")
    make_home(root, alice)
    make_home(root, bob)
    with override_settings(MAILPANEL_REMOVED_MAIL_RETENTION_DAYS=0):
        operations.remove_mailbox(COMMAND_LINE, Mailbox.objects.get(address="alice@example.org"))
    with override_settings(MAILPANEL_REMOVED_MAIL_RETENTION_DAYS=30):
        operations.remove_mailbox(COMMAND_LINE, Mailbox.objects.get(address="bob@example.org"))
    kept = make_home(root, "example.org/carol.1234")

    assert run(postgres, root, tmp_path) == 0

    assert not (root / alice).exists()
    assert (root / bob / "Maildir/cur/1.msg").exists()  # its retention runs for 30 days
    assert kept.exists() and (root / "example.org").is_dir()
    # Again: nothing left to do, nothing refused.
    assert run(postgres, root, tmp_path) == 0


@pytest.mark.parametrize(
    "home", ["../etc", "example.org/..", "/etc/passwd", "example.org/a/b", ".hidden/x"]
)
def test_a_home_outside_the_stored_form_is_refused(tmp_path, home):
    with pytest.raises(ValueError, match="refusing home"):
        purge.target(tmp_path, home)


def test_a_link_where_a_home_should_be_is_left_alone(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "mail/example.org").mkdir(parents=True)
    (tmp_path / "mail/example.org/alice.1").symlink_to(outside)
    deleted, problems = purge.purge(tmp_path / "mail", [("1", "example.org/alice.1")])
    assert deleted == [] and "refusing home" in problems[0]
    assert outside.exists()


def test_a_bad_configuration_is_named(tmp_path, capsys):
    config = tmp_path / "purge.json"
    config.write_text(json.dumps({"mail_root": "relative/path", "accounts_dsn": ""}))
    assert purge.main(["--config", str(config), "--check-config"]) == 2
    assert "mail_root must be an absolute path" in capsys.readouterr().err

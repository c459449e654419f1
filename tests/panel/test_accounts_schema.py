"""Migrations on an empty database, and the constraints the database itself enforces."""

import pytest
from django.db import IntegrityError, transaction
from panel_postgres import MAIL_VIEWS

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_database(postgres):
    name = "migrations_check"
    with postgres.connect() as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER mailpanel")
    yield name
    with postgres.connect() as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def mail_views(postgres, dbname: str) -> list[str]:
    with postgres.connect(dbname=dbname) as conn:
        return [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.views WHERE table_schema = 'mail' "
                "ORDER BY 1"
            )
        ]


def test_migrations_apply_to_an_empty_database_and_reverse(postgres, manage_py, empty_database):
    applied = manage_py("migrate", dbname=empty_database)
    assert applied.returncode == 0, applied.stderr
    assert mail_views(postgres, empty_database) == MAIL_VIEWS

    reversed_ = manage_py("migrate", "accounts", "zero", dbname=empty_database)
    assert reversed_.returncode == 0, reversed_.stderr
    with postgres.connect(dbname=empty_database) as conn:
        # Django's own apps (users, sessions, login attempts) stay; nothing of the accounts.
        left = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = 'mail' OR table_name LIKE 'accounts%' "
            "OR table_name LIKE 'tenancy%'"
        ).fetchall()
        assert left == []
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'mail'").fetchone() is None

    again = manage_py("migrate", dbname=empty_database)
    assert again.returncode == 0, again.stderr
    assert mail_views(postgres, empty_database) == MAIL_VIEWS
    with postgres.connect(user="mail_lookup", dbname=empty_database) as conn:
        assert conn.execute("SELECT count(*) FROM mail.virtual_aliases").fetchone() == (0,)


def test_migrating_without_the_lookup_role_names_the_setting(postgres, manage_py, empty_database):
    failed = manage_py(
        "migrate", dbname=empty_database, env={"MAILPANEL_LOOKUP_ROLE": "no_such_role"}
    )
    assert failed.returncode != 0
    assert "MAILPANEL_LOOKUP_ROLE: the PostgreSQL role 'no_such_role' does not exist" in (
        failed.stderr
    )


def test_models_and_migrations_agree(manage_py):
    result = manage_py("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def domain(example_org):
    from accounts.models import Domain

    return Domain.objects.get(name="example.org")


def violates(**fields) -> None:
    from accounts.models import Mailbox

    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        # A valid home of its own, so that only the constraint under test is violated.
        Mailbox.objects.create(
            **{"local_part": "carol", "password_hash": "{X}y", "home": "example.org/c.1", **fields}
        )
    return str(raised.value)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"quota_bytes": -1}, "mailbox_quota_not_negative"),
        ({"local_part": "Carol"}, "mailbox_local_part_form"),
        ({"local_part": "carol."}, "mailbox_local_part_form"),
        ({"local_part": "ca..rol"}, "mailbox_local_part_form"),
        ({"local_part": "a+b"}, "mailbox_local_part_form"),
        ({"password_hash": "plain"}, "mailbox_password_has_scheme"),
        ({"spam_add_header_score": 5.0}, "mailbox_spam_thresholds_ordered"),
        ({"spam_add_header_score": 5.0, "spam_reject_score": 5.0},
         "mailbox_spam_thresholds_ordered"),
        ({"local_part": "alice"}, "accounts_mailbox_address_key"),
        ({"home": "../etc"}, "mailbox_home_relative"),
        ({"home": "example.org/../other.org/alice"}, "mailbox_home_relative"),
        ({"home": "/srv/mail/example.org/carol"}, "mailbox_home_relative"),
    ],
)  # fmt: skip
def test_database_constraints(domain, fields, constraint):
    assert constraint in violates(domain=domain, **fields)


def test_domain_names_are_lower_case_in_the_database(example_org):
    from accounts.models import Domain, Reseller

    with pytest.raises(IntegrityError, match="domain_lower"), transaction.atomic():
        Domain.objects.create(name="Example.NET", reseller=Reseller.objects.get())


def test_a_domain_with_mailboxes_cannot_be_deleted_underneath(domain):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError), transaction.atomic():
        domain.delete()

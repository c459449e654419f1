"""The views in schema `mail`, read as the mail services' read-only role."""

import psycopg
import pytest
from panel_postgres import MAIL_VIEWS, home_of
from psycopg import errors

pytestmark = pytest.mark.postgres


def rows(conn: psycopg.Connection, view: str) -> dict:
    """The view as {first column: rest of the row (a single value if just one)}."""
    result = {}
    for row in conn.execute(f"SELECT * FROM mail.{view} ORDER BY 1").fetchall():
        result[row[0]] = row[1] if len(row) == 2 else row[1:]
    return result


def test_domains_and_mailboxes(example_org, lookup):
    assert list(rows(lookup, "virtual_domains")) == ["example.org"]
    assert rows(lookup, "virtual_mailboxes") == {
        "alice@example.org": home_of("alice@example.org") + "/",
        "bob@example.org": home_of("bob@example.org") + "/",
    }


def test_every_mailbox_maps_to_itself_so_a_catch_all_does_not_swallow_it(
    example_org, manage, lookup
):
    manage("domain", "change", "example.org", "--catch-all", "alice@example.org")
    assert rows(lookup, "virtual_aliases") == {
        "@example.org": "alice@example.org",
        "alice@example.org": "alice@example.org",
        "bob@example.org": "bob@example.org",
    }
    manage("domain", "change", "example.org", "--no-catch-all")
    assert "@example.org" not in rows(lookup, "virtual_aliases")


def test_catch_all_to_an_external_address(example_org, manage, lookup):
    manage("domain", "change", "example.org", "--catch-all", "Collector@Elsewhere.NET")
    assert rows(lookup, "virtual_aliases")["@example.org"] == "Collector@elsewhere.net"


def test_forwarding_with_several_targets(example_org, manage, lookup):
    manage("forwarding", "add", "team@example.org", "bob@example.org", "carol@peer.example",
           "alice@example.org")  # fmt: skip
    assert rows(lookup, "virtual_aliases")["team@example.org"] == (
        "alice@example.org,bob@example.org,carol@peer.example"
    )


def test_keep_a_copy_delivers_to_the_mailbox_first(example_org, manage, lookup):
    manage("forwarding", "add", "alice@example.org", "alice@peer.example")
    assert rows(lookup, "virtual_aliases")["alice@example.org"] == "alice@peer.example"
    manage("forwarding", "change", "alice@example.org", "--keep-copy")
    assert rows(lookup, "virtual_aliases")["alice@example.org"] == (
        "alice@example.org,alice@peer.example"
    )
    # A disabled mailbox keeps no copy: the address then only forwards.
    manage("mailbox", "change", "alice@example.org", "--disable")
    assert rows(lookup, "virtual_aliases")["alice@example.org"] == "alice@peer.example"


def test_disabled_things_vanish(example_org, manage, lookup):
    manage("forwarding", "add", "info@example.org", "bob@example.org")
    manage("mailbox", "change", "bob@example.org", "--disable")
    assert set(rows(lookup, "virtual_mailboxes")) == {"alice@example.org"}
    assert set(rows(lookup, "dovecot_users")) == {"alice@example.org"}
    assert "bob@example.org" not in rows(lookup, "virtual_aliases")
    assert set(rows(lookup, "sender_logins")) == {"alice@example.org"}

    manage("forwarding", "change", "info@example.org", "--disable")
    assert "info@example.org" not in rows(lookup, "virtual_aliases")

    manage("domain", "change", "example.org", "--disable")
    for view in ("virtual_domains", "virtual_mailboxes", "virtual_aliases", "sender_logins",
                 "dovecot_users", "outbound_limit_classes"):  # fmt: skip
        assert rows(lookup, view) == {}, view

    manage("domain", "change", "example.org", "--enable")
    manage("reseller", "change", "acme", "--disable")
    assert rows(lookup, "virtual_domains") == {}
    assert rows(lookup, "dovecot_users") == {}


def test_targets_that_take_no_mail_are_left_out(example_org, manage, lookup):
    # Postfix would accept mail for them and bounce it later: backscatter.
    manage("domain", "add", "example.net", "--reseller", "acme")
    manage("mailbox", "add", "carol@example.net")
    manage("forwarding", "add", "team@example.org", "bob@example.org", "carol@example.net",
           "ext@peer.example")  # fmt: skip
    manage("forwarding", "add", "info@example.org", "bob@example.org")
    manage("domain", "change", "example.org", "--catch-all", "bob@example.org")

    manage("mailbox", "change", "bob@example.org", "--disable")
    aliases = rows(lookup, "virtual_aliases")
    assert aliases["team@example.org"] == "carol@example.net,ext@peer.example"
    assert "info@example.org" not in aliases
    assert "@example.org" not in aliases

    manage("domain", "change", "example.net", "--disable")
    assert rows(lookup, "virtual_aliases")["team@example.org"] == "ext@peer.example"

    manage("mailbox", "change", "bob@example.org", "--enable")
    aliases = rows(lookup, "virtual_aliases")
    assert aliases["info@example.org"] == "bob@example.org"
    assert aliases["@example.org"] == "bob@example.org"


def test_sender_logins(example_org, manage, lookup):
    manage("forwarding", "add", "sales@example.org", "alice@example.org", "bob@example.org",
           "partner@peer.example")  # fmt: skip
    assert rows(lookup, "sender_logins") == {
        "alice@example.org": "alice@example.org",
        "bob@example.org": "bob@example.org",
        "sales@example.org": "alice@example.org,bob@example.org",
    }


def test_dovecot_users(example_org, manage, lookup):
    manage("mailbox", "change", "bob@example.org", "--quota-mib", "0")
    manage("mailbox", "change", "alice@example.org", "--quota-mib", "100")
    users = rows(lookup, "dovecot_users")
    password, home, quota_bytes, storage_size = users["alice@example.org"]
    assert password.startswith("{ARGON2ID}$argon2id$")
    assert home == home_of("alice@example.org")
    assert home.startswith("example.org/alice.")
    assert (quota_bytes, storage_size) == (100 * 1024 * 1024, f"{100 * 1024 * 1024}B")
    assert users["bob@example.org"][2:] == (0, "unlimited")


def test_default_quota_comes_from_the_settings(example_org, lookup):
    from django.conf import settings

    expected = settings.MAILPANEL_MAIL_POLICY.default_quota_mib * 1024 * 1024
    assert rows(lookup, "dovecot_users")["alice@example.org"][2] == expected


def test_outbound_limit_classes_and_spam_thresholds(example_org, manage, lookup):
    manage("mailbox", "change", "alice@example.org", "--limit-class", "newsletter",
           "--spam-thresholds", "4", "9.5")  # fmt: skip
    assert rows(lookup, "outbound_limit_classes") == {
        "alice@example.org": "newsletter",
        "bob@example.org": "",
    }
    assert rows(lookup, "spam_thresholds") == {"alice@example.org": (4.0, 9.5)}
    manage("mailbox", "change", "alice@example.org", "--default-limit-class",
           "--no-spam-thresholds")  # fmt: skip
    assert rows(lookup, "outbound_limit_classes")["alice@example.org"] == ""
    assert rows(lookup, "spam_thresholds") == {}


@pytest.mark.parametrize(
    "table",
    ["accounts_mailbox", "accounts_domain", "accounts_forwarding_target", "accounts_live_mailbox",
     "accounts_reseller"],
)  # fmt: skip
def test_lookup_role_cannot_read_tables(example_org, lookup, table):
    with pytest.raises(errors.InsufficientPrivilege):
        lookup.execute(f"SELECT * FROM {table}")


def test_lookup_role_may_only_select_the_mail_views(example_org, lookup):
    views = {
        name
        for (name,) in lookup.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mail'"
        )
    }
    assert views == set(MAIL_VIEWS)
    for view in views:
        granted = lookup.execute(
            "SELECT privilege, has_table_privilege(current_user, %s, privilege) "
            "FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', "
            "'TRIGGER']) AS privilege",
            [f"mail.{view}"],
        ).fetchall()
        assert {p for p, held in granted if held} == {"SELECT"}, view


def test_lookup_role_cannot_write(example_org, lookup):
    with pytest.raises(psycopg.Error):
        lookup.execute("INSERT INTO mail.virtual_domains (domain) VALUES ('evil.example')")
    with pytest.raises(psycopg.Error):
        lookup.execute("DELETE FROM mail.virtual_mailboxes")
    with pytest.raises(errors.InsufficientPrivilege):
        lookup.execute("CREATE TABLE public.planted (x int)")
    with pytest.raises(errors.InsufficientPrivilege):
        lookup.execute("CREATE VIEW mail.planted AS SELECT 1")
    assert list(rows(lookup, "virtual_domains")) == ["example.org"]
    assert set(rows(lookup, "virtual_mailboxes")) == {"alice@example.org", "bob@example.org"}

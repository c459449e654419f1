"""The exact Postfix maps and Dovecot queries shipped in templates/, against the views.

Postfix's own `postmap -q` reads the rendered `pgsql:` map files, so the map syntax, the host
list, the password and Postfix's quoting of the key are all exercised. Dovecot 2.4 is not
packaged for this machine, so its queries are taken from the rendered template and run the
way Dovecot runs them: `%{user}` replaced by the SQL-escaped login name.
"""

import re
from pathlib import Path

import jinja2
import pytest
from panel_postgres import DATABASE, home_of

from mailstack.deploy.deployment import DatabaseClient
from mailstack.services.postgresql import reader_uris
from mailstack.testing import trixie

pytestmark = pytest.mark.postgres

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
POSTFIX_MAPS = ["virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_maps",
                "sender_login_maps", "hosted_senders", "forwarding_loops"]  # fmt: skip


def render(relative: str, **values) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((TEMPLATES / relative).read_text()).render(**values)


@pytest.fixture(scope="module")
def postfix_root():
    """Debian 13's Postfix (3.10: map files name their servers by libpq URI), chrooted; a chroot
    shares this machine's network, so it reaches the test cluster on loopback."""
    with trixie.overlay("mailstack-postmap-") as root:
        yield root


@pytest.fixture
def postmap(postgres, postfix_root):
    maps = postfix_root / "etc/postfix/sql"
    maps.mkdir(parents=True, exist_ok=True)
    for name in POSTFIX_MAPS:
        text = render(f"postfix/etc/postfix/sql/{name}.cf.j2", **postgres.lookup_settings())
        (maps / f"{name}.cf").write_text(text)

    def lookup(name: str, key: str) -> str | None:
        result = trixie.chroot(
            postfix_root, "postmap", "-q", key, f"pgsql:/etc/postfix/sql/{name}.cf", timeout=30
        )
        assert result.returncode in (0, 1), result.stderr
        assert "warning" not in result.stderr and "fatal" not in result.stderr, result.stderr
        return result.stdout.rstrip("\n") if result.returncode == 0 else None

    return lookup


def test_map_files_list_every_database_host():
    client = DatabaseClient(("10.0.1.21", "10.0.1.22", "10.0.1.23"), 5432, "mailstack",
                            "mail_lookup", "s3cret", "any")  # fmt: skip
    text = render("postfix/etc/postfix/sql/virtual_alias_maps.cf.j2", db_uris=reader_uris(client))
    hosts = re.search(r"^hosts = (.*)$", text, re.M).group(1).split()
    assert [h.split("@")[1].split("/")[0] for h in hosts] == [
        "10.0.1.21:5432", "10.0.1.22:5432", "10.0.1.23:5432"
    ]  # fmt: skip
    assert all("sslmode=require" in h and "connect_timeout=" in h for h in hosts)


def test_dovecot_config_has_a_pgsql_block_per_database_host():
    hosts = ["10.0.1.21", "10.0.1.22", "10.0.1.23"]
    text = render(
        "dovecot/etc/dovecot/conf.d/auth-sql.conf.ext.j2",
        db_hosts=hosts, db_port=5432, db_name="mailstack", db_user="mail_lookup",
        db_password="s3cret", mail_root="/srv/mail", connect_timeout=2, tcp_user_timeout=5000,
    )  # fmt: skip
    assert re.findall(r"^pgsql (\S+) \{$", text, re.M) == hosts
    assert text.count("    password = s3cret\n") == 3


def test_postfix_maps(example_org, manage, postmap):
    manage("domain", "change", "example.org", "--catch-all", "bob@example.org")
    manage("forwarding", "add", "sales@example.org", "alice@example.org", "ext@peer.example")
    manage("forwarding", "add", "alice@example.org", "alice@peer.example", "--keep-copy")

    assert postmap("virtual_mailbox_domains", "example.org") == "example.org"
    assert postmap("virtual_mailbox_domains", "example.net") is None
    assert (
        postmap("virtual_mailbox_maps", "alice@example.org") == home_of("alice@example.org") + "/"
    )
    assert postmap("virtual_mailbox_maps", "sales@example.org") is None
    # Postfix folds the key to lower case before the query.
    assert postmap("virtual_mailbox_maps", "Bob@Example.ORG") == home_of("bob@example.org") + "/"

    assert postmap("virtual_alias_maps", "alice@example.org") == (
        "alice@example.org,alice@peer.example"
    )
    assert postmap("virtual_alias_maps", "bob@example.org") == "bob@example.org"
    assert postmap("virtual_alias_maps", "sales@example.org") == (
        "alice@example.org,ext@peer.example"
    )
    assert postmap("virtual_alias_maps", "@example.org") == "bob@example.org"
    assert postmap("virtual_alias_maps", "nobody@example.org") is None

    assert postmap("sender_login_maps", "sales@example.org") == "alice@example.org"
    assert postmap("sender_login_maps", "bob@example.org") == "bob@example.org"
    assert postmap("sender_login_maps", "ext@peer.example") is None


def test_a_loop_written_around_the_panel_is_refused_for_its_addresses_only(
    example_org, manage, postmap, postgres
):
    """The panel refuses loops; one written into the tables directly must still not make
    Postfix defer whole messages: the loop check refuses exactly the looping recipients."""
    manage("forwarding", "add", "a@example.org", "alice@example.org")
    manage("forwarding", "add", "b@example.org", "a@example.org")
    assert postmap("forwarding_loops", "a@example.org") is None
    with postgres.connect(dbname=DATABASE) as connection:
        connection.execute(
            "UPDATE accounts_forwarding_target SET address = 'b@example.org' WHERE forwarding_id ="
            " (SELECT id FROM accounts_forwarding WHERE address = 'a@example.org')"
        )
        # Unknown addresses fall to a catch-all that leads into the loop.
        connection.execute(
            "UPDATE accounts_domain SET catch_all = 'b@example.org' WHERE name = 'example.org'"
        )
    refused = "550 5.4.6 Forwarding loop: this address cannot take mail"
    for looping in ("a@example.org", "B@Example.org", "anyone@example.org"):
        assert postmap("forwarding_loops", looping) == refused, looping
    for fine in ("alice@example.org", "bob@example.org", "x@example.net", "example.org"):
        assert postmap("forwarding_loops", fine) is None, fine


def test_postfix_quotes_hostile_keys(example_org, postmap, lookup):
    for key in ("x' OR '1'='1@example.org", "alice@example.org'; DROP VIEW mail.x; --",
                "\\'@example.org"):  # fmt: skip
        assert postmap("virtual_alias_maps", key) is None
    assert lookup.execute("SELECT count(*) FROM mail.virtual_mailboxes").fetchone() == (2,)


def test_disabling_reaches_postfix(example_org, manage, postmap):
    manage("mailbox", "change", "bob@example.org", "--disable")
    assert postmap("virtual_mailbox_maps", "bob@example.org") is None
    assert postmap("virtual_alias_maps", "bob@example.org") is None
    manage("domain", "change", "example.org", "--disable")
    assert postmap("virtual_mailbox_domains", "example.org") is None


def dovecot_queries(postgres) -> dict[str, str]:
    """The rendered auth-sql template's queries, by the block and setting they stand in."""
    text = render(
        "dovecot/etc/dovecot/conf.d/auth-sql.conf.ext.j2",
        mail_root="/srv/mail", **postgres.lookup_settings(),
    )  # fmt: skip
    queries = {}
    for block, body in re.findall(r"^(passdb sql|userdb sql) \{\n(.*?)^\}", text, re.M | re.S):
        for setting, query in re.findall(r"^\s*(\w+) = (.*)$", body, re.M):
            queries[f"{block.split()[0]} {setting}"] = query
    return queries


def run_dovecot_query(lookup, query: str, user: str) -> list[dict]:
    expanded = query.replace("%{user}", user.replace("'", "''"))
    assert "%{" not in expanded, f"unexpanded variable in {query!r}"
    cursor = lookup.execute(expanded)
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_dovecot_queries(example_org, manage, postgres, lookup):
    manage("mailbox", "change", "bob@example.org", "--quota-mib", "0")
    queries = dovecot_queries(postgres)
    assert set(queries) == {"passdb query", "userdb query", "userdb iterate_query"}

    [passdb] = run_dovecot_query(lookup, queries["passdb query"], "Alice@Example.org")
    assert passdb["user"] == "alice@example.org"
    assert passdb["password"].startswith("{ARGON2ID}$argon2id$")

    [userdb] = run_dovecot_query(lookup, queries["userdb query"], "alice@example.org")
    quota = 5120 * 1024 * 1024
    assert userdb == {
        "home": "/srv/mail/" + home_of("alice@example.org"),
        "quota_storage_size": f"{quota}B",
    }
    [bob] = run_dovecot_query(lookup, queries["userdb query"], "bob@example.org")
    assert bob["quota_storage_size"] == "unlimited"

    assert run_dovecot_query(lookup, queries["passdb query"], "x' OR 'a'='a") == []
    users = run_dovecot_query(lookup, queries["userdb iterate_query"], "")
    assert sorted(u["user"] for u in users) == ["alice@example.org", "bob@example.org"]

    manage("mailbox", "change", "alice@example.org", "--disable")
    assert run_dovecot_query(lookup, queries["passdb query"], "alice@example.org") == []
    assert run_dovecot_query(lookup, queries["userdb query"], "alice@example.org") == []

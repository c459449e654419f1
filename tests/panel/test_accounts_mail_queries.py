"""The exact Postfix maps and Dovecot queries shipped in templates/, against the views.

Postfix's own `postmap -q` reads the rendered `pgsql:` map files, so the map syntax, the host
list, the password and Postfix's quoting of the key are all exercised. Dovecot 2.4 is not
packaged for this machine, so its queries are taken from the rendered template and run the
way Dovecot runs them: `%{user}` replaced by the SQL-escaped login name.
"""

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

pytestmark = pytest.mark.postgres

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
POSTFIX_MAPS = ["virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_maps",
                "sender_login_maps"]  # fmt: skip


def render(relative: str, **values) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((TEMPLATES / relative).read_text()).render(**values)


@pytest.fixture
def postmap(postgres, tmp_path):
    binary = shutil.which("postmap") or "/usr/sbin/postmap"
    assert Path(binary).exists(), "postmap is missing (make host-packages installs postfix)"
    for name in POSTFIX_MAPS:
        text = render(f"postfix/etc/postfix/sql/{name}.cf.j2", **postgres.lookup_settings())
        (tmp_path / f"{name}.cf").write_text(text)

    def lookup(name: str, key: str) -> str | None:
        result = subprocess.run(
            [binary, "-q", key, f"pgsql:{tmp_path / name}.cf"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr
        assert "warning" not in result.stderr and "fatal" not in result.stderr, result.stderr
        return result.stdout.rstrip("\n") if result.returncode == 0 else None

    return lookup


def test_map_files_list_every_database_host():
    text = render(
        "postfix/etc/postfix/sql/virtual_alias_maps.cf.j2",
        db_hosts=["10.0.1.21", "10.0.1.22", "10.0.1.23"], db_port=5432, db_name="mailstack",
        db_user="mail_lookup", db_password="s3cret",
    )  # fmt: skip
    assert "hosts = 10.0.1.21:5432 10.0.1.22:5432 10.0.1.23:5432\n" in text


def test_dovecot_config_has_a_pgsql_block_per_database_host():
    hosts = ["10.0.1.21", "10.0.1.22", "10.0.1.23"]
    text = render(
        "dovecot/etc/dovecot/conf.d/auth-sql.conf.ext.j2",
        db_hosts=hosts, db_port=5432, db_name="mailstack", db_user="mail_lookup",
        db_password="s3cret", mail_root="/srv/mail",
    )  # fmt: skip
    assert re.findall(r"^pgsql (\S+) \{$", text, re.M) == hosts
    assert text.count("    password = s3cret\n") == 3


def test_postfix_maps(example_org, manage, postmap):
    manage("domain", "change", "example.org", "--catch-all", "bob@example.org")
    manage("forwarding", "add", "sales@example.org", "alice@example.org", "ext@peer.example")
    manage("forwarding", "add", "alice@example.org", "alice@peer.example", "--keep-copy")

    assert postmap("virtual_mailbox_domains", "example.org") == "example.org"
    assert postmap("virtual_mailbox_domains", "example.net") is None
    assert postmap("virtual_mailbox_maps", "alice@example.org") == "example.org/alice/"
    assert postmap("virtual_mailbox_maps", "sales@example.org") is None
    # Postfix folds the key to lower case before the query.
    assert postmap("virtual_mailbox_maps", "Bob@Example.ORG") == "example.org/bob/"

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
    assert userdb == {"home": "/srv/mail/example.org/alice", "quota_storage_size": f"{quota}B"}
    [bob] = run_dovecot_query(lookup, queries["userdb query"], "bob@example.org")
    assert bob["quota_storage_size"] == "unlimited"

    assert run_dovecot_query(lookup, queries["passdb query"], "x' OR 'a'='a") == []
    users = run_dovecot_query(lookup, queries["userdb iterate_query"], "")
    assert sorted(u["user"] for u in users) == ["alice@example.org", "bob@example.org"]

    manage("mailbox", "change", "alice@example.org", "--disable")
    assert run_dovecot_query(lookup, queries["passdb query"], "alice@example.org") == []
    assert run_dovecot_query(lookup, queries["userdb query"], "alice@example.org") == []

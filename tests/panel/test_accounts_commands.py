"""The account management commands, their listings and their refusals of bad input."""

import pytest

pytestmark = pytest.mark.postgres


def refused(manage, *args: str, stdin: str | None = None) -> str:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as raised:
        manage(*args, stdin=stdin)
    return str(raised.value)


def listing(manage, *args: str) -> list[dict[str, str]]:
    header, *lines = manage(*args).stdout.splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def test_reseller_life_cycle(manage):
    manage("reseller", "add", "acme", "--brand-name", "Acme Mail", "--primary-colour", "#11AA33",
           "--panel-hostname", "Panel.Acme.example", "--webmail-hostname", "webmail.acme.example")  # fmt: skip
    from accounts.models import Reseller

    acme = Reseller.objects.get(name="acme")
    assert (acme.brand_name, acme.primary_colour, acme.panel_hostname) == (
        "Acme Mail", "#11aa33", "panel.acme.example"
    )  # fmt: skip
    manage("reseller", "change", "acme", "--logo-url", "https://acme.example/logo.svg",
           "--panel-hostname", "", "--disable")  # fmt: skip
    acme.refresh_from_db()
    assert (acme.logo_url, acme.panel_hostname, acme.enabled) == (
        "https://acme.example/logo.svg", None, False
    )  # fmt: skip
    assert listing(manage, "reseller", "list") == [
        {"name": "acme", "enabled": "False", "domains": "0", "brand_name": "Acme Mail",
         "panel_hostname": "", "webmail_hostname": "webmail.acme.example"}
    ]  # fmt: skip
    manage("reseller", "remove", "acme")
    assert listing(manage, "reseller", "list") == []


def test_reseller_refusals(manage):
    manage("reseller", "add", "acme", "--webmail-hostname", "webmail.acme.example")
    assert "name: reseller 'acme' already exists" in refused(manage, "reseller", "add", "acme")
    assert "primary_colour" in refused(manage, "reseller", "add", "b", "--primary-colour", "red")
    assert "panel_hostname" in refused(
        manage, "reseller", "add", "b", "--panel-hostname", "not a host"
    )
    assert "webmail_hostname" in refused(
        manage, "reseller", "add", "b", "--webmail-hostname", "webmail.acme.example"
    )
    assert "unknown reseller 'nobody'" in refused(manage, "reseller", "change", "nobody")
    manage("domain", "add", "example.org", "--reseller", "acme")
    message = refused(manage, "reseller", "remove", "acme")
    assert "still owns 1 domain(s): example.org" in message


def test_domain_commands(manage):
    manage("reseller", "add", "acme")
    manage("reseller", "add", "other")
    manage("domain", "add", "Bücher.Example", "--reseller", "acme")
    manage("domain", "add", "example.org", "--reseller", "acme", "--disabled",
           "--catch-all", "postmaster@peer.example")  # fmt: skip
    assert listing(manage, "domain", "list") == [
        {"domain": "example.org", "reseller": "acme", "enabled": "False", "mailboxes": "0",
         "forwardings": "0", "catch_all": "postmaster@peer.example", "ownership": "operator"},
        {"domain": "xn--bcher-kva.example", "reseller": "acme", "enabled": "True",
         "mailboxes": "0", "forwardings": "0", "catch_all": "", "ownership": "operator"},
    ]  # fmt: skip
    manage("domain", "change", "example.org", "--reseller", "other", "--enable")
    assert [d["domain"] for d in listing(manage, "domain", "list", "--reseller", "other")] == [
        "example.org"
    ]
    assert "domain: example.org is already hosted" in refused(
        manage, "domain", "add", "EXAMPLE.org.", "--reseller", "acme"
    )
    assert "domain: 'no_domain' is not a fully qualified domain name" in refused(
        manage, "domain", "add", "no_domain", "--reseller", "acme"
    )
    assert "reseller: unknown reseller 'nobody'" in refused(
        manage, "domain", "add", "example.net", "--reseller", "nobody"
    )
    assert "domain: example.net is not a domain hosted here" in refused(
        manage, "domain", "change", "example.net", "--disable"
    )
    assert "catch_all: nobody@example.org is neither a mailbox nor a forwarding here" in refused(
        manage, "domain", "change", "example.org", "--catch-all", "nobody@example.org"
    )
    assert "catch_all" in refused(manage, "domain", "change", "example.org", "--catch-all", "x@")


def test_domain_remove_guards_its_mailboxes(example_org, manage):
    manage("forwarding", "add", "info@example.org", "alice@example.org")
    message = refused(manage, "domain", "remove", "example.org")
    assert "still has 2 mailbox(es) and 1 forwarding(s)" in message
    manage("domain", "remove", "example.org", "--force")
    assert listing(manage, "domain", "list") == []
    assert listing(manage, "mailbox", "list") == []


def test_mailbox_commands(example_org, manage):
    result = manage("mailbox", "add", "Carol@Example.org", "--quota-mib", "250",
                    "--limit-class", "newsletter", "--disabled")  # fmt: skip
    generated = result.stdout.strip()
    assert len(generated) == 20 and generated.isalnum()
    assert "shown only this once" in result.stderr
    assert listing(manage, "mailbox", "list", "--domain", "example.org")[2] == {
        "address": "carol@example.org", "enabled": "False", "quota_mib": "250",
        "limit_class": "newsletter", "spam_add_header": "", "spam_reject": "",
    }  # fmt: skip
    changed = manage("mailbox", "change", "carol@example.org", "--generate-password", "--enable")
    assert changed.stdout.strip() not in ("", generated)
    assert manage("mailbox", "change", "carol@example.org", "--quota-mib", "0").stdout == (
        "changed mailbox carol@example.org\n"
    )
    manage("mailbox", "remove", "carol@example.org")
    assert [m["address"] for m in listing(manage, "mailbox", "list")] == [
        "alice@example.org",
        "bob@example.org",
    ]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "not-an-address"], None, "address: 'not-an-address' is not a valid e-mail address"),
        (["add", "a..b@example.org"], None, "address: 'a..b' is not a valid local part"),
        (["add", "a+tag@example.org"], None, "address: 'a+tag' is not a valid local part"),
        (["add", "x@example.net"], None, "domain: example.net is not a domain hosted here"),
        (["add", "ALICE@example.org"], None, "address: mailbox alice@example.org already exists"),
        (["add", "d@example.org", "--password-stdin"], "short\n", "password: must be at least 10"),
        (["add", "d@example.org", "--password-stdin"], "", "password: must be at least 10"),
        (["add", "d@example.org", "--password-stdin"], "tab\there-pass\n", "password: must not"),
        (["add", "d@example.org", "--quota-mib", "-1"], None, "quota_mib: -1 is negative"),
        (["add", "d@example.org", "--limit-class", "bulk"], None,
         "outbound_limit_class: unknown class 'bulk' (classes in the settings: newsletter)"),
        (["add", "d@example.org", "--spam-thresholds", "9", "5"], None,
         "spam_reject_score: must be greater than the add-header score"),
        (["change", "nobody@example.org", "--disable"], None,
         "address: nobody@example.org is not a mailbox"),
        (["remove", "nobody@example.org"], None, "address: nobody@example.org is not a mailbox"),
    ],
)  # fmt: skip
def test_mailbox_refusals(example_org, manage, args, stdin, message):
    assert message in refused(manage, "mailbox", *args, stdin=stdin)
    assert [m["address"] for m in listing(manage, "mailbox", "list")] == [
        "alice@example.org",
        "bob@example.org",
    ]


def test_forwarding_commands(example_org, manage):
    manage("forwarding", "add", "team@example.org", "bob@example.org", "Ext@Peer.Example",
           "bob@example.org")  # fmt: skip
    manage("forwarding", "add", "alice@example.org", "alice@peer.example", "--keep-copy")
    manage("forwarding", "change", "team@example.org", "--add-target", "alice@example.org",
           "--remove-target", "ext@peer.example")  # fmt: skip
    assert listing(manage, "forwarding", "list") == [
        {"address": "alice@example.org", "enabled": "True", "keep_copy": "True",
         "targets": "alice@peer.example"},
        {"address": "team@example.org", "enabled": "True", "keep_copy": "False",
         "targets": "alice@example.org,bob@example.org"},
    ]  # fmt: skip
    manage("forwarding", "change", "team@example.org", "--targets", "carol@peer.example",
           "--disable")  # fmt: skip
    assert listing(manage, "forwarding", "list", "--domain", "example.org")[1]["targets"] == (
        "carol@peer.example"
    )
    manage("forwarding", "remove", "team@example.org")
    assert [f["address"] for f in listing(manage, "forwarding", "list")] == ["alice@example.org"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "x@example.org", "nobody@example.org"],
         "targets: nobody@example.org is neither a mailbox nor a forwarding here"),
        (["add", "x@example.org", "not an address"], "targets: 'not an address' is not a valid"),
        (["add", "x@example.org", "bob@example.org", "--keep-copy"],
         "keep_copy: x@example.org has no mailbox to keep a copy in"),
        (["add", "bob@example.org", "bob@example.org"], "use --keep-copy instead"),
        (["add", "x@example.com", "bob@example.org"], "domain: example.com is not a domain hosted"),
        (["add", "info@example.org", "bob@example.org"], "forwarding info@example.org already exists"),
        (["change", "info@example.org", "--remove-target", "alice@example.org"],
         "remove_target: alice@example.org is not a target of info@example.org"),
        (["change", "info@example.org", "--remove-target", "bob@example.org"],
         "targets: a forwarding needs at least one target"),
        (["remove", "nobody@example.org"], "address: nobody@example.org is not a forwarding"),
    ],
)  # fmt: skip
def test_forwarding_refusals(example_org, manage, args, message):
    manage("forwarding", "add", "info@example.org", "bob@example.org")
    assert message in refused(manage, "forwarding", *args)
    assert listing(manage, "forwarding", "list") == [
        {"address": "info@example.org", "enabled": "True", "keep_copy": "False",
         "targets": "bob@example.org"}
    ]  # fmt: skip


def test_manage_py_exit_codes(manage_py, example_org):
    added = manage_py("mailbox", "add", "dave@example.org", "--password-stdin",
                       stdin="dave-password-1\n")  # fmt: skip
    assert (added.returncode, added.stdout) == (0, "added mailbox dave@example.org\n")

    duplicate = manage_py("mailbox", "add", "dave@example.org")
    assert duplicate.returncode == 1
    assert "address: mailbox dave@example.org already exists" in duplicate.stderr
    assert duplicate.stdout == ""

    unknown = manage_py("domain", "add", "example.net", "--reseller", "nobody")
    assert unknown.returncode == 1 and "unknown reseller 'nobody'" in unknown.stderr

    usage = manage_py("mailbox", "frobnicate")
    assert usage.returncode == 2 and "invalid choice: 'frobnicate'" in usage.stderr
    both = manage_py("mailbox", "change", "dave@example.org", "--limit-class", "newsletter",
                     "--default-limit-class")  # fmt: skip
    assert both.returncode == 2 and "not allowed with argument --limit-class" in both.stderr


def test_a_failed_command_changes_nothing(manage_py, example_org, manage):
    # The domain is created before its catch-all is checked; the transaction undoes it.
    failed = manage_py("domain", "add", "example.net", "--reseller", "acme",
                        "--catch-all", "nobody@example.net")  # fmt: skip
    assert failed.returncode == 1
    assert [d["domain"] for d in listing(manage, "domain", "list")] == ["example.org"]


def test_the_mail_policy_file_sets_default_quota_and_classes(manage_py, example_org, lookup,
                                                             tmp_path):  # fmt: skip
    from mailstack.settings.policies import MailPolicySettings
    from mailstack.settings.policyd import OutboundLimitSettings, RecipientLimit

    policy = MailPolicySettings(
        default_quota_mib=7,
        outbound_limit=OutboundLimitSettings(
            classes={"bulk": RecipientLimit(recipients=1000, window_seconds=600)}
        ),
    )
    path = tmp_path / "mail-policy.json"
    path.write_text(policy.model_dump_json())
    env = {"MAILPANEL_MAIL_POLICY": str(path)}

    added = manage_py("mailbox", "add", "erin@example.org", "--limit-class", "bulk", env=env)
    assert added.returncode == 0, added.stderr
    assert lookup.execute(
        "SELECT quota_bytes FROM mail.dovecot_users WHERE username = 'erin@example.org'"
    ).fetchone() == (7 * 1024 * 1024,)
    other = manage_py("mailbox", "change", "erin@example.org", "--limit-class", "newsletter",
                      env=env)  # fmt: skip
    assert other.returncode == 1
    assert "unknown class 'newsletter' (classes in the settings: bulk)" in other.stderr

    path.write_text('{"default_quota_mib": -1}')
    broken = manage_py("mailbox", "list", env=env)
    assert broken.returncode != 0 and "default_quota_mib" in broken.stderr


def test_settings_can_come_from_files(manage_py, example_org, tmp_path):
    # MAILPANEL_X_FILE wins over MAILPANEL_X: secrets stay out of the environment.
    name_file = tmp_path / "db-name"
    name_file.write_text("no_such_database\n")
    failed = manage_py("mailbox", "list", env={"MAILPANEL_DB_NAME_FILE": str(name_file)})
    assert failed.returncode != 0
    assert 'database "no_such_database" does not exist' in failed.stderr
    name_file.write_text("mailstack\n")
    listed = manage_py("mailbox", "list", env={"MAILPANEL_DB_NAME_FILE": str(name_file)})
    assert listed.returncode == 0 and "alice@example.org" in listed.stdout

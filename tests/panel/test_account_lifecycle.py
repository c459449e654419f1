"""Issue 9's account-data faults: forwarding loops, mail of removed mailboxes, domain ownership,
and the DKIM key life cycle of customer domains, against the real PostgreSQL, a real DNS server
on loopback and the suite's real Valkey."""

import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone
from dns_server import AuthoritativeServer

pytestmark = pytest.mark.postgres


def refused(manage, *args: str) -> str:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as raised:
        manage(*args)
    return str(raised.value)


# Forwarding loops (C4) ---------------------------------------------------------------------


def test_a_two_step_loop_is_refused_when_it_is_made(example_org, manage):
    manage("forwarding", "add", "b@example.org", "alice@example.org")
    manage("forwarding", "add", "a@example.org", "b@example.org")
    message = refused(manage, "forwarding", "change", "b@example.org", "--targets",
                      "a@example.org")  # fmt: skip
    assert "targets: forwarding loop: b@example.org → a@example.org → b@example.org" in message
    from accounts.models import Forwarding

    assert list(Forwarding.objects.get(address="b@example.org").targets.values_list(
        "address", flat=True)) == ["alice@example.org"]  # fmt: skip


def test_a_long_loop_across_domains_is_refused(example_org, manage):
    manage("domain", "add", "example.net", "--reseller", "acme")
    manage("forwarding", "add", "one@example.org", "bob@example.org")
    manage("forwarding", "add", "two@example.net", "one@example.org")
    manage("forwarding", "add", "three@example.org", "two@example.net")
    message = refused(manage, "forwarding", "change", "one@example.org", "--add-target",
                      "three@example.org")  # fmt: skip
    assert "one@example.org → three@example.org → two@example.net → one@example.org" in message


def test_a_loop_through_a_catch_all_is_refused(example_org, manage):
    manage("domain", "add", "example.net", "--reseller", "acme")
    manage("forwarding", "add", "in@example.net", "alice@example.org")
    manage("domain", "change", "example.org", "--catch-all", "in@example.net")
    # in@example.net -> nobody@example.org (unknown: the catch-all) -> in@example.net
    manage("mailbox", "add", "tmp@example.org", "--password-stdin", stdin="tmp-password-123\n")
    manage("forwarding", "change", "in@example.net", "--targets", "tmp@example.org")
    manage("mailbox", "remove", "tmp@example.org")
    from accounts import loops

    with pytest.raises(ValidationError, match=r"catch-all of example\.org"):
        loops.check_no_loops(forwardings={"in@example.net": ["tmp@example.org"]})


def test_keeping_a_copy_is_no_loop_but_disabled_forwardings_count(example_org, manage):
    manage("forwarding", "add", "team@example.org", "alice@example.org", "--disabled")
    manage("forwarding", "add", "alice@example.org", "bob@example.org", "--keep-copy")
    message = refused(manage, "forwarding", "change", "alice@example.org", "--add-target",
                      "team@example.org")  # fmt: skip
    assert "alice@example.org → team@example.org → alice@example.org" in message


# Removed mailboxes (D) ---------------------------------------------------------------------


def test_a_mailbox_created_again_never_reaches_the_old_mail(example_org, manage, lookup):
    from accounts.lifecycle import RemovedMailbox

    first = lookup.execute(
        "SELECT home FROM mail.dovecot_users WHERE username = 'alice@example.org'"
    ).fetchone()[0]
    manage("mailbox", "remove", "alice@example.org")
    manage("mailbox", "add", "alice@example.org", "--password-stdin", stdin="new-owner-pass-1\n")
    second = lookup.execute(
        "SELECT home FROM mail.dovecot_users WHERE username = 'alice@example.org'"
    ).fetchone()[0]
    assert first != second and not second.startswith(first + "/")
    removed = RemovedMailbox.objects.get()
    assert (removed.address, removed.home, removed.reseller_name) == (
        "alice@example.org", first, "acme"
    )  # fmt: skip
    days = (removed.purge_after - removed.removed).total_seconds() / 86400
    assert round(days) == 30


def test_expired_storage_lists_homes_past_their_deadline(example_org, manage, lookup):
    from accounts.lifecycle import RemovedMailbox

    with override_settings(MAILPANEL_REMOVED_MAIL_RETENTION_DAYS=0):
        manage("mailbox", "remove", "bob@example.org")
    manage("mailbox", "remove", "alice@example.org")
    bob = RemovedMailbox.objects.get(address="bob@example.org")
    rows = lookup.execute("SELECT storage_id, home FROM mail.expired_storage").fetchall()
    assert rows == [(bob.storage_id, bob.home)]
    listed = manage("storage", "expired").stdout.splitlines()
    assert len(listed) == 2 and listed[1].startswith("bob@example.org\tacme\t" + bob.home)


def test_removing_a_domain_keeps_its_mail_unreachable_until_the_deadline(example_org, manage,
                                                                         lookup):  # fmt: skip
    manage("domain", "remove", "example.org", "--force")
    assert lookup.execute("SELECT count(*) FROM mail.dovecot_users").fetchone() == (0,)
    from accounts.lifecycle import RemovedMailbox

    assert sorted(RemovedMailbox.objects.values_list("address", flat=True)) == [
        "alice@example.org", "bob@example.org"
    ]  # fmt: skip
    assert RemovedMailbox.objects.filter(purge_after__gt=timezone.now()).count() == 2


# Domain ownership (D) ----------------------------------------------------------------------


@pytest.fixture
def dns_zone():
    with AuthoritativeServer() as server, override_settings(
        MAILPANEL_DNS_RESOLVERS=server.resolver_setting
    ):  # fmt: skip
        yield server


def live_domains(lookup) -> list[str]:
    return [d for (d,) in lookup.execute("SELECT domain FROM mail.virtual_domains ORDER BY 1")]


def test_a_domain_goes_live_only_after_its_owner_publishes_the_token(manage, lookup, dns_zone):
    manage("reseller", "add", "acme")
    added = manage("domain", "add", "customer.example", "--reseller", "acme", "--require-proof")
    from accounts.models import Domain

    domain = Domain.objects.get(name="customer.example")
    assert f"TXT _mailstack-challenge.customer.example holds {domain.verification_token}" in (
        added.stderr
    )
    assert live_domains(lookup) == []

    message = refused(manage, "domain", "verify", "customer.example")
    assert "does not hold the token yet; publish: " + domain.verification_token in message
    dns_zone.publish("_mailstack-challenge.customer.example", "TXT", '"someone-else"')
    assert "does not hold the token" in refused(manage, "domain", "verify", "customer.example")

    dns_zone.publish("_mailstack-challenge.customer.example", "TXT",
                     f'"{domain.verification_token}"')  # fmt: skip
    assert "ownership proven" in manage("domain", "verify", "customer.example").stdout
    assert live_domains(lookup) == ["customer.example"]
    domain.refresh_from_db()
    assert domain.ownership == "dns"


def test_a_failing_resolver_is_reported_as_such(manage):
    manage("reseller", "add", "acme")
    manage("domain", "add", "customer.example", "--reseller", "acme", "--require-proof")
    from mailstack.testing.processes import free_port

    with override_settings(MAILPANEL_DNS_RESOLVERS=[f"127.0.0.1:{free_port()}"]):
        assert "the DNS look-up failed" in refused(manage, "domain", "verify", "customer.example")


def test_the_operator_vouches_on_the_command_line(manage, lookup):
    manage("reseller", "add", "acme")
    manage("domain", "add", "tenant.test", "--reseller", "acme")
    assert live_domains(lookup) == ["tenant.test"]
    manage("domain", "add", "later.test", "--reseller", "acme", "--require-proof")
    manage("domain", "vouch", "later.test")
    assert live_domains(lookup) == ["later.test", "tenant.test"]


def test_the_published_records_are_checked_against_real_dns(example_org, dns_zone):
    from accounts import records
    from accounts.models import Domain

    domain = Domain.objects.get(name="example.org")
    key = records.signing_key(domain)
    dns_zone.publish(key.record_name, "TXT", '"v=DKIM1; k=rsa; p=stale"')
    [finding] = records.check_records(
        [r for r in records.expected_records(domain) if r.fqdn == key.record_name]
    )
    assert finding.state == "different"
    assert finding.message.startswith(f"TXT record {key.record_name} is v=DKIM1; k=rsa; p=stale")
    dns_zone.withdraw(key.record_name)
    [finding] = records.check_records(
        [r for r in records.expected_records(domain) if r.fqdn == key.record_name]
    )
    assert finding.message == f"TXT record {key.record_name} missing, publish: {key.record_text}"
    # The whole record, a 2048-bit key, comes back over TCP after a truncated UDP answer.
    from mailstack.dnsrecords import txt

    dns_zone.publish(key.record_name, "TXT", txt(key.record_text))
    [finding] = records.check_records(
        [r for r in records.expected_records(domain) if r.fqdn == key.record_name]
    )
    assert finding.state == "ok", finding.message


# DKIM keys (4) -----------------------------------------------------------------------------


@pytest.fixture
def signing_store(valkey):
    import valkey as valkey_client

    url = f"redis://127.0.0.1:{valkey.port}/7"
    client = valkey_client.Valkey.from_url(url)
    client.flushdb()
    with override_settings(MAILPANEL_VALKEY_URL=url):
        yield client
    client.flushdb()
    client.close()


def test_a_new_domain_is_signed_from_valkey_and_its_removal_withdraws_the_key(
    manage, signing_store
):
    from accounts import dkimstore
    from accounts.lifecycle import DomainKey

    manage("reseller", "add", "acme")
    manage("domain", "add", "customer.example", "--reseller", "acme")
    key = DomainKey.objects.get(domain__name="customer.example")
    assert key.selector == "mailstack"
    assert signing_store.hget(dkimstore.SELECTORS_HASH, "customer.example") == b"mailstack"
    pem = signing_store.hget(dkimstore.KEYS_HASH, "mailstack.customer.example").decode()
    assert pem == key.private_pem
    # A usable RSA key, generated when the domain was added (the fixture holds none).
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    listed = manage("dkim", "list").stdout
    assert "customer.example\tmailstack\t" in listed and "PRIVATE" not in listed

    manage("domain", "remove", "customer.example")
    assert signing_store.hgetall(dkimstore.SELECTORS_HASH) == {}
    assert signing_store.hgetall(dkimstore.KEYS_HASH) == {}
    assert not DomainKey.objects.exists()


def test_sync_restores_a_lost_store_and_drops_stale_keys(manage, signing_store):
    from accounts import dkimstore

    manage("reseller", "add", "acme")
    manage("domain", "add", "one.example", "--reseller", "acme")
    manage("domain", "add", "two.example", "--reseller", "acme")
    signing_store.flushdb()
    signing_store.hset(dkimstore.SELECTORS_HASH, "gone.example", "old")
    signing_store.hset(dkimstore.KEYS_HASH, "old.gone.example", "pem")
    assert "keys of 2 domains written, 1 removed" in manage("dkim", "sync").stdout
    assert set(signing_store.hkeys(dkimstore.SELECTORS_HASH)) == {b"one.example", b"two.example"}
    assert set(signing_store.hkeys(dkimstore.KEYS_HASH)) == {
        b"mailstack.one.example", b"mailstack.two.example"
    }  # fmt: skip


def test_an_unreachable_store_leaves_no_half_made_domain(manage, signing_store):
    from mailstack.testing.processes import free_port

    manage("reseller", "add", "acme")
    with override_settings(MAILPANEL_VALKEY_URL=f"redis://127.0.0.1:{free_port()}/0"):
        message = refused(manage, "domain", "add", "customer.example", "--reseller", "acme")
    assert "signing key store (Valkey)" in message
    from accounts.models import Domain

    assert not Domain.objects.exists()


def test_audit_entries_record_who_what_and_before_after(example_org, manage):
    from accounts.audit import AuditEntry

    manage("mailbox", "change", "alice@example.org", "--quota-mib", "7")
    entry = AuditEntry.objects.filter(object_name="alice@example.org").first()
    assert (entry.actor, entry.actor_role, entry.action) == ("command line", "operator", "change")
    assert entry.before["quota_bytes"] != entry.after["quota_bytes"] == 7 * 1024 * 1024
    assert entry.after["password_hash"] == "(set)"
    assert entry.at > timezone.now() - datetime.timedelta(minutes=1)


def test_a_customer_domain_publishes_records_derived_from_the_platform(example_org, dns_zone):
    from pathlib import Path

    from accounts import records
    from accounts.models import Domain
    from mailstack.settings import load_stack_file

    platform = load_stack_file(Path(__file__).parents[2] / "stacks/Pulumi.lab.yaml")
    primary = platform.environment.primary_domain
    domain = Domain.objects.get(name="example.org")
    with override_settings(MAILPANEL_PLATFORM=platform):
        expected = {(r.fqdn, r.type): r.value for r in records.expected_records(domain)}
        assert expected[("example.org", "MX")] == f"10 {platform.environment.hostname('mx')}."
        assert expected[("example.org", "TXT")] == (
            f"v=spf1 include:{primary} {platform.dns.spf_all}"
        )
        assert expected[("_dmarc.example.org", "TXT")].startswith("v=DMARC1; p=")
        assert ("_submissions._tcp.example.org", "SRV") in expected
        dns_zone.publish("example.org", "MX", expected[("example.org", "MX")])
        dns_zone.publish("example.org", "TXT", '"v=spf1 -all"')
        dns_zone.publish("example.org", "TXT", '"google-site-verification=x"')
        findings = {(f.name, f.type): f for f in records.check_records(
            [r for r in records.expected_records(domain) if r.fqdn == "example.org"]
        )}  # fmt: skip
    assert findings[("example.org", "MX")].state == "ok"
    spf = findings[("example.org", "TXT")]
    assert spf.state == "different" and spf.found == ["v=spf1 -all"]
    assert spf.message == (
        f"TXT record example.org is v=spf1 -all, publish: {expected[('example.org', 'TXT')]}"
    )


def test_the_operators_own_domains_keep_the_deploys_keys(manage_py, tmp_path):
    """With the platform's settings (as the panel role writes them), the operator's own mail
    domains get no panel key: the deploy signs them with the keys from the secrets."""
    from pathlib import Path

    from accounts.lifecycle import DomainKey
    from mailstack.settings import load_stack_file

    platform = load_stack_file(Path(__file__).parents[2] / "stacks/Pulumi.lab.yaml")
    path = tmp_path / "platform.json"
    path.write_text(platform.model_dump_json())
    env = {"MAILPANEL_PLATFORM_SETTINGS": str(path)}
    own = platform.environment.primary_domain
    for args in (["reseller", "add", "lab"], ["domain", "add", own, "--reseller", "lab"],
                 ["domain", "add", "customer.example", "--reseller", "lab"]):  # fmt: skip
        result = manage_py(*args, env=env)
        assert result.returncode == 0, result.stderr
    assert list(DomainKey.objects.values_list("domain__name", flat=True)) == ["customer.example"]

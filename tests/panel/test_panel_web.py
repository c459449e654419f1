"""The panel's pages with Django's test client: logins, brands by host name, forms that keep
input and name the error, security headers, the pages each role works with."""

import io

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from panel_tenants import MAILBOX_PASSWORD, PASSWORD, login

pytestmark = pytest.mark.postgres


def logged_in(user, host: str = "testserver") -> Client:
    client = Client(HTTP_HOST=host)
    login(client, user)
    return client


# Logging in --------------------------------------------------------------------------------


def test_a_mailbox_user_logs_in_with_address_and_mail_password(tenants):
    client = Client()
    response = client.post(reverse("web:login"),
                           {"username": "User@Example.ORG", "password": MAILBOX_PASSWORD})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == reverse("web:home")
    assert client.get(reverse("web:home"))["Location"] == reverse("web:me")
    page = client.get(reverse("web:me")).content.decode()
    assert "Settings of user@example.org" in page


def test_a_wrong_password_says_so_and_keeps_the_name(tenants):
    response = Client().post(reverse("web:login"),
                             {"username": "user@example.org", "password": "wrong-password-1"})  # fmt: skip
    page = response.content.decode()
    assert response.status_code == 200
    assert "do not match an account here" in page and 'value="user@example.org"' in page


def test_a_password_changed_elsewhere_ends_the_session(tenants):
    from accounts import operations
    from accounts.audit import COMMAND_LINE

    client = logged_in(tenants.acme.mailbox_user)
    assert client.get(reverse("web:me")).status_code == 200
    mailbox = tenants.acme.mailbox
    operations.set_password(mailbox, "a-new-password-42")
    operations.save(COMMAND_LINE, mailbox)
    assert client.get(reverse("web:me")).status_code == 302


def test_a_disabled_mailbox_cannot_log_in(tenants):
    from accounts import operations
    from accounts.audit import COMMAND_LINE

    client = logged_in(tenants.acme.mailbox_user)
    tenants.acme.mailbox.enabled = False
    operations.save(COMMAND_LINE, tenants.acme.mailbox)
    assert client.get(reverse("web:me")).status_code == 302
    response = Client().post(reverse("web:login"),
                             {"username": "user@example.org", "password": MAILBOX_PASSWORD})  # fmt: skip
    assert response.status_code == 200


def test_logins_are_throttled_after_five_failures(tenants):
    client = Client(REMOTE_ADDR="192.0.2.7")
    for _ in range(5):
        client.post(reverse("web:login"), {"username": "acme-admin", "password": "nope-nope-1"})
    locked = client.post(reverse("web:login"), {"username": "acme-admin", "password": PASSWORD})
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    # Another user name from the same address is not locked out.
    other = client.post(reverse("web:login"), {"username": "op", "password": PASSWORD})
    assert other.status_code == 302


# Brands ------------------------------------------------------------------------------------


def test_the_host_name_selects_the_brand_on_the_login_page(tenants):
    acme = Client(HTTP_HOST="panel.acme.test").get(reverse("web:login")).content.decode()
    umbrella = Client(HTTP_HOST="panel.umbrella.test").get(reverse("web:login")).content.decode()
    assert "Log in to Acme Mail" in acme and "Umbrella" not in acme
    assert "Log in to Umbrella Post" in umbrella and "Acme" not in umbrella
    css = Client(HTTP_HOST="panel.acme.test").get(reverse("web:brand-css")).content.decode()
    assert "--primary: #aa0000" in css
    assert Client(HTTP_HOST="panel.unknown.test").get("/login/").status_code == 400


def test_a_user_of_one_reseller_cannot_log_in_on_anothers_host(tenants):
    response = Client(HTTP_HOST="panel.umbrella.test").post(
        reverse("web:login"), {"username": "user@example.org", "password": MAILBOX_PASSWORD}
    )
    assert "do not match an account here" in response.content.decode()


def test_a_host_name_claimed_by_two_resellers_is_refused(tenants):
    client = logged_in(tenants.umbrella.reseller_admin)
    url = reverse("web:reseller-edit", kwargs={"pk": tenants.umbrella.reseller.pk})
    response = client.post(url, {
        "brand_name": "Umbrella Post", "primary_colour": "#00aa00", "secondary_colour": "#ffffff",
        "panel_hostname": "Panel.Acme.TEST", "webmail_hostname": "webmail.acme.test", "logo_url": "",
    })  # fmt: skip
    page = response.content.decode()
    assert "Panel host name: panel.acme.test is already used by another reseller" in (
        page.replace("Panel hostname", "Panel host name")
    )
    assert 'value="Panel.Acme.TEST"' in page


def test_a_logo_upload_is_checked_and_served_only_on_its_brand(tenants):
    from PIL import Image

    client = logged_in(tenants.acme.reseller_admin)
    url = reverse("web:reseller-edit", kwargs={"pk": tenants.acme.reseller.pk})
    fields = {"brand_name": "Acme Mail", "primary_colour": "#aa0000",
              "secondary_colour": "#ffffff", "panel_hostname": "panel.acme.test"}  # fmt: skip
    fake = io.BytesIO(b"<svg onload='alert(1)'/>")
    fake.name = "logo.png"
    page = client.post(url, {**fields, "logo_upload": fake}).content.decode()
    assert "is not a PNG, JPEG, GIF or WebP image" in page
    png = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(png, "PNG")
    png.seek(0)
    png.name = "logo.png"
    assert client.post(url, {**fields, "logo_upload": png}).status_code == 302
    logo_url = reverse("web:logo", kwargs={"pk": tenants.acme.reseller.pk})
    on_brand = Client(HTTP_HOST="panel.acme.test").get(logo_url)
    assert on_brand.status_code == 200 and on_brand["Content-Type"] == "image/png"
    assert Client(HTTP_HOST="panel.umbrella.test").get(logo_url).status_code == 404


# Forms -------------------------------------------------------------------------------------


def test_the_mailbox_form_names_each_error_and_keeps_the_input(tenants):
    client = logged_in(tenants.acme.domain_admin)
    url = reverse("web:mailbox-new", kwargs={"pk": tenants.acme.domain.pk})
    page = client.post(url, {"local_part": "Bad..Name", "password": "short",
                             "password_again": "other", "quota_mib": "10",
                             "enabled": "on"}).content.decode()  # fmt: skip
    assert "is not a valid local part" in page
    assert "Password again: does not match the password" in page
    assert 'value="bad..name"' in page or 'value="Bad..Name"' in page
    assert "outbound_limit_class" not in page  # the operator's decision only
    page = client.post(url, {"local_part": "new", "password": "password123",
                             "password_again": "password123", "quota_mib": "10",
                             "enabled": "on"}).content.decode()  # fmt: skip
    assert "This password is too common." in page
    response = client.post(url, {"local_part": "new", "password": "a-good-passphrase-9",
                                 "password_again": "a-good-passphrase-9", "quota_mib": "10",
                                 "enabled": "on"})  # fmt: skip
    assert response.status_code == 302
    from accounts.models import Mailbox

    assert Mailbox.objects.get(address="new@example.org").quota_bytes == 10 * 1024 * 1024


def test_the_forwarding_form_refuses_a_loop_with_the_path(tenants):
    client = logged_in(tenants.acme.domain_admin)
    edit = reverse("web:forwarding-new", kwargs={"pk": tenants.acme.domain.pk})
    assert client.post(edit, {"local_part": "back", "targets": "sales@example.org",
                              "enabled": "on"}).status_code == 302  # fmt: skip
    url = reverse("web:forwarding-edit", kwargs={"pk": tenants.acme.forwarding.pk})
    page = client.post(url, {"targets": "back@example.org", "enabled": "on"}).content.decode()
    assert ("forwarding loop: sales@example.org → back@example.org → sales@example.org"
            in page)  # fmt: skip


def test_mailbox_list_paginates_and_searches_by_prefix(tenants):
    from accounts.models import Mailbox

    Mailbox.objects.bulk_create(
        Mailbox(domain=tenants.acme.domain, local_part=f"bulk{i:03}",
                address=f"bulk{i:03}@example.org", home=f"example.org/bulk{i:03}.x",
                password_hash="{ARGON2ID}x")
        for i in range(120)
    )  # fmt: skip
    client = logged_in(tenants.acme.domain_admin)
    url = reverse("web:mailbox-list", kwargs={"pk": tenants.acme.domain.pk})
    first = client.get(url).content.decode()
    assert "page 1 of 3" in first and "bulk000@example.org" in first
    found = client.get(url, {"q": "BULK11"}).content.decode()
    assert found.count("@example.org</a>") == 10 and "bulk110@example.org" in found


def test_a_reseller_adds_a_domain_that_waits_for_its_proof(tenants):
    client = logged_in(tenants.acme.reseller_admin)
    response = client.post(reverse("web:domain-new"),
                           {"name": "New.Example", "reseller": tenants.acme.reseller.pk})  # fmt: skip
    assert response.status_code == 302
    from accounts.models import Domain

    domain = Domain.objects.get(name="new.example")
    assert domain.ownership == "pending" and domain.reseller == tenants.acme.reseller
    page = client.get(response["Location"]).content.decode()
    assert domain.verification_token in page and "mailstack._domainkey.new.example" in page
    assert "PRIVATE KEY" not in page


def test_the_mailbox_user_sets_an_auto_reply(tenants):
    client = logged_in(tenants.acme.mailbox_user)
    response = client.post(reverse("web:me"), {
        "vacation_enabled": "on", "vacation_subject": "Away", "vacation_body": "Back Monday.",
        "vacation_start": "2026-12-20", "vacation_end": "2026-12-10", "move_spam_to_junk": "on",
    })  # fmt: skip
    assert "must not be before the first day" in response.content.decode()
    response = client.post(reverse("web:me"), {
        "vacation_enabled": "on", "vacation_subject": "Away", "vacation_body": "Back Monday.",
        "vacation_start": "2026-12-10", "vacation_end": "2026-12-20", "move_spam_to_junk": "on",
    })  # fmt: skip
    assert response.status_code == 302
    tenants.acme.mailbox.settings.refresh_from_db()
    assert 'currentdate :value "le" "date" "2026-12-20"' in (
        tenants.acme.mailbox.settings.sieve_script
    )


def test_the_mailbox_user_changes_the_password_and_stays_logged_in(tenants):
    from accounts.passwords import verify_password

    client = logged_in(tenants.acme.mailbox_user)
    url = reverse("web:me-password")
    page = client.post(url, {"current": "wrong-one-123", "new": "x", "again": "x"}).content
    assert b"is not your current password" in page
    response = client.post(url, {"current": MAILBOX_PASSWORD, "new": "another-secret-55",
                                 "again": "another-secret-55"})  # fmt: skip
    assert response.status_code == 302
    tenants.acme.mailbox.refresh_from_db()
    assert verify_password(tenants.acme.mailbox.password_hash, "another-secret-55")
    assert client.get(reverse("web:me")).status_code == 200


# Security headers --------------------------------------------------------------------------


def test_pages_refuse_framing_and_foreign_content(tenants):
    response = Client().get(reverse("web:login"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_behind_the_https_proxy_cookies_are_secure_and_hsts_is_sent(tenants):
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=31536000,
                           SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True,
                           SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):  # fmt: skip
        plain = Client().get(reverse("web:login"))
        assert plain.status_code == 301 and plain["Location"].startswith("https://")
        client = Client(HTTP_X_FORWARDED_PROTO="https")
        page = client.get(reverse("web:login"))
        assert page["Strict-Transport-Security"] == "max-age=31536000"
        assert client.cookies["csrftoken"]["secure"]
        client.post(reverse("web:login"), {"username": "op", "password": PASSWORD})
        assert client.cookies["sessionid"]["secure"] and client.cookies["sessionid"]["httponly"]


def test_posts_without_a_csrf_token_are_refused(tenants):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("web:login"), {"username": "op", "password": PASSWORD})
    assert response.status_code == 403


def test_the_status_page_is_the_operators(tenants):
    page = logged_in(tenants.operator).get(reverse("web:status")).content.decode()
    assert "primary (writable)" in page and "No cluster monitoring" in page
    assert logged_in(tenants.acme.reseller_admin).get(reverse("web:status")).status_code == 403


def test_a_reseller_admin_makes_a_domain_admin_but_no_operator(tenants):
    from tenancy.models import Profile

    client = logged_in(tenants.acme.reseller_admin)
    url = reverse("web:admin-new")
    page = client.post(url, {"username": "boss", "role": "operator",
                             "password": "a-fine-passphrase-4"}).content.decode()  # fmt: skip
    assert "Select a valid choice. operator is not one of the available choices." in page
    page = client.post(url, {"username": "helper", "role": "domain", "password": "short",
                             "domains": [tenants.umbrella.domain.pk]}).content.decode()  # fmt: skip
    assert "is not one of the available choices" in page  # umbrella's domain is not offered
    response = client.post(url, {"username": "helper", "role": "domain",
                                 "password": "a-fine-passphrase-4",
                                 "domains": [tenants.acme.domain.pk]})  # fmt: skip
    assert response.status_code == 302
    profile = Profile.objects.get(user__username="helper")
    assert (profile.role, profile.reseller, list(profile.domains.all())) == (
        "domain", tenants.acme.reseller, [tenants.acme.domain]
    )  # fmt: skip
    helper = Client()
    assert helper.post(reverse("web:login"), {"username": "helper",
                       "password": "a-fine-passphrase-4"}).status_code == 302  # fmt: skip
    assert "example.org" in helper.get(reverse("web:domain-list")).content.decode()
    from accounts.audit import AuditEntry

    entry = AuditEntry.objects.get(object_type="admin", object_name="helper")
    assert (entry.actor, entry.reseller_id) == ("acme-admin", tenants.acme.reseller.pk)

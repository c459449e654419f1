"""The provisioning API: bearer tokens, the same permission model, errors per field, schema."""

import pytest
from django.test import Client

pytestmark = pytest.mark.postgres


def api(token: str | None) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"} if token else {})


def test_no_token_no_access(tenants):
    assert api(None).get("/api/v1/domains/").status_code == 401
    assert api("not-a-token").get("/api/v1/domains/").status_code == 401


def test_a_reseller_provisions_a_domain_and_its_mailboxes(tenants):
    client = api(tenants.acme.tokens["reseller"])
    created = client.post("/api/v1/domains/", {"name": "shop.example", "reseller": "acme"},
                          content_type="application/json")  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["ownership"] == "pending"
    assert body["verification_record"]["name"] == "_mailstack-challenge.shop.example"
    mailbox = client.post("/api/v1/mailboxes/", {"domain": "shop.example", "local_part": "Info",
                          "password": "a-fine-passphrase-1", "quota_mib": 50},
                          content_type="application/json")  # fmt: skip
    assert mailbox.status_code == 201, mailbox.content
    assert mailbox.json()["address"] == "info@shop.example" and "password" not in mailbox.json()
    weak = client.post("/api/v1/mailboxes/", {"domain": "shop.example", "local_part": "x",
                       "password": "12345678901"}, content_type="application/json")  # fmt: skip
    assert weak.status_code == 400 and "password" in weak.json()
    other_reseller = client.post("/api/v1/domains/", {"name": "x.example",
                                 "reseller": "umbrella"}, content_type="application/json")  # fmt: skip
    assert other_reseller.status_code == 400
    assert other_reseller.json() == {"reseller": ["umbrella is not yours"]}


def test_a_domain_admin_searches_and_cannot_add_domains(tenants):
    client = api(tenants.acme.tokens["domain"])
    listed = client.get("/api/v1/mailboxes/", {"q": "sec"}).json()
    assert [m["address"] for m in listed["results"]] == ["second@example.org"]
    refused = client.post("/api/v1/domains/", {"name": "mine.example", "reseller": "acme"},
                          content_type="application/json")  # fmt: skip
    assert refused.status_code == 403
    assert client.get("/api/v1/audit/").status_code == 403


def test_a_loop_is_refused_with_its_path(tenants):
    client = api(tenants.acme.tokens["domain"])
    assert client.post("/api/v1/forwardings/", {"domain": "example.org", "local_part": "back",
                       "targets": ["sales@example.org"]},
                       content_type="application/json").status_code == 201  # fmt: skip
    loop = client.patch("/api/v1/forwardings/sales@example.org/",
                        {"targets": ["back@example.org"]}, content_type="application/json")  # fmt: skip
    assert loop.status_code == 400
    assert "forwarding loop: sales@example.org → back@example.org" in loop.json()["targets"][0]


def test_removing_a_mailbox_over_the_api_keeps_its_mail_for_the_retention(tenants):
    from accounts.lifecycle import RemovedMailbox

    client = api(tenants.acme.tokens["domain"])
    assert client.delete("/api/v1/mailboxes/second@example.org/").status_code == 204
    assert RemovedMailbox.objects.get().address == "second@example.org"


def test_the_openapi_schema_describes_every_route(tenants):
    schema = Client().get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for route in (
        "/api/v1/domains/",
        "/api/v1/domains/{name}/verify/",
        "/api/v1/mailboxes/{address}/",
        "/api/v1/forwardings/",
        "/api/v1/audit/",
    ):
        assert route in paths, sorted(paths)


def test_an_admin_issues_a_token_in_the_panel_and_the_old_one_stops_working(tenants):
    import re

    from panel_tenants import login

    web = Client()
    login(web, tenants.acme.domain_admin)
    page = web.post("/api-token/").content.decode()
    token = re.search(r'<code id="api-token">([0-9a-f]+)</code>', page).group(1)
    assert api(token).get("/api/v1/mailboxes/").status_code == 200
    assert api(tenants.acme.tokens["domain"]).get("/api/v1/mailboxes/").status_code == 401
    mailbox_user = Client()
    login(mailbox_user, tenants.acme.mailbox_user)
    assert mailbox_user.post("/api-token/").status_code == 403


def test_brand_changes_over_the_api_follow_the_same_rules(tenants):
    client = api(tenants.umbrella.tokens["reseller"])
    url = f"/api/v1/resellers/{tenants.umbrella.reseller.pk}/"
    claimed = client.patch(url, {"webmail_hostname": "panel.acme.test"},
                           content_type="application/json")  # fmt: skip
    assert claimed.status_code == 400
    assert claimed.json() == {
        "webmail_hostname": ["panel.acme.test is already used by another reseller"]
    }
    assert client.patch(url, {"enabled": False}, content_type="application/json").status_code == 403
    renamed = client.patch(url, {"brand_name": "Umbrella Mail"}, content_type="application/json")
    assert renamed.status_code == 200 and renamed.json()["brand_name"] == "Umbrella Mail"


def form_post(url: str, form: dict):
    """A form post as webmail's password plugin sends it (URL-encoded, no token, no cookie)."""
    from urllib.parse import urlencode

    return Client().post(url, urlencode(form), content_type="application/x-www-form-urlencoded")


def test_a_mailbox_user_changes_its_password_with_the_current_one(tenants):
    """What webmail's password plugin posts (form fields, no token, no cookie)."""
    from panel_tenants import MAILBOX_PASSWORD

    from accounts.audit import AuditEntry
    from accounts.passwords import verify_password

    mailbox = tenants.acme.mailbox
    url = "/api/v1/mailbox-password/"
    form = {"address": "User@Example.org", "current_password": MAILBOX_PASSWORD,
            "new_password": "a-new-passphrase-42"}  # fmt: skip
    wrong = form_post(url, {**form, "current_password": "not-the-password-1"})
    assert wrong.status_code == 401
    weak = form_post(url, {**form, "new_password": "1234567890"})
    assert weak.status_code == 400
    assert "This password is entirely numeric." in weak.json()["new_password"]
    nobody = form_post(url, {**form, "address": "nobody@example.org"})
    assert nobody.status_code == 401

    changed = form_post(url, form)

    assert changed.status_code == 200 and changed.json() == {"changed": True}
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, "a-new-passphrase-42")
    entry = AuditEntry.objects.filter(object_name=mailbox.address).latest("at")
    assert (entry.actor, entry.action) == (mailbox.address, "change")
    assert form_post(url, form).status_code == 401  # the old one is gone


def test_password_changes_are_throttled_like_logins(tenants):
    url = "/api/v1/mailbox-password/"
    form = {"address": tenants.acme.mailbox.address, "current_password": "guessing-again-1",
            "new_password": "a-new-passphrase-42"}  # fmt: skip
    answers = [form_post(url, form).status_code for _ in range(6)]
    # The fifth failure locks the address out from this client, as at the login page.
    assert answers == [401] * 4 + [429] * 2


def test_the_health_check_answers_on_the_platform_name(tenants):
    response = Client(HTTP_HOST="panel.mailstack.test").get("/healthz", secure=True)
    assert response.status_code == 200 and response.content == b"ok\n"

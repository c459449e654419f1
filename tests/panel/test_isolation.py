"""Tenant isolation over every route: generated from the URL configuration, so a route added
later is covered (or fails here until its parameters are classified).

Every web page and API route is requested, with GET and with POST, by each role of tenant acme
(reseller admin, domain admin, mailbox user) with the parameters of tenant umbrella's objects:
every answer is 403 or 404 (405 where the route has no such method). Routes without parameters must not show umbrella's names.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from panel_tenants import login

pytestmark = pytest.mark.postgres

# What each route's parameter names: route name -> (keyword, object of the other tenant).
PARAMETERS = {
    "web:reseller-edit": ("pk", lambda t: t.reseller.pk),
    "web:reseller-delete": ("pk", lambda t: t.reseller.pk),
    "web:logo": ("pk", lambda t: t.reseller.pk),
    "web:admin-edit": ("pk", lambda t: t.reseller_admin.profile.pk),
    "web:admin-delete": ("pk", lambda t: t.domain_admin.profile.pk),
    "web:domain-detail": ("pk", lambda t: t.domain.pk),
    "web:domain-verify": ("pk", lambda t: t.domain.pk),
    "web:domain-vouch": ("pk", lambda t: t.domain.pk),
    "web:domain-delete": ("pk", lambda t: t.domain.pk),
    "web:mailbox-list": ("pk", lambda t: t.domain.pk),
    "web:mailbox-new": ("pk", lambda t: t.domain.pk),
    "web:forwarding-list": ("pk", lambda t: t.domain.pk),
    "web:forwarding-new": ("pk", lambda t: t.domain.pk),
    "web:mailbox-edit": ("pk", lambda t: t.mailbox.pk),
    "web:mailbox-delete": ("pk", lambda t: t.mailbox.pk),
    "web:forwarding-edit": ("pk", lambda t: t.forwarding.pk),
    "web:forwarding-delete": ("pk", lambda t: t.forwarding.pk),
    "web:hold-release": ("pk", lambda t: t.hold_pk),
    "api:reseller-detail": ("pk", lambda t: t.reseller.pk),
    "api:domain-detail": ("name", lambda t: t.domain.name),
    "api:domain-verify": ("name", lambda t: t.domain.name),
    "api:mailbox-detail": ("address", lambda t: t.mailbox.address),
    "api:forwarding-detail": ("address", lambda t: t.forwarding.address),
    "api:audit-detail": ("pk", lambda t: t.audit_entry_pk),
}
# Routes anyone may reach (and that show nothing of a tenant's data).
PUBLIC = {
    "web:login",
    "web:logout",
    "web:brand-css",
    "web:health",
    "api:schema",
    "api:mailbox-password",
}


def routes(resolver=None, namespace: str = "") -> list[tuple[str, list[str]]]:
    """(namespaced name, parameter names) of every named route."""
    found = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            found += routes(entry, entry.namespace or namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            params = sorted(entry.pattern.regex.groupindex)
            if "format" not in params:
                found.append((f"{namespace}:{entry.name}", params))
    return found


ROLES = ["reseller_admin", "domain_admin", "mailbox_user"]


def client_as(tenants, role: str, api: bool) -> Client:
    if api:
        token = {"reseller_admin": tenants.acme.tokens["reseller"],
                 "domain_admin": tenants.acme.tokens["domain"]}.get(role)  # fmt: skip
        return Client(headers={"Authorization": f"Bearer {token}"} if token else {})
    client = Client()
    login(client, getattr(tenants.acme, role))
    return client


def test_every_route_with_parameters_is_classified(panel_django):
    unknown = [name for name, params in routes() if params and name not in PARAMETERS]
    assert unknown == [], f"classify these routes in PARAMETERS: {unknown}"


@pytest.mark.parametrize("role", ROLES)
def test_no_route_reaches_another_tenants_objects(tenants, role):
    from django.utils import timezone

    from accounts.audit import AuditEntry
    from accounts.holds import SendingHold

    other = tenants.umbrella
    other.audit_entry_pk = AuditEntry.objects.filter(reseller=other.reseller).first().pk
    other.hold_pk = SendingHold.objects.create(
        mailbox=other.other_mailbox, reason="limit", held_at=timezone.now()
    ).pk
    failures = []
    for name, params in routes():
        if not params:
            continue
        keyword, value = PARAMETERS[name]
        url = reverse(name, kwargs={keyword: value(other)})
        client = client_as(tenants, role, api=name.startswith("api:"))
        for method in ("get", "post", "put", "patch", "delete"):
            if method not in ("get", "post") and not name.startswith("api:"):
                continue
            response = getattr(client, method)(url, data={} if method == "get" else None,
                                               content_type="application/json")  # fmt: skip
            # 405: the route has no such method at all, whoever asks; 401: a mailbox user has
            # no API credentials at all.
            if response.status_code not in (401, 403, 404, 405) or (
                response.status_code == 401 and role != "mailbox_user"
            ):
                failures.append(f"{method.upper()} {url}: {response.status_code}")
    assert failures == []
    # Nothing was changed on the way.
    other.mailbox.refresh_from_db()
    other.forwarding.refresh_from_db()
    other.domain.refresh_from_db()
    assert SendingHold.objects.filter(pk=other.hold_pk).exists()


@pytest.mark.parametrize("role", ROLES)
def test_routes_without_parameters_show_nothing_of_another_tenant(tenants, role):
    leaks = []
    for name, params in routes():
        if params or name in PUBLIC:
            continue
        client = client_as(tenants, role, api=name.startswith("api:"))
        response = client.get(reverse(name), follow=not name.startswith("api:"))
        body = response.content.decode()
        leaks += [f"{name}: {n}" for n in tenants.umbrella.names if n in body]
        if name.startswith("api:") and role == "mailbox_user":
            assert response.status_code in (401, 403), name
    assert leaks == []


def test_creating_into_another_tenants_domain_is_refused(tenants):
    from accounts.models import Mailbox

    client = client_as(tenants, "domain_admin", api=True)
    response = client.post(
        reverse("api:mailbox-list"),
        {"domain": "other.example", "local_part": "intruder", "password": "intruder-pass-99"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {"domain": ["other.example is not yours"]}
    assert not Mailbox.objects.filter(local_part="intruder").exists()
    response = client.post(
        reverse("api:forwarding-list"),
        {"domain": "example.org", "local_part": "steal", "targets": ["user@other.example"]},
        content_type="application/json",
    )
    # Forwarding to another tenant's address is mail to it, as any outside sender may send.
    assert response.status_code == 201


def test_another_resellers_host_logs_a_user_out(tenants):
    client = Client(HTTP_HOST="panel.umbrella.test")
    login(client, tenants.acme.reseller_admin)
    response = client.get(reverse("web:domain-list"))
    assert response.status_code == 302 and response["Location"] == reverse("web:login")
    assert "_auth_user_id" not in client.session


def test_forms_offer_and_accept_nothing_of_another_tenant(tenants):
    from accounts.models import Domain

    client = client_as(tenants, "reseller_admin", api=False)
    page = client.get(reverse("web:admin-new")).content.decode()
    assert "other.example" not in page and "umbrella" not in page
    response = client.post(reverse("web:domain-new"),
                           {"name": "grab.example", "reseller": tenants.umbrella.reseller.pk})  # fmt: skip
    assert response.status_code == 302  # the form takes the admin's own reseller, always
    assert Domain.objects.get(name="grab.example").reseller == tenants.acme.reseller

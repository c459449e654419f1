"""The permission model (tenancy.scope): each role's querysets and capabilities."""

import pytest
from panel_tenants import make_admin

pytestmark = pytest.mark.postgres


def names(queryset, field="name") -> list[str]:
    return sorted(queryset.values_list(field, flat=True))


def test_each_role_sees_its_own_tenancy(tenants):
    from accounts import operations
    from accounts.audit import COMMAND_LINE
    from accounts.models import Domain
    from tenancy.scope import scope_for

    # A second domain of acme that acme's domain admin does not administer.
    operations.create_domain(
        COMMAND_LINE, Domain(name="second.example", reseller=tenants.acme.reseller), vouched=True
    )
    operator = scope_for(tenants.operator)
    assert names(operator.resellers()) == ["acme", "umbrella"]
    assert names(operator.domains()) == ["example.org", "other.example", "second.example"]

    reseller = scope_for(tenants.acme.reseller_admin)
    assert names(reseller.resellers()) == ["acme"]
    assert names(reseller.domains()) == ["example.org", "second.example"]
    assert names(reseller.mailboxes(), "address") == ["second@example.org", "user@example.org"]
    assert {e.reseller_id for e in reseller.audit_entries()} == {tenants.acme.reseller.pk}
    assert names(reseller.admins(), "user__username") == ["acme-admin", "acme-dom"]

    domain = scope_for(tenants.acme.domain_admin)
    assert names(domain.resellers()) == []
    assert names(domain.domains()) == ["example.org"]
    assert names(domain.forwardings(), "address") == ["sales@example.org"]
    assert not domain.audit_entries().exists() and not domain.admins().exists()

    user = scope_for(tenants.acme.mailbox_user)
    assert names(user.mailboxes(), "address") == ["user@example.org"]
    assert names(user.domains()) == [] and names(user.resellers()) == []
    assert names(user.forwardings(), "address") == []


def test_a_domain_admin_never_sees_a_domain_of_another_reseller_even_if_assigned(tenants):
    from tenancy.scope import scope_for

    # A profile row tying acme's domain admin to umbrella's domain (e.g. written by hand).
    tenants.acme.domain_admin.profile.domains.add(tenants.umbrella.domain)
    assert names(scope_for(tenants.acme.domain_admin).domains()) == ["example.org"]


@pytest.mark.parametrize(
    ("role", "capabilities"),
    [
        ("operator", {"may_manage_resellers", "may_edit_brand", "may_add_domains",
                      "may_manage_admins", "may_manage_mail", "may_see_audit",
                      "may_see_status", "may_vouch", "may_trace"}),
        ("reseller", {"may_edit_brand", "may_add_domains", "may_manage_admins",
                      "may_manage_mail", "may_see_audit", "may_trace"}),
        ("domain", {"may_manage_mail", "may_trace"}),
    ],
)  # fmt: skip
def test_capabilities(tenants, role, capabilities):
    from tenancy.scope import Scope, scope_for

    user = {"operator": tenants.operator, "reseller": tenants.acme.reseller_admin,
            "domain": tenants.acme.domain_admin}[role]  # fmt: skip
    scope = scope_for(user)
    every = {name for name in dir(Scope) if name.startswith("may_")}
    assert {name for name in every if getattr(scope, name)} == capabilities
    assert not any(getattr(scope_for(tenants.acme.mailbox_user), n) for n in every)


def test_a_user_without_a_profile_sees_nothing(tenants):
    from django.contrib.auth import get_user_model

    from tenancy.scope import scope_for

    stray = get_user_model().objects.create_user("stray", password="x" * 12)
    scope = scope_for(stray)
    assert scope.role is None and not scope.domains().exists() and not scope.mailboxes().exists()
    assert make_admin  # the helper other tests use to make admins

"""The permission model, in one place: what each role may see, as querysets, and may do.

Every web view and API route takes its objects from a Scope's querysets, so an object of
another tenant is not found (404) rather than hidden; capabilities (`may_*`) decide which
actions a role has at all (403 otherwise).

| role           | resellers | domains                  | mailboxes, forwardings     | audit log             |
|----------------|-----------|--------------------------|----------------------------|-----------------------|
| operator       | all       | all                      | all                        | all                   |
| reseller admin | its own   | its reseller's           | in its reseller's domains  | its reseller's tenants|
| domain admin   | none      | its domains              | in its domains             | none                  |
| mailbox user   | none      | none                     | its own mailbox, and the forwarding of its own address | none |

Sending holds (held mailboxes) follow the mailboxes, for admins only: a mailbox user does not
release their own. The message trace follows the domains, for admins only (tracing.search).
"""

from dataclasses import dataclass, field

from django.db.models import QuerySet

from accounts.audit import Actor, AuditEntry
from accounts.holds import SendingHold
from accounts.models import Domain, Forwarding, Mailbox, Reseller
from tenancy.models import Profile, Role


@dataclass
class Scope:
    role: str | None
    """A Role value; None for a user without a profile, who sees nothing."""
    user_id: int | None = None
    name: str = ""
    reseller_id: int | None = None
    domain_ids: list[int] = field(default_factory=list)
    mailbox_id: int | None = None

    # What each role sees ---------------------------------------------------------------

    def resellers(self) -> QuerySet[Reseller]:
        if self.role == Role.OPERATOR:
            return Reseller.objects.all()
        if self.role == Role.RESELLER:
            return Reseller.objects.filter(pk=self.reseller_id)
        return Reseller.objects.none()

    def domains(self) -> QuerySet[Domain]:
        domains = Domain.objects.select_related("reseller")
        if self.role == Role.OPERATOR:
            return domains
        if self.role == Role.RESELLER:
            return domains.filter(reseller_id=self.reseller_id)
        if self.role == Role.DOMAIN:
            return domains.filter(reseller_id=self.reseller_id, pk__in=self.domain_ids)
        return domains.none()

    def mailboxes(self) -> QuerySet[Mailbox]:
        mailboxes = Mailbox.objects.select_related("domain")
        if self.role == Role.MAILBOX:
            return mailboxes.filter(pk=self.mailbox_id)
        return mailboxes.filter(domain__in=self.domains())

    def forwardings(self) -> QuerySet[Forwarding]:
        forwardings = Forwarding.objects.select_related("domain")
        if self.role == Role.MAILBOX:
            return forwardings.filter(address__in=self.mailboxes().values("address"))
        return forwardings.filter(domain__in=self.domains())

    def sending_holds(self) -> QuerySet[SendingHold]:
        """Held mailboxes among those this role manages (none for a mailbox user)."""
        if not self.is_admin:
            return SendingHold.objects.none()
        return SendingHold.objects.select_related("mailbox__domain").filter(
            mailbox__in=self.mailboxes()
        )

    def trace_domains(self) -> list[str] | None:
        """The domains whose messages this role may trace (IDNA names); None: every message."""
        if self.role == Role.OPERATOR:
            return None
        if not self.is_admin:
            return []
        return list(self.domains().values_list("name", flat=True))

    def audit_entries(self) -> QuerySet[AuditEntry]:
        if self.role == Role.OPERATOR:
            return AuditEntry.objects.all()
        if self.role == Role.RESELLER:
            return AuditEntry.objects.filter(reseller_id=self.reseller_id)
        return AuditEntry.objects.none()

    def admins(self) -> QuerySet[Profile]:
        """The admin profiles this role manages."""
        profiles = Profile.objects.select_related("user", "reseller")
        if self.role == Role.OPERATOR:
            return profiles.filter(role__in=[Role.OPERATOR, Role.RESELLER, Role.DOMAIN])
        if self.role == Role.RESELLER:
            return profiles.filter(
                reseller_id=self.reseller_id, role__in=[Role.RESELLER, Role.DOMAIN]
            )
        return profiles.none()

    # What each role may do -------------------------------------------------------------

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.OPERATOR, Role.RESELLER, Role.DOMAIN)

    @property
    def may_manage_resellers(self) -> bool:
        return self.role == Role.OPERATOR

    @property
    def may_edit_brand(self) -> bool:
        return self.role in (Role.OPERATOR, Role.RESELLER)

    @property
    def may_add_domains(self) -> bool:
        return self.role in (Role.OPERATOR, Role.RESELLER)

    @property
    def may_manage_admins(self) -> bool:
        return self.role in (Role.OPERATOR, Role.RESELLER)

    @property
    def may_manage_mail(self) -> bool:
        """Mailboxes, forwardings, catch-alls of the visible domains."""
        return self.is_admin

    @property
    def may_trace(self) -> bool:
        """Search the message trace of the visible domains."""
        return self.is_admin

    @property
    def may_see_audit(self) -> bool:
        return self.role in (Role.OPERATOR, Role.RESELLER)

    @property
    def may_see_status(self) -> bool:
        return self.role == Role.OPERATOR

    @property
    def may_vouch(self) -> bool:
        return self.role == Role.OPERATOR

    def grantable_roles(self) -> list[str]:
        if self.role == Role.OPERATOR:
            return [Role.OPERATOR, Role.RESELLER, Role.DOMAIN]
        if self.role == Role.RESELLER:
            return [Role.RESELLER, Role.DOMAIN]
        return []

    @property
    def actor(self) -> Actor:
        return Actor(name=self.name, role=self.role or "", reseller_id=self.reseller_id)


NOBODY = Scope(role=None)


def scope_for(user) -> Scope:
    """The Scope of a (possibly anonymous) Django user."""
    if user is None or not user.is_authenticated:
        return NOBODY
    try:
        profile = user.profile
    except Profile.DoesNotExist:
        return NOBODY
    if profile.role == Role.MAILBOX:
        mailbox = profile.mailbox
        return Scope(
            role=profile.role, user_id=user.pk, name=mailbox.address, mailbox_id=mailbox.pk,
            reseller_id=mailbox.domain.reseller_id,
        )  # fmt: skip
    domain_ids = (
        list(profile.domains.values_list("pk", flat=True)) if profile.role == Role.DOMAIN else []
    )
    return Scope(
        role=profile.role, user_id=user.pk, name=user.get_username(),
        reseller_id=profile.reseller_id, domain_ids=domain_ids,
    )  # fmt: skip

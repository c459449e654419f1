"""Who uses the panel: each Django user has a profile with one role and what it is tied to.

- operator: the platform's staff; everything.
- reseller admin: one reseller's brand, domains, domain admins, and everything below.
- domain admin: the mailboxes, forwardings and catch-all of some domains of one reseller.
- mailbox user: their own mailbox's settings; a Django user made at their first login
  (tenancy.backends.MailboxBackend), removed with the mailbox.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    OPERATOR = "operator", "operator"
    RESELLER = "reseller", "reseller admin"
    DOMAIN = "domain", "domain admin"
    MAILBOX = "mailbox", "mailbox user"


ADMIN_ROLES = (Role.OPERATOR, Role.RESELLER, Role.DOMAIN)


class Profile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    reseller = models.ForeignKey(
        "accounts.Reseller",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="admins",
        help_text="The reseller a reseller admin or domain admin works for.",
    )
    domains = models.ManyToManyField(
        "accounts.Domain", blank=True, related_name="admins", help_text="A domain admin's domains."
    )
    mailbox = models.OneToOneField(
        "accounts.Mailbox",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="panel_profile",
        help_text="A mailbox user's mailbox.",
    )

    class Meta:
        db_table = "tenancy_profile"
        constraints = [
            models.CheckConstraint(
                condition=(Q(role="operator") & Q(reseller__isnull=True) & Q(mailbox__isnull=True))
                | (Q(role__in=["reseller", "domain"]) & Q(reseller__isnull=False)
                   & Q(mailbox__isnull=True))
                | (Q(role="mailbox") & Q(reseller__isnull=True) & Q(mailbox__isnull=False)),
                name="profile_role_ties",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.user.get_username()} ({self.get_role_display()})"

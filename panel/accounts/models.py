"""The account data: resellers own domains; domains hold mailboxes, forwardings and a catch-all.

Postfix, Dovecot and the policy service never read these tables: they read the views in schema
`mail` (migration 0002, documented in docs/accounts.md), which show only what is enabled.
"""

import re
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from accounts.addresses import check_local_part, parse_domain, parse_target

COLOUR = re.compile(r"^#[0-9a-f]{6}$")


def default_quota_bytes() -> int:
    """The quota of a new mailbox: `mail.default_quota_mib` of the platform settings."""
    return settings.MAILPANEL_MAIL_POLICY.default_quota_mib * 1024 * 1024


def _check_hostname(value: str) -> None:
    if value != parse_domain(value):
        raise ValidationError(f"{value!r} is not a lower-case fully qualified host name")


def _check_colour(value: str) -> None:
    if not COLOUR.match(value):
        raise ValidationError(f"{value!r} is not a colour like #1a2b3c")


def _check_domain_name(value: str) -> None:
    if value != parse_domain(value):
        raise ValidationError(f"{value!r} is not a domain name in stored (lower-case) form")


def _check_target(value: str) -> None:
    if value != parse_target(value):
        raise ValidationError(f"{value!r} is not an address in stored form")


class Reseller(models.Model):
    """A customer who sells mail under their own brand: their domains, logo, colours, hostnames."""

    name = models.SlugField(max_length=64, unique=True, help_text="Short unique name.")
    brand_name = models.CharField(max_length=200, help_text="Name shown in panel and webmail.")
    logo_url = models.URLField(blank=True, help_text="Logo shown in panel and webmail.")
    logo_image = models.BinaryField(
        null=True,
        blank=True,
        help_text="An uploaded logo (PNG, JPEG, GIF or WebP); wins over logo_url.",
    )
    logo_content_type = models.CharField(max_length=32, blank=True)
    primary_colour = models.CharField(
        max_length=7, default="#1f4e79", validators=[_check_colour], help_text="#rrggbb"
    )
    secondary_colour = models.CharField(
        max_length=7, default="#f2f2f2", validators=[_check_colour], help_text="#rrggbb"
    )
    panel_hostname = models.CharField(
        max_length=253,
        unique=True,
        null=True,
        blank=True,
        validators=[_check_hostname],
        help_text="The reseller's own host name for the control panel.",
    )
    webmail_hostname = models.CharField(
        max_length=253,
        unique=True,
        null=True,
        blank=True,
        validators=[_check_hostname],
        help_text="The reseller's own host name for webmail.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabling hides all its domains.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "accounts_reseller"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(primary_colour__regex=COLOUR.pattern)
                & Q(secondary_colour__regex=COLOUR.pattern),
                name="reseller_colours_hex",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A host name belongs to one reseller, as panel or webmail name, never the platform's."""
        errors = {}
        names = {f: getattr(self, f) for f in ("panel_hostname", "webmail_hostname")}
        for field, name in names.items():
            if not name:
                continue
            if name in settings.MAILPANEL_PLATFORM_HOSTS:
                errors[field] = f"{name} is one of the platform's own host names"
                continue
            claimed = Reseller.objects.filter(Q(panel_hostname=name) | Q(webmail_hostname=name))
            if claimed.exclude(pk=self.pk).exists():
                errors[field] = f"{name} is already used by another reseller"
        if names["panel_hostname"] and names["panel_hostname"] == names["webmail_hostname"]:
            errors.setdefault("webmail_hostname", "must differ from the panel host name")
        if errors:
            raise ValidationError(errors)


def new_verification_token() -> str:
    """The value a domain's owner publishes to prove control (128 random bits, hex)."""
    return secrets.token_hex(16)


class Ownership(models.TextChoices):
    """How control of a domain was established; only a proven domain takes mail."""

    PENDING = "pending", "not proven yet"
    DNS = "dns", "proven by a DNS TXT record"
    OPERATOR = "operator", "vouched for by the operator"


class Domain(models.Model):
    """A mail domain hosted here, owned by one reseller.

    It becomes live (the mail services' views show it) once its ownership is proven: by the
    TXT record `_mailstack-challenge.<name>` holding `verification_token`, or by an operator
    vouching for it (the operator's own domains, created on the command line).
    """

    name = models.CharField(
        max_length=253,
        unique=True,
        validators=[_check_domain_name],
        help_text="Lower-case, IDNA (xn--) form.",
    )
    reseller = models.ForeignKey(Reseller, on_delete=models.PROTECT, related_name="domains")
    enabled = models.BooleanField(default=True, help_text="Disabled domains receive no mail.")
    catch_all = models.CharField(
        max_length=320,
        blank=True,
        validators=[_check_target],
        help_text="Where mail to unknown addresses of the domain goes; empty: rejected.",
    )
    ownership = models.CharField(
        max_length=16,
        choices=Ownership.choices,
        default=Ownership.PENDING,
        help_text="How control of the domain was established; 'pending' domains take no mail.",
    )
    verification_token = models.CharField(
        max_length=64,
        default=new_verification_token,
        help_text="Published by the owner in TXT _mailstack-challenge.<domain> to prove control.",
    )
    ownership_proven = models.DateTimeField(
        null=True, blank=True, help_text="When ownership was proven or vouched for."
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "accounts_domain"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(name=models.functions.Lower("name")), name="domain_lower"
            ),
            models.CheckConstraint(
                condition=Q(ownership__in=Ownership.values), name="domain_ownership_known"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def live(self) -> bool:
        """Whether the mail services see the domain (enabled, proven, reseller enabled)."""
        return self.enabled and self.ownership != Ownership.PENDING and self.reseller.enabled


class HostedAddress(models.Model):
    """An address in a hosted domain: a mailbox or a forwarding (subclasses add `domain`)."""

    local_part = models.CharField(max_length=64, validators=[check_local_part])
    address = models.CharField(
        max_length=320,
        unique=True,
        blank=True,
        editable=False,
        help_text="local_part@domain, kept for the views' indexed lookups (domains are never renamed).",
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.address

    def save(self, *args, **kwargs) -> None:
        self.address = f"{self.local_part}@{self.domain.name}"
        super().save(*args, **kwargs)


class Mailbox(HostedAddress):
    """A mailbox users log in to (IMAP, POP3, submission) and mail is delivered into.

    Its mail lives below `home` on the mail volume, a path unique to this mailbox's life
    (`<domain>/<local_part>.<storage_id>`): a mailbox removed and created again under the same
    address starts empty and never sees the old one's mail (see RemovedMailbox).
    """

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="mailboxes")
    storage_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, help_text="Identity of its storage."
    )
    home = models.CharField(
        max_length=400,
        unique=True,
        editable=False,
        help_text="Its directory below the mail root; never reused after removal.",
    )
    password_hash = models.CharField(
        max_length=255, help_text="Dovecot password field, e.g. {ARGON2ID}$argon2id$..."
    )
    quota_bytes = models.BigIntegerField(
        default=default_quota_bytes, help_text="Storage quota in bytes; 0 means no quota."
    )
    enabled = models.BooleanField(
        default=True, help_text="Disabled mailboxes cannot log in and receive no mail."
    )
    outbound_limit_class = models.CharField(
        max_length=32,
        blank=True,
        help_text="A key of mail.outbound_limit.classes in the settings; empty: the default limit.",
    )
    spam_add_header_score = models.FloatField(
        null=True, blank=True, help_text="Per-user override of mail.spam.add_header_score."
    )
    spam_reject_score = models.FloatField(
        null=True, blank=True, help_text="Per-user override of mail.spam.reject_score."
    )
    created = models.DateTimeField(auto_now_add=True)
    password_changed = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "accounts_mailbox"
        ordering = ["domain__name", "local_part"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="mailbox_address_unique"),
            models.CheckConstraint(
                condition=Q(quota_bytes__gte=0), name="mailbox_quota_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(local_part__regex=r"^[a-z0-9]([a-z0-9_-]|\.(?!\.)){0,62}$")
                & ~Q(local_part__endswith="."),
                name="mailbox_local_part_form",
            ),
            models.CheckConstraint(
                condition=(
                    Q(spam_add_header_score__isnull=True) & Q(spam_reject_score__isnull=True)
                )
                # Spelled out: a comparison with NULL would let a half-set pair through.
                | (
                    Q(spam_add_header_score__isnull=False)
                    & Q(spam_reject_score__isnull=False)
                    & Q(spam_reject_score__gt=models.F("spam_add_header_score"))
                ),
                name="mailbox_spam_thresholds_ordered",
            ),
            models.CheckConstraint(
                condition=Q(password_hash__startswith="{"), name="mailbox_password_has_scheme"
            ),
            models.CheckConstraint(
                condition=Q(home__regex=r"^[a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9._-]*$"),
                name="mailbox_home_relative",
            ),
        ]

    def _assign_home(self) -> None:
        if not self.home and self.domain_id and self.local_part:
            self.home = f"{self.domain.name}/{self.local_part}.{self.storage_id}"

    def save(self, *args, **kwargs) -> None:
        adding = self._state.adding
        self._assign_home()
        super().save(*args, **kwargs)
        if adding:
            # Every mailbox has its settings row, so the defaults apply from the start.
            MailboxSettings.objects.create(mailbox=self)

    def clean(self) -> None:
        self._assign_home()
        classes = settings.MAILPANEL_MAIL_POLICY.outbound_limit.classes
        if self.outbound_limit_class and self.outbound_limit_class not in classes:
            known = ", ".join(sorted(classes)) or "none"
            raise ValidationError(
                {
                    "outbound_limit_class": f"unknown class {self.outbound_limit_class!r} "
                    f"(classes in the settings: {known})"
                }
            )
        if (self.spam_add_header_score is None) != (self.spam_reject_score is None):
            raise ValidationError({"spam_reject_score": "set both spam thresholds or neither"})
        if (
            self.spam_reject_score is not None
            and self.spam_reject_score <= self.spam_add_header_score
        ):
            raise ValidationError(
                {"spam_reject_score": "must be greater than the add-header score"}
            )


class Forwarding(HostedAddress):
    """An address whose mail goes to one or more targets, local or external.

    With `keep_copy` the mailbox of the same address also keeps a copy (it must exist).
    """

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="forwardings")
    keep_copy = models.BooleanField(
        default=False, help_text="Also deliver to the mailbox of the same address."
    )
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "accounts_forwarding"
        ordering = ["domain__name", "local_part"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "local_part"], name="forwarding_address_unique"
            ),
        ]


class ForwardingTarget(models.Model):
    """One destination of a forwarding."""

    forwarding = models.ForeignKey(Forwarding, on_delete=models.CASCADE, related_name="targets")
    address = models.CharField(max_length=320, validators=[_check_target])

    class Meta:
        db_table = "accounts_forwarding_target"
        ordering = ["address"]
        constraints = [
            models.UniqueConstraint(
                fields=["forwarding", "address"], name="forwarding_target_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.address


# The other account records, in modules of their own; imported so Django registers them.
from accounts.audit import AuditEntry  # noqa: E402, F401
from accounts.holds import SendingHold  # noqa: E402, F401
from accounts.lifecycle import DomainKey, RemovedMailbox  # noqa: E402, F401
from accounts.usersettings import MailboxSettings  # noqa: E402

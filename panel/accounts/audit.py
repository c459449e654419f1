"""The audit log: every change to the account data, with who made it, when, before and after.

Entries are written by the operations (accounts.operations) in the same transaction as the
change, so a change that is rolled back leaves no entry and a stored change always has one.
Secrets never enter the log: password hashes and private keys show as '(set)'.
"""

from dataclasses import dataclass

from django.db import models
from django.forms.models import model_to_dict

SECRET_FIELDS = {"password_hash", "private_pem", "verification_token"}


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a name for people, the role, and the reseller they act for."""

    name: str
    role: str
    reseller_id: int | None = None


COMMAND_LINE = Actor(name="command line", role="operator")


class AuditEntry(models.Model):
    """One change: `action` on the object described by `object_type` and `object_name`."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=320, help_text="Who: a user name or mail address.")
    actor_role = models.CharField(max_length=16)
    action = models.CharField(max_length=16, help_text="create, change or delete.")
    object_type = models.CharField(max_length=32)
    object_name = models.CharField(max_length=400)
    reseller = models.ForeignKey(
        "accounts.Reseller",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
        help_text="The tenant the object belongs to; its admins see the entry.",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "accounts_audit_entry"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["reseller", "-at"], name="audit_reseller_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_name}"


def snapshot(obj: models.Model | None) -> dict | None:
    """The object's fields as JSON-ready values, secrets replaced."""
    if obj is None:
        return None
    values = model_to_dict(obj, exclude=["logo_image"])
    for field in SECRET_FIELDS & values.keys():
        values[field] = "(set)" if values[field] else ""
    return {key: value if _plain(value) else str(value) for key, value in values.items()}


def _plain(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def record(
    actor: Actor,
    action: str,
    obj: models.Model,
    *,
    reseller_id: int | None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Write one entry; `before`/`after` are snapshots (None where the object did not exist)."""
    return AuditEntry.objects.create(
        actor=actor.name,
        actor_role=actor.role,
        action=action,
        object_type=obj._meta.model_name,
        object_name=str(obj),
        reseller_id=reseller_id,
        before=before,
        after=after,
    )

"""Mailbox users log in to the panel with their mail address and the password Dovecot checks.

The password is verified against the mailbox's stored hash (accounts.passwords); the Django
user standing for the mailbox is made at the first login, tied to the mailbox's storage id, so
a mailbox removed and created again is a new user. A session ends when the mailbox's password
changes (anywhere: panel, API, command line) or the mailbox stops being live, because the
session's hash is derived from the stored password hash.
"""

import hashlib

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from accounts.addresses import parse_address
from accounts.models import Mailbox
from accounts.passwords import verify_password
from tenancy.models import Profile, Role


def _session_secret(mailbox: Mailbox) -> str:
    # '!' marks it unusable as a Django password; only the session hash is derived from it.
    return "!" + hashlib.sha256(mailbox.password_hash.encode()).hexdigest()


def _live(mailbox: Mailbox) -> bool:
    return mailbox.enabled and mailbox.domain.live


class MailboxBackend:
    def authenticate(self, request, username: str | None = None, password: str | None = None,
                     **_):  # fmt: skip
        if not username or password is None or "@" not in username:
            return None
        try:
            local, domain = parse_address(username)
        except ValidationError:
            return None
        mailbox = (
            Mailbox.objects.select_related("domain__reseller")
            .filter(address=f"{local}@{domain}")
            .first()
        )
        stored = mailbox.password_hash if mailbox is not None else None
        # Verified even without a mailbox, so the answer takes as long either way.
        if not verify_password(stored, password) or mailbox is None or not _live(mailbox):
            return None
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=f"mailbox:{mailbox.storage_id}")
        if not hasattr(user, "profile"):
            user.set_unusable_password()
            user.save()
            Profile.objects.create(user=user, role=Role.MAILBOX, mailbox=mailbox)
        user.password = _session_secret(mailbox)
        return user

    def get_user(self, user_id):
        User = get_user_model()
        user = (
            User.objects.select_related("profile__mailbox__domain__reseller")
            .filter(pk=user_id, profile__role=Role.MAILBOX)
            .first()
        )
        if user is None or user.profile.mailbox is None or not _live(user.profile.mailbox):
            return None
        user.password = _session_secret(user.profile.mailbox)
        return user

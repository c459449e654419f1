"""A mailbox user's own pages: auto-reply and spam folder, password, forwarding, thresholds."""

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect

from accounts import operations
from accounts.models import Forwarding
from accounts.passwords import verify_password
from tenancy.backends import MailboxBackend
from tenancy.models import Role
from web.forms import OwnForwardingForm, PasswordForm, SpamForm, VacationForm
from web.views.common import add_errors, form_page, scoped


def own_mailbox(request):
    if request.scope.role != Role.MAILBOX:
        raise PermissionDenied
    return request.scope.mailboxes().select_related("settings").get()


@scoped()
def settings_page(request):
    mailbox = own_mailbox(request)
    form = VacationForm(request.POST or None, instance=mailbox.settings)
    if request.method == "POST" and form.is_valid():
        try:
            operations.save(request.scope.actor, form.save(commit=False))
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Saved; the mail store applies it to the next message.")
            return redirect("web:me")
    return form_page(request, form, title=f"Settings of {mailbox.address}",
                     intro="The auto-reply is sent at most once a day to each sender.")  # fmt: skip


@scoped()
def password_page(request):
    mailbox = own_mailbox(request)
    form = PasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not verify_password(mailbox.password_hash, form.cleaned_data["current"]):
            form.add_error("current", "is not your current password")
        else:
            try:
                operations.set_password(mailbox, form.cleaned_data["new"])
                operations.save(request.scope.actor, mailbox)
            except ValidationError as error:
                add_errors(form, _renamed(error))
            else:
                # This session goes on; every other session of the mailbox ends.
                update_session_auth_hash(request, MailboxBackend().get_user(request.user.pk))
                messages.success(request, "Password changed, for mail clients too.")
                return redirect("web:me")
    return form_page(request, form, title="Change password")


def _renamed(error: ValidationError) -> ValidationError:
    """The operation names the field 'password'; the form calls it 'new'."""
    if hasattr(error, "error_dict"):
        return ValidationError({("new" if k == "password" else k): v
                                for k, v in error.message_dict.items()})  # fmt: skip
    return error


@scoped()
def forwarding_page(request):
    mailbox = own_mailbox(request)
    forwarding = request.scope.forwardings().first()
    initial = {"enabled": False, "keep_copy": True}
    if forwarding is not None:
        initial = {"enabled": forwarding.enabled, "keep_copy": forwarding.keep_copy,
                   "targets": "\n".join(forwarding.targets.values_list("address", flat=True))}  # fmt: skip
    form = OwnForwardingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        targets = [t.strip() for t in data["targets"].splitlines() if t.strip()]
        try:
            if not data["enabled"] and not targets:
                if forwarding is not None:
                    operations.delete(request.scope.actor, forwarding)
            else:
                obj = forwarding or Forwarding(domain=mailbox.domain, local_part=mailbox.local_part)
                obj.enabled, obj.keep_copy = data["enabled"], data["keep_copy"]
                operations.save_forwarding(request.scope.actor, obj, targets)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Forwarding saved.")
            return redirect("web:me-forwarding")
    return form_page(request, form, title="Forward my mail")


@scoped()
def spam_page(request):
    mailbox = own_mailbox(request)
    form = SpamForm(request.POST or None, instance=mailbox)
    if request.method == "POST" and form.is_valid():
        try:
            operations.save(request.scope.actor, form.save(commit=False))
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, "Spam thresholds saved.")
            return redirect("web:me-spam")
    policy = operations.settings.MAILPANEL_MAIL_POLICY.spam
    return form_page(
        request, form, title="Spam thresholds",
        intro=f"The platform marks mail as spam from {policy.add_header_score} points and "
        f"refuses it from {policy.reject_score}; set both fields for your own.",
    )  # fmt: skip

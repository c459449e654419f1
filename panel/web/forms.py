"""The panel's forms: they keep what was typed and say, per field, exactly what is wrong.

Model rules (address forms, colours, thresholds) come from the models' own validation, run by
accounts.operations; the forms add what only a person's input needs (confirmations, uploads,
host names claimed by two resellers).
"""

import io

from django import forms
from django.conf import settings

from accounts.addresses import parse_domain
from accounts.models import Domain, Forwarding, Mailbox, Reseller
from accounts.usersettings import MailboxSettings

MIB = 1024 * 1024
LOGO_MAX_BYTES = 256 * 1024
LOGO_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


class LoginForm(forms.Form):
    username = forms.CharField(
        label="User name or mail address", max_length=320,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )  # fmt: skip
    password = forms.CharField(
        max_length=1024, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class ColourInput(forms.TextInput):
    input_type = "color"


class BrandForm(forms.ModelForm):
    """A reseller's brand; the reseller admin edits it, the operator everything of a reseller."""

    logo_url = forms.URLField(required=False, assume_scheme="https", max_length=200)
    logo_upload = forms.FileField(
        required=False, help_text="PNG, JPEG, GIF or WebP, at most 256 KiB; replaces the URL."
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the uploaded logo")

    class Meta:
        model = Reseller
        fields = ["brand_name", "logo_url", "primary_colour", "secondary_colour",
                  "panel_hostname", "webmail_hostname"]  # fmt: skip
        widgets = {"primary_colour": ColourInput, "secondary_colour": ColourInput}

    def _hostname(self, field: str):
        """Lower case, without a final dot; the model checks who else claims it."""
        value = (self.cleaned_data.get(field) or "").strip().lower().rstrip(".")
        if not value:
            return None
        try:
            return parse_domain(value)
        except forms.ValidationError as error:
            raise forms.ValidationError(error.messages) from None

    def clean_panel_hostname(self):
        return self._hostname("panel_hostname")

    def clean_webmail_hostname(self):
        return self._hostname("webmail_hostname")

    def clean_primary_colour(self):
        return self.cleaned_data["primary_colour"].lower()

    def clean_secondary_colour(self):
        return self.cleaned_data["secondary_colour"].lower()

    def clean_logo_upload(self):
        upload = self.cleaned_data.get("logo_upload")
        if not upload:
            return None
        if upload.size > LOGO_MAX_BYTES:
            raise forms.ValidationError(f"is {upload.size // 1024} KiB; at most 256 KiB")
        data = upload.read()
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise forms.ValidationError("is not a PNG, JPEG, GIF or WebP image") from None
        if kind not in LOGO_FORMATS:
            raise forms.ValidationError(f"is a {kind} image; use PNG, JPEG, GIF or WebP")
        return data, LOGO_FORMATS[kind]

    def apply_logo(self, reseller: Reseller) -> None:
        logo = self.cleaned_data.get("logo_upload")
        if logo:
            reseller.logo_image, reseller.logo_content_type = logo
        elif self.cleaned_data.get("remove_logo"):
            reseller.logo_image, reseller.logo_content_type = None, ""


class ResellerForm(BrandForm):
    class Meta(BrandForm.Meta):
        fields = ["name", "enabled", *BrandForm.Meta.fields]


class DomainNewForm(forms.Form):
    name = forms.CharField(label="Domain name", max_length=253, help_text="e.g. example.org")
    reseller = forms.ModelChoiceField(queryset=Reseller.objects.none())
    vouch = forms.BooleanField(
        required=False,
        label="I vouch for this domain (operator): it takes mail without a DNS proof",
    )

    def __init__(self, *args, scope, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reseller"].queryset = scope.resellers()
        if scope.role != "operator":
            # A reseller admin's domains are always its own reseller's.
            del self.fields["reseller"]
        if not scope.may_vouch:
            del self.fields["vouch"]

    def clean_name(self):
        try:
            name = parse_domain(self.cleaned_data["name"])
        except forms.ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        if Domain.objects.filter(name=name).exists():
            raise forms.ValidationError(f"{name} is already hosted here")
        return name


class DomainSettingsForm(forms.ModelForm):
    class Meta:
        model = Domain
        fields = ["catch_all", "enabled"]


class MailboxForm(forms.ModelForm):
    quota_mib = forms.IntegerField(min_value=0, label="Quota (MiB, 0 for none)")
    password = forms.CharField(
        required=False, strip=False, max_length=1024,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters, not a common password.",
    )  # fmt: skip
    password_again = forms.CharField(
        required=False, strip=False, max_length=1024, widget=forms.PasswordInput
    )

    class Meta:
        model = Mailbox
        fields = ["local_part", "enabled", "outbound_limit_class",
                  "spam_add_header_score", "spam_reject_score"]  # fmt: skip
        labels = {"local_part": "Address (before the @)"}

    def __init__(self, *args, scope, **kwargs):
        super().__init__(*args, **kwargs)
        # Outbound limit classes lift the sending limit: the operator's decision alone.
        if scope.role != "operator":
            del self.fields["outbound_limit_class"]
        if self.instance.pk:
            del self.fields["local_part"]
            self.fields["quota_mib"].initial = self.instance.quota_bytes // MIB
        else:
            self.fields["password"].required = True
            self.fields["quota_mib"].initial = settings.MAILPANEL_MAIL_POLICY.default_quota_mib

    def clean_local_part(self):
        return self.cleaned_data["local_part"].strip().lower()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") != cleaned.get("password_again"):
            self.add_error("password_again", "does not match the password")
        if cleaned.get("quota_mib") is not None:
            self.instance.quota_bytes = cleaned["quota_mib"] * MIB
        return cleaned


class ForwardingForm(forms.ModelForm):
    targets = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One address per line; local ones must exist here.",
    )

    class Meta:
        model = Forwarding
        fields = ["local_part", "keep_copy", "enabled"]
        labels = {"local_part": "Address (before the @)", "keep_copy": "Keep a copy in the "
                  "mailbox of the same address"}  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["local_part"]
            self.fields["targets"].initial = "\n".join(
                self.instance.targets.values_list("address", flat=True)
            )

    def clean_local_part(self):
        return self.cleaned_data["local_part"].strip().lower()

    def target_list(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data["targets"].splitlines() if t.strip()]


class OwnForwardingForm(forms.Form):
    """A mailbox user's forwarding of their own address."""

    enabled = forms.BooleanField(required=False, label="Forward my mail")
    targets = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One address per line."
    )
    keep_copy = forms.BooleanField(required=False, label="Keep a copy in my mailbox")


class VacationForm(forms.ModelForm):
    class Meta:
        model = MailboxSettings
        fields = ["vacation_enabled", "vacation_subject", "vacation_body", "vacation_start",
                  "vacation_end", "move_spam_to_junk"]  # fmt: skip
        widgets = {
            "vacation_start": forms.DateInput(attrs={"type": "date"}),
            "vacation_end": forms.DateInput(attrs={"type": "date"}),
        }
        labels = {"vacation_enabled": "Send an auto-reply (vacation)",
                  "move_spam_to_junk": "Move mail marked as spam into Junk"}  # fmt: skip


class SpamForm(forms.ModelForm):
    class Meta:
        model = Mailbox
        fields = ["spam_add_header_score", "spam_reject_score"]
        labels = {"spam_add_header_score": "Mark as spam from score",
                  "spam_reject_score": "Refuse from score"}  # fmt: skip
        help_texts = {"spam_add_header_score": "Empty (both) for the platform's thresholds."}


class PasswordForm(forms.Form):
    current = forms.CharField(strip=False, widget=forms.PasswordInput, label="Current password")
    new = forms.CharField(strip=False, widget=forms.PasswordInput, label="New password",
                          help_text="At least 10 characters, not a common password.")  # fmt: skip
    again = forms.CharField(strip=False, widget=forms.PasswordInput, label="New password again")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new") != cleaned.get("again"):
            self.add_error("again", "does not match the new password")
        return cleaned


class AdminForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="Letters, digits and . _ - only.")
    role = forms.ChoiceField()
    reseller = forms.ModelChoiceField(queryset=Reseller.objects.none(), required=False)
    domains = forms.ModelMultipleChoiceField(
        queryset=Domain.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="For domain admins.",
    )  # fmt: skip
    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput,
        help_text="Required for a new admin; empty keeps the password.",
    )  # fmt: skip
    email = forms.CharField(
        max_length=254, required=False,
        help_text="Where the admin is told of held accounts (optional).",
    )  # fmt: skip

    def __init__(self, *args, scope, editing=None, **kwargs):
        super().__init__(*args, **kwargs)
        from tenancy.models import Role

        self.scope, self.editing = scope, editing
        self.fields["role"].choices = [(r, Role(r).label) for r in scope.grantable_roles()]
        self.fields["reseller"].queryset = scope.resellers()
        self.fields["domains"].queryset = scope.domains()
        if scope.role != "operator":
            del self.fields["reseller"]
        if editing is not None:
            self.fields["username"].disabled = True

    def clean_username(self):
        from django.contrib.auth import get_user_model

        name = self.cleaned_data["username"].strip()
        if self.editing is not None:
            return self.editing.user.username
        if not all(c.isalnum() or c in "._-" for c in name):
            raise forms.ValidationError("use letters, digits and . _ - only")
        if get_user_model().objects.filter(username=name).exists():
            raise forms.ValidationError(f"{name} is already taken")
        return name

    def clean_email(self):
        from accounts.addresses import parse_target

        email = self.cleaned_data["email"].strip()
        return parse_target(email) if email else ""

    def clean(self):
        cleaned = super().clean()
        role = cleaned.get("role")
        reseller = cleaned.get("reseller") if "reseller" in self.fields else None
        if role in ("reseller", "domain") and self.scope.role == "operator" and not reseller:
            self.add_error("reseller", "a reseller admin or domain admin works for a reseller")
        if role == "domain":
            owner = reseller.pk if reseller else self.scope.reseller_id
            foreign = [d.name for d in cleaned.get("domains") or [] if d.reseller_id != owner]
            if foreign:
                self.add_error("domains", f"not the reseller's: {', '.join(foreign)}")
        if self.editing is None and not cleaned.get("password"):
            self.add_error("password", "a new admin needs a password")
        return cleaned

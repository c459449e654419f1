"""Operators' and reseller admins' pages: resellers and brands, admins, domains."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render

from accounts import dkimstore, operations, records
from accounts.models import Domain, Forwarding, Mailbox, Reseller
from tenancy.models import Profile, Role
from web.forms import AdminForm, BrandForm, DomainNewForm, DomainSettingsForm, ResellerForm
from web.views.common import add_errors, confirm_page, form_page, scoped

PAGE_SIZE = 50


@scoped("may_edit_brand")
def reseller_list(request):
    if not request.scope.may_manage_resellers:
        return redirect("web:reseller-edit", pk=request.scope.reseller_id)
    resellers = request.scope.resellers().annotate(domain_count=Count("domains"))
    return render(request, "web/resellers.html", {"resellers": resellers})


@scoped("may_edit_brand")
def reseller_edit(request, pk: int | None = None):
    scope = request.scope
    if pk is None and not scope.may_manage_resellers:
        raise PermissionDenied
    reseller = get_object_or_404(scope.resellers(), pk=pk) if pk else Reseller()
    form_class = ResellerForm if scope.may_manage_resellers else BrandForm
    form = form_class(request.POST or None, request.FILES or None, instance=reseller)
    if request.method == "POST" and form.is_valid():
        obj = form.save(commit=False)
        form.apply_logo(obj)
        try:
            operations.save(scope.actor, obj)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, f"Saved {obj.brand_name}.")
            return redirect("web:reseller-edit", pk=obj.pk)
    title = f"Brand of {reseller.name}" if pk else "New reseller"
    extra = {"multipart": True}
    if pk and scope.may_manage_resellers:
        extra |= {"delete_url": "web:reseller-delete", "object": reseller}
    return form_page(request, form, title=title, extra=extra)


@scoped("may_manage_resellers")
def reseller_delete(request, pk: int):
    reseller = get_object_or_404(request.scope.resellers(), pk=pk)
    if request.method == "POST":
        try:
            operations.delete(request.scope.actor, reseller)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("web:reseller-edit", pk=pk)
        messages.success(request, f"Removed reseller {reseller.name}.")
        return redirect("web:reseller-list")
    return confirm_page(request, title=f"Remove {reseller.name}",
                        question=f"Remove reseller {reseller.name}?")  # fmt: skip


@scoped("may_manage_admins")
def admin_list(request):
    return render(request, "web/admins.html", {"admins": request.scope.admins()})


@scoped("may_manage_admins")
def admin_edit(request, pk: int | None = None):
    scope = request.scope
    profile = get_object_or_404(scope.admins(), pk=pk) if pk else None
    initial = {}
    if profile is not None:
        initial = {"username": profile.user.username, "role": profile.role,
                   "reseller": profile.reseller_id, "domains": list(profile.domains.all()),
                   "email": profile.user.email}  # fmt: skip
    form = AdminForm(request.POST or None, scope=scope, editing=profile, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                _save_admin(scope, profile, data)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, f"Saved admin {data['username']}.")
            return redirect("web:admin-list")
    return form_page(request, form, title="Admin" if profile else "New admin")


def _save_admin(scope, profile: Profile | None, data: dict) -> None:
    from django.contrib.auth.password_validation import validate_password

    from accounts import audit

    user = profile.user if profile else get_user_model()(username=data["username"])
    if data.get("password"):
        try:
            validate_password(data["password"], user)
        except ValidationError as error:
            raise ValidationError({"password": error.messages}) from None
        user.set_password(data["password"])
    email_before = user.email
    user.email = data.get("email", "")
    user.save()
    role = data["role"]
    reseller_id = None
    if role != Role.OPERATOR:
        reseller = data.get("reseller")
        reseller_id = reseller.pk if reseller else scope.reseller_id
    before = None
    if profile is None:
        profile = Profile(user=user)
    else:
        before = {"role": profile.role, "reseller": profile.reseller_id,
                  "domains": sorted(profile.domains.values_list("name", flat=True)),
                  "email": email_before}  # fmt: skip
    profile.role, profile.reseller_id = role, reseller_id
    profile.save()
    profile.domains.set(data["domains"] if role == Role.DOMAIN else [])
    after = {"role": role, "reseller": reseller_id,
             "domains": sorted(profile.domains.values_list("name", flat=True)),
             "email": user.email}  # fmt: skip
    audit.AuditEntry.objects.create(
        actor=scope.actor.name, actor_role=scope.actor.role,
        action="change" if before else "create", object_type="admin",
        object_name=user.username, reseller_id=reseller_id, before=before, after=after,
    )  # fmt: skip


@scoped("may_manage_admins")
def admin_delete(request, pk: int):
    profile = get_object_or_404(request.scope.admins(), pk=pk)
    if profile.user_id == request.user.pk:
        raise PermissionDenied
    if request.method == "POST":
        from accounts import audit

        audit.AuditEntry.objects.create(
            actor=request.scope.actor.name, actor_role=request.scope.actor.role,
            action="delete", object_type="admin", object_name=profile.user.username,
            reseller_id=profile.reseller_id, before={"role": profile.role},
        )  # fmt: skip
        profile.user.delete()
        messages.success(request, f"Removed admin {profile.user.username}.")
        return redirect("web:admin-list")
    return confirm_page(request, title="Remove admin",
                        question=f"Remove admin {profile.user.username}?")  # fmt: skip


def _count_per_domain(model) -> Coalesce:
    """The number of `model` rows of each domain, counted from the (domain, ...) index (two
    joins with Count(distinct) multiply a big domain's rows instead)."""
    rows = model.objects.filter(domain=OuterRef("pk")).order_by().values("domain")
    return Coalesce(Subquery(rows.annotate(n=Count("*")).values("n")), 0)


@scoped("may_manage_mail")
def domain_list(request):
    domains = request.scope.domains().order_by("name")
    page = Paginator(domains, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = page.object_list.annotate(
        mailbox_count=_count_per_domain(Mailbox), forwarding_count=_count_per_domain(Forwarding)
    )
    return render(request, "web/domains.html", {"page": page})


@scoped("may_add_domains")
def domain_new(request):
    scope = request.scope
    form = DomainNewForm(request.POST or None, scope=scope)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        reseller = data.get("reseller") or scope.resellers().get()
        domain = Domain(name=data["name"], reseller=reseller)
        try:
            operations.create_domain(scope.actor, domain, vouched=bool(data.get("vouch")))
        except ValidationError as error:
            add_errors(form, error)
        except dkimstore.SigningStoreError as error:
            form.add_error(None, f"{error}; nothing was changed, try again")
        else:
            messages.success(request, f"Added {domain.name}; publish its records below.")
            return redirect("web:domain-detail", pk=domain.pk)
    return form_page(request, form, title="New domain")


@scoped("may_manage_mail")
def domain_detail(request, pk: int):
    scope = request.scope
    domain = get_object_or_404(scope.domains(), pk=pk)
    form = DomainSettingsForm(request.POST or None, instance=domain)
    if request.method == "POST" and form.is_valid():
        try:
            operations.save(scope.actor, form.save(commit=False))
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, f"Saved {domain.name}.")
            return redirect("web:domain-detail", pk=pk)
    expected = records.expected_records(domain)
    findings = records.check_records(expected) if request.GET.get("check") else None
    return render(request, "web/domain.html", {
        "domain": domain, "form": form, "records": expected, "findings": findings,
        "platform_known": settings.MAILPANEL_PLATFORM is not None,
    })  # fmt: skip


@scoped("may_manage_mail")
def domain_verify(request, pk: int):
    domain = get_object_or_404(request.scope.domains(), pk=pk)
    if request.method == "POST":
        try:
            operations.prove_ownership(request.scope.actor, domain)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Ownership of {domain.name} proven: it takes mail now.")
    return redirect("web:domain-detail", pk=pk)


@scoped("may_vouch")
def domain_vouch(request, pk: int):
    domain = get_object_or_404(request.scope.domains(), pk=pk)
    if request.method == "POST":
        operations.vouch(request.scope.actor, domain)
        messages.success(request, f"You vouched for {domain.name}: it takes mail now.")
    return redirect("web:domain-detail", pk=pk)


@scoped("may_add_domains")
def domain_delete(request, pk: int):
    domain = get_object_or_404(request.scope.domains(), pk=pk)
    if request.method == "POST":
        warnings = operations.remove_domain(request.scope.actor, domain, force=True)
        for warning in warnings:
            messages.warning(request, warning)
        messages.success(request, f"Removed {domain.name}.")
        return redirect("web:domain-list")
    return confirm_page(
        request, title=f"Remove {domain.name}",
        question=f"Remove {domain.name} with its {domain.mailboxes.count()} mailboxes and "
        f"{domain.forwardings.count()} forwardings? Their mail becomes unreachable at once.",
    )  # fmt: skip

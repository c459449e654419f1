"""Domain admins' pages (and above): mailboxes and forwardings of a domain."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render

from accounts import operations
from accounts.models import Forwarding, Mailbox
from web.forms import ForwardingForm, MailboxForm
from web.views.common import add_errors, confirm_page, form_page, scoped

PAGE_SIZE = 50


def search_prefix(request) -> str:
    """The typed search as a local-part prefix ('alice@exa' searches 'alice')."""
    return request.GET.get("q", "").strip().lower().partition("@")[0]


@scoped("may_manage_mail")
def mailbox_list(request, pk: int):
    """One page of a domain's mailboxes; the search is a prefix of the local part. Both are
    answered from indexes on (domain, local part): the unique one orders and pages, the
    pattern one (migration 0006) finds prefixes whatever the database's collation."""
    domain = get_object_or_404(request.scope.domains(), pk=pk)
    query = search_prefix(request)
    mailboxes = request.scope.mailboxes().filter(domain=domain).order_by("local_part")
    if query:
        mailboxes = mailboxes.filter(local_part__startswith=query)
    page = Paginator(mailboxes.only("address", "enabled", "quota_bytes", "domain"), PAGE_SIZE)
    return render(request, "web/mailboxes.html", {
        "domain": domain, "page": page.get_page(request.GET.get("page")), "q": query,
    })  # fmt: skip


@scoped("may_manage_mail")
def mailbox_new(request, pk: int):
    domain = get_object_or_404(request.scope.domains(), pk=pk)
    form = MailboxForm(request.POST or None, instance=Mailbox(domain=domain), scope=request.scope)
    return _mailbox_form(request, form, title=f"New mailbox in {domain.name}")


@scoped("may_manage_mail")
def mailbox_edit(request, pk: int):
    mailbox = get_object_or_404(request.scope.mailboxes(), pk=pk)
    form = MailboxForm(request.POST or None, instance=mailbox, scope=request.scope)
    return _mailbox_form(request, form, title=mailbox.address, mailbox=mailbox)


def _mailbox_form(request, form, *, title: str, mailbox: Mailbox | None = None):
    if request.method == "POST" and form.is_valid():
        obj = form.save(commit=False)
        try:
            if form.cleaned_data.get("password"):
                operations.set_password(obj, form.cleaned_data["password"])
            operations.save(request.scope.actor, obj)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, f"Saved {obj.address}.")
            return redirect("web:mailbox-list", pk=obj.domain_id)
    extra = {"delete_url": "web:mailbox-delete", "object": mailbox} if mailbox else {}
    return form_page(request, form, title=title, extra=extra)


@scoped("may_manage_mail")
def mailbox_delete(request, pk: int):
    mailbox = get_object_or_404(request.scope.mailboxes(), pk=pk)
    if request.method == "POST":
        removed = operations.remove_mailbox(request.scope.actor, mailbox)
        messages.success(request, f"Removed {removed.address}; its mail is unreachable now and "
                         f"deleted after {removed.purge_after:%Y-%m-%d}.")  # fmt: skip
        return redirect("web:mailbox-list", pk=mailbox.domain_id)
    return confirm_page(request, title=f"Remove {mailbox.address}",
                        question=f"Remove {mailbox.address} and make its mail unreachable?")  # fmt: skip


@scoped("may_manage_mail")
def forwarding_list(request, pk: int):
    domain = get_object_or_404(request.scope.domains(), pk=pk)
    query = search_prefix(request)
    forwardings = request.scope.forwardings().filter(domain=domain).order_by("local_part")
    if query:
        forwardings = forwardings.filter(local_part__startswith=query)
    page = Paginator(forwardings.prefetch_related("targets"), PAGE_SIZE)
    return render(request, "web/forwardings.html", {
        "domain": domain, "page": page.get_page(request.GET.get("page")), "q": query,
    })  # fmt: skip


@scoped("may_manage_mail")
def forwarding_new(request, pk: int):
    domain = get_object_or_404(request.scope.domains(), pk=pk)
    form = ForwardingForm(request.POST or None, instance=Forwarding(domain=domain))
    return _forwarding_form(request, form, title=f"New forwarding in {domain.name}")


@scoped("may_manage_mail")
def forwarding_edit(request, pk: int):
    forwarding = get_object_or_404(request.scope.forwardings(), pk=pk)
    form = ForwardingForm(request.POST or None, instance=forwarding)
    return _forwarding_form(request, form, title=forwarding.address, forwarding=forwarding)


def _forwarding_form(request, form, *, title: str, forwarding: Forwarding | None = None):
    if request.method == "POST" and form.is_valid():
        obj = form.save(commit=False)
        try:
            operations.save_forwarding(request.scope.actor, obj, form.target_list())
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, f"Saved {obj.address}.")
            return redirect("web:forwarding-list", pk=obj.domain_id)
    extra = {"delete_url": "web:forwarding-delete", "object": forwarding} if forwarding else {}
    return form_page(request, form, title=title, extra=extra)


@scoped("may_manage_mail")
def forwarding_delete(request, pk: int):
    forwarding = get_object_or_404(request.scope.forwardings(), pk=pk)
    if request.method == "POST":
        operations.delete(request.scope.actor, forwarding)
        messages.success(request, f"Removed {forwarding.address}.")
        return redirect("web:forwarding-list", pk=forwarding.domain_id)
    return confirm_page(request, title=f"Remove {forwarding.address}",
                        question=f"Remove the forwarding {forwarding.address}?")  # fmt: skip

"""Home, brand stylesheet and logo, the operator's status page, the audit log."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from accounts import dkimstore
from accounts.lifecycle import RemovedMailbox
from accounts.models import Domain, Mailbox, Ownership, Reseller
from tenancy.models import Role
from web.views.common import scoped

PAGE_SIZE = 50


@scoped()
def home(request):
    scope = request.scope
    if scope.role == Role.MAILBOX:
        return redirect("web:me")
    return redirect("web:domain-list")


@require_GET
def health(request):
    """200 while this node can serve: the panel runs and reaches its database (the HTTP
    balancer's health check, through nginx on the platform's own host name)."""
    try:
        connection.ensure_connection()
    except Exception as error:  # any database failure makes the node unhealthy
        return HttpResponse(f"database: {error}\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")


@require_GET
@cache_control(max_age=300)
def brand_css(request):
    """The brand's colours as CSS custom properties (no inline styles: the CSP forbids them)."""
    brand = request.brand
    css = f":root {{ --primary: {brand.primary_colour}; --secondary: {brand.secondary_colour}; }}\n"
    return HttpResponse(css, content_type="text/css")


@require_GET
@cache_control(max_age=300)
def logo(request, pk: int):
    """An uploaded logo, only on the host names of its own brand."""
    if request.brand.reseller_id != pk:
        raise Http404
    reseller = get_object_or_404(Reseller, pk=pk)
    if not reseller.logo_content_type:
        raise Http404
    response = HttpResponse(bytes(reseller.logo_image), content_type=reseller.logo_content_type)
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


def cluster_state() -> list[tuple[str, str]]:
    """Hook for the clusters' state (Patroni, Sentinel, mail-volume failover, queue sizes):
    rows of (what, state) from the monitoring the HA work adds; none exists yet, so the status
    page says so instead of showing invented values."""
    return []


@scoped("may_see_status")
def status(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), version()")
        in_recovery, version = cursor.fetchone()
    try:
        signing = f"keys of {dkimstore.published_count()} domains for rspamd"
    except dkimstore.SigningStoreError as error:
        signing = str(error)
    facts = [
        ("database", f"{'replica' if in_recovery else 'primary (writable)'}: {version}"),
        ("signing key store", signing),
        ("resellers", Reseller.objects.count()),
        ("domains", Domain.objects.count()),
        ("domains awaiting an ownership proof",
         Domain.objects.filter(ownership=Ownership.PENDING).count()),
        ("mailboxes", Mailbox.objects.count()),
        ("removed mailboxes whose mail is due for deletion",
         RemovedMailbox.objects.filter(purge_after__lte=timezone.now()).count()),
        ("retention of removed mail", f"{settings.MAILPANEL_REMOVED_MAIL_RETENTION_DAYS} days"),
    ]  # fmt: skip
    return render(request, "web/status.html", {"facts": facts, "cluster": cluster_state()})


@scoped("may_see_audit")
def audit_log(request):
    entries = request.scope.audit_entries().select_related("reseller")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/audit.html", {"page": page})


@scoped()
def api_token(request):
    """An admin's own API token: a new one replaces the old and is shown once."""
    from rest_framework.authtoken.models import Token

    if not request.scope.is_admin:
        raise PermissionDenied
    token = None
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        token = Token.objects.create(user=request.user).key
    has_token = Token.objects.filter(user=request.user).exists()
    return render(request, "web/api_token.html", {"token": token, "has_token": has_token})

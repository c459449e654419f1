"""The request's host name selects the brand (white-labelling) and is checked, and users only
ever see the brand of their own reseller.

Host names answered: the platform's own (MAILPANEL_ALLOWED_HOSTS) with the platform brand, and
each enabled reseller's `panel_hostname` with that reseller's brand; any other gets 400. On a
reseller's host name only that reseller's users (and operators) may be logged in.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse

from accounts.models import Reseller
from tenancy.models import Role
from tenancy.scope import scope_for

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
PLATFORM_COLOURS = ("#1f4e79", "#f2f2f2")


@dataclass(frozen=True)
class Brand:
    name: str
    primary_colour: str
    secondary_colour: str
    reseller_id: int | None = None
    logo_url: str = ""
    has_logo_image: bool = False


def platform_brand() -> Brand:
    return Brand(settings.MAILPANEL_BRAND_NAME, *PLATFORM_COLOURS)


def reseller_brand(reseller: Reseller) -> Brand:
    return Brand(
        name=reseller.brand_name,
        primary_colour=reseller.primary_colour,
        secondary_colour=reseller.secondary_colour,
        reseller_id=reseller.pk,
        logo_url=reseller.logo_url,
        has_logo_image=bool(reseller.logo_content_type),
    )


def request_host(request) -> str:
    host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0].lower() if ":" in host else host.lower()


def client_ip(request) -> str:
    """The client's address: behind MAILPANEL_PROXY_COUNT proxies, the one the outermost proxy
    saw (X-Forwarded-For entries before it are the client's own claims)."""
    count = settings.MAILPANEL_PROXY_COUNT
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [a for a in forwarded if a]
    if count and len(forwarded) >= count:
        return forwarded[-count]
    return request.META.get("REMOTE_ADDR", "")


class BrandMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        host = request_host(request)
        if host in settings.MAILPANEL_PLATFORM_HOSTS:
            request.brand = platform_brand()
        else:
            reseller = Reseller.objects.filter(panel_hostname=host, enabled=True).first()
            if reseller is None:
                return HttpResponseBadRequest("unknown host name", content_type="text/plain")
            request.brand = reseller_brand(reseller)
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


def user_fits_brand(user, brand: Brand) -> bool:
    """Whether a user may work on a host name with this brand."""
    if brand.reseller_id is None:
        return True
    scope = scope_for(user)
    return scope.role == Role.OPERATOR or scope.reseller_id == brand.reseller_id


class TenantLoginMiddleware:
    """Logs out a user who reaches another reseller's host name (a session cookie is per host,
    so this takes a cookie carried over on purpose)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not user_fits_brand(user, request.brand):
            logout(request)
            return redirect(reverse("web:login"))
        return self.get_response(request)


def brand_context(request) -> dict:
    return {"brand": getattr(request, "brand", None) or platform_brand()}
